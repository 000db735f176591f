#include "rootcertd/app.hpp"

#include <cstdio>
#include <cstdlib>

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
        auto token = cfg.token_file ? TokenSource::from_file(*cfg.token_file)
                                    : TokenSource::from_env(*cfg.token_env);
        if (auto t = token.get(); !t) {
            std::fprintf(stderr, "%s: api: %s\n", path.c_str(), t.error().c_str());
            return exit_usage;
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
