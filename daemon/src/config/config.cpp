#include "rootcertd/config/config.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/exceptions.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "rootcertd/config/yaml_tree.hpp"
#include "rootcertd/net/http_server.hpp"
#include "rootcertd/net/proxy.hpp"
#include "rootcertd/sources/providers.hpp"

namespace rootcertd {

namespace {

// Where a value came from, so every error can name file, line, column and key.
struct Site {
    const std::string& source;
    YAML::Mark mark;
    std::string key;
};

[[noreturn]] void raise(const Site& s, const std::string& what) {
    std::ostringstream out;
    out << s.source;
    if (!s.mark.is_null()) out << ':' << s.mark.line + 1 << ':' << s.mark.column + 1;
    out << ": ";
    if (!s.key.empty()) out << s.key << ": ";
    out << what;
    throw ConfigError(out.str(), s.source, s.mark.is_null() ? 0 : s.mark.line + 1, s.key);
}

// Expands ${NAME} and ${NAME:-fallback} from the environment; an unset
// variable without a fallback is an error.
// SITE() names the value in an error: built only then (most values are read
// once and never wrong, and a site is a string of its own).
template <class MakeSite>
std::string expand_env(const MakeSite& site, const std::string& in) {
    if (in.find("${") == std::string::npos) return in;
    std::string out;
    for (std::size_t i = 0; i < in.size();) {
        if (in.compare(i, 2, "${") == 0) {
            const auto end = in.find('}', i + 2);
            if (end == std::string::npos) raise(site(), "unterminated '${' in value");
            std::string name = in.substr(i + 2, end - i - 2);
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

std::filesystem::path resolve(const std::filesystem::path& base_dir, const std::string& p);

// Edits (insert, delete, replace, swap two neighbours) from A to B.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                                d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        }
    }
    return d[a.size()][b.size()];
}

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
            const auto& key = node.key(i).Scalar();
            const bool duplicate =
                node.size() <= 16 ? find(key) != entries_.end() : !seen.insert(key).second;
            if (duplicate) raise({source_, node.key(i).Mark(), key_path(key)}, "duplicate key");
            entries_.push_back(Entry{key, node.key(i), node.value(i)});
        }
        known_.reserve(16);
    }

    // The value at KEY, or nothing when absent; an explicit null counts as absent.
    std::optional<YamlNode> take(const char* key) {
        known_.push_back(key);
        const auto it = find(key);
        if (it == entries_.end()) return std::nullopt;
        it->used = true;
        if (it->value.IsNull()) return std::nullopt;
        return it->value;
    }

    std::optional<std::string> text(const char* key) {
        auto node = take(key);
        if (!node) return std::nullopt;
        if (!node->IsScalar()) raise(site(*node, key), "must be a single value");
        return expand_env([&] { return site(*node, key); }, node->Scalar());
    }

    template <class T, class Parse>
    std::optional<T> parsed(const char* key, Parse parse) {
        auto node = take(key);
        if (!node) return std::nullopt;
        if (!node->IsScalar()) raise(site(*node, key), "must be a single value");
        auto result = parse(expand_env([&] { return site(*node, key); }, node->Scalar()));
        if (!result) raise(site(*node, key), result.error());
        return std::move(result.value());
    }

    std::string required(const char* key) {
        auto value = text(key);
        if (!value || value->empty()) {
            raise_typo_of({key});
            raise({source_, node_.Mark(), key_path(key)}, "is required");
        }
        return *value;
    }

