// The domain model: endpoints, sources, instances, discover entries, outputs
// and the Config that holds them, with the value checks every layer shares.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rootcertd/core/outcome.hpp"

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

// A named secret of `credentials:`. Exactly one of file, env, command.
struct Credential {
    std::string name;
    std::optional<std::filesystem::path> file;   // re-read when it changes
    std::optional<std::string> env;              // read at start and on reload
    std::vector<std::string> command;            // argv; its trimmed stdout is the secret
    Duration ttl{std::chrono::minutes(30)};      // command: run again after
    Duration timeout{std::chrono::seconds(10)};  // command: killed after
    bool operator==(const Credential&) const = default;
};

// How a source's answer becomes PEM text.
enum class CaFormat : std::uint8_t { automatic, pem, der };
struct Reading {
    std::string json_pointer;  // RFC 6901; empty: the whole body
    std::string member;        // the pointer selects an array of objects: each one's MEMBER
    bool base64 = false;       // decode the selected string(s), or the whole body
    CaFormat format = CaFormat::automatic;
    bool drop_leaves = false;  // leave out certificates that are not CAs instead of refusing
    bool operator==(const Reading&) const = default;
};

// Where an instance's CA comes from: one request and how to read its answer,
// or (azure) roots looked up in the system trust store.
struct Preset;

struct Source {
    // "tembo", "aiven", ..., "url" for a custom source: static text (a
    // source is copied per instance and per loop; a fleet has thousands).
    std::string_view provider;
    Endpoint api;  // the origin; unused without a request
    // The Authorization scheme ("Bearer", "aivenv1"), or with auth_header
    // set, the bare secret goes in that field instead. Empty: no secret sent.
    std::string auth_scheme;
    std::string auth_header;
    // The secret: a name in `credentials:`; unset: api.token_file/token_env.
    std::optional<std::string> credential;
    Reading reading;
    // How to read the answer of the second place to look, when the
    // instance has one (Instance::fallback_target).
    Reading fallback_reading;
    std::optional<std::filesystem::path> ca_file;  // trusted for this origin, besides api.ca_file
    // No request (azure): the preset whose roots, by RFC 2253 subject, come
    // from the system trust store.
    const Preset* roots = nullptr;
    bool sends_secret() const { return !auth_scheme.empty() || !auth_header.empty(); }
    bool operator==(const Source&) const = default;
};

// A value the copies of its holder share: an Instance is copied per loop,
// and a fleet has thousands; its Source is the biggest part. Compares by value.
template <class T>
class Shared {
  public:
    Shared() : p_(std::make_shared<const T>()) {}
    Shared(T value) : p_(std::make_shared<const T>(std::move(value))) {}  // NOLINT: a value
    const T& operator*() const { return *p_; }
    const T* operator->() const { return p_.get(); }
    bool operator==(const Shared& other) const { return p_ == other.p_ || *p_ == *other.p_; }
    bool same_object(const Shared& other) const { return p_ == other.p_; }

  private:
    std::shared_ptr<const T> p_;
};

// An optional value shared by copies, compared by value, in one pointer:
// a fleet's instances share the global hook, and an instance without a
// server holds 16 bytes, not three empty optionals.
template <class T>
class SharedOptional {
  public:
    SharedOptional() = default;
    SharedOptional(T value) : p_(std::make_shared<const T>(std::move(value))) {}  // NOLINT
    SharedOptional(std::optional<T> value) {  // NOLINT: an optional
        if (value) p_ = std::make_shared<const T>(std::move(*value));
    }
    bool has_value() const { return p_ != nullptr; }
    explicit operator bool() const { return has_value(); }
    const T& operator*() const { return *p_; }
    const T* operator->() const { return p_.get(); }
    void reset() { p_.reset(); }
    bool operator==(const SharedOptional& other) const {
        return p_ == other.p_ || (p_ && other.p_ && *p_ == *other.p_);
    }

  private:
    std::shared_ptr<const T> p_;
};

// Makes equal Sources one object, as they are read: instances of one
// provider, origin and secret differ only in their targets. Remembers the
// last few distinct Sources (a config lists like instances together).
class SourcePool {
  public:
    void share(Shared<Source>& source);

  private:
    std::vector<Shared<Source>> recent_;
};

// The PostgreSQL server an instance's CA is for: checked live with it, and
// written to pg_service.conf.
struct PgServer {
    std::string host;
    std::optional<std::string> dbname;
    std::optional<std::string> user;
    bool operator==(const PgServer&) const = default;
};

struct Instance {
    std::string org;  // Tembo instances only: metric labels and log fields
    std::string id;
    std::string name;  // file stem: the file is <cert_dir>/<name>.crt
    // Where its CA comes from. The request's path and query are the
    // instance's own; the rest of the Source is shared by the instances with
    // the same origin, secret and reading (SourcePool): a fleet of 5,000
    // holds a handful of Sources, not 5,000.
    Shared<Source> source;
    std::string target;  // path and query
    // Where to look when the answer is a 200 that holds no CA (Cloud SQL in
    // a CAS mode answers listServerCas empty); empty: nowhere.
    std::string fallback_target;
    Duration refresh_interval{};
    FileOwnership file;
    // Live verification and pg_service.conf: only with a server (PORT sits
    // here, beside FILE, where it packs into FILE's padding).
    std::uint16_t port = 5432;
    Duration keep_previous{};  // rotation.keep_previous
    SharedOptional<PgServer> server;
    Duration verify_interval{};
    SharedOptional<Hook> on_change;  // its own or the global one (one object)
    // The discover entry's label ("tembo:org_abc") that found it; empty
    // when listed in the file. Outputs select by it.
    std::string discovered_by;

