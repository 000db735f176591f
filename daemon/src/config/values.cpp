#include "rootcertd/config/values.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace rootcertd::config_read {

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

namespace {

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

}  // namespace

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

// Fails when PATH (or a directory above it) could be changed by someone
// other than root and the daemon's own user: owned by another user,
// writable by others, or by a group other than root's and the daemon's. A
// sticky directory (/tmp) is fine: others cannot replace what they do not
// own. Like sshd's StrictModes.
Outcome<void> safe_path(const std::filesystem::path& path) {
    const auto judge = [](const std::filesystem::path& p, bool is_dir) -> Outcome<void> {
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0) return Ok{};  // reported where it is read
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        const std::string what = (is_dir ? "its directory " : "") + p.string();
        if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
            return fail(what + " is owned by uid " + std::to_string(st.st_uid) +
                        ", neither root nor the daemon's user");
        }
        if ((st.st_mode & S_IWOTH) != 0 && !(is_dir && (st.st_mode & S_ISVTX) != 0)) {
            return fail(what + " is writable by others (mode " + mode + ")");
        }
        if ((st.st_mode & S_IWGRP) != 0 && st.st_gid != 0 && st.st_gid != ::getegid()) {
            return fail(what + " is writable by group " + std::to_string(st.st_gid) + " (mode " +
                        mode + ")");
        }
        return Ok{};
    };
    if (auto file = judge(path, false); !file) return file;
    std::error_code ec;
    const auto real = std::filesystem::canonical(path, ec);
    for (const auto& p : {path, ec ? path : real}) {
        for (auto dir = p.parent_path(); !dir.empty(); dir = dir.parent_path()) {
            if (auto above = judge(dir, true); !above) return above;
            if (dir == dir.root_path()) break;
        }
    }
    return Ok{};
}

// KEY: a program and its arguments (no shell), the program an absolute
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
    if (auto safe = safe_path(argv[0]); !safe) {
        raise(m.site((*command)[0], key), "refusing to run '" + argv[0] + "': " + safe.error());
    }
    return argv;
}

// on_change: {command: [argv...], timeout: DURATION}, global or per instance.
std::optional<Hook> read_hook(const std::string& source, MapReader& parent) {
    auto node = parent.take("on_change");
    if (!node) return std::nullopt;
    MapReader m(source, *node, parent.child_path("on_change"));
    Hook hook;
    hook.command = read_command(m, "command");
    if (auto d = m.parsed<Duration>("timeout", positive_duration)) hook.timeout = *d;
    m.finish();
    return hook;
}

// rotation: {keep_previous: DURATION}, at the top level or in an instance.
std::optional<Duration> read_rotation(const std::string& source, MapReader& parent) {
    auto node = parent.take("rotation");
    if (!node) return std::nullopt;
    MapReader rotation(source, *node, parent.child_path("rotation"));
    auto keep = rotation.parsed<Duration>("keep_previous", parse_duration);
    rotation.finish();
    return keep;
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

// Every '{' of a template opens a field name that a '}' closes.
void check_template(MapReader& m, const char* key, const std::string& text) {
    for (auto at = text.find('{'); at != std::string::npos; at = text.find('{', at + 1)) {
        const auto end = text.find('}', at);
        if (end == std::string::npos || end == at + 1) {
            raise(m.site(key), "'" + text + "': every '{' needs a field name and a '}'");
        }
    }
}

void check_new_name(MapReader& m, const std::string& name, const NameLines& taken,
                    const char* what) {
    if (!is_safe_name(name)) {
        raise(m.site("name"),
              "'" + name + "' is not a safe file name (letters, digits, '_', '.', '-')");
    }
    if (const auto it = taken.find(name); it != taken.end()) {
        raise(m.site("name"), "'" + name + "' is already used by the " + what + " at line " +
                                  std::to_string(it->second));
    }
}

}  // namespace rootcertd::config_read
