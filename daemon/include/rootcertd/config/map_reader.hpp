// The strict YAML mapping reader every section of the configuration uses:
// each key once, every key known, typos named, errors with file, line and key.
#pragma once

#include <yaml-cpp/mark.h>

#include <algorithm>
#include <boost/container/small_vector.hpp>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "rootcertd/config/config.hpp"
#include "rootcertd/config/yaml_tree.hpp"

namespace rootcertd::config_read {

// Where a value came from, so every error can name file, line, column and key.
struct Site {
    const std::string& source;
    YAML::Mark mark;
    std::string key;
};

// Throws ConfigError "SOURCE:LINE:COL: KEY: WHAT".
[[noreturn]] void raise(const Site& s, const std::string& what);

// Expands ${NAME} and ${NAME:-fallback} from the environment; an unset
// variable without a fallback is an error.
// SITE() names the value in an error: built only then (most values are read
// once and never wrong, and a site is a string of its own).
template <class MakeSite>
std::string expand_env(const MakeSite& site, std::string_view in) {
    if (in.find("${") == std::string_view::npos) return std::string(in);
    std::string out;
    for (std::size_t i = 0; i < in.size();) {
        if (in.compare(i, 2, "${") == 0) {
            const auto end = in.find('}', i + 2);
            if (end == std::string::npos) raise(site(), "unterminated '${' in value");
            std::string name(in.substr(i + 2, end - i - 2));
            std::optional<std::string> fallback;  // ${NAME:-fallback}
            if (const auto dash = name.find(":-"); dash != std::string::npos) {
                fallback = name.substr(dash + 2);
                name.resize(dash);
            }
            const char* value = std::getenv(name.c_str());
            if (name.empty() || ((value == nullptr || *value == '\0') && !fallback)) {
                raise(site(), "environment variable '" + name + "' is not set");
            }
            out += value != nullptr && *value != '\0' ? std::string(value) : *fallback;
            i = end + 1;
        } else {
            out += in[i++];
        }
    }
    return out;
}

// P against BASE_DIR, unless P is absolute.
std::filesystem::path resolve(const std::filesystem::path& base_dir, const std::string& p);

// Edits (insert, delete, replace, swap two neighbours) from A to B.
std::size_t edit_distance(std::string_view a, std::string_view b);

// A YAML mapping read strictly: each key once, every key known.
class MapReader {
    struct Entry {
        std::string_view name;
        YamlNode key, value;
        bool used = false;
    };
    using Entries = std::vector<Entry>;
    Entries::iterator find(std::string_view key) {
        return std::find_if(entries_.begin(), entries_.end(),
                            [&](const Entry& e) { return e.name == key; });
    }
    Entries::const_iterator find(std::string_view key) const {
        return std::find_if(entries_.begin(), entries_.end(),
                            [&](const Entry& e) { return e.name == key; });
    }

  public:
    MapReader(const std::string& source, YamlNode node, std::string path)
        : source_(source), node_(node), path_(std::move(path)) {
        if (!node.IsMap()) raise({source_, node.Mark(), path_}, "must be a mapping of keys");
        // Mappings are small: a flat list in file order, searched linearly
        // (a std::map per mapping was most of the reader's cost).
        entries_.reserve(node.size());
        std::set<std::string_view> seen;  // only for big mappings
        for (std::size_t i = 0; i < node.size(); ++i) {
            const std::string_view key = node.key(i).Scalar();
            const bool duplicate =
                node.size() <= 16 ? find(key) != entries_.end() : !seen.insert(key).second;
            if (duplicate) {
                raise({source_, node.key(i).Mark(), key_path(key)}, "duplicate key");
            }
            entries_.push_back(Entry{key, node.key(i), node.value(i)});
        }
    }

    // The value at KEY, or nothing when absent; an explicit null counts as absent.
    std::optional<YamlNode> take(std::string_view key) {
        known_.push_back(key);
        const auto it = find(key);
        if (it == entries_.end()) return std::nullopt;
        it->used = true;
        if (it->value.IsNull()) return std::nullopt;
        return it->value;
    }

    std::optional<std::string> text(std::string_view key) {
        auto node = take(key);
        if (!node) return std::nullopt;
        if (!node->IsScalar()) raise(site(*node, key), "must be a single value");
        return expand_env([&] { return site(*node, key); }, node->Scalar());
    }

    template <class T, class Parse>
    std::optional<T> parsed(std::string_view key, Parse parse) {
        auto node = take(key);
        if (!node) return std::nullopt;
        if (!node->IsScalar()) raise(site(*node, key), "must be a single value");
        auto result = parse(expand_env([&] { return site(*node, key); }, node->Scalar()));
        if (!result) raise(site(*node, key), result.error());
        return std::move(result.value());
    }