    bool operator==(const Instance&) const = default;
};

// A `discover:` entry: a provider's control-plane list, whose instances
// are kept as if listed, following creations and deletions.
struct Discovery {
    std::string provider;  // tembo, cloudsql, digitalocean
    std::string scope;     // the org (tembo) or project (cloudsql); empty for digitalocean
    Endpoint list_api;     // where the list comes from: control_plane, api_url or the default
    std::optional<Endpoint> ca_api;         // cloudsql, digitalocean: api_url, for CA requests too
    std::optional<std::string> credential;  // unset: api.token_file/token_env (tembo)
    Duration interval{std::chrono::minutes(10)};
    std::size_t max_instances = 1000;  // a longer list is refused whole
    // A list that would remove more than half of the instances (two or more)
    // is applied only when the next list agrees.
    bool confirm_mass_removal = true;
    std::string name_template;  // {field}: top-level string fields of a listed object
    std::string data_plane;     // tembo: each instance's CA origin, a template
    std::optional<std::filesystem::path> ca_file;
    Instance defaults;                  // refresh_interval, rotation, on_change, file_mode, ...
    std::optional<std::string> dbname;  // of the instances listed with a host
    // "tembo:org_abc", "cloudsql:my-proj", "digitalocean": metric and log label.
    std::string label() const { return scope.empty() ? provider : provider + ":" + scope; }
    bool operator==(const Discovery&) const = default;
};

// An `outputs:` entry: one file holding the CAs of several instances (or
// one instance in another format), for consumers that read one CA file or
// a truststore (PgBouncer, the JVM).
enum class OutputFormat : std::uint8_t { pem, pkcs12, jks };
std::string_view format_name(OutputFormat format);

// Instances an output takes in: each condition set must hold (an empty one
// holds for all).
struct OutputSelect {
    std::string provider;  // the source's provider ("aiven", "url", ...)
    std::string discover;  // a discover entry's label ("cloudsql:my-proj")
    std::string name;      // a glob (fnmatch) over instance names
    bool operator==(const OutputSelect&) const = default;
};

struct Output {
    std::string name;  // unique among outputs and instances; the metric label
    std::filesystem::path path;
    OutputFormat format = OutputFormat::pem;
    std::vector<std::string> instances;   // named members
    std::vector<OutputSelect> select;     // and those any of these match
    std::optional<std::string> password;  // a credential's name (pkcs12, jks)
    FileOwnership file;
    std::optional<Hook> on_change;
    bool operator==(const Output&) const = default;
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

    std::vector<Credential> credentials;  // credentials:, in file order

    std::filesystem::path cert_dir{"/var/lib/rootcertd/certs"};
    std::filesystem::path state_dir{"/var/lib/rootcertd/state"};
    std::optional<std::filesystem::path> pg_service_file;
    Duration keep_previous{std::chrono::hours(24 * 7)};
    Duration verify_interval{std::chrono::minutes(1)};
    std::optional<std::string> metrics_listen;  // metrics.listen: "host:port"
    SharedOptional<Hook> on_change;             // shared by the instances without their own
    Duration refresh_interval{std::chrono::hours(1)};
    double jitter = 0.1;  // fraction of the interval, each way
    Duration retry_min{std::chrono::seconds(5)};
    Duration retry_max{std::chrono::minutes(5)};
    unsigned concurrency = 16;
    Duration expiry_warning{std::chrono::hours(24 * 14)};
    FileOwnership file;

    std::vector<Instance> instances;  // listed in the file
    std::vector<Discovery> discover;
    std::vector<Output> outputs;

    // <cert_dir>/<name>.crt, as a string: building a std::filesystem::path
    // per instance was most of what a 5,000-instance status board cost.
    std::string cert_file(const Instance& instance) const {
        const auto& dir = cert_dir.native();
        return dir + (dir.empty() || dir.back() == '/' ? "" : "/") + instance.name + ".crt";
    }
    std::filesystem::path cert_path(const Instance& instance) const { return cert_file(instance); }
    bool operator==(const Config&) const = default;
};

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

// CONFIG's instances and discover entries ("discover tembo:org") that send
// api.token_file / token_env's token: Tembo ones without a credential.
std::vector<std::string> api_token_users(const Config& config);

// A host name (labels of letters, digits, '-' and '_', 1 to 63 characters,
// joined by '.', at most 253 in all) or an IPv4 or IPv6 address: what may
// go into pg_service.conf's host= and a live check. No port, no space, no
// control character.
bool is_host(const std::string& text);

// "db.example.com:5432" as ("db.example.com", "5432") when TEXT is a host
// followed by a port, for an error that says what to write instead.
std::optional<std::pair<std::string, std::string>> host_with_port(const std::string& text);

// ^[A-Za-z0-9_]+$: a Tembo org or instance id.
bool is_id(const std::string& text);

// A value that goes into a request path: letters, digits and "_.-:@", not
// "." or "..", at most 256 characters (no '/', '?', '%' or space).
bool is_path_value(const std::string& text);

// Parses "https://host[:port][/]". Fails on other schemes, paths, userinfo.
Outcome<Endpoint> parse_https_url(std::string_view text);

}  // namespace rootcertd
