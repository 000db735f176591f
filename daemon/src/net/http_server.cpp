#include "rootcertd/net/http_server.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <vector>

namespace rootcertd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

Outcome<tcp::endpoint> parse_listen(std::string_view text) {
    const auto bad = [&] {
        return fail("'" + std::string(text) +
                    "' is not host:port (e.g. 127.0.0.1:9464, [::1]:9464)");
    };
    std::string host;
    std::string_view port_text;
    if (text.starts_with("[")) {
        const auto close = text.find("]:");
        if (close == std::string_view::npos) return bad();
        host = std::string(text.substr(1, close - 1));
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) return bad();
        host = std::string(text.substr(0, colon));
        port_text = text.substr(colon + 1);
    }
    unsigned port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535)
        return bad();
    if (host == "localhost") host = "127.0.0.1";
    boost::system::error_code aec;
    const auto address = asio::ip::make_address(host, aec);
    if (aec) return fail("'" + host + "' is not an IP address (or localhost)");
    return tcp::endpoint(address, static_cast<unsigned short>(port));
}

namespace {

auto tuple_token() { return asio::as_tuple(asio::use_awaitable); }

class Server final : public HttpServer, public std::enable_shared_from_this<Server> {
  public:
    Server(asio::any_io_executor ex, HttpHandler handler, ServerLimits limits)
        : acceptor_(ex), handler_(std::move(handler)), limits_(limits) {}

    Outcome<void> listen(const tcp::endpoint& endpoint) {
        boost::system::error_code ec;
        acceptor_.open(endpoint.protocol(), ec);
        if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) acceptor_.bind(endpoint, ec);
        if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            return fail("metrics.listen " + endpoint.address().to_string() + ":" +
                        std::to_string(endpoint.port()) + ": " + ec.message());
        }
        return Ok{};
    }

    void start() {
        asio::co_spawn(acceptor_.get_executor(), accept_loop(shared_from_this()), asio::detached);
    }

    tcp::endpoint local_endpoint() const override { return acceptor_.local_endpoint(); }

    void stop() override {
        boost::system::error_code ec;
        acceptor_.close(ec);
        for (const auto& s : sessions_) s->stream->socket().close(ec);
    }

  private:
    static asio::awaitable<void> accept_loop(std::shared_ptr<Server> self) {
        for (;;) {
            auto [ec, socket] = co_await self->acceptor_.async_accept(tuple_token());
            if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) co_return;
            if (ec) continue;  // e.g. EMFILE: keep serving the connections we have
            if (self->sessions_.size() >= self->limits_.max_connections && !self->evict_oldest()) {
                socket.close(ec);
                continue;
            }
            asio::co_spawn(self->acceptor_.get_executor(),
                           session(self, beast::tcp_stream(std::move(socket))), asio::detached);
        }
    }

    // At the cap, a new connection takes the place of the oldest one that
    // is waiting for (or dribbling) a request: idle and slow clients cannot
    // lock a health probe out. False when every connection is mid-reply.
    bool evict_oldest() {
        const auto oldest = std::find_if(sessions_.begin(), sessions_.end(),
                                         [](const auto& s) { return s->reading; });
        if (oldest == sessions_.end()) return false;
        boost::system::error_code ec;
        (*oldest)->stream->socket().close(ec);  // its read ends with operation_aborted
        sessions_.erase(oldest);
        return true;
    }

    static asio::awaitable<void> session(std::shared_ptr<Server> self, beast::tcp_stream stream) {
        auto me = std::make_shared<Session>(Session{&stream});
        self->sessions_.push_back(me);
        beast::flat_buffer buffer(self->limits_.header_limit + 1024);
        for (unsigned n = 0; n < self->limits_.max_requests_per_connection; ++n) {
            http::request_parser<http::empty_body> parser;
            parser.header_limit(static_cast<std::uint32_t>(self->limits_.header_limit));
            stream.expires_after(self->limits_.request_timeout);
            me->reading = true;
            auto [rec, r] = co_await http::async_read(stream, buffer, parser, tuple_token());
            me->reading = false;
            if (rec) {
                // GCC12-COROUTINE-TEMPORARY: named locals, not temporaries in co_await.
                const HttpReply too_large{431, "text/plain", "header too large\n", ""};
                const HttpReply malformed{400, "text/plain", "bad request\n", ""};
                const bool gone = rec == beast::error::timeout ||
                                  rec == http::error::end_of_stream || rec == asio::error::eof ||
                                  rec == asio::error::connection_reset ||
                                  rec == asio::error::operation_aborted;
                if (rec == http::error::header_limit) {
                    co_await reply(stream, 11, false, too_large, false);
                } else if (!gone && parser.got_some()) {
                    co_await reply(stream, 11, false, malformed, false);
                }
                break;
            }
            const auto& req = parser.get();
            std::string_view target = req.target();
            target = target.substr(0, target.find('?'));
            const HttpReply answer = self->handler_(req.method_string(), target);
            const bool keep = req.keep_alive() && n + 1 < self->limits_.max_requests_per_connection;
            if (!co_await reply(stream, req.version(), keep, answer,
                                req.method() == http::verb::head) ||
                !keep) {
                break;
            }
        }
        boost::system::error_code ec;
        stream.socket().shutdown(tcp::socket::shutdown_both, ec);
        std::erase(self->sessions_, me);  // gone already if it was evicted
    }

    static asio::awaitable<bool> reply(beast::tcp_stream& stream, unsigned version, bool keep,
                                       const HttpReply& a, bool head) {
        http::response<http::string_body> res{static_cast<http::status>(a.status), version};
        res.set(http::field::server, "rootcertd");
        res.set(http::field::content_type, a.content_type);
        res.set(http::field::cache_control, "no-store");
        if (!a.allow.empty()) res.set(http::field::allow, a.allow);
        res.keep_alive(keep);
        res.body() = a.body;
        res.prepare_payload();
        if (head) res.body().clear();
        http::response_serializer<http::string_body> sr{res};
        if (head) sr.split(true);
        auto [ec, n] = head ? co_await http::async_write_header(stream, sr, tuple_token())
                            : co_await http::async_write(stream, sr, tuple_token());
        co_return !ec;
    }

    tcp::acceptor acceptor_;
    HttpHandler handler_;
    ServerLimits limits_;
    struct Session {
        beast::tcp_stream* stream;
        bool reading = true;  // waiting for or receiving a request, not replying
    };
    std::vector<std::shared_ptr<Session>> sessions_;  // oldest first; at most max_connections
};

}  // namespace

Outcome<std::shared_ptr<HttpServer>> start_http_server(asio::any_io_executor executor,
                                                       tcp::endpoint endpoint, HttpHandler handler,
                                                       ServerLimits limits) {
    auto server = std::make_shared<Server>(std::move(executor), std::move(handler), limits);
    if (auto bound = server->listen(endpoint); !bound) return bound.failure();
    server->start();
    return std::shared_ptr<HttpServer>(std::move(server));
}

}  // namespace rootcertd
