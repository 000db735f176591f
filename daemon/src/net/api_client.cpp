#include "rootcertd/net/api_client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdlib>
#include <ctime>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "rootcertd/core/semaphore.hpp"
#include "rootcertd/net/connection.hpp"
#include "rootcertd/net/http_date.hpp"
#include "rootcertd/net/resolver.hpp"
#include "rootcertd/net/response_parser.hpp"
#include "rootcertd/net/trust_store.hpp"

namespace rootcertd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

auto awaitable_tuple() { return asio::as_tuple(asio::use_awaitable); }

using https::Conn;
using https::TlsSessions;
class Client final : public HttpClient, public std::enable_shared_from_this<Client> {
  public:
    Client(asio::any_io_executor ex, const ClientOptions& options,
           std::shared_ptr<Resolver> resolver)
        : ex_(std::move(ex)),
          options_(options),
          resolver_(std::move(resolver)),
          tls_(ssl::context::tls_client),
          sessions_(tls_.native_handle()),
          prune_(ex_) {
        SSL_CTX_set_min_proto_version(tls_.native_handle(), TLS1_2_VERSION);
        use_system_trust(tls_.native_handle());
        tls_.set_verify_mode(ssl::verify_peer);
    }

    // The trust files besides the system store, each named when it fails.
    Outcome<void> load_trust() {
        for (const auto& [file, key] : {std::pair{options_.ca_file, "api.ca_file "},
                                        std::pair{options_.extra_ca_file, "source ca_file "}}) {
            if (!file) continue;
            boost::system::error_code ec;
            tls_.load_verify_file(file->string(), ec);
            if (ec) return fail(Stage::tls, key + file->string() + ": " + ec.message());
        }
        return Ok{};
    }

    asio::awaitable<Outcome<HttpResponse>> get(HttpRequest request) override {
        const Endpoint& endpoint = request.endpoint;
        auto self = shared_from_this();  // outlive every connection this call holds
        const auto deadline = Clock::now() + options_.timeout;
        const auto origin = endpoint.origin();
        for (int attempt = 0;; ++attempt) {
            if (closed_) co_return fail("shutting down");
            auto conn = take_idle(origin);
            bool reused = conn != nullptr;
            if (!conn) {
                // At most max_dialing new connections per origin at a time:
                // TLS handshakes cost the client ~2 ms of CPU each, and started
                // all at once (a fleet's first pass) none finishes until all do.
                auto& gate = dialing(origin);
                auto [gec] =
                    co_await gate.async_send(boost::system::error_code{}, awaitable_tuple());
                if (gec) co_return fail("stopped before connecting to " + origin);
                SlotGuard dialed(gate);
                if (closed_) co_return fail("shutting down");
                conn = take_idle(origin);  // one may have come free meanwhile
                reused = conn != nullptr;
                if (!conn) {
                    conn = std::make_unique<Conn>(ex_, tls_, live_);
                    auto connected = co_await connect(*conn, endpoint, deadline);
                    if (!connected) co_return connected.failure();
                }
            }
            HttpResponse response;
            bool keep_alive = false;
            bool stale = false;  // a reused connection the server had already closed
            conn->clean = false;
            auto exchanged =
                co_await exchange(*conn, request, deadline, response, keep_alive, stale);
            if (exchanged) {
                conn->clean = true;
                if (keep_alive && !closed_) put_idle(origin, std::move(conn));
                co_return response;
            }
            if (!(reused && stale && attempt == 0 && Clock::now() < deadline)) {
                co_return exchanged.failure();
            }
        }
    }

    void close() override {
        closed_ = true;
        resolver_->close();
        prune_.cancel();
        for (Conn* c : live_) c->abort();
        idle_.clear();
    }

    std::size_t open_connections() const override { return live_.size(); }

