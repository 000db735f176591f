// Starting the commands rootcertd runs (hooks, credential commands): argv,
// no shell, none of the daemon's descriptors or plumbing.
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"

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

// How a command ended (a failure when it did not exit 0) and what it
// printed until then: stdout (with stderr when merged), stderr, each cut at
// output_limit.
struct CommandRun {
    Outcome<std::monostate> result = std::monostate{};
    std::string out, err;
};
inline constexpr std::size_t output_limit = 64 << 10;

// Runs ARGV (as spawn_command) on the event loop of EXECUTOR, never blocking
// it nor any pool: its output is read as it comes and its exit is watched
// through a pidfd. TIMEOUT covers the whole run; then its group gets
// SIGKILL. The exit status decides, even when a child it left in the
// background still holds its output open (what was written until the exit
// counts). A failure says its exit status, signal or timeout; unless
// MERGE_STDERR (a hook, whose output is logged), it also names the program
// and quotes the first line of its stderr. Stdout never appears in a failure.
boost::asio::awaitable<CommandRun> run_command(boost::asio::any_io_executor executor,
                                               std::vector<std::string> argv,
                                               std::vector<std::string> env, Duration timeout,
                                               bool merge_stderr);

// Sends SIG to the process group of every command run_command() is still
// running.
void signal_running_commands(int sig);

// On shutdown: SIGTERM to every running command's group now, SIGKILL to
// those still running after GRACE (a timer on EXECUTOR's loop).
void stop_running_commands(boost::asio::any_io_executor executor, Duration grace);

// How long a command has between SIGTERM and SIGKILL when rootcertd stops.
inline constexpr Duration command_stop_grace = std::chrono::milliseconds(500);

}  // namespace rootcertd
