// Runs the on_change command after a file changed: argv, no shell, bounded.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <string>
#include <utility>
#include <vector>

#include "rootcertd/config.hpp"

namespace rootcertd {

struct HookRun {
    bool ok = false;
    std::string summary;  // "exited 0", "exited 3", "killed after 30000 ms", "cannot start: ..."
};

// Starts HOOK.command in its own process group with the daemon's environment
// minus HIDDEN variables plus EXTRA, stdin from /dev/null. Each line it
// writes to stdout or stderr is logged under LOG_NAME (64 KiB at most). The
// whole group is killed with SIGKILL after HOOK.timeout.
boost::asio::awaitable<HookRun> run_hook(boost::asio::any_io_executor executor, Hook hook,
                                         std::vector<std::pair<std::string, std::string>> extra,
                                         std::vector<std::string> hidden, std::string log_name);

}  // namespace rootcertd
