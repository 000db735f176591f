// The value readers every section shares: booleans, durations, file modes
// and owners, commands and hooks, rotation, safe names, pg_service values.
#pragma once

#include <sys/types.h>

#include <charconv>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rootcertd/config/map_reader.hpp"

namespace rootcertd::config_read {

Outcome<bool> parse_bool(const std::string& text);
// A duration greater than zero.
Outcome<Duration> positive_duration(const std::string& text);
// An octal mode the owner can read and only the owner can write.
Outcome<mode_t> parse_mode(const std::string& text);

// file_mode, owner and group of MAP into FILE.
void read_ownership(MapReader& map, FileOwnership& file);

// Fails saying why PATH (or a directory above it) could be changed by
// someone other than root and the daemon's user.
Outcome<void> safe_path(const std::filesystem::path& path);

// KEY: a program and its arguments (no shell), the program an absolute path
// that can be executed now.
std::vector<std::string> read_command(MapReader& m, const char* key);

// PARENT's on_change: {command, timeout}.
std::optional<Hook> read_hook(const std::string& source, MapReader& parent);

// PARENT's rotation: {keep_previous}.
std::optional<Duration> read_rotation(const std::string& source, MapReader& parent);

// [A-Za-z0-9_][A-Za-z0-9._-]*, without "..": safe as a file stem.
bool is_safe_name(const std::string& s);

// A value for pg_service.conf: no control characters, no outer white space.
std::optional<std::string> service_value(MapReader& map, const char* key);

// A parser of whole numbers from LO to HI.
inline auto whole_number(unsigned lo, unsigned hi) {
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
void check_template(MapReader& m, const char* key, const std::string& text);

// Instance and output names already read, with their lines.
using NameLines = std::unordered_map<std::string_view, int>;

// NAME, an instance's or an output's: a safe file stem, not one of TAKEN
// (the entries before it, named "the WHAT at line N" when it is).
void check_new_name(MapReader& m, const std::string& name, const NameLines& taken,
                    const char* what);

}  // namespace rootcertd::config_read