    // A path value, relative to BASE_DIR. '~' is no home directory here.
    std::optional<std::filesystem::path> path(const char* key,
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
            if (entry.used) continue;
            for (const auto wanted : keys) {
                if (near_miss(entry.name, wanted)) {
                    raise({source_, entry.key.Mark(), key_path(std::string(entry.name))},
                          "unknown key '" + std::string(entry.name) + "' (did you mean '" +
                              std::string(wanted) + "'?)");
                }
            }
        }
    }

    Site site(YamlNode node, const std::string& key) const {
        return {source_, node.Mark(), key_path(key)};
    }
    // Where KEY's value is, or the mapping itself when KEY is absent.
    Site site(const char* key) const {
        const auto it = find(key);
        return {source_, it == entries_.end() ? node_.Mark() : it->value.Mark(), key_path(key)};
    }
    // Whether KEY is set; KEY is one this mapping may hold (an unknown key's
    // "expected one of" lists it). KEY is a string literal: kept by address,
    // no copy (a fleet's config asks this for every instance).
    bool has(const char* key) {
        tested_.push_back(key);
        return find(key) != entries_.end();
    }
    Site site() const { return {source_, node_.Mark(), path_}; }
    const std::string& source() const { return source_; }

    // After another error in this mapping: a key nobody asked for that is a
    // near miss of one that was asked for is the likelier mistake, and is
    // reported instead ("hots:" beside "port:" is a typo, not a port
    // without a host).
    void raise_typo_first() const {
        std::vector<std::string_view> asked(known_.begin(), known_.end());
        asked.insert(asked.end(), tested_.begin(), tested_.end());
        for (const auto& entry : entries_) {
            if (entry.used) continue;
            for (const auto key : asked) {
                if (near_miss(entry.name, key)) {
                    raise({source_, entry.key.Mark(), key_path(std::string(entry.name))},
                          "unknown key '" + std::string(entry.name) + "' (did you mean '" +
                              std::string(key) + "'?)");
                }
            }
        }
    }

    // Rejects keys nobody asked for: a typo must never be silently ignored.
    void finish() const {
        for (const auto& entry : entries_) {
            if (entry.used) continue;
            const Site where{source_, entry.key.Mark(), key_path(std::string(entry.name))};
            const std::string unknown = "unknown key '" + std::string(entry.name) + "'";
            std::vector<std::string_view> keys(known_.begin(), known_.end());
            keys.insert(keys.end(), tested_.begin(), tested_.end());
            for (const auto k : keys) {
                if (near_miss(entry.name, k)) {
                    raise(where, unknown + " (did you mean '" + std::string(k) + "'?)");
                }
            }
            std::string known;
            std::set<std::string_view> listed;
            for (const auto k : keys) {
                if (listed.insert(k).second) known += (known.empty() ? "" : ", ") + std::string(k);
            }
            raise(where, unknown + " (expected one of: " + known + ")");
        }
    }

  private:
    // A typo: one or two edits away, and not most of the word.
    static bool near_miss(std::string_view typed, std::string_view key) {
        const auto d = edit_distance(typed, key);
        return d > 0 && d <= (key.size() <= 4 ? 1u : 2u);
    }

    std::string key_path(const std::string& key) const {
        return path_.empty() ? key : path_ + "." + key;
    }

    const std::string& source_;
    YamlNode node_;
    std::string path_;
    Entries entries_;
    // Copies: a provider's keys come from its path template. Short keys stay
    // in the string itself (no allocation).
    std::vector<std::string> known_;
    std::vector<const char*> tested_;  // keys has() was asked about: literals
};

Outcome<bool> parse_bool(const std::string& text) {
    if (text == "true") return true;
    if (text == "false") return false;
    return fail("'" + text + "' must be true or false");
}

Outcome<Duration> positive_duration(const std::string& text) {
    auto d = parse_duration(text);
    if (d && d.value().count() <= 0) return fail("must be greater than zero");
    return d;
}

Outcome<mode_t> parse_mode(const std::string& text) {
    unsigned long v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 8);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || v > 0777) {
        return fail("'" + text + "' is not an octal file mode like 0644");
    }
    if ((v & 0400) == 0) return fail("'" + text + "' does not let the owner read the file");
    // Whoever can write a trust anchor can make clients trust any server.
    if ((v & 022) != 0) return fail("'" + text + "' lets group or others write the file");
    return static_cast<mode_t>(v);
}

template <class Id, class Lookup>
Outcome<Id> parse_principal(const std::string& text, const char* what, Lookup lookup) {
    Id id{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (!text.empty() && ec == std::errc{} && end == text.data() + text.size()) return id;
    if (auto found = lookup(text)) return *found;
    return fail(std::string("no ") + what + " named '" + text + "'");
}

std::optional<uid_t> user_id(const std::string& name) {
    std::vector<char> buf(16384);
    passwd pw{}, *out = nullptr;
    if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &out) != 0 || !out) return {};
    return out->pw_uid;
}

std::optional<gid_t> group_id(const std::string& name) {
    std::vector<char> buf(16384);
    group gr{}, *out = nullptr;
    if (getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &out) != 0 || !out) return {};
    return out->gr_gid;
}

void read_ownership(MapReader& map, FileOwnership& file) {
    if (auto m = map.parsed<mode_t>("file_mode", parse_mode)) file.mode = *m;
    if (auto u = map.parsed<uid_t>("owner", [](const std::string& t) {
            return parse_principal<uid_t>(t, "user", user_id);
        })) {
        file.uid = *u;
    }
    if (auto g = map.parsed<gid_t>("group", [](const std::string& t) {
            return parse_principal<gid_t>(t, "group", group_id);
        })) {
        file.gid = *g;
    }
}

// on_change: {command: [argv...], timeout: DURATION}, global or per instance.
// KEY: a program and its arguments (no shell), the program an absolute
// Why PATH (and each directory above it) could be changed by someone other
// than root and the daemon's own user: owned by another user, writable by
// others, or by a group other than root's and the daemon's. A sticky
// directory (/tmp) is fine: others cannot replace what they do not own.
// Like sshd's StrictModes. Nullopt when it is safe.
std::optional<std::string> unsafe_path(const std::filesystem::path& path) {
    const auto judge = [](const std::filesystem::path& p,
                          bool is_dir) -> std::optional<std::string> {
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0) return std::nullopt;  // reported where it is read
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        const std::string what = (is_dir ? "its directory " : "") + p.string();
        if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
            return what + " is owned by uid " + std::to_string(st.st_uid) +
                   ", neither root nor the daemon's user";
        }
        if ((st.st_mode & S_IWOTH) != 0 && !(is_dir && (st.st_mode & S_ISVTX) != 0)) {
            return what + " is writable by others (mode " + mode + ")";
        }
        if ((st.st_mode & S_IWGRP) != 0 && st.st_gid != 0 && st.st_gid != ::getegid()) {
            return what + " is writable by group " + std::to_string(st.st_gid) + " (mode " + mode +
                   ")";
        }
        return std::nullopt;
    };
    if (auto why = judge(path, false)) return why;
    std::error_code ec;
    const auto real = std::filesystem::canonical(path, ec);
    for (const auto& p : {path, ec ? path : real}) {
        for (auto dir = p.parent_path(); !dir.empty(); dir = dir.parent_path()) {
            if (auto why = judge(dir, true)) return why;
            if (dir == dir.root_path()) break;
        }
    }
    return std::nullopt;
}