  private:
    // Each step that fails names its stage: resolve, connect (the proxy's
    // tunnel included) or tls.
    asio::awaitable<Outcome<void>> connect(Conn& conn, const Endpoint& ep,
                                           Clock::time_point deadline) {
        const auto origin = ep.origin();
        // Through a proxy, the proxy resolves the API's name: only its own is looked up here.
        const Proxy* proxy = options_.proxy.proxy_for(ep);
        const std::string& dial_host = proxy ? proxy->host : ep.host;
        const std::uint16_t dial_port = proxy ? proxy->port : ep.port;
        const std::string dialled = proxy ? "proxy " + proxy->origin() : origin;
        const std::string via = proxy ? " via proxy " + proxy->origin() : "";
        // 1. Resolve, bounded by the connect deadline; an IP literal is not looked up.
        const auto connect_by = std::min(deadline, Clock::now() + options_.connect_timeout);
        auto results = co_await resolver_->resolve(
            dial_host, dial_port, std::chrono::ceil<Duration>(connect_by - Clock::now()));
        if (!results) {
            co_return fail(Stage::resolve, "resolve " + (proxy ? "proxy " : std::string()) +
                                               dial_host + ": " + results.error());
        }
        // 2. TCP connect under the connect deadline.
        conn.set_deadline(connect_by);
        auto& tcp_layer = beast::get_lowest_layer(conn.stream);
        auto [cec, _] = co_await tcp_layer.async_connect(results.value(), awaitable_tuple());
        if (cec) {
            co_return fail(Stage::connect, "connect to " + dialled + ": " +
                                               describe(conn, cec, options_.connect_timeout));
        }
        tcp_layer.socket().set_option(tcp::no_delay(true));
        // 2b. Through a proxy: a CONNECT tunnel, inside which TLS runs end to end.
        if (proxy) {
            conn.set_deadline(std::min(deadline, Clock::now() + options_.connect_timeout));
            auto tunnelled = co_await tunnel(conn, *proxy, ep);
            if (!tunnelled) co_return tunnelled;
        }
        // 3. SNI and host-name verification: the name we asked for, exactly.
        if (!is_ip_literal(ep.host) &&
            !SSL_set_tlsext_host_name(conn.stream.native_handle(), ep.host.c_str())) {
            co_return fail(Stage::tls, "TLS setup for " + origin + ": cannot set SNI");
        }
        conn.stream.set_verify_callback(ssl::host_name_verification(ep.host));
        conn.origin = origin;
        sessions_.prepare(conn);
        // 4. Handshake under the whole-request deadline.
        conn.set_deadline(deadline);
        auto [hec] =
            co_await conn.stream.async_handshake(ssl::stream_base::client, awaitable_tuple());
        if (hec) {
            sessions_.forget(origin);
            std::string why = describe(conn, hec, options_.timeout);
            const long verify = SSL_get_verify_result(conn.stream.native_handle());
            if (verify != X509_V_OK)
                why += ": " + std::string(X509_verify_cert_error_string(verify));
            co_return fail(Stage::tls, "TLS handshake with " + origin + via + ": " + why);
        }
        co_return Ok{};
    }

