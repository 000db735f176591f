#include <unistd.h>

#include <charconv>
#include <cstring>

#include "rootcertd/config/sections.hpp"
#include "rootcertd/config/values.hpp"
#include "rootcertd/sources/list_kinds.hpp"
#include "rootcertd/sources/providers.hpp"

namespace rootcertd::config_read {

namespace {

// The settings an instance takes from the globals unless it has its own; a
// `discover` entry's are the defaults of what it finds.
void read_settings(const std::string& source, MapReader& m, const Config& cfg, Instance& inst) {
    inst.refresh_interval =
        m.parsed<Duration>("refresh_interval", positive_duration).value_or(cfg.refresh_interval);
    inst.file = cfg.file;
    read_ownership(m, inst.file);
    inst.keep_previous = read_rotation(source, m).value_or(cfg.keep_previous);
    inst.verify_interval =
        m.parsed<Duration>("verify_interval", positive_duration).value_or(cfg.verify_interval);
    inst.on_change = read_hook(source, m);
    if (!inst.on_change) inst.on_change = cfg.on_change;
}

}  // namespace

// One entry of `discover`: a control-plane list whose instances are kept.
Discovery read_discovery(const std::string& source, MapReader& m, const Config& cfg,
                         const std::filesystem::path& base_dir) {
    Discovery d;
    d.provider = m.required("provider");
    const ListKind* kind = find_list_kind(d.provider);
    if (kind == nullptr) {
        raise(m.site("provider"),
              "unknown provider '" + d.provider + "' (discovery knows " + list_kind_names() + ")");
    }
    if (!kind->scope_key.empty()) {
        d.scope = m.required(kind->scope_key);
        if (!kind->scope_ok(d.scope)) {
            raise(m.site(kind->scope_key), "'" + d.scope + "' " + std::string(kind->scope_rule));
        }
    }
    if (!kind->data_plane.empty()) {  // a control plane lists, data planes hold the CAs
        d.list_api = m.parsed<Endpoint>("control_plane", parse_https_url)
                         .value_or(parse_https_url(kind->control_plane).value());
        d.data_plane = m.text("data_plane").value_or(std::string(kind->data_plane));
        check_template(m, "data_plane", d.data_plane);
        if (!d.data_plane.starts_with("https://")) {
            raise(m.site("data_plane"), "'" + d.data_plane + "' must start with https://");
        }
    } else {
        d.ca_api = m.parsed<Endpoint>("api_url", parse_https_url);
        d.list_api =
            d.ca_api ? *d.ca_api : parse_https_url(find_preset(d.provider)->origin).value();
    }
    if (m.has("credential")) d.credential = credential_name(m, "credential", cfg);
    const bool api_token = kind->api_token && (cfg.token_file || cfg.token_env);
    if (!d.credential && !api_token) {
        m.raise_typo_of({"credential"});
        raise(m.site("credential"), kind->api_token
                                        ? "is required without api.token_file or api.token_env"
                                        : "is required: " + d.provider + " needs a secret");
    }
    d.interval = m.parsed<Duration>("interval", positive_duration).value_or(d.interval);
    if (auto n = m.parsed<unsigned>("max_instances", whole_number(1, 100'000)))
        d.max_instances = *n;
    if (auto b = m.parsed<bool>("confirm_mass_removal", parse_bool)) d.confirm_mass_removal = *b;
    d.name_template = m.text("name").value_or(std::string(kind->name_template));
    check_template(m, "name", d.name_template);
    if (auto ca = m.path("ca_file", base_dir)) {
        d.ca_file = *ca;
        if (::access(d.ca_file->c_str(), R_OK) != 0) {
            raise(m.site("ca_file"),
                  "cannot read '" + d.ca_file->string() + "': " + std::strerror(errno));
        }
    }
    read_settings(source, m, cfg, d.defaults);
    d.dbname = service_value(m, "dbname");
    return d;
}

// One entry of `instances`, with CFG's globals as its defaults. SEEN: the
// names of the entries before it, with their lines.
Instance read_instance(const std::string& source, MapReader& m, const Config& cfg,
                       const std::filesystem::path& base_dir, const NameLines& seen,
                       InstancesRead& read) {
    Instance inst;
    const bool tembo = m.has("org") || m.has("id");
    if (tembo == m.has("source")) {
        raise(m.site(), tembo ? "set either org/id (a Tembo instance) or source, not both"
                              : "set org and id (a Tembo instance), or source");
    }
    if (tembo) {
        for (auto [field, dest] : {std::pair{"org", &inst.org}, std::pair{"id", &inst.id}}) {
            *dest = m.required(field);
            if (!is_id(*dest)) raise(m.site(field), "'" + *dest + "' must match ^[A-Za-z0-9_]+$");
        }
        auto api_url = m.parsed<Endpoint>("api_url", parse_https_url);
        if (!api_url && read.inherited_tembo) {
            inst.source = *read.inherited_tembo;
            inst.target = tembo_target(inst);
        } else {
            inst.source = tembo_source(inst, api_url, std::nullopt, cfg, m);
            if (!api_url) read.inherited_tembo = inst.source;
        }
        inst.name = m.text("name").value_or(inst.id);
    } else {
        if (m.has("api_url")) {
            raise(m.site("api_url"), "not with source: the source has its own api_url");
        }
        MapReader src(source, *m.take("source"), m.child_path("source"));
        inst.source = typo_first(src, [&] { return read_source(src, cfg, base_dir, inst); });
        src.finish();
        inst.name = m.required("name");
    }
    check_new_name(m, inst.name, seen, "instance");
    read_settings(source, m, cfg, inst);
    const auto host = service_value(m, "host");
    if (host && !is_host(*host)) {
        if (const auto split = host_with_port(*host)) {
            raise(m.site("host"), "'" + *host + "' holds a port: write host: " + split->first +
                                      " and port: " + split->second);
        }
        raise(m.site("host"), "'" + *host + "' is not a host name or address");
    }
    if (auto p =
            m.parsed<std::uint16_t>("port", [](const std::string& t) -> Outcome<std::uint16_t> {
                unsigned v = 0;
                const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
                if (ec != std::errc{} || end != t.data() + t.size() || v < 1 || v > 65535) {
                    return fail("'" + t + "' is not a port from 1 to 65535");
                }
                return static_cast<std::uint16_t>(v);
            })) {
        inst.port = *p;
    }
    auto dbname = service_value(m, "dbname");
    auto user = service_value(m, "user");
    if (host) inst.server = PgServer{*host, std::move(dbname), std::move(user)};
    for (const char* key : {"port", "verify_interval", "dbname", "user"}) {
        if (!host && m.has(key)) {
            m.raise_typo_of({"host"});
            raise(m.site(key), "needs 'host' (the PostgreSQL server to check)");
        }
    }
    return inst;
}

}  // namespace rootcertd::config_read
