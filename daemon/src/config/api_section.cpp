#include <unistd.h>

#include <cstring>

#include "rootcertd/config/sections.hpp"
#include "rootcertd/config/values.hpp"
#include "rootcertd/net/proxy.hpp"

namespace rootcertd::config_read {

// The `api` section: the default origin, the token, trust, proxy, timeouts.
void read_api(const std::string& source, MapReader& top, const std::filesystem::path& base_dir,
              Config& cfg) {
    auto api_node = top.take("api");
    if (!api_node) return;  // needed only by Tembo instances (checked with them)
    MapReader api(source, *api_node, "api");
    cfg.api = api.parsed<Endpoint>("url", parse_https_url);
    cfg.token_file = api.path("token_file", base_dir);
    cfg.token_env = api.text("token_env");
    if (cfg.token_file && cfg.token_env) {
        raise(api.site(), "set one of token_file and token_env, not both");
    }
    if (auto ca = api.path("ca_file", base_dir)) {
        cfg.ca_file = *ca;
        if (::access(cfg.ca_file->c_str(), R_OK) != 0) {
            raise(api.site("ca_file"),
                  "cannot read '" + cfg.ca_file->string() + "': " + std::strerror(errno));
        }
    }
    if (auto proxy = api.text("proxy")) {
        if (*proxy != "none") {
            auto parsed = parse_proxy_url(*proxy);
            if (!parsed) raise(api.site("proxy"), parsed.error());
            if (!parsed->credentials.empty()) {
                raise(api.site("proxy"),
                      "must not carry credentials: put 'user:password' in api.proxy_auth_file");
            }
        }
        cfg.proxy = *proxy;
    }
    if (auto f = api.path("proxy_auth_file", base_dir)) {
        cfg.proxy_auth_file = *f;
        if (::access(cfg.proxy_auth_file->c_str(), R_OK) != 0) {
            raise(api.site("proxy_auth_file"),
                  "cannot read '" + cfg.proxy_auth_file->string() + "': " + std::strerror(errno));
        }
    }
    if (auto d = api.parsed<Duration>("timeout", positive_duration)) cfg.timeout = *d;
    if (auto d = api.parsed<Duration>("connect_timeout", positive_duration)) {
        cfg.connect_timeout = *d;
    }
    api.finish();
}

// `credentials:`: named secrets, each from a file, a variable or a command.
void read_credentials(const std::string& source, MapReader& top,
                      const std::filesystem::path& base_dir, Config& cfg) {
    auto node = top.take("credentials");
    if (!node) return;
    MapReader all(source, *node, "credentials");
    for (std::size_t i = 0; i < node->size(); ++i) {
        const std::string name(node->key(i).Scalar());
        if (!is_safe_name(name)) {
            raise(all.site(node->key(i), name),
                  "'" + name + "' is not a credential name (letters, digits, '_', '.', '-')");
        }
        // The tree's text, not NAME: the reader keeps a view of each key taken.
        MapReader m(source, *all.take(node->key(i).Scalar()), "credentials." + name);
        Credential c;
        c.name = name;
        c.file = m.path("file", base_dir);
        c.env = m.text("env");
        if (m.has("command")) c.command = read_command(m, "command");
        if (int{c.file.has_value()} + int{c.env.has_value()} + int{!c.command.empty()} != 1) {
            m.raise_typo_of({"file", "env", "command"});
            raise(m.site(), "set exactly one of file, env and command");
        }
        if (c.env && std::getenv(c.env->c_str()) == nullptr) {
            raise(m.site("env"), "environment variable '" + *c.env + "' is not set");
        }
        for (const char* key : {"ttl", "timeout"}) {
            if (c.command.empty() && m.has(key)) raise(m.site(key), "only with command");
        }
        if (auto d = m.parsed<Duration>("ttl", positive_duration)) c.ttl = *d;
        if (auto d = m.parsed<Duration>("timeout", positive_duration)) c.timeout = *d;
        m.finish();
        cfg.credentials.push_back(std::move(c));
    }
    all.finish();
}

// A credential name that `credentials:` defines.
std::string credential_name(MapReader& m, const char* key, const Config& cfg) {
    std::string name = m.required(key);
    if (std::none_of(cfg.credentials.begin(), cfg.credentials.end(),
                     [&](const Credential& c) { return c.name == name; })) {
        raise(m.site(key), "'" + name + "' is not defined under credentials");
    }
    return name;
}

}  // namespace rootcertd::config_read