    // Asks PROXY for a tunnel to EP. Only the target's host and port and the
    // proxy's own credentials cross in clear text; never the token.
    // Fails at the connect stage.
    asio::awaitable<Outcome<void>> tunnel(Conn& conn, const Proxy& proxy, const Endpoint& ep) {
        auto& stream = beast::get_lowest_layer(conn.stream);
        const std::string target = url_host(ep.host) + ":" + std::to_string(ep.port);
        const std::string asked = "proxy " + proxy.origin() + " (CONNECT " + target + ")";
        http::request<http::empty_body> req{http::verb::connect, target, 11};
        req.set(http::field::host, target);
        req.set(http::field::user_agent, "rootcertd/" ROOTCERTD_VERSION);
        std::string credentials = proxy.credentials;
        if (options_.proxy_credentials) {
            auto fresh = options_.proxy_credentials();
            if (!fresh) co_return fail(Stage::connect, asked + ": " + fresh.error());
            credentials = std::move(fresh.value());
        }
        if (!credentials.empty()) {
            req.set(http::field::proxy_authorization, basic_authorization(credentials));
        }
        auto [wec, w] = co_await http::async_write(stream, req, awaitable_tuple());
        if (wec) {
            co_return fail(Stage::connect,
                           asked + ": send: " + describe(conn, wec, options_.connect_timeout));
        }
        // A CONNECT answer has no body to read: a refusal's is left unread.
        beast::flat_buffer buffer;
        http::response_parser<http::empty_body> parser;
        parser.skip(true);
        parser.header_limit(static_cast<std::uint32_t>(options_.header_limit));
        auto [rec, r] = co_await http::async_read_header(stream, buffer, parser, awaitable_tuple());
        if (rec) {
            co_return fail(Stage::connect, asked + ": read answer: " +
                                               describe(conn, rec, options_.connect_timeout));
        }
        const auto& res = parser.get();
        if (res.result_int() / 100 != 2) {
            std::string why = asked + ": answered " + std::to_string(res.result_int()) + " " +
                              std::string(res.reason());
            // Some proxies (tinyproxy) answer bad credentials with 401, not 407.
            if (res.result() == http::status::proxy_authentication_required ||
                res.result() == http::status::unauthorized) {
                why += credentials.empty() ? ": set api.proxy_auth_file"
                                           : ": the proxy refused the credentials";
            }
            co_return fail(Stage::connect, why);
        }
        if (buffer.size() != 0) {
            co_return fail(Stage::connect, asked + ": sent data before the TLS handshake");
        }
        co_return Ok{};
    }

    // STALE: nothing came back on a kept connection, which a fresh one may fix.
    asio::awaitable<Outcome<void>> exchange(Conn& conn, const HttpRequest& r,
                                            Clock::time_point deadline, HttpResponse& out,
                                            bool& keep_alive, bool& stale) {
        // 5. Send the request, formatted here in one buffer: Beast's serializer
        // costs more than a few fixed headers are worth (docs/architecture.md,
        // "The warm path"). Nothing in it can break a header line (see
        // HttpRequest).
        const Endpoint& ep = r.endpoint;
        std::string req;
        req.reserve(200 + r.target.size() + r.authorization.size() + r.if_none_match.size() +
                    r.if_modified_since.size());
        req.append("GET ").append(r.target).append(" HTTP/1.1\r\nHost: ").append(url_host(ep.host));
        if (ep.port != 443) req.append(":").append(std::to_string(ep.port));
        req.append("\r\nUser-Agent: rootcertd/" ROOTCERTD_VERSION "\r\nAccept: */*\r\n");
        if (!r.authorization.empty()) {
            req.append(r.auth_header).append(": ").append(r.authorization).append("\r\n");
        }
        if (!r.if_none_match.empty()) {
            req.append("If-None-Match: ").append(r.if_none_match).append("\r\n");
        }
        if (!r.if_modified_since.empty()) {
            req.append("If-Modified-Since: ").append(r.if_modified_since).append("\r\n");
        }
        req.append("\r\n");
        conn.set_deadline(deadline);
        auto [wec, w] =
            co_await asio::async_write(conn.stream, asio::buffer(req), awaitable_tuple());
        if (wec) {
            stale = true;
            co_return fail(Stage::http, "send request: " + describe(conn, wec, options_.timeout));
        }
        // 6. Read the response; the parser refuses oversize parts before buffering them.
        ResponseParser parser;
        const std::size_t body_limit = r.body_limit != 0 ? r.body_limit : options_.body_limit;
        parser.body_limit(body_limit);
        parser.header_limit(static_cast<std::uint32_t>(options_.header_limit));
        if (auto rec = co_await read_response(conn, parser)) {
            std::string why;
            if (rec == http::error::body_limit) {
                why = "response body exceeds " + std::to_string(body_limit) + " bytes";
            } else if (rec == http::error::header_limit) {
                why = "response header exceeds " + std::to_string(options_.header_limit) + " bytes";
            } else {
                why = "read response: " + describe(conn, rec, options_.timeout);
            }
            stale = !parser.got_some();
            co_return fail(Stage::http, why);
        }
        out.status = parser.status;
        out.location = std::move(parser.location);
        if (out.status == 429 || out.status == 503) {
            out.retry_after =
                parse_retry_after(parser.retry_after, std::chrono::system_clock::now());
        }
        conn.clear_deadline();
        keep_alive = parser.keep_alive() && !conn.timed_out();
        out.body = std::move(parser.body);
        out.etag = std::move(parser.etag);
        out.last_modified = std::move(parser.last_modified);
        co_return Ok{};
    }

