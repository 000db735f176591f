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

std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view value) {
    std::tm tm{};
    const std::string text(value);
    const char* end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == nullptr || *end != '\0') return std::nullopt;
    return std::chrono::sys_seconds{std::chrono::seconds(timegm(&tm))};
}

std::optional<Duration> parse_retry_after(std::string_view value,
                                          std::chrono::system_clock::time_point now) {
    if (value.empty()) return std::nullopt;
    if (value.find_first_not_of("0123456789") == std::string_view::npos && value.size() <= 9) {
        return std::chrono::seconds(std::stol(std::string(value)));
    }
    const auto date = parse_http_date(value);
    if (!date) return std::nullopt;
    // In seconds: a date past 2262 would overflow system_clock's nanoseconds.
    // The scheduler caps any wait at a day.
    const auto wait = date->time_since_epoch() -
                      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
    return std::clamp(std::chrono::duration_cast<Duration>(wait), Duration{0},
                      Duration{std::chrono::hours(24 * 366)});
}

namespace {

auto awaitable_tuple() { return asio::as_tuple(asio::use_awaitable); }

class Client;

class TlsSessions;

// One TLS connection to one origin, registered with its client while it lives
// so that close() can abort it mid-request.
class Conn {
  public:
    Conn(asio::any_io_executor ex, ssl::context& ctx, std::unordered_set<Conn*>& registry)
        : stream(ex, ctx), watchdog_(ex), registry_(registry) {
        registry_.insert(this);
    }
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;
    ~Conn() {
        *self_ = nullptr;  // a watchdog completion already queued finds no connection
        // OpenSSL marks the session of a connection freed without a TLS
        // shutdown as not resumable. One that ended a complete exchange is
        // as good as shut down (a close_notify would cost a write per dial).
        if (clean)
            SSL_set_shutdown(stream.native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        registry_.erase(this);
    }

    void abort() {
        deadline_ = Clock::time_point::max();  // nothing left to watch
        watchdog_.cancel();
        beast::get_lowest_layer(stream).close();
    }

    // Idle, and nothing under way on any connection: the watchdog stops, so
    // a daemon at rest is not woken when the last deadlines pass.
    void rest() {
        if (watching_) watchdog_.cancel();
    }

    // Aborts whatever the connection is doing once AT passes; timed_out()
    // then tells why its operations failed. Moving a deadline costs no timer
    // operation: the one wait per connection is re-armed only when it fires
    // early. beast::tcp_stream's own timeout armed and cancelled a timer
    // around every read and write (docs/architecture.md, "One read loop").
    // Deadlines on one connection only move later (each is now plus one of
    // its client's budgets), so the armed wait is never too late.
    void set_deadline(Clock::time_point at) {
        deadline_ = at;
        if (!watching_) watch();
    }
    void clear_deadline() { deadline_ = Clock::time_point::max(); }
    bool timed_out() const { return timed_out_; }

    beast::ssl_stream<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
    Clock::time_point idle_since{};
    std::string origin;               // whose TLS session a new ticket is (see TlsSessions)
    TlsSessions* sessions = nullptr;  // where that ticket goes
    bool clean = false;               // between complete exchanges

  private:
    void watch() {
        watching_ = true;
        watchdog_.expires_at(deadline_);
        // Fired or cancelled (rest, abort), what counts is the deadline now:
        // a connection taken again before a cancelled wait completes is
        // watched again here.
        watchdog_.async_wait([self = self_](boost::system::error_code) {
            Conn* conn = *self;
            if (conn == nullptr) return;
            conn->watching_ = false;
            if (conn->deadline_ == Clock::time_point::max()) return;   // idle: stay unarmed
            if (Clock::now() < conn->deadline_) return conn->watch();  // not yet
            conn->timed_out_ = true;
            conn->abort();
        });
    }

    asio::steady_timer watchdog_;
    Clock::time_point deadline_ = Clock::time_point::max();
    bool watching_ = false;
    bool timed_out_ = false;
    std::shared_ptr<Conn*> self_ = std::make_shared<Conn*>(this);
    std::unordered_set<Conn*>& registry_;
};

// TLS sessions to resume, the newest per origin. A resumed handshake skips
// parsing and verifying the server's certificate chain, most of what a full
// handshake costs the client (docs/architecture.md, "TLS sessions are
// resumed"), and the server saves its signature. A session only comes from a handshake that
// verified that origin's chain and host name, and the cache dies with its
// client, whose trust it was verified against. A server that declines a
// session gets a full handshake.
class TlsSessions {
  public:
    explicit TlsSessions(SSL_CTX* ctx) {
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, &TlsSessions::on_new);
    }
    TlsSessions(const TlsSessions&) = delete;
    TlsSessions& operator=(const TlsSessions&) = delete;
    ~TlsSessions() {
        for (auto& [origin, session] : by_origin_) SSL_SESSION_free(session);
    }

