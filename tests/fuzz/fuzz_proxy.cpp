// libFuzzer: proxy URLs and NO_PROXY lists. A parsed proxy round-trips
// through its origin, no message repeats its credentials, "*" exempts all.
#include <cstdint>
#include <string>
#include <string_view>

#include "rootcertd/net/proxy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto newline = in.find('\n');
    const auto url = in.substr(0, newline);
    const auto list =
        newline == std::string_view::npos ? std::string_view{} : in.substr(newline + 1);

    auto proxy = rootcertd::parse_proxy_url(url);
    if (proxy) {
        const auto again = rootcertd::parse_proxy_url(proxy->origin());
        if (!again || again->host != proxy->host || again->port != proxy->port ||
            !again->credentials.empty()) {
            __builtin_trap();
        }
        if (proxy->origin().find('@') != std::string::npos &&
            proxy->host.find('@') == std::string::npos) {
            __builtin_trap();
        }
        if (!rootcertd::no_proxy_matches("*", proxy->host)) __builtin_trap();
        (void)rootcertd::no_proxy_matches(list, proxy->host);
        (void)rootcertd::basic_authorization(proxy->credentials);
    } else {
        // A refusal may quote the URL, but not the user:password in it.
        const auto scheme = url.find("://");
        const auto from = scheme == std::string_view::npos ? 0 : scheme + 3;
        const auto at = url.rfind('@');
        if (at != std::string_view::npos && at > from) {
            // Quoted with the part before the last '@' replaced, never verbatim.
            if (proxy.error().find("[credentials]@") == std::string::npos) __builtin_trap();
        }
    }
    (void)rootcertd::no_proxy_matches(list, url);
    return 0;
}