    static constexpr std::size_t max_dialing = 2;
    Semaphore& dialing(const std::string& origin) {
        auto& gate = dialing_[origin];
        if (!gate) gate = std::make_unique<Semaphore>(ex_, max_dialing);
        return *gate;
    }

    std::unique_ptr<Conn> take_idle(const std::string& origin) {
        auto it = idle_.find(origin);
        if (it == idle_.end()) return nullptr;
        auto& pool = it->second;
        while (!pool.empty()) {
            auto conn = std::move(pool.back());
            pool.pop_back();
            if (Clock::now() - conn->idle_since < options_.idle_timeout) return conn;
        }
        return nullptr;
    }

    void put_idle(const std::string& origin, std::unique_ptr<Conn> conn) {
        conn->idle_since = Clock::now();
        idle_[origin].push_back(std::move(conn));
        if (!prune_pending_) schedule_prune();
        std::size_t idle = 0;
        for (const auto& [o, pool] : idle_) idle += pool.size();
        if (idle < live_.size()) return;  // requests under way: watchdogs stay armed
        for (auto& [o, pool] : idle_) {
            for (auto& c : pool) c->rest();
        }
    }

    // Idle connections close on their own so a daemon at rest holds no sockets.
    void schedule_prune() {
        prune_pending_ = true;
        prune_.expires_after(options_.idle_timeout);
        prune_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
            auto self = std::static_pointer_cast<Client>(weak.lock());
            if (!self) return;
            self->prune_pending_ = false;
            if (ec) return;
            bool left = false;
            for (auto& [origin, pool] : self->idle_) {
                std::erase_if(pool, [&](const auto& c) {
                    return Clock::now() - c->idle_since >= self->options_.idle_timeout;
                });
                left = left || !pool.empty();
            }
            if (left) self->schedule_prune();
        });
    }

    asio::any_io_executor ex_;
    ClientOptions options_;
    std::shared_ptr<Resolver> resolver_;
    ssl::context tls_;
    TlsSessions sessions_;            // after tls_: freed before it
    std::unordered_set<Conn*> live_;  // declared before idle_: outlives the connections
    std::unordered_map<std::string, std::vector<std::unique_ptr<Conn>>> idle_;
    std::unordered_map<std::string, std::unique_ptr<Semaphore>> dialing_;
    asio::steady_timer prune_;
    bool prune_pending_ = false;
    bool closed_ = false;
};

}  // namespace

Outcome<std::shared_ptr<HttpClient>> make_https_client(asio::any_io_executor executor,
                                                       const ClientOptions& options) {
    auto resolver = options.resolver;
    if (!resolver) {
        auto made = make_resolver(executor);
        if (!made) return made.failure();
        resolver = std::move(made.value());
    }
    auto client = std::make_shared<Client>(std::move(executor), options, std::move(resolver));
    if (auto trusted = client->load_trust(); !trusted) return trusted.failure();
    return std::shared_ptr<HttpClient>(std::move(client));
}

}  // namespace rootcertd
