#include <unistd.h>

#include <cctype>
#include <cstring>
#include <map>

#include "rootcertd/config/sections.hpp"
#include "rootcertd/config/values.hpp"
#include "rootcertd/sources/providers.hpp"

namespace rootcertd::config_read {

namespace {

const Preset& tembo_preset() {
    static const Preset& tembo = *find_preset("tembo");
    return tembo;
}

// The values of the Tembo path's keys: INST's org and id.
auto tembo_values(const Instance& inst) {
    return [&inst](std::string_view key) -> const std::string& {
        return key == "org" ? inst.org : inst.id;
    };
}

}  // namespace

// The request of a Tembo instance; ORIGIN: its api_url, else api.url.
Source tembo_source(Instance& inst, const std::optional<Endpoint>& origin,
                    std::optional<std::string> credential, const Config& cfg,
                    const MapReader& where) {
    if (!origin && !cfg.api) raise(where.site(), "no api_url here and no api.url to inherit");
    if (!credential && !cfg.token_file && !cfg.token_env) {
        raise(where.site(), "needs api.token_file or api.token_env (or a source credential)");
    }
    return preset_source(tembo_preset(), tembo_values(inst), origin ? origin : cfg.api,
                         std::move(credential), inst);
}

std::string tembo_target(const Instance& inst) {
    return expand_path(tembo_preset().path, tembo_values(inst));
}

namespace {

// https://host[:port]/path[?query]: the origin and the target.
Outcome<std::pair<Endpoint, std::string>> parse_source_url(const std::string& url) {
    constexpr std::string_view scheme = "https://";
    if (!url.starts_with(scheme)) return fail("'" + url + "' must start with https://");
    const auto slash = url.find('/', scheme.size());
    if (slash == std::string::npos) return fail("'" + url + "' has no path");
    auto origin = parse_https_url(std::string_view(url).substr(0, slash));
    if (!origin) return origin.failure();
    std::string target = url.substr(slash);
    if (target.find('#') != std::string::npos ||
        std::any_of(target.begin(), target.end(),
                    [](unsigned char c) { return c <= 0x20 || c >= 0x7f; })) {
        return fail("'" + url + "': the path may not hold spaces, control characters or '#'");
    }
    return std::pair{std::move(origin.value()), std::move(target)};
}

// A header name: an RFC 9110 token.
bool is_header_name(const std::string& s) {
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                      std::string_view::npos;
    });
}

// `source: {url: ..., json_pointer, base64, format, auth | header}`.
Source read_custom_source(MapReader& m, const Config& cfg, Instance& inst) {
    Source out;
    out.provider = "url";
    auto url = m.parsed<std::pair<Endpoint, std::string>>("url", parse_source_url);
    std::tie(out.api, inst.target) = std::move(*url);
    if (auto pointer = m.text("json_pointer")) {
        if (!pointer->empty() && !pointer->starts_with("/")) {
            raise(m.site("json_pointer"),
                  "'" + *pointer + "' must be empty or start with '/' (RFC 6901)");
        }
        out.reading.json_pointer = *pointer;
    }
    if (auto b = m.parsed<bool>("base64", parse_bool)) out.reading.base64 = *b;
    if (auto f = m.text("format")) {
        if (*f == "pem") {
            out.reading.format = CaFormat::pem;
        } else if (*f == "der") {
            out.reading.format = CaFormat::der;
        } else if (*f != "auto") {
            raise(m.site("format"), "'" + *f + "' must be pem, der or auto");
        }
    }
    if (m.has("auth") && m.has("header")) raise(m.site(), "set auth or header, not both");
    // auth: {scheme, credential} or header: {name, credential}.
    struct Way {
        const char* key;
        const char* field;
        std::string Source::*into;
        const char* what;
    };
    for (const Way way : {Way{"auth", "scheme", &Source::auth_scheme, "an authorization scheme"},
                          Way{"header", "name", &Source::auth_header, "a header name"}}) {
        auto node = m.take(way.key);
        if (!node) continue;
        MapReader w(m.source(), *node, m.child_path(way.key));
        std::string& value = out.*way.into;
        value = w.required(way.field);
        if (!is_header_name(value)) raise(w.site(way.field), "'" + value + "' is not " + way.what);
        out.credential = credential_name(w, "credential", cfg);
        w.finish();
    }
    return out;
}

