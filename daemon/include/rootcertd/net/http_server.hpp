// A small HTTP/1.1 server for metrics, health and status, bounded against abuse.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"

namespace rootcertd {

struct HttpReply {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::string allow;  // for 405
};

// Answers one request; METHOD as sent, TARGET without the query string.
using HttpHandler = std::function<HttpReply(std::string_view method, std::string_view target)>;

struct ServerLimits {
    // At the cap a new connection replaces the oldest one that is waiting
    // for a request; it is closed at once only when all are mid-reply.
    std::size_t max_connections = 64;
    Duration request_timeout{std::chrono::seconds(10)};  // idle and slow clients alike
    std::size_t header_limit = 8 << 10;                  // larger requests get 431 and a close
    unsigned max_requests_per_connection = 100;
};

// "127.0.0.1:9464", "[::1]:9464", "localhost:9464".
Outcome<boost::asio::ip::tcp::endpoint> parse_listen(std::string_view text);

class HttpServer {
  public:
    virtual ~HttpServer() = default;
    virtual boost::asio::ip::tcp::endpoint local_endpoint() const = 0;
    // Stops accepting and closes every connection.
    virtual void stop() = 0;
};

// Binds and starts serving; fails, naming metrics.listen, when it cannot bind.
Outcome<std::shared_ptr<HttpServer>> start_http_server(boost::asio::any_io_executor executor,
                                                       boost::asio::ip::tcp::endpoint endpoint,
                                                       HttpHandler handler,
                                                       ServerLimits limits = {});

}  // namespace rootcertd