// path that can be executed now.
std::vector<std::string> read_command(MapReader& m, const char* key) {
    auto command = m.take(key);
    if (!command || !command->IsSequence() || command->size() == 0) {
        raise(command ? m.site(*command, key) : m.site(),
              std::string(key) + " must be a list: the program and its arguments (no shell)");
    }
    std::vector<std::string> argv;
    for (std::size_t i = 0; i < command->size(); ++i) {
        const auto arg = (*command)[i];
        if (!arg.IsScalar()) raise(m.site(arg, key), "every argument must be a string");
        argv.push_back(expand_env([&] { return m.site(arg, key); }, arg.Scalar()));
    }
    if (!argv[0].starts_with("/")) {
        raise(m.site((*command)[0], key), "'" + argv[0] + "' must be an absolute path");
    }
    if (::access(argv[0].c_str(), X_OK) != 0) {
        raise(m.site((*command)[0], key),
              "cannot execute '" + argv[0] + "': " + std::strerror(errno));
    }
    if (auto why = unsafe_path(argv[0])) {
        raise(m.site((*command)[0], key), "refusing to run '" + argv[0] + "': " + *why);
    }
    return argv;
}

std::optional<Hook> read_hook(const std::string& source, MapReader& parent,
                              const std::string& path) {
    auto node = parent.take("on_change");
    if (!node) return std::nullopt;
    MapReader m(source, *node, path);
    Hook hook;
    hook.command = read_command(m, "command");
    if (auto d = m.parsed<Duration>("timeout", positive_duration)) hook.timeout = *d;
    m.finish();
    return hook;
}

// rotation: {keep_previous: DURATION}, at the top level or in an instance.
std::optional<Duration> read_rotation(const std::string& source, MapReader& parent,
                                      const std::string& path) {
    auto node = parent.take("rotation");
    if (!node) return std::nullopt;
    MapReader rotation(source, *node, path);
    auto keep = rotation.parsed<Duration>("keep_previous", parse_duration);
    rotation.finish();
    return keep;
}

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

// [A-Za-z0-9_][A-Za-z0-9._-]*, without "..": safe as a file stem.
bool is_safe_name(const std::string& s) {
    if (s.empty() || s.size() > 200 ||
        !(std::isalnum(static_cast<unsigned char>(s[0])) || s[0] == '_')) {
        return false;
    }
    return s.find("..") == std::string::npos &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) {
               return std::isalnum(c) || c == '_' || c == '.' || c == '-';
           });
}