// A host name label: lower-case letters, digits and '-', 1 to 63, not at either end.
bool is_dns_label(const std::string& s) {
    return !s.empty() && s.size() <= 63 && s.front() != '-' && s.back() != '-' &&
           std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
           });
}

}  // namespace

// An instance's `source:` mapping: a provider preset, or a custom url.
Source read_source(MapReader& m, const Config& cfg, const std::filesystem::path& base_dir,
                   Instance& inst) {
    Source out;
    if (m.has("url")) {
        if (m.has("provider"))
            raise(m.site("provider"), "not with url: a custom source has no provider");
        out = read_custom_source(m, cfg, inst);
    } else {
        const std::string provider = m.required("provider");
        const Preset* preset = find_preset(provider);
        if (preset == nullptr) {
            std::string known;
            for (const auto& p : presets())
                known += (known.empty() ? "" : ", ") + std::string(p.name);
            raise(m.site("provider"), "unknown provider '" + provider + "' (known: " + known +
                                          "; or a custom source with url)");
        }
        const bool requests = !preset->path.empty();
        for (const char* key : {"api_url", "credential", "ca_file"}) {
            if (!requests && m.has(key)) {
                raise(m.site(key), "not for " + provider + ": it makes no request");
            }
        }
        if (preset->auth_scheme.empty() && m.has("credential")) {
            raise(m.site("credential"),
                  "not for " + provider + ": its CAs are public, no secret is sent");
        }
        PresetValues values;
        for (const auto& key : path_keys(preset->origin)) {
            auto value = m.required(key);
            if (!is_dns_label(value)) {
                raise(m.site(key),
                      "'" + value +
                          "' must be lower-case letters, digits and '-' (a host name label)");
            }
            values[std::string(key)] = std::move(value);
        }
        for (const auto& key : path_keys(preset->path)) {
            const auto fallback = std::find_if(preset->defaults.begin(), preset->defaults.end(),
                                               [&](const auto& d) { return d.first == key; });
            std::string value;
            if (fallback == preset->defaults.end()) {
                value = m.required(key);
            } else {
                value = m.text(key).value_or(std::string(fallback->second));
                if (value.empty()) value = fallback->second;
            }
            if (std::find(preset->encoded.begin(), preset->encoded.end(), key) !=
                preset->encoded.end()) {
                if (value.size() > 512 || std::any_of(value.begin(), value.end(), [](char c) {
                        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
                    })) {
                    raise(m.site(key),
                          "'" + value +
                              "' must be printable, without spaces, at most 512 characters");
                }
                values[std::string(key)] = percent_encode(value);
                continue;
            }
            if (!is_path_value(value)) {
                raise(m.site(key), "'" + value + "' may hold only letters, digits and '_.-:@'");
            }
            values[std::string(key)] = std::move(value);
        }
        if (preset->check) {
            if (auto bad = preset->check(values)) raise(m.site(bad->key), bad->message);
        }
        auto origin = m.parsed<Endpoint>("api_url", parse_https_url);
        std::optional<std::string> credential;
        if (m.has("credential")) credential = credential_name(m, "credential", cfg);
        if (provider == "tembo") {  // its origin and token may come from api:
            inst.org = values["org"];
            inst.id = values["id"];
            out = tembo_source(inst, origin, credential, cfg, m);
        } else {
            if (!preset->auth_scheme.empty() && !credential) {
                raise(m.site("credential"),
                      "is required: " + provider + " needs a secret (see credentials)");
            }
            out = preset_source(
                *preset, [&](std::string_view k) { return value_of(values, k); }, origin,
                std::move(credential), inst);
        }
    }
    if (auto ca = m.path("ca_file", base_dir)) {
        out.ca_file = *ca;
        if (::access(out.ca_file->c_str(), R_OK) != 0) {
            raise(m.site("ca_file"),
                  "cannot read '" + out.ca_file->string() + "': " + std::strerror(errno));
        }
    }
    return out;
}

}  // namespace rootcertd::config_read
