#include "rootcertd/app.hpp"

#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "rootcertd/config.hpp"
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

int check_config(const std::string& path) {
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
                std::fprintf(stderr, "%s: %s: %s\n", path.c_str(), where.c_str(), t.error().c_str());
                return exit_usage;
            }
        }
        if (auto route = resolve_proxy(cfg.proxy, std::getenv); !route) {
            std::fprintf(stderr, "%s: api: %s\n", path.c_str(), route.error().c_str());
            return exit_usage;
        }
        std::printf("%s: OK, %zu instance(s)\n", path.c_str(), cfg.instances.size());
        return exit_ok;
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return exit_usage;
    }
}

}  // namespace rootcertd