// A value written as "KEY=VALUE" into pg_service.conf. libpq's parser reads
// a line break as the end of the value (what follows would be a setting of
// its own, above rootcertd's sslmode=verify-full) and trims white space at
// both ends, so neither may appear.
std::optional<std::string> service_value(MapReader& map, const char* key) {
    auto value = map.text(key);
    if (!value) return value;
    if (std::any_of(value->begin(), value->end(),
                    [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
        raise(map.site(key), "must not contain control characters (line breaks, tabs...)");
    }
    if (!value->empty() && (std::isspace(static_cast<unsigned char>(value->front())) ||
                            std::isspace(static_cast<unsigned char>(value->back())))) {
        raise(map.site(key), "must not begin or end with white space");
    }
    return value;
}

std::filesystem::path resolve(const std::filesystem::path& base_dir, const std::string& p) {
    const std::filesystem::path path(p);
    return path.is_absolute() ? path : base_dir / path;
}

YamlTree read_tree(const std::string& yaml, const std::string& source, YamlTree::Marks marks) {
    // yaml-cpp calls a tab in the indentation an "illegal map value".
    std::size_t line = 0;
    for (std::size_t at = 0; at < yaml.size(); ++line) {
        const auto end = std::min(yaml.find('\n', at), yaml.size());
        const auto text = std::min(yaml.find_first_not_of(" \t", at), end);
        if (const auto tab = yaml.find('\t', at); tab < text && text < end) {
            YAML::Mark mark;
            mark.pos = static_cast<int>(tab);
            mark.line = static_cast<int>(line);
            mark.column = static_cast<int>(tab - at);
            raise({source, mark, ""},
                  "tabs are not allowed in YAML indentation; indent with spaces");
        }
        at = end + 1;
    }
    try {
        return YamlTree(yaml, marks);
    } catch (const YAML::ParserException& e) {
        raise({source, e.mark, ""}, "YAML syntax error: " + e.msg);
    }
}

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
        const std::string& name = node->key(i).Scalar();
        if (!is_safe_name(name)) {
            raise(all.site(node->key(i), name),
                  "'" + name + "' is not a credential name (letters, digits, '_', '.', '-')");
        }
        MapReader m(source, *all.take(name.c_str()), "credentials." + name);
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

// The request of a Tembo instance; ORIGIN: its api_url, else api.url.
Source tembo_source(const std::string& org, const std::string& id,
                    const std::optional<Endpoint>& origin, std::optional<std::string> credential,
                    const Config& cfg, const Site& where) {
    const Preset& tembo = *find_preset("tembo");
    if (!origin && !cfg.api) raise(where, "no api_url here and no api.url to inherit");
    if (!credential && !cfg.token_file && !cfg.token_env) {
        raise(where, "needs api.token_file or api.token_env (or a source credential)");
    }
    return preset_source(
        tembo, [&](const std::string& key) { return key == "org" ? org : id; },
        origin ? origin : cfg.api, std::move(credential));
}

// https://host[:port]/path[?query]: the origin and the target.
Outcome<std::pair<Endpoint, std::string>> parse_source_url(const std::string& url) {
    constexpr std::string_view scheme = "https://";
    if (!url.starts_with(scheme)) return fail("'" + url + "' must start with https://");
    const auto slash = url.find('/', scheme.size());
    if (slash == std::string::npos) return fail("'" + url + "' has no path");
    auto origin = parse_https_url(std::string_view(url).substr(0, slash));
    if (!origin) return fail(origin.error());
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
Source read_custom_source(MapReader& m, const Config& cfg) {
    Source out;
    out.provider = "url";
    auto url = m.parsed<std::pair<Endpoint, std::string>>("url", parse_source_url);
    std::tie(out.api, out.target) = std::move(*url);
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
    if (auto auth = m.take("auth")) {
        MapReader a(m.source(), *auth, m.site().key + ".auth");
        out.auth_scheme = a.required("scheme");
        if (!is_header_name(out.auth_scheme)) {
            raise(a.site("scheme"), "'" + out.auth_scheme + "' is not an authorization scheme");
        }
        out.credential = credential_name(a, "credential", cfg);
        a.finish();
    }
    if (auto header = m.take("header")) {
        MapReader h(m.source(), *header, m.site().key + ".header");
        out.auth_header = h.required("name");
        if (!is_header_name(out.auth_header)) {
            raise(h.site("name"), "'" + out.auth_header + "' is not a header name");
        }
        out.credential = credential_name(h, "credential", cfg);
        h.finish();
    }
    return out;
}

// An instance's `source:` mapping: a provider preset, or a custom url.
// "eu-west-1", "us-gov-west-1", "ap-southeast-2": AWS's region names.
bool is_aws_region(const std::string& s) {
    std::vector<std::string_view> parts;
    for (std::size_t at = 0; at <= s.size();) {
        const auto dash = std::min(s.find('-', at), s.size());
        parts.push_back(std::string_view(s).substr(at, dash - at));
        at = dash + 1;
    }
    const auto letters = [](std::string_view p) {
        return !p.empty() &&
               std::all_of(p.begin(), p.end(), [](char c) { return c >= 'a' && c <= 'z'; });
    };
    return parts.size() >= 3 && parts.front().size() == 2 && letters(parts.front()) &&
           std::all_of(parts.begin() + 1, parts.end() - 1, letters) && !parts.back().empty() &&
           std::all_of(parts.back().begin(), parts.back().end(),
                       [](char c) { return c >= '0' && c <= '9'; });
}

// What a preset's keys must look like beyond a path value.
// A host name label: lower-case letters, digits and '-', 1 to 63, not at either end.
bool is_dns_label(const std::string& s) {
    return !s.empty() && s.size() <= 63 && s.front() != '-' && s.back() != '-' &&
           std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
           });
}

void check_preset_values(MapReader& m, const std::string& provider,
                         const std::map<std::string, std::string>& values) {
    if (provider == "rds") {
        const auto& region = values.at("region");
        if (region != "global" && !is_aws_region(region)) {
            raise(m.site("region"), "'" + region +
                                        "' is not an AWS region like eu-west-1 or us-gov-west-1, "
                                        "nor global");
        }
    }
    if (provider == "ibmcloud") {
        const auto& type = values.at("endpoint_type");
        if (type != "public" && type != "private") {
            raise(m.site("endpoint_type"), "'" + type + "' is not public or private");
        }
    }
    if (provider == "cloudsql") {
        // A connection name is project:region:instance (the project may hold
        // a ':' itself, as domain-scoped ones do: example.com:proj).
        const auto& instance = values.at("instance");
        if (instance.find(':') != std::string::npos) {
            const auto last = instance.rfind(':');
            const auto region = instance.rfind(':', last - 1);
            raise(m.site("instance"),
                  "'" + instance + "' looks like a connection name" +
                      (region == std::string::npos || region == 0
                           ? std::string()
                           : " (project:region:instance): write project: " +
                                 instance.substr(0, region) +
                                 " and instance: " + instance.substr(last + 1)));
        }
    }
}

Source read_source(MapReader& m, const Config& cfg, const std::filesystem::path& base_dir,
                   Instance& inst) {
    Source out;
    if (m.has("url")) {
        if (m.has("provider"))
            raise(m.site("provider"), "not with url: a custom source has no provider");
        out = read_custom_source(m, cfg);
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
        std::map<std::string, std::string> values;
        for (const auto& key : path_keys(preset->origin)) {
            auto value = m.required(key.c_str());
            if (!is_dns_label(value)) {
                raise(m.site(key.c_str()),
                      "'" + value +
                          "' must be lower-case letters, digits and '-' (a host name label)");
            }
            values[key] = std::move(value);
        }
        for (const auto& key : path_keys(preset->path)) {
            const auto fallback = std::find_if(preset->defaults.begin(), preset->defaults.end(),
                                               [&](const auto& d) { return d.first == key; });
            std::string value;
            if (fallback == preset->defaults.end()) {
                value = m.required(key.c_str());
            } else {
                value = m.text(key.c_str()).value_or(std::string(fallback->second));
                if (value.empty()) value = fallback->second;
            }
            if (std::find(preset->encoded.begin(), preset->encoded.end(), key) !=
                preset->encoded.end()) {
                if (value.size() > 512 || std::any_of(value.begin(), value.end(), [](char c) {
                        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
                    })) {
                    raise(m.site(key.c_str()),
                          "'" + value +
                              "' must be printable, without spaces, at most 512 characters");
                }
                values[key] = percent_encode(value);
                continue;
            }
            if (!is_path_value(value)) {
                raise(m.site(key.c_str()),
                      "'" + value + "' may hold only letters, digits and '_.-:@'");
            }
            values[key] = std::move(value);
        }
        check_preset_values(m, provider, values);
        auto origin = m.parsed<Endpoint>("api_url", parse_https_url);
        std::optional<std::string> credential;
        if (m.has("credential")) credential = credential_name(m, "credential", cfg);
        if (provider == "tembo") {
            for (const char* key : {"org", "id"}) {
                if (!is_id(values[key])) {
                    raise(m.site(key), "'" + values[key] + "' must match ^[A-Za-z0-9_]+$");
                }
            }
            inst.org = values["org"];
            inst.id = values["id"];
            out = tembo_source(inst.org, inst.id, origin, credential, cfg, m.site());
        } else {
            if (!preset->auth_scheme.empty() && !credential) {
                raise(m.site("credential"),
                      "is required: " + provider + " needs a secret (see credentials)");
            }
            out = preset_source(
                *preset, [&](const std::string& k) { return values[k]; }, origin,
                std::move(credential));
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

// The settings an instance takes from the globals unless it has its own; a
// `discover` entry's are the defaults of what it finds.
void read_settings(const std::string& source, MapReader& m, const Config& cfg, Instance& inst) {
    const std::string path = m.site().key;
    inst.refresh_interval =
        m.parsed<Duration>("refresh_interval", positive_duration).value_or(cfg.refresh_interval);
    inst.file = cfg.file;
    read_ownership(m, inst.file);
    inst.keep_previous = read_rotation(source, m, path + ".rotation").value_or(cfg.keep_previous);
    inst.verify_interval =
        m.parsed<Duration>("verify_interval", positive_duration).value_or(cfg.verify_interval);
    inst.on_change = read_hook(source, m, path + ".on_change");
    if (!inst.on_change) inst.on_change = cfg.on_change;
}

// A parser of whole numbers from LO to HI.
auto whole_number(unsigned lo, unsigned hi) {
    return [lo, hi](const std::string& t) -> Outcome<unsigned> {
        unsigned v = 0;
        const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (ec != std::errc{} || end != t.data() + t.size() || v < lo || v > hi) {
            return fail("'" + t + "' must be a whole number from " + std::to_string(lo) + " to " +
                        std::to_string(hi));
        }
        return v;
    };
}

// Every '{' of a template opens a field name that a '}' closes.
void check_template(MapReader& m, const char* key, const std::string& text) {
    for (auto at = text.find('{'); at != std::string::npos; at = text.find('{', at + 1)) {
        const auto end = text.find('}', at);
        if (end == std::string::npos || end == at + 1) {
            raise(m.site(key), "'" + text + "': every '{' needs a field name and a '}'");
        }
    }
}

// One entry of `discover`: a control-plane list whose instances are kept.
Discovery read_discovery(const std::string& source, MapReader& m, const Config& cfg,
                         const std::filesystem::path& base_dir) {
    Discovery d;
    d.provider = m.required("provider");
    const bool tembo = d.provider == "tembo";
    if (!tembo && d.provider != "cloudsql" && d.provider != "digitalocean") {
        raise(m.site("provider"), "unknown provider '" + d.provider +
                                      "' (discovery knows tembo, cloudsql, digitalocean)");
    }
    if (tembo) {
        d.scope = m.required("org");
        if (!is_id(d.scope)) raise(m.site("org"), "'" + d.scope + "' must match ^[A-Za-z0-9_]+$");
        d.list_api = m.parsed<Endpoint>("control_plane", parse_https_url)
                         .value_or(parse_https_url("https://api.tembo.io").value());
        d.data_plane =
            m.text("data_plane").value_or("https://api.{dataplane_index}.{region_id}.tembo.io");
        check_template(m, "data_plane", d.data_plane);
        if (!d.data_plane.starts_with("https://")) {
            raise(m.site("data_plane"), "'" + d.data_plane + "' must start with https://");
        }
    } else {
        if (d.provider == "cloudsql") {
            d.scope = m.required("project");
            if (!is_path_value(d.scope)) {
                raise(m.site("project"),
                      "'" + d.scope + "' may hold only letters, digits and '_.-:@'");
            }
        }
        d.ca_api = m.parsed<Endpoint>("api_url", parse_https_url);
        d.list_api =
            d.ca_api ? *d.ca_api : parse_https_url(find_preset(d.provider)->origin).value();
    }
    if (m.has("credential")) d.credential = credential_name(m, "credential", cfg);
    if (!d.credential && (!tembo || (!cfg.token_file && !cfg.token_env))) {
        m.raise_typo_of({"credential"});
        raise(m.site("credential"), tembo ? "is required without api.token_file or api.token_env"
                                          : "is required: " + d.provider + " needs a secret");
    }
    d.interval = m.parsed<Duration>("interval", positive_duration).value_or(d.interval);
    if (auto n = m.parsed<unsigned>("max_instances", whole_number(1, 100'000)))
        d.max_instances = *n;
    if (auto b = m.parsed<bool>("confirm_mass_removal", parse_bool)) d.confirm_mass_removal = *b;
    d.name_template = m.text("name").value_or(tembo ? "{instance_name}" : "{name}");
    check_template(m, "name", d.name_template);
    if (auto ca = m.path("ca_file", base_dir)) {
        d.ca_file = *ca;
        if (::access(d.ca_file->c_str(), R_OK) != 0) {
            raise(m.site("ca_file"),
                  "cannot read '" + d.ca_file->string() + "': " + std::strerror(errno));
        }
    }
    read_settings(source, m, cfg, d.defaults);
    d.defaults.dbname = service_value(m, "dbname");
    return d;
}

// One entry of `instances`, with CFG's globals as its defaults. SEEN: the
// names of the entries before it, with their lines.
Instance read_instance(const std::string& source, MapReader& m, const Config& cfg,
                       const std::filesystem::path& base_dir,
                       const std::unordered_map<std::string_view, int>& seen) {
    const std::string path = m.site().key;
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
        inst.source =
            tembo_source(inst.org, inst.id, m.parsed<Endpoint>("api_url", parse_https_url),
                         std::nullopt, cfg, m.site());
        inst.name = m.text("name").value_or(inst.id);
    } else {
        if (m.has("api_url")) {
            raise(m.site("api_url"), "not with source: the source has its own api_url");
        }
        MapReader src(source, *m.take("source"), path + ".source");
        inst.source = typo_first(src, [&] { return read_source(src, cfg, base_dir, inst); });
        src.finish();
        inst.name = m.required("name");
    }
    if (!is_safe_name(inst.name)) {
        raise(m.site("name"),
              "'" + inst.name + "' is not a safe file name (letters, digits, '_', '.', '-')");
    }
    if (const auto it = seen.find(inst.name); it != seen.end()) {
        raise(m.site("name"), "'" + inst.name + "' is already used by the instance at line " +
                                  std::to_string(it->second));
    }
    read_settings(source, m, cfg, inst);
    inst.host = service_value(m, "host");
    if (inst.host && !is_host(*inst.host)) {
        if (const auto split = host_with_port(*inst.host)) {
            raise(m.site("host"), "'" + *inst.host + "' holds a port: write host: " + split->first +
                                      " and port: " + split->second);
        }
        raise(m.site("host"), "'" + *inst.host + "' is not a host name or address");
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
    inst.dbname = service_value(m, "dbname");
    inst.user = service_value(m, "user");
    for (const char* key : {"port", "verify_interval", "dbname", "user"}) {
        if (!inst.host && m.has(key)) {
            m.raise_typo_of({"host"});
            raise(m.site(key), "needs 'host' (the PostgreSQL server to check)");
        }
    }
    return inst;
}

// The top-level settings: directories, defaults for every instance, the
// scheduler's, metrics.
void read_globals(const std::string& source, MapReader& top, const std::filesystem::path& base_dir,
                  Config& cfg) {
    if (auto dir = top.path("cert_dir", base_dir)) cfg.cert_dir = *dir;
    if (auto dir = top.path("state_dir", base_dir)) cfg.state_dir = *dir;
    {
        const auto cert = cfg.cert_dir.lexically_normal(), state = cfg.state_dir.lexically_normal();
        const auto rel = state.lexically_relative(cert);
        if (!rel.empty() && *rel.begin() != "..") {
            // At the key that put it there: state_dir when set, else cert_dir.
            raise(top.site(top.has("state_dir") ? "state_dir" : "cert_dir"),
                  "state_dir '" + cfg.state_dir.string() +
                      "' must not be inside cert_dir (clients read every file there)");
        }
    }
    cfg.pg_service_file = top.path("pg_service_file", base_dir);
    if (auto d = top.parsed<Duration>("verify_interval", positive_duration))
        cfg.verify_interval = *d;
    cfg.keep_previous = read_rotation(source, top, "rotation").value_or(cfg.keep_previous);
    cfg.on_change = read_hook(source, top, "on_change");
    if (auto metrics = top.take("metrics")) {
        MapReader m(source, *metrics, "metrics");
        cfg.metrics_listen = m.text("listen");
        if (cfg.metrics_listen) {
            if (auto ep = parse_listen(*cfg.metrics_listen); !ep) {
                raise(m.site("listen"), ep.error());
            }
        }
        m.finish();
    }
    if (auto d = top.parsed<Duration>("refresh_interval", positive_duration)) {
        cfg.refresh_interval = *d;
    }
    if (auto j = top.parsed<double>("jitter", [](const std::string& t) -> Outcome<double> {
            char* end = nullptr;
            const double v = std::strtod(t.c_str(), &end);
            if (t.empty() || *end != '\0' || !(v >= 0.0 && v <= 0.5)) {
                return fail("'" + t + "' must be a fraction between 0 and 0.5");
            }
            return v;
        })) {
        cfg.jitter = *j;
    }
    if (auto retry_node = top.take("retry")) {
        MapReader retry(source, *retry_node, "retry");
        if (auto d = retry.parsed<Duration>("min", positive_duration)) cfg.retry_min = *d;
        if (auto d = retry.parsed<Duration>("max", positive_duration)) cfg.retry_max = *d;
        retry.finish();
        if (cfg.retry_max < cfg.retry_min) raise(retry.site(), "max must not be less than min");
    }
    if (auto c = top.parsed<unsigned>("concurrency", whole_number(1, 1024))) cfg.concurrency = *c;
    if (auto d = top.parsed<Duration>("expiry_warning", parse_duration)) cfg.expiry_warning = *d;
    read_ownership(top, cfg.file);
}

// One `select:` mapping of an output.
OutputSelect read_select(MapReader& m, const Config& cfg) {
    OutputSelect sel;
    sel.provider = m.text("provider").value_or("");
    if (!sel.provider.empty() && sel.provider != "url" && !find_preset(sel.provider)) {
        raise(m.site("provider"), "unknown provider '" + sel.provider + "'");
    }
    sel.discover = m.text("discover").value_or("");
    if (!sel.discover.empty() &&
        std::none_of(cfg.discover.begin(), cfg.discover.end(),
                     [&](const Discovery& d) { return d.label() == sel.discover; })) {
        std::string labels;
        for (const auto& d : cfg.discover) labels += (labels.empty() ? "" : ", ") + d.label();
        raise(m.site("discover"), "'" + sel.discover + "' is no discover entry (" +
                                      (labels.empty() ? "none is set" : "they are: " + labels) +
                                      ")");
    }
    sel.name = m.text("name").value_or("");
    if (sel.provider.empty() && sel.discover.empty() && sel.name.empty()) {
        m.raise_typo_of({"provider", "discover", "name"});
        raise(m.site(), "set provider, discover or name (a glob)");
    }
    m.finish();
    return sel;
}

// One entry of `outputs:`. TAKEN: instance and output names, with their lines.
Output read_output(const std::string& source, MapReader& m, const Config& cfg,
                   const std::unordered_map<std::string_view, int>& taken) {
    Output out;
    out.name = m.required("name");
    if (!is_safe_name(out.name)) {
        raise(m.site("name"),
              "'" + out.name + "' is not a safe file name (letters, digits, '_', '.', '-')");
    }
    if (const auto it = taken.find(out.name); it != taken.end()) {
        raise(m.site("name"), "'" + out.name + "' is already used by the entry at line " +
                                  std::to_string(it->second));
    }
    if (auto f = m.text("format")) {
        if (*f == "pem") {
            out.format = OutputFormat::pem;
        } else if (*f == "pkcs12") {
            out.format = OutputFormat::pkcs12;
        } else if (*f == "jks") {
            out.format = OutputFormat::jks;
        } else {
            raise(m.site("format"), "'" + *f + "' is not pem, pkcs12 or jks");
        }
    }
    const char* ext = out.format == OutputFormat::pem      ? ".pem"
                      : out.format == OutputFormat::pkcs12 ? ".p12"
                                                           : ".jks";
    out.path = m.path("path", cfg.cert_dir).value_or(cfg.cert_dir / (out.name + ext));
    out.path = out.path.lexically_normal();
    if (out.path.filename().empty()) raise(m.site("path"), "must name a file, not a directory");
    if (out.path.parent_path() == cfg.cert_dir.lexically_normal() &&
        out.path.extension() == ".crt" && taken.contains(out.path.stem().string())) {
        raise(m.site("path"), "'" + out.path.string() + "' is an instance's own file");
    }
    if (auto list = m.take("instances")) {
        if (!list->IsSequence()) raise(m.site(*list, "instances"), "must be a list of names");
        for (std::size_t i = 0; i < list->size(); ++i) {
            const auto item = (*list)[i];
            if (!item.IsScalar()) raise(m.site(item, "instances"), "must be a list of names");
            const std::string& name = item.Scalar();
            const bool listed =
                std::any_of(cfg.instances.begin(), cfg.instances.end(),
                            [&](const Instance& inst) { return inst.name == name; });
            // A discovered instance may be named too: it joins when listed.
            if (!listed && cfg.discover.empty()) {
                raise(m.site(item, "instances"), "'" + name + "' is no instance's name");
            }
            out.instances.push_back(name);
        }
    }
    if (auto sel = m.take("select")) {
        if (sel->IsSequence()) {
            for (std::size_t i = 0; i < sel->size(); ++i) {
                MapReader s(source, (*sel)[i], m.site().key + ".select[" + std::to_string(i) + "]");
                out.select.push_back(read_select(s, cfg));
            }
        } else {
            MapReader s(source, *sel, m.site().key + ".select");
            out.select.push_back(read_select(s, cfg));
        }
    }
    if (out.instances.empty() && out.select.empty()) {
        m.raise_typo_of({"instances", "select"});
        raise(m.site(), "set instances (names) or select: the members of the output");
    }
    if (m.has("password")) {
        if (out.format == OutputFormat::pem) {
            raise(m.site("password"), "only for format pkcs12 or jks (PEM has no password)");
        }
        out.password = credential_name(m, "password", cfg);
    }
    out.file = cfg.file;
    read_ownership(m, out.file);
    out.on_change = read_hook(source, m, m.site().key + ".on_change");
    return out;
}

Config read_config(const YamlTree& tree, const std::string& source) {
    const auto root = tree.root();
    if (!root || root->IsNull()) raise({source, YAML::Mark::null_mark(), ""}, "the file is empty");

    // Absolute: "rootcertd.yaml" given as a bare name has no parent to join
    // relative paths to, and the daemon must not depend on its cwd later.
    std::error_code cwd_error;
    const auto base_dir = std::filesystem::absolute(source, cwd_error).parent_path();
    Config cfg;
    cfg.source = source;
    MapReader top(source, *root, "");

    read_api(source, top, base_dir, cfg);
    read_credentials(source, top, base_dir, cfg);

    read_globals(source, top, base_dir, cfg);

    if (auto entries = top.take("discover")) {
        if (!entries->IsSequence()) raise(top.site(*entries, "discover"), "must be a list");
        for (std::size_t i = 0; i < entries->size(); ++i) {
            MapReader m(source, (*entries)[i], "discover[" + std::to_string(i) + "]");
            cfg.discover.push_back(
                typo_first(m, [&] { return read_discovery(source, m, cfg, base_dir); }));
            m.finish();
        }
    }
    auto list = top.take("instances");
    if (list && !list->IsSequence()) {
        raise(top.site(*list, "instances"), "'instances' must be a list");
    }
    if ((!list || list->size() == 0) && cfg.discover.empty()) {
        raise(list ? top.site(*list, "instances") : top.site(),
              "'instances' must list at least one instance (or set discover)");
    }
    auto outputs = top.take("outputs");
    if (outputs && !outputs->IsSequence()) raise(top.site(*outputs, "outputs"), "must be a list");
    top.finish();

    // Names point into cfg.instances, which never reallocates: reserved here.
    cfg.instances.reserve(list ? list->size() : 0);
    std::unordered_map<std::string_view, int> seen_names;
    seen_names.reserve(list ? list->size() : 0);
    for (std::size_t i = 0; list && i < list->size(); ++i) {
        const auto node = (*list)[i];
        MapReader m(source, node, "instances[" + std::to_string(i) + "]");
        auto inst =
            typo_first(m, [&] { return read_instance(source, m, cfg, base_dir, seen_names); });
        const int line = node.Mark().line + 1;
        m.finish();
        const auto& added = cfg.instances.emplace_back(std::move(inst));
        seen_names.emplace(added.name, line);
    }
    cfg.outputs.reserve(outputs ? outputs->size() : 0);  // names point into it too
    for (std::size_t i = 0; outputs && i < outputs->size(); ++i) {
        const auto node = (*outputs)[i];
        MapReader m(source, node, "outputs[" + std::to_string(i) + "]");
        const auto& added = cfg.outputs.emplace_back(
            typo_first(m, [&] { return read_output(source, m, cfg, seen_names); }));
        m.finish();
        seen_names.emplace(added.name, node.Mark().line + 1);
    }
    return cfg;
}

}  // namespace

Config parse_config(const std::string& yaml, const std::string& source) {
    const auto tree = read_tree(yaml, source, YamlTree::Marks::optional);
    try {
        return read_config(tree, source);
    } catch (const ConfigError& e) {
        if (tree.has_marks()) throw;
        // Read as JSON, without marks: read the text again with them, so
        // that the same mistake is reported with its line and column.
        std::optional<YamlTree> marked;
        try {
            marked.emplace(yaml, YamlTree::Marks::required);
        } catch (const YAML::ParserException&) {
            throw e;  // JSON that yaml-cpp refuses: the mistake, without its place
        }
        return read_config(*marked, source);
    }
}

Config load_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path + ": cannot read: " + std::strerror(errno), path);
    // Whoever can change the file chooses the commands the daemon runs.
    if (auto why = unsafe_path(path)) {
        throw ConfigError(path + ": refusing a configuration that others can change: " + *why,
                          path);
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), path);
}

}  // namespace rootcertd
