// Loads rootcertd's YAML configuration strictly into an immutable Config.
#pragma once

#include <stdexcept>
#include <string>

#include "rootcertd/core/model.hpp"

namespace rootcertd {

// A configuration mistake; what() reads "FILE:LINE:COL: KEY: problem".
// The parts are kept apart too, for a JSON log line's fields.
class ConfigError : public std::runtime_error {
  public:
    explicit ConfigError(const std::string& what, std::string file_name = {}, int line_number = 0,
                         std::string key_path = {})
        : std::runtime_error(what),
          file(std::move(file_name)),
          line(line_number),
          key(std::move(key_path)) {}
    std::string file;
    int line = 0;  // 1-based; 0 when the place is unknown
    std::string key;
};

inline constexpr const char* default_config_path = "/etc/rootcertd/rootcertd.yaml";

// Reads and validates FILE. Throws ConfigError naming the file, line and key.
Config load_config(const std::string& path);

// Validates YAML text; `source` names it in errors. Throws ConfigError.
Config parse_config(const std::string& yaml, const std::string& source);

}  // namespace rootcertd
