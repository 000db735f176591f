#include "rootcertd/app.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "rootcertd/config.hpp"
#include "rootcertd/discovery.hpp"
#include "rootcertd/logging.hpp"
#include "rootcertd/proxy.hpp"
#include "rootcertd/refresh.hpp"
#include "rootcertd/reporter.hpp"
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

namespace {

// Where INSTANCE's CA comes from, as an operator checks it: the whole URL
// (for Tembo the data plane it derived), or the trust store.
std::string ca_url(const Instance& instance) {
    const auto& src = *instance.source;
    if (src.roots != nullptr) return "system trust store (" + std::string(src.provider) + ")";
    return src.api.origin() + src.target;
}

// host:port, or "-" without a host (one word: the table's columns split on spaces).
std::string server_of(const Instance& instance) {
    return instance.host ? *instance.host + ":" + std::to_string(instance.port) : "-";
}

}  // namespace

int list_instances(const RunOptions& options) {
    Runtime runtime(options);
    auto cfg = runtime.load(false);
    if (!cfg) return exit_usage;
    // Services without prepare(): no directory is created, nothing written.
    std::shared_ptr<Services> s;
    try {
        s = std::make_shared<Services>(runtime.loop().get_executor(), *cfg, runtime.pool());
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return exit_failed;
    }
    std::optional<DiscoveredAll> found;
    boost::asio::co_spawn(runtime.loop(), discover_all(s, cfg->instances),
                          [&](std::exception_ptr e, DiscoveredAll r) {
                              if (!e) found = std::move(r);
                              s->close_clients();
                          });
    runtime.loop().run();
    if (!found) return exit_failed;
    std::printf("%-32s %-24s %-40s %s\n", "NAME", "FROM", "SERVER", "CA");
    const auto& kept = found->composed;
    for (std::size_t i = 0; i < kept.instances.size(); ++i) {
        const auto& inst = kept.instances[i];
        std::printf("%-32s %-24s %-40s %s\n", inst.name.c_str(), kept.from[i].c_str(),
                    server_of(inst).c_str(), ca_url(inst).c_str());
    }
    for (const auto& r : found->composed.refused) {
        std::printf("%-32s %-24s refused: %s\n", r.name.c_str(), r.source.c_str(),
                    r.reason.c_str());
    }
    for (const auto& [source, error] : found->failures) {
        std::printf("%-32s %-24s list failed: %s\n", "-", source.c_str(), error.c_str());
        spdlog::error("{}", error);
    }
    // As --once: a failed list or a refused instance is exit 1.
    return found->failures.empty() && found->composed.refused.empty() ? exit_ok : exit_failed;
}

void log_config_error(const ConfigError& e, const std::string& prefix) {
    LogFields fields{{"config", e.file}, {"key", e.key}};
    if (e.line > 0) fields.emplace_back("line", std::to_string(e.line));
    log_event(spdlog::level::err, prefix + e.what(), fields);
}

int check_config(const std::string& path, bool json) {
    // Plain text for a person at a terminal; one JSON line for a log collector.
    const auto say = [&](spdlog::level::level_enum level, const std::string& message) {
        if (json) {
            log_event(level, message, {{"config", path}});
        } else {
            std::fprintf(stderr, "%s%s\n", level == spdlog::level::warn ? "warning: " : "",
                         message.c_str());
        }
    };
    const auto report = [&](const std::string& message) { say(spdlog::level::err, message); };
    const auto warn = [&](const std::string& message) { say(spdlog::level::warn, message); };
    try {
        const auto cfg = load_config(path);
        // Every secret that can be read without running anything; a
        // command credential is only checked to be executable (config.cpp).
        // The API token only when a Tembo instance sends it: a fleet without
        // Tembo runs with the packaged unit's empty token file.
        std::vector<std::pair<std::string, TokenSource>> secrets;
        if (const auto users = api_token_users(cfg); !users.empty()) {
            std::string who = users[0];
            for (std::size_t i = 1; i < users.size() && i < 5; ++i) who += ", " + users[i];
            if (users.size() > 5) who += " and " + std::to_string(users.size() - 5) + " more";
            const std::string where = "api (the Tembo token, sent by " + who + ")";
            if (cfg.token_file)
                secrets.emplace_back(where, TokenSource::from_file(*cfg.token_file));
            if (cfg.token_env) secrets.emplace_back(where, TokenSource::from_env(*cfg.token_env));
        }
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
            if (!source.exposure().empty()) warn(path + ": " + where + ": " + source.exposure());
        }
        if (auto route = resolve_proxy(cfg.proxy, std::getenv); !route) {
            report(path + ": api: " + route.error());
            return exit_usage;
        }
        std::printf("%s: OK, %zu instance(s), %zu discover entr%s\n", path.c_str(),
                    cfg.instances.size(), cfg.discover.size(),
                    cfg.discover.size() == 1 ? "y" : "ies");
        // What will happen: each instance's source, file and live check.
        for (const auto& inst : cfg.instances) {
            std::printf("  %s: %s, CA from %s, file %s, live check %s\n", inst.name.c_str(),
                        std::string(inst.source->provider).c_str(), ca_url(inst).c_str(),
                        cfg.cert_path(inst).c_str(),
                        inst.host ? server_of(inst).c_str() : "none (no host)");
        }
        for (const auto& d : cfg.discover) {
            std::printf("  discover %s: lists %s%s every %s, files in %s\n", d.label().c_str(),
                        d.list_api.origin().c_str(), first_page(d).c_str(),
                        human(d.interval).c_str(), cfg.cert_dir.c_str());
        }
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
