#include "rootcertd/app.hpp"

#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "rootcertd/config.hpp"
#include "rootcertd/logging.hpp"
#include "rootcertd/proxy.hpp"
#include "rootcertd/runtime.hpp"
#include "rootcertd/token_source.hpp"

namespace rootcertd {

int run(const RunOptions& options) {
    Runtime runtime(options);
    auto cfg = runtime.load(false);
    if (!cfg) return exit_usage;
    auto services = runtime.make_services(std::move(*cfg));
    if (!services) return exit_failed;
    return options.once ? run_one_pass(runtime, std::move(services))
                        : run_daemon(runtime, std::move(services));
}

void log_config_error(const ConfigError& e, const std::string& prefix) {
    LogFields fields{{"config", e.file}, {"key", e.key}};
    if (e.line > 0) fields.emplace_back("line", std::to_string(e.line));
    log_event(spdlog::level::err, prefix + e.what(), fields);
}

int check_config(const std::string& path, bool json) {
    // Plain text for a person at a terminal; one JSON line for a log collector.
    const auto report = [&](const std::string& message) {
        if (json) {
            log_event(spdlog::level::err, message, {{"config", path}});
        } else {
            std::fprintf(stderr, "%s\n", message.c_str());
        }
    };
    try {
        const auto cfg = load_config(path);
        // Every secret that can be read without running anything; a
        // command credential is only checked to be executable (config.cpp).
        std::vector<std::pair<std::string, TokenSource>> secrets;
        if (cfg.token_file) secrets.emplace_back("api", TokenSource::from_file(*cfg.token_file));
        if (cfg.token_env) secrets.emplace_back("api", TokenSource::from_env(*cfg.token_env));
        for (const auto& c : cfg.credentials) {
            const std::string where = "credentials." + c.name;
            if (c.file) {
                secrets.emplace_back(where, TokenSource::from_file(*c.file, "credential file"));
            }
            if (c.env) secrets.emplace_back(where, TokenSource::from_env(*c.env));
        }
        for (auto& [where, source] : secrets) {
            if (auto t = source.get(); !t) {
                report(path + ": " + where + ": " + t.error());
                return exit_usage;
            }
        }
        if (auto route = resolve_proxy(cfg.proxy, std::getenv); !route) {
            report(path + ": api: " + route.error());
            return exit_usage;
        }
        std::printf("%s: OK, %zu instance(s)\n", path.c_str(), cfg.instances.size());
        return exit_ok;
    } catch (const ConfigError& e) {
        if (json) {
            log_config_error(e);
        } else {
            std::fprintf(stderr, "%s\n", e.what());
        }
        return exit_usage;
    }
}

}  // namespace rootcertd
