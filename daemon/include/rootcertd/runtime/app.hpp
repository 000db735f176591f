// Wires config, refresh and scheduler together: the daemon and --once.
#pragma once

#include <string>

#include "rootcertd/config/config.hpp"

namespace rootcertd {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failed = 1;  // --once: some instance failed; daemon: start-up failed
inline constexpr int exit_usage = 2;   // bad command line or configuration

struct RunOptions {
    std::string config_path;
    bool once = false;
};

// Runs until SIGTERM/SIGINT (exit_ok) or, with `once`, one pass over every
// instance. SIGHUP reloads the configuration; a bad one keeps the old.
int run(const RunOptions& options);

// --list-instances: runs discovery once and prints every instance the
// daemon would keep (and each refused one), name by name, writing nothing.
// exit_ok, exit_failed when a list failed, exit_usage on a config error.
int list_instances(const RunOptions& options);

// Loads the configuration and reads the token as the daemon would; prints
// the verdict. Returns exit_ok or exit_usage.
// JSON: report as one JSON log line (--log-format json), else plain text.
int check_config(const std::string& path, bool json);

// Logs a configuration mistake: its message, and in JSON its file, line and key.
void log_config_error(const ConfigError& error, const std::string& prefix = "");

}  // namespace rootcertd