    std::string required(std::string_view key) {
        auto value = text(key);
        if (!value || value->empty()) {
            raise_typo_of({key});
            raise({source_, node_.Mark(), key_path(key)}, "is required");
        }
        return *value;
    }

    // A path value, relative to BASE_DIR. '~' is no home directory here.
    std::optional<std::filesystem::path> path(std::string_view key,
                                              const std::filesystem::path& base_dir) {
        auto value = text(key);
        if (!value) return std::nullopt;
        if (value->starts_with("~")) {
            raise(site(key), "'" + *value + "': '~' is not expanded; write the absolute path");
        }
        return resolve(base_dir, *value);
    }

    // Before an error about KEYS (one of them missing, or none set): a key
    // nobody asked for that is a near miss of one of them is the mistake.
    void raise_typo_of(std::initializer_list<std::string_view> keys) const {
        for (const auto& entry : entries_) {
            if (!entry.used) raise_if_near_miss(entry, keys);
        }
    }

    Site site(YamlNode node, std::string_view key) const {
        return {source_, node.Mark(), key_path(key)};
    }
    // Where KEY's value is, or the mapping itself when KEY is absent.
    Site site(std::string_view key) const {
        const auto it = find(key);
        return {source_, it == entries_.end() ? node_.Mark() : it->value.Mark(), key_path(key)};
    }
    // Whether KEY is set; KEY is one this mapping may hold (an unknown key's
    // "expected one of" lists it).
    bool has(std::string_view key) {
        tested_.push_back(key);
        return find(key) != entries_.end();
    }
    Site site() const { return {source_, node_.Mark(), path_}; }
    // The path of the mapping at KEY, for a reader of it ("instances[3].rotation").
    std::string child_path(std::string_view key) const { return key_path(key); }
    const std::string& source() const { return source_; }

    // After another error in this mapping: a key nobody asked for that is a
    // near miss of one that was asked for is the likelier mistake, and is
    // reported instead ("hots:" beside "port:" is a typo, not a port
    // without a host).
    void raise_typo_first() const {
        for (const auto& entry : entries_) {
            if (entry.used) continue;
            raise_if_near_miss(entry, known_);
            raise_if_near_miss(entry, tested_);
        }
    }

    // Rejects keys nobody asked for: a typo must never be silently ignored.
    void finish() const {
        for (const auto& entry : entries_) {
            if (entry.used) continue;
            raise_if_near_miss(entry, known_);
            raise_if_near_miss(entry, tested_);
            std::string known;
            std::set<std::string_view> listed;
            for (const auto& keys : {std::span<const std::string_view>(known_),
                                     std::span<const std::string_view>(tested_)}) {
                for (const auto k : keys) {
                    if (listed.insert(k).second) {
                        known += (known.empty() ? "" : ", ") + std::string(k);
                    }
                }
            }
            raise({source_, entry.key.Mark(), key_path(entry.name)},
                  "unknown key '" + std::string(entry.name) + "' (expected one of: " + known + ")");
        }
    }

  private:
    // ENTRY, a key nobody asked for, as a typo of one of KEYS, if it is one.
    template <class Keys>
    void raise_if_near_miss(const Entry& entry, const Keys& keys) const {
        for (const std::string_view wanted : keys) {
            if (near_miss(entry.name, wanted)) {
                raise({source_, entry.key.Mark(), key_path(entry.name)},
                      "unknown key '" + std::string(entry.name) + "' (did you mean '" +
                          std::string(wanted) + "'?)");
            }
        }
    }

    // A typo: one or two edits away, and not most of the word.
    static bool near_miss(std::string_view typed, std::string_view key) {
        const auto d = edit_distance(typed, key);
        return d > 0 && d <= (key.size() <= 4 ? 1u : 2u);
    }

    std::string key_path(std::string_view key) const {
        return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    }

    const std::string& source_;
    YamlNode node_;
    std::string path_;
    Entries entries_;
    // The keys asked for (take) and asked about (has), for "expected one of"
    // and typos. Views: every key a reader is asked for outlives it (a
    // literal, a provider table's text, the tree's own text). Held inline: a
    // fleet's config builds a reader per instance.
    boost::container::small_vector<std::string_view, 24> known_;
    boost::container::small_vector<std::string_view, 8> tested_;
};

// READ(M), unless it fails while M holds a typo of a key it asked for:
// then the typo is the error (MapReader::raise_typo_first).
template <class Read>
auto typo_first(const MapReader& m, Read read) {
    try {
        return read();
    } catch (const ConfigError&) {
        m.raise_typo_first();
        throw;
    }
}

}  // namespace rootcertd::config_read
