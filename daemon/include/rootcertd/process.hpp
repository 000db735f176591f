// Starting the commands rootcertd runs (hooks, credential commands): argv,
// no shell, none of the daemon's descriptors or plumbing.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rootcertd/config.hpp"
#include "rootcertd/outcome.hpp"

namespace rootcertd {

// Whether environment variable NAME=VALUE is kept from every command:
// systemd's plumbing (NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*,
// CREDENTIALS_DIRECTORY, JOURNAL_STREAM, MAINPID, MANAGERPID,
// SYSTEMD_EXEC_PID), which would let a command notify as the daemon or read
// its credentials, and a proxy variable whose URL carries a password.
bool withheld_from_hooks(std::string_view name, std::string_view value);

// The daemon's environment minus HIDDEN variables and those
// withheld_from_hooks(), plus EXTRA.
std::vector<std::string> child_environment(
    const std::vector<std::pair<std::string, std::string>>& extra,
    const std::vector<std::string>& hidden);

// Starts ARGV (ARGV[0] an absolute path) with ENV in its own process group
// (so that a timeout can kill its children too), default signal handling,
// stdin from /dev/null, stdout OUT_FD, stderr ERR_FD, and no other
// descriptor of the daemon's. Fails with the reason it could not start.
Outcome<pid_t> spawn_command(const std::vector<std::string>& argv, std::vector<std::string> env,
                             int out_fd, int err_fd);

// Runs ARGV to completion on the calling thread (blocking: for a pool), for
// at most TIMEOUT, then kills its group. Its stdout (at most 64 KiB), or a
// failure naming the program and its exit status or signal, with the first
// line of its stderr. Stdout never appears in a failure.
Outcome<std::string> run_for_output(const std::vector<std::string>& argv, Duration timeout,
                                    const std::vector<std::string>& hidden);

}  // namespace rootcertd
