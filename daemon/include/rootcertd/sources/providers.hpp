// The presets of `source: {provider: ...}`: for each managed-Postgres
// provider, the request its CA takes and how to read the answer. Adding a
// provider is one row of the table in providers.cpp.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rootcertd/core/model.hpp"

namespace rootcertd {

// A source's key values (after defaults), by key.
using PresetValues = std::map<std::string, std::string, std::less<>>;

// A value a preset refuses: which key, and why.
struct BadValue {
    std::string key;
    std::string message;
};

struct Preset {
    std::string_view name;
    // The origin requests go to; empty: no request (the CAs come from the
    // system trust store), or for tembo, api.url. May hold {key}
    // placeholders (ibmcloud's region): each a required key whose value
    // must be a DNS label.
    std::string_view origin;
    // Path with {key} placeholders: each placeholder is a required key of
    // the source mapping.
    std::string_view path;
    std::string_view auth_scheme;  // empty: no secret is ever sent
    Reading reading;
    // No request: these roots (RFC 2253 subjects) from the system trust
    // store; a store without a required one is a refresh error.
    std::vector<std::string_view> system_roots;
    std::vector<std::string_view> optional_roots;
    std::string_view docs;  // where the provider documents it
    // Keys that may be left out, with the value they then take.
    std::vector<std::pair<std::string_view, std::string_view>> defaults = {};
    // Keys whose value is percent-encoded into the path (an IBM CRN holds
    // '/' and ':'); any printable text without spaces is accepted.
    std::vector<std::string_view> encoded = {};
    // A second request (same origin, keys and secret) for when the first
    // answers 200 without a CA, and how to read it; empty: none.
    std::string_view fallback_path = {};
    Reading fallback_reading = {};
    // What the keys' values must be beyond path values (an AWS region, an
    // endpoint type); null: nothing more.
    std::optional<BadValue> (*check)(const PresetValues& values) = nullptr;
};

// Every preset, in documentation order.
const std::vector<Preset>& presets();

// The preset called NAME, or nothing.
const Preset* find_preset(std::string_view name);

// The {key} placeholders of PATH, in order, each once: views into PATH.
std::vector<std::string_view> path_keys(std::string_view path);

// TEXT with every byte but RFC 3986's unreserved ones as %XX.
std::string percent_encode(std::string_view text);

// KEY's value in VALUES, or nothing.
inline std::string_view value_of(const PresetValues& values, std::string_view key) {
    const auto it = values.find(key);
    return it == values.end() ? std::string_view() : std::string_view(it->second);
}

// PATH with each {key} replaced by VALUE(key), KEY a std::string_view. The
// string is allocated once at its exact size: a fleet's instances each keep
// one for as long as the daemon runs.
template <class Value>
std::string expand_path(std::string_view path, const Value& value) {
    const auto each_part = [&](const auto& take) {
        std::size_t at = 0;
        for (auto open = path.find('{'); open != std::string_view::npos;
             open = path.find('{', at)) {
            const auto close = path.find('}', open);
            take(path.substr(at, open - at));
            take(std::string_view(value(path.substr(open + 1, close - open - 1))));
            at = close + 1;
        }
        take(path.substr(at));
    };
    std::size_t size = 0;
    each_part([&](std::string_view part) { size += part.size(); });
    std::string out;
    out.reserve(size);
    each_part([&](std::string_view part) { out.append(part); });
    return out;
}

// The source PRESET makes from the values of its path keys (VALUE(key)), at
// ORIGIN (its default origin when unset), with the secret CREDENTIAL (unset:
// the API token, for presets that send one). INSTANCE gets its targets.
template <class Value>
Source preset_source(const Preset& preset, const Value& value, std::optional<Endpoint> origin,
                     std::optional<std::string> credential, Instance& instance) {
    Source out;
    out.provider = preset.name;
    if (!preset.path.empty()) {
        out.api = origin ? std::move(*origin)
                         : parse_https_url(expand_path(preset.origin, value)).value();
        instance.target = expand_path(preset.path, value);
        if (!preset.fallback_path.empty()) {
            instance.fallback_target = expand_path(preset.fallback_path, value);
            out.fallback_reading = preset.fallback_reading;
        }
    }
    out.auth_scheme = std::string(preset.auth_scheme);
    out.credential = std::move(credential);
    out.reading = preset.reading;
    if (!preset.system_roots.empty()) out.roots = &preset;
    return out;
}

}  // namespace rootcertd
