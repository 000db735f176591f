#include "rootcertd/sources/hooks.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string_view>

#include "rootcertd/core/process.hpp"

namespace rootcertd {

namespace asio = boost::asio;

asio::awaitable<HookRun> run_hook(asio::any_io_executor ex, Hook hook,
                                  std::vector<std::pair<std::string, std::string>> extra,
                                  std::vector<std::string> hidden, std::string log_name) {
    auto run = co_await run_command(ex, hook.command, child_environment(extra, hidden),
                                    hook.timeout, true);
    std::string_view rest(run.out);
    while (!rest.empty()) {
        auto line = rest.substr(0, rest.find('\n'));
        rest.remove_prefix(std::min(rest.size(), line.size() + 1));
        while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        spdlog::info("{}: hook: {}", log_name, line);
    }
    if (!run.result) co_return fail(Stage::hook, run.result.error());
    co_return std::string("exited 0");
}

}  // namespace rootcertd
