// Loads rootcertd's YAML configuration strictly into an immutable Config.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "rootcertd/outcome.hpp"

namespace rootcertd {

using Duration = std::chrono::milliseconds;

// An HTTPS origin requests are sent to; no path, query or credentials.
struct Endpoint {
    std::string host;  // name or address; IPv6 without brackets
    std::uint16_t port = 443;
    std::string origin() const;  // "https://host[:port]", for logs and pool keys
    bool operator==(const Endpoint&) const = default;
};

// How an installed file is owned; unset uid/gid leave the daemon's own.
struct FileOwnership {
    mode_t mode = 0644;
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    bool operator==(const FileOwnership&) const = default;
};

// A command run after a file changed; argv, no shell.
struct Hook {
    std::vector<std::string> command;  // command[0] is an absolute path
    Duration timeout{std::chrono::seconds(30)};
    bool operator==(const Hook&) const = default;
};

struct Instance {
    std::string org;
    std::string id;
    std::string name;  // file stem: the file is <cert_dir>/<name>.crt
    Endpoint api;
    Duration refresh_interval{};
    FileOwnership file;
    Duration keep_previous{};  // rotation.keep_previous

    // Live verification and pg_service.conf: only with a host.
    std::optional<std::string> host;
    std::uint16_t port = 5432;
    Duration verify_interval{};
    std::optional<std::string> dbname;
    std::optional<std::string> user;
    std::optional<Hook> on_change;  // its own or the global one

    bool operator==(const Instance&) const = default;
};

struct Config {
    std::string source;  // the file it was loaded from, for messages

    // api:
    std::optional<Endpoint> api;  // default for instances without api_url
    std::optional<std::filesystem::path> token_file;
    std::optional<std::string> token_env;
    std::optional<std::filesystem::path> ca_file;
    Duration timeout{std::chrono::seconds(10)};
    Duration connect_timeout{std::chrono::seconds(5)};
    std::optional<std::string> proxy;  // api.proxy: http:// URL without credentials, or "none"
    std::optional<std::filesystem::path> proxy_auth_file;  // "user:password" for the proxy

    std::filesystem::path cert_dir{"/var/lib/rootcertd/certs"};
    std::filesystem::path state_dir{"/var/lib/rootcertd/state"};
    std::optional<std::filesystem::path> pg_service_file;
    Duration keep_previous{std::chrono::hours(24 * 7)};
    Duration verify_interval{std::chrono::minutes(1)};
    std::optional<std::string> metrics_listen;  // metrics.listen: "host:port"
    std::optional<Hook> on_change;
    Duration refresh_interval{std::chrono::hours(1)};
    double jitter = 0.1;  // fraction of the interval, each way
    Duration retry_min{std::chrono::seconds(5)};
    Duration retry_max{std::chrono::minutes(5)};
    unsigned concurrency = 16;
    Duration expiry_warning{std::chrono::hours(24 * 14)};
    FileOwnership file;

    std::vector<Instance> instances;

    // <cert_dir>/<name>.crt, as a string: building a std::filesystem::path
    // per instance was most of what a 5,000-instance status board cost.
    std::string cert_file(const Instance& instance) const {
        const auto& dir = cert_dir.native();
        return dir + (dir.empty() || dir.back() == '/' ? "" : "/") + instance.name + ".crt";
    }
    std::filesystem::path cert_path(const Instance& instance) const { return cert_file(instance); }
    bool operator==(const Config&) const = default;
};

// A configuration mistake; what() reads "FILE:LINE:COL: KEY: problem".
class ConfigError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

inline constexpr const char* default_config_path = "/etc/rootcertd/rootcertd.yaml";

// Reads and validates FILE. Throws ConfigError naming the file, line and key.
Config load_config(const std::string& path);

// Validates YAML text; `source` names it in errors. Throws ConfigError.
Config parse_config(const std::string& yaml, const std::string& source);

// The longest duration any key accepts: ten years. Bounded so that every
// "now + duration" of either clock stays far inside its range.
inline constexpr Duration max_duration{std::chrono::hours(24 * 3650)};

// "500ms", "30s", "5m", "1h", "1d" (and "0"), at most max_duration. Fails on
// anything else.
Outcome<Duration> parse_duration(std::string_view text);

// HOST as it goes in a URL or a Host header: an IPv6 address in brackets.
std::string url_host(const std::string& host);

// True for an IPv4 or IPv6 address (no SNI is sent to those, and name
// checks become IP checks).
bool is_ip_literal(const std::string& host);

// Parses "https://host[:port][/]". Fails on other schemes, paths, userinfo.
Outcome<Endpoint> parse_https_url(std::string_view text);

}  // namespace rootcertd
