#include "rootcertd/net/proxy.hpp"

#include <algorithm>
#include <boost/url/parse.hpp>
#include <cctype>

namespace rootcertd {

std::string Proxy::origin() const {
    return "http://" + url_host(host) + ":" + std::to_string(port);
}

Outcome<Proxy> parse_proxy_url(std::string_view text) {
    // Echo the URL in errors only without its credentials.
    std::string shown(text);
    if (const auto at = shown.rfind('@'); at != std::string::npos) {
        const auto scheme_end = shown.find("://");
        const auto from = scheme_end == std::string::npos ? 0 : scheme_end + 3;
        if (at >= from) shown.replace(from, at - from, "[credentials]");
    }
    const auto bad = [&](const std::string& why) { return fail("'" + shown + "' " + why); };
    std::string url(text);
    if (url.find("://") == std::string::npos) url = "http://" + url;
    auto parsed = boost::urls::parse_absolute_uri(url);
    if (!parsed) return bad("is not a proxy URL like http://proxy.internal:3128");
    const auto& u = *parsed;
    if (u.scheme_id() != boost::urls::scheme::http) {
        return bad("must use http:// (rootcertd tunnels TLS through the proxy with CONNECT)");
    }
    if (!(u.path().empty() || u.path() == "/") || u.has_query() || u.has_fragment()) {
        return bad("must be a proxy origin only, like http://proxy.internal:3128");
    }
    Proxy p;
    p.host = std::string(u.host_address());
    if (p.host.empty()) return bad("has no host");
    const bool name_chars = std::all_of(p.host.begin(), p.host.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '.' || c == '_';
    });
    if (!name_chars && !is_ip_literal(p.host)) return bad("has an invalid host name");
    if (u.has_port()) {
        if (u.port().empty() || u.port_number() == 0) return bad("has an invalid port");
        p.port = u.port_number();
    }
    if (u.has_userinfo()) p.credentials = std::string(u.userinfo());  // decoded
    return p;
}

bool no_proxy_matches(std::string_view list, std::string_view host) {
    const auto lower = [](std::string_view s) {
        std::string out(s);
        std::transform(out.begin(), out.end(), out.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        return out;
    };
    const std::string h = lower(host);
    std::size_t i = 0;
    while (i < list.size()) {
        const auto end = list.find_first_of(", \t", i);
        std::string entry = lower(list.substr(i, end == std::string_view::npos ? end : end - i));
        i = end == std::string_view::npos ? list.size() : end + 1;
        if (entry.empty()) continue;
        if (entry == "*") return true;
        if (entry.front() == '[') {  // [v6]:port
            const auto close = entry.find(']');
            entry = entry.substr(1, close == std::string::npos ? std::string::npos : close - 1);
        } else if (std::count(entry.begin(), entry.end(), ':') == 1) {
            entry.resize(entry.find(':'));  // host:port
        }
        if (entry.starts_with("*.")) entry.erase(0, 1);
        if (entry.starts_with(".")) entry.erase(0, 1);
        if (entry.empty()) continue;
        if (h == entry) return true;
        if (h.size() > entry.size() && h.ends_with(entry) &&
            h[h.size() - entry.size() - 1] == '.') {
            return true;
        }
    }
    return false;
}

const Proxy* ProxyRoute::proxy_for(const Endpoint& endpoint) const {
    if (!proxy || no_proxy_matches(no_proxy, endpoint.host)) return nullptr;
    return &*proxy;
}

Outcome<ProxyRoute> resolve_proxy(const std::optional<std::string>& configured,
                                  const std::function<const char*(const char*)>& getenv) {
    ProxyRoute route;
    for (const char* name : {"no_proxy", "NO_PROXY"}) {
        if (const char* v = getenv(name); v != nullptr && *v != '\0') {
            route.no_proxy = v;
            break;
        }
    }
    std::string url;
    if (configured) {
        if (*configured == "none") return route;
        url = *configured;
        route.source = "api.proxy";
    } else {
        for (const char* name : {"https_proxy", "HTTPS_PROXY"}) {
            if (const char* v = getenv(name); v != nullptr && *v != '\0') {
                url = v;
                route.source = name;
                break;
            }
        }
        if (url.empty()) return route;
    }
    auto proxy = parse_proxy_url(url);
    if (!proxy) return proxy.failure().prefixed(route.source + ": ");
    route.proxy = std::move(proxy.value());
    return route;
}

std::string basic_authorization(std::string_view credentials) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out = "Basic ";
    std::size_t i = 0;
    for (; i + 2 < credentials.size(); i += 3) {
        const unsigned v = static_cast<unsigned char>(credentials[i]) << 16 |
                           static_cast<unsigned char>(credentials[i + 1]) << 8 |
                           static_cast<unsigned char>(credentials[i + 2]);
        for (int shift = 18; shift >= 0; shift -= 6) out += alphabet[(v >> shift) & 63];
    }
    if (const auto rest = credentials.size() - i; rest > 0) {
        unsigned v = static_cast<unsigned char>(credentials[i]) << 16;
        if (rest == 2) v |= static_cast<unsigned char>(credentials[i + 1]) << 8;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

}  // namespace rootcertd
