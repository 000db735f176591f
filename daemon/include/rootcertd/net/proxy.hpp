// HTTP CONNECT proxies: which one a request goes through, and how to ask it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"

namespace rootcertd {

// An http:// proxy that tunnels TLS with CONNECT. The token only ever
// travels inside the tunnel; the proxy sees the target host and port, and
// the Proxy-Authorization credentials when there are any.
struct Proxy {
    std::string host;            // IPv6 without brackets
    std::uint16_t port = 1080;   // curl's default when the URL names none
    std::string credentials;     // "user:password" from the URL, percent-decoded; may be empty
    std::string origin() const;  // "http://host:port": never the credentials
    bool operator==(const Proxy&) const = default;
};

// "http://[user:password@]host[:port][/]", or "host[:port]" as curl reads
// it. Fails on other schemes (an https:// proxy is not supported), on paths
// and queries; a failure message never repeats the credentials.
Outcome<Proxy> parse_proxy_url(std::string_view text);

// True when NO_PROXY-style LIST (comma- or space-separated) names HOST:
// "*" matches everything, "example.com" and ".example.com" match the domain
// and its subdomains, an address matches itself. Case-insensitive; a
// ":port" suffix on an entry is ignored, as curl does.
bool no_proxy_matches(std::string_view list, std::string_view host);

// The proxy decision for the whole client.
struct ProxyRoute {
    std::optional<Proxy> proxy;
    std::string no_proxy;
    std::string source;  // "api.proxy", "https_proxy" or "HTTPS_PROXY", for messages

    // The proxy to use for ENDPOINT, or nullptr to connect directly.
    const Proxy* proxy_for(const Endpoint& endpoint) const;
};

// api.proxy (a URL, or "none" to ignore the environment) wins over
// https_proxy, then HTTPS_PROXY; no_proxy, then NO_PROXY, exempt hosts either
// way. GETENV is injectable for tests.
Outcome<ProxyRoute> resolve_proxy(const std::optional<std::string>& configured,
                                  const std::function<const char*(const char*)>& getenv);

// The Proxy-Authorization value for "user:password" ("Basic base64").
std::string basic_authorization(std::string_view credentials);

}  // namespace rootcertd
