// HTTPS GET with bearer auth over pooled keep-alive connections (Beast).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"
#include "rootcertd/net/proxy.hpp"
#include "rootcertd/net/resolver.hpp"

namespace rootcertd {

// One GET. Nothing in it may break a header line: targets are built from
// validated config values, and secrets are single header-safe tokens. The
// views are the caller's (a configured instance's target, a source's header
// name): they outlive the get().
struct HttpRequest {
    Endpoint endpoint;
    std::string_view target;  // path and query
    // "Authorization: <authorization>" when not empty (the value is a secret:
    // "Bearer TOKEN", "aivenv1 TOKEN"); AUTH_HEADER names another field.
    std::string authorization;
    std::string_view auth_header = "Authorization";
    // Validators of the last answer: sent as If-None-Match / If-Modified-Since.
    std::string if_none_match;
    std::string if_modified_since;
    std::size_t body_limit = 0;  // 0: the client's (options.body_limit)
};

struct HttpResponse {
    unsigned status = 0;
    std::string body;
    std::string location;                 // of a redirect, which is never followed
    std::optional<Duration> retry_after;  // from a 429 or 503
    std::string etag;                     // validators, for the next conditional request
    std::string last_modified;
};

struct ClientOptions {
    std::optional<std::filesystem::path> ca_file;        // trusted besides the system store
    std::optional<std::filesystem::path> extra_ca_file;  // a source's own, trusted as well
    Duration timeout{std::chrono::seconds(10)};          // whole request, connect included
    Duration connect_timeout{std::chrono::seconds(5)};
    Duration idle_timeout{std::chrono::seconds(30)};  // idle keep-alive connections close after
    std::size_t body_limit = 1 << 20;
    std::size_t header_limit = 16 << 10;
    ProxyRoute proxy;                    // CONNECT tunnels, for the endpoints it does not exempt
    std::shared_ptr<Resolver> resolver;  // unset: the client makes its own
    // "user:password" for Proxy-Authorization, asked each time a tunnel
    // opens (so a rotated file is picked up); unset: the proxy URL's own.
    std::function<Outcome<std::string>()> proxy_credentials;
};

// The seam between the refresh pipeline and the network.
class HttpClient {
  public:
    virtual ~HttpClient() = default;

    // GET https://ENDPOINT/TARGET. Any HTTP status is a response; transport
    // and protocol errors (timeout, TLS verification, oversize body) fail
    // with a message naming the step. Messages never contain the secret.
    virtual boost::asio::awaitable<Outcome<HttpResponse>> get(HttpRequest request) = 0;

    // Aborts requests in flight and closes every connection; later calls fail.
    virtual void close() = 0;

    // Connections open now, idle or busy.
    virtual std::size_t open_connections() const = 0;
};

// TLS >= 1.2, peer and host-name verification, SNI, system trust store plus
// options.ca_file and extra_ca_file. Fails (Stage::tls, naming the file) when
// one cannot load.
Outcome<std::shared_ptr<HttpClient>> make_https_client(boost::asio::any_io_executor executor,
                                                       const ClientOptions& options);

}  // namespace rootcertd