    // Before CONN's handshake: offers its origin's session, and files the
    // tickets the server sends on this connection under that origin.
    void prepare(Conn& conn) {
        SSL* ssl = conn.stream.native_handle();
        conn.sessions = this;
        SSL_set_ex_data(ssl, ex_index(), &conn);
        const auto it = by_origin_.find(conn.origin);
        if (it != by_origin_.end() && SSL_SESSION_is_resumable(it->second)) {
            SSL_set_session(ssl, it->second);
        }
    }
    // After a failed handshake: a session must not be the reason twice.
    void forget(const std::string& origin) {
        if (const auto it = by_origin_.find(origin); it != by_origin_.end()) {
            SSL_SESSION_free(it->second);
            by_origin_.erase(it);
        }
    }

  private:
    static int ex_index() {  // the SSL's slot for its Conn
        static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
        return index;
    }
    static int on_new(SSL* ssl, SSL_SESSION* session) {
        auto* conn = static_cast<Conn*>(SSL_get_ex_data(ssl, ex_index()));
        if (conn == nullptr || conn->sessions == nullptr) return 0;  // not ours: OpenSSL frees it
        auto& slot = conn->sessions->by_origin_[conn->origin];
        if (slot != nullptr) SSL_SESSION_free(slot);
        slot = session;
        return 1;  // the cache holds the reference now
    }

    std::unordered_map<std::string, SSL_SESSION*> by_origin_;
};

std::string describe(const Conn& conn, const boost::system::error_code& ec, Duration budget) {
    if (conn.timed_out()) {
        return "timed out (budget " + std::to_string(budget.count()) + " ms)";
    }
    if (ec == ssl::error::stream_truncated || ec == http::error::partial_message) {
        return "connection closed before the response was complete (" + ec.message() + ")";
    }
    return ec.message();
}

// What http::async_read does, in one loop: read into the connection's
// buffer, hand it to the parser, until the parser has a whole response. Its
// two composed operations per read, and their first 512-byte reads, cost more
// than parsing a CA's response.
asio::awaitable<boost::system::error_code> read_response(Conn& conn, ResponseParser& parser) {
    constexpr std::size_t read_chunk = 16 * 1024;  // a whole TLS record
    parser.eager(true);                            // header and body in one put()
    boost::system::error_code ec;
    for (;;) {
        if (conn.buffer.size() != 0) {
            conn.buffer.consume(parser.put(conn.buffer.data(), ec));
            if (ec == http::error::need_more) {
                ec = {};
            } else if (ec || parser.is_done()) {
                co_return ec;
            }
        }
        auto [rec, n] = co_await conn.stream.async_read_some(conn.buffer.prepare(read_chunk),
                                                             awaitable_tuple());
        if (rec == asio::error::eof) {
            if (!parser.got_some()) co_return http::error::end_of_stream;
            parser.put_eof(ec);  // a body that ends with the connection, or partial_message
            co_return ec;
        }
        if (rec) co_return rec;
        conn.buffer.commit(n);
    }
}

class Client final : public HttpClient, public std::enable_shared_from_this<Client> {
  public:
    Client(asio::any_io_executor ex, const ClientOptions& options)
        : ex_(std::move(ex)),
          options_(options),
          resolver_(options.resolver ? options.resolver : make_resolver(ex_)),
          tls_(ssl::context::tls_client),
          sessions_(tls_.native_handle()),
          prune_(ex_) {
        SSL_CTX_set_min_proto_version(tls_.native_handle(), TLS1_2_VERSION);
        use_system_trust(tls_.native_handle());
        for (const auto& [file, key] : {std::pair{options.ca_file, "api.ca_file "},
                                        std::pair{options.extra_ca_file, "source ca_file "}}) {
            if (!file) continue;
            boost::system::error_code ec;
            tls_.load_verify_file(file->string(), ec);
            if (ec) throw std::runtime_error(key + file->string() + ": " + ec.message());
        }
        tls_.set_verify_mode(ssl::verify_peer);
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
                    if (auto err = co_await connect(*conn, endpoint, deadline)) co_return *err;
                }
            }
            HttpResponse response;
            bool keep_alive = false;
            bool stale = false;  // a reused connection the server had already closed
            conn->clean = false;
            auto err = co_await exchange(*conn, request, deadline, response, keep_alive, stale);
            if (!err) {
                conn->clean = true;
                if (keep_alive && !closed_) put_idle(origin, std::move(conn));
                co_return response;
            }
            if (!(reused && stale && attempt == 0 && Clock::now() < deadline)) co_return *err;
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
    asio::awaitable<std::optional<Failure>> connect(Conn& conn, const Endpoint& ep,
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
            if (auto err = co_await tunnel(conn, *proxy, ep)) co_return fail(Stage::connect, *err);
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
        co_return std::nullopt;
    }

