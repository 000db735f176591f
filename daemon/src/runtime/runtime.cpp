#include "rootcertd/runtime/runtime.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "rootcertd/config/config.hpp"
#include "rootcertd/runtime/app.hpp"
#include "rootcertd/runtime/reporter.hpp"
#include "rootcertd/sources/hooks.hpp"
#include "rootcertd/store/pg_service.hpp"

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
    auto made = rootcertd::make_services(ioc_.get_executor(), std::move(cfg), pool_);
    if (!made) {
        spdlog::error("{}", made.error());
        return nullptr;
    }
    auto s = std::move(made.value());
    auto removed = s->files.store.prepare();
    if (!removed) {
        spdlog::error("cert_dir: {}", removed.error());
        return nullptr;
    }
    if (removed.value() > 0) {
        spdlog::info("removed {} temp file(s) left in {} by an earlier crash", removed.value(),
                     s->files.store.dir().string());
    }
    std::vector<std::string> state_files;
    if (auto state = s->files.state_store.prepare(&state_files); !state) {
        spdlog::error("state_dir: {}", state.error());
        return nullptr;
    }
    s->files.state_files.emplace(std::make_move_iterator(state_files.begin()),
                                 std::make_move_iterator(state_files.end()));
    if (const auto& route = s->fetch.proxy; route.proxy) {
        spdlog::info("API requests go through proxy {} (from {}){}", route.proxy->origin(),
                     route.source,
                     route.no_proxy.empty() ? "" : ", except no_proxy " + route.no_proxy);
    }
    if (s->fetch.proxy_auth) {  // read now so a careless mode is reported at start-up
        if (auto credentials = s->fetch.proxy_auth->get(); !credentials) {
            spdlog::warn("{}", credentials.error());
        } else if (!s->fetch.proxy_auth->exposure().empty()) {
            spdlog::warn("{}", s->fetch.proxy_auth->exposure());
        }
    }
    // With discovery the block is written once the lists are in: written
    // now, it would drop the sections of every discovered instance.
    if (s->config.discover.empty()) write_service_file(s->config);
    return s;
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
                                                         const Instance& inst) {
    auto r = co_await refresh(s, inst);
    if (r.change != Change::unchanged && inst.on_change) {
        std::vector<std::pair<std::string, std::string>> env;
        env.emplace_back("ROOTCERTD_NAME", inst.name);
        env.emplace_back("ROOTCERTD_PATH", s->config.cert_file(inst));
        env.emplace_back("ROOTCERTD_SHA256", r.bundle->certs.front().sha256);
        start_hook(s, HookJob{inst.name, *inst.on_change, std::move(env), labels_of(inst)});
    }
    co_return r;
}

void Runtime::start_hook(const std::shared_ptr<Services>& s, HookJob job) {
    ++hooks_running_;
    const unsigned generation = ++hook_generation_[job.name];
    asio::co_spawn(ioc_, hook_until_done(s, std::move(job), generation), asio::detached);
}

asio::awaitable<void> Runtime::hook_until_done(std::shared_ptr<Services> s, HookJob job,
                                               unsigned generation) {
    const auto& hook = job.hook;
    Duration delay = s->config.retry_min;
    asio::steady_timer timer(ioc_);
    for (;;) {
        HookRun run = fail(Stage::hook, "aborted");
        try {
            run = co_await run_hook(ioc_.get_executor(), hook, job.env,
                                    s->fetch.credentials.secret_variables(), job.name);
        } catch (const std::exception&) {
        }
        // Retried while this change is the file's latest, in the daemon.
        const bool retry = !run && !options_.once && !hook_retries_stopped_ &&
                           hook_generation_[job.name] == generation;
        log_hook_run(job.name, job.labels, hook.command[0], run,
                     retry ? std::optional(delay) : std::nullopt);
        if (on_hook_end) on_hook_end(job.name, run.ok());
        if (!retry) break;
        timer.expires_after(delay);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        delay = std::min(delay * 2, s->config.retry_max);
        if (hook_retries_stopped_ || hook_generation_[job.name] != generation) break;
    }
    --hooks_running_;
}

}  // namespace rootcertd
