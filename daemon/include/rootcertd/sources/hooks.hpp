// Runs the on_change command after a file changed: argv, no shell, bounded.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"
#include "rootcertd/core/process.hpp"

namespace rootcertd {

// "exited 0" when the command succeeded; else a Stage::hook failure: "exited
// 3", "killed after 30000 ms", "killed by signal ...", "cannot start ...".
using HookRun = Outcome<std::string>;

// Starts HOOK.command in its own process group with the daemon's environment
// minus HIDDEN variables and those withheld_from_hooks(), plus EXTRA; stdin
// from /dev/null, stdout and stderr a pipe, no other descriptor of the
// daemon's. Each line it writes is logged under LOG_NAME (64 KiB at most).
// The whole group is killed with SIGKILL after HOOK.timeout.
boost::asio::awaitable<HookRun> run_hook(boost::asio::any_io_executor executor, Hook hook,
                                         std::vector<std::pair<std::string, std::string>> extra,
                                         std::vector<std::string> hidden, std::string log_name);

}  // namespace rootcertd
