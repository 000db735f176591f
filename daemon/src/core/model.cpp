#include "rootcertd/core/model.hpp"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <charconv>
#include <map>
#include <string>

namespace rootcertd {

std::string url_host(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

std::string_view format_name(OutputFormat format) {
    switch (format) {
        case OutputFormat::pkcs12:
            return "pkcs12";
        case OutputFormat::jks:
            return "jks";
        case OutputFormat::pem:
            break;
    }
    return "pem";
}

std::string Endpoint::origin() const {
    std::string out = "https://" + url_host(host);
    if (port != 443) out += ":" + std::to_string(port);
    return out;
}

bool is_ip_literal(const std::string& host) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(host, ec);
    return !ec;
}

Outcome<Duration> parse_duration(std::string_view text) {
    if (text == "0") return Duration{0};
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    const auto unit = text.substr(digits);
    std::uint64_t n = 0;
    if (digits == 0 || digits > 9 ||
        std::from_chars(text.data(), text.data() + digits, n).ec != std::errc{}) {
        return fail("'" + std::string(text) + "' is not a duration like 500ms, 30s, 5m, 1h or 1d");
    }
    static const std::map<std::string_view, std::uint64_t> ms_per{
        {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
    const auto it = ms_per.find(unit);
    if (it == ms_per.end()) {
        if (unit.empty())
            return fail("'" + std::string(text) + "' has no unit; use ms, s, m, h or d");
        return fail("unknown unit '" + std::string(unit) + "' in '" + std::string(text) +
                    "' (use ms, s, m, h, d)");
    }
    // n < 10^9 and a day is < 10^8 ms: the product fits in 64 bits.
    const Duration d{static_cast<Duration::rep>(n * it->second)};
    if (d > max_duration) {
        return fail("'" + std::string(text) + "' is longer than the maximum, " +
                    std::to_string(max_duration.count() / 86'400'000) + "d");
    }
    return d;
}

Outcome<Endpoint> parse_https_url(std::string_view text) {
    const auto bad = [&](const std::string& why) {
        return fail("'" + std::string(text) + "' " + why);
    };
    auto parsed = boost::urls::parse_absolute_uri(text);
    if (!parsed) return bad("is not a URL");
    const auto& u = *parsed;
    if (u.scheme_id() != boost::urls::scheme::https) {
        return bad("must use https:// (the token must never travel in clear text)");
    }
    if (u.has_userinfo()) return bad("must not carry credentials");
    if (!(u.path().empty() || u.path() == "/") || u.has_query() || u.has_fragment()) {
        return bad("must be an origin only, like https://api.data-1.use1.tembo.io");
    }
    Endpoint e;
    e.host = std::string(u.host_address());
    if (e.host.empty()) return bad("has no host");
    if (u.has_port()) {
        if (u.port().empty() || u.port_number() == 0) return bad("has an invalid port");
        e.port = u.port_number();
    }
    return e;
}

std::vector<std::string> api_token_users(const Config& config) {
    std::vector<std::string> users;
    for (const auto& i : config.instances) {
        if (i.source->sends_secret() && !i.source->credential) users.push_back(i.name);
    }
    for (const auto& d : config.discover) {
        if (!d.credential) users.push_back("discover " + d.label());
    }
    return users;
}

bool is_host(const std::string& s) {
    if (is_ip_literal(s)) return true;
    if (s.empty() || s.size() > 253) return false;
    std::size_t label = 0;
    for (const unsigned char c : s) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
        } else if (std::isalnum(c) || c == '-' || c == '_') {
            if (++label > 63) return false;
        } else {
            return false;
        }
    }
    return label > 0 || s.size() > 1;  // "db.example.com." is absolute; "." is nothing
}

std::optional<std::pair<std::string, std::string>> host_with_port(const std::string& s) {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos || colon + 1 == s.size()) return std::nullopt;
    std::string host = s.substr(0, colon), port = s.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (!std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); }) ||
        !is_host(host)) {
        return std::nullopt;
    }
    return std::pair{host, port};
}

// Plain loops: std::regex was a third of the time to load a 5,000-instance file.
bool is_id(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(),
                                     [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

bool is_path_value(const std::string& s) {
    return !s.empty() && s.size() <= 256 && s != "." && s != ".." &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) {
               return std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == ':' || c == '@';
           });
}

void SourcePool::share(Shared<Source>& source) {
    constexpr std::size_t remembered = 16;
    for (const auto& known : recent_) {
        if (known.same_object(source)) return;
        if (*known == *source) {
            source = known;
            return;
        }
    }
    if (recent_.size() == remembered) recent_.erase(recent_.begin());
    recent_.push_back(source);
}

}  // namespace rootcertd