    // Asks PROXY for a tunnel to EP. Only the target's host and port and the
    // proxy's own credentials cross in clear text; never the token.
    asio::awaitable<std::optional<std::string>> tunnel(Conn& conn, const Proxy& proxy,
                                                       const Endpoint& ep) {
        auto& stream = beast::get_lowest_layer(conn.stream);
        const std::string target = url_host(ep.host) + ":" + std::to_string(ep.port);
        const std::string asked = "proxy " + proxy.origin() + " (CONNECT " + target + ")";
        http::request<http::empty_body> req{http::verb::connect, target, 11};
        req.set(http::field::host, target);
        req.set(http::field::user_agent, "rootcertd/" ROOTCERTD_VERSION);
        std::string credentials = proxy.credentials;
        if (options_.proxy_credentials) {
            auto fresh = options_.proxy_credentials();
            if (!fresh) co_return asked + ": " + fresh.error();
            credentials = std::move(fresh.value());
        }
        if (!credentials.empty()) {
            req.set(http::field::proxy_authorization, basic_authorization(credentials));
        }
        auto [wec, w] = co_await http::async_write(stream, req, awaitable_tuple());
        if (wec) co_return asked + ": send: " + describe(conn, wec, options_.connect_timeout);
        // A CONNECT answer has no body to read: a refusal's is left unread.
        beast::flat_buffer buffer;
        http::response_parser<http::empty_body> parser;
        parser.skip(true);
        parser.header_limit(static_cast<std::uint32_t>(options_.header_limit));
        auto [rec, r] = co_await http::async_read_header(stream, buffer, parser, awaitable_tuple());
        if (rec)
            co_return asked + ": read answer: " + describe(conn, rec, options_.connect_timeout);
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
            co_return why;
        }
        if (buffer.size() != 0) co_return asked + ": sent data before the TLS handshake";
        co_return std::nullopt;
    }

    // STALE: nothing came back on a kept connection, which a fresh one may fix.
    asio::awaitable<std::optional<Failure>> exchange(Conn& conn, const HttpRequest& r,
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
        co_return std::nullopt;
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

std::shared_ptr<HttpClient> make_https_client(asio::any_io_executor executor,
                                              const ClientOptions& options) {
    return std::make_shared<Client>(std::move(executor), options);
}

}  // namespace rootcertd
