#include "rootcertd/runtime.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>

#include "rootcertd/app.hpp"
#include "rootcertd/hooks.hpp"
#include "rootcertd/pg_service.hpp"
#include "rootcertd/reporter.hpp"

namespace rootcertd {

namespace asio = boost::asio;

std::optional<Config> Runtime::load(bool reloading) {
    try {
        return load_config(options_.config_path);
    } catch (const ConfigError& e) {
        log_config_error(
            e, reloading ? "reload failed, still running the previous configuration: " : "");
        return std::nullopt;
    }
}

std::shared_ptr<Services> Runtime::make_services(Config cfg) {
    try {
        auto s = std::make_shared<Services>(ioc_.get_executor(), std::move(cfg), pool_);
        s->single_pass = options_.once;
        auto removed = s->store.prepare();
        if (!removed) {
            spdlog::error("cert_dir: {}", removed.error());
            return nullptr;
        }
        if (removed.value() > 0) {
            spdlog::info("removed {} temp file(s) left in {} by an earlier crash", removed.value(),
                         s->store.dir().string());
        }
        std::vector<std::string> state_files;
        if (auto state = s->state_store.prepare(&state_files); !state) {
            spdlog::error("state_dir: {}", state.error());
            return nullptr;
        }
        s->state_files.emplace(std::make_move_iterator(state_files.begin()),
                               std::make_move_iterator(state_files.end()));
        if (const auto& route = s->proxy; route.proxy) {
            spdlog::info("API requests go through proxy {} (from {}){}", route.proxy->origin(),
                         route.source,
                         route.no_proxy.empty() ? "" : ", except no_proxy " + route.no_proxy);
        }
        if (s->proxy_auth) {  // read now so a careless mode is reported at start-up
            if (auto credentials = s->proxy_auth->get(); !credentials) {
                spdlog::warn("{}", credentials.error());
            } else if (!s->proxy_auth->exposure().empty()) {
                spdlog::warn("{}", s->proxy_auth->exposure());
            }
        }
        // With discovery the block is written once the lists are in: written
        // now, it would drop the sections of every discovered instance.
        if (s->config.discover.empty()) write_service_file(s->config);
        return s;
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return nullptr;
    }
}

void Runtime::write_service_file(const Config& cfg, bool keep_others) {
    if (!cfg.pg_service_file) return;
    auto done = update_service_file(*cfg.pg_service_file, cfg, keep_others);
    service_file_ok_ = done.ok();
    if (!done) {
        spdlog::error("pg_service_file: {}", done.error());
    } else if (done.value()) {
        spdlog::info("updated the rootcertd block of {}", cfg.pg_service_file->string());
    }
}

asio::awaitable<RefreshResult> Runtime::refresh_and_hook(std::shared_ptr<Services> s,
                                                         Instance inst) {
    auto r = co_await refresh(s, inst);
    if (r.change != Change::unchanged) start_hook(s, inst, *r.bundle);
    co_return r;
}

void Runtime::start_hook(const std::shared_ptr<Services>& s, const Instance& inst,
                         const CertBundle& b) {
    if (!inst.on_change) return;
    const auto& hidden = s->credentials.secret_variables();
    ++hooks_running_;
    asio::co_spawn(ioc_,
                   run_hook(ioc_.get_executor(), *inst.on_change,
                            {{"ROOTCERTD_NAME", inst.name},
                             {"ROOTCERTD_PATH", s->config.cert_path(inst).string()},
                             {"ROOTCERTD_SHA256", b.certs.front().sha256}},
                            hidden, inst.name),
                   [this, inst](std::exception_ptr e, HookRun run) {
                       if (e) run = fail(Stage::hook, "aborted");
                       log_event(run ? spdlog::level::info : spdlog::level::warn,
                                 inst.name + ": on_change " + inst.on_change->command[0] + " " +
                                     (run ? run.value() : run.error()),
                                 labels_of(inst));
                       --hooks_running_;
                       if (on_hook_end) on_hook_end(inst.name, run.ok());
                   });
}

}  // namespace rootcertd
