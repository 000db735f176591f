#include "rootcertd/app.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "rootcertd/blocking.hpp"
#include "rootcertd/config.hpp"
#include "rootcertd/hooks.hpp"
#include "rootcertd/http_server.hpp"
#include "rootcertd/pg_service.hpp"
#include "rootcertd/proxy.hpp"
#include "rootcertd/refresh.hpp"
#include "rootcertd/reporter.hpp"
#include "rootcertd/scheduler.hpp"
#include "rootcertd/sd_notify.hpp"
#include "rootcertd/status.hpp"

namespace rootcertd {

namespace asio = boost::asio;

namespace {

// Loops started per turn of the event loop at start-up and reload. Each turn
// also runs the TLS handshakes and requests that are ready, so a small chunk
// gets the first file written sooner (docs/architecture.md, "Start-up in
// chunks", has the measurements).
constexpr std::size_t kStartChunk = 16;

// SIGTERM must end the process within 2 s: anything still running after
// this is abandoned (files are never half-written: installs are atomic).
constexpr auto shutdown_grace = std::chrono::milliseconds(1500);

// READY=1 waits for every instance's first refresh, but no longer than this
// (or api.timeout, if shorter). A stalling API answers ~concurrency
// instances per timeout, so a large fleet's first pass could outlast
// systemd's start timeout (the unit sets TimeoutStartSec=60s) and loop in
// restarts; /readyz keeps telling which files are missing.
constexpr auto max_ready_wait = std::chrono::seconds(30);

// Keeps the managed block of pg_service_file in step with the instances.
// Returns false when the file could not be updated (the error is logged).
bool write_service_file(const Config& cfg) {
    if (!cfg.pg_service_file) return true;
    auto done = update_service_file(*cfg.pg_service_file, cfg);
    if (!done) {
        spdlog::error("pg_service_file: {}", done.error());
        return false;
    }
    if (done.value()) {
        spdlog::info("updated the rootcertd block of {}", cfg.pg_service_file->string());
    }
    return true;
}

// The structured fields of every log line about INSTANCE.
LogFields labels_of(const Instance& instance) {
    return {{"name", instance.name}, {"org", instance.org}, {"id", instance.id}};
}

bool same_globals(Config a, Config b) {
    a.instances.clear();
    b.instances.clear();
    return a == b;
}

class App {
  public:
    explicit App(RunOptions options)
        : options_(std::move(options)),
          signals_(ioc_),
          grace_(ioc_),
          scheduler_(ioc_.get_executor()) {}

    int run() {
        std::optional<Config> cfg = load(false);
        if (!cfg) return exit_usage;
        services_ = make_services(std::move(*cfg));
        if (!services_) return exit_failed;
        if (!options_.once) {  // a --once pass serves no /status, /metrics or READY=1
            board_.sync(services_->config);
            std::vector<std::string> names;
            names.reserve(services_->config.instances.size());
            for (const auto& inst : services_->config.instances) names.push_back(inst.name);
            asio::co_spawn(ioc_, scan_existing(services_, std::move(names)), asio::detached);
        }
        const int code = options_.once ? run_once() : run_daemon();
        pool_.join();
        return code;
    }

  private:
    std::optional<Config> load(bool reloading) {
        try {
            return load_config(options_.config_path);
        } catch (const ConfigError& e) {
            if (reloading) {
                spdlog::error("reload failed, still running the previous configuration: {}",
                              e.what());
            } else {
                spdlog::error("{}", e.what());
            }
            return std::nullopt;
        }
    }

    std::shared_ptr<Services> make_services(Config cfg) {
        try {
            auto s = std::make_shared<Services>(ioc_.get_executor(), std::move(cfg), pool_);
            s->single_pass = options_.once;
            auto removed = s->store.prepare();
            if (!removed) {
                spdlog::error("cert_dir: {}", removed.error());
                return nullptr;
            }
            if (removed.value() > 0) {
                spdlog::info("removed {} temp file(s) left in {} by an earlier crash",
                             removed.value(), s->store.dir().string());
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
            service_file_ok_ = write_service_file(s->config);
            return s;
        } catch (const std::exception& e) {
            spdlog::error("{}", e.what());
            return nullptr;
        }
    }

    int run_once() {
        auto s = services_;
        std::size_t pending = s->config.instances.size();
        std::size_t failed = 0;
        signals_.add(SIGTERM);
        signals_.add(SIGINT);
        signals_.async_wait([s](boost::system::error_code ec, int) {
            if (!ec) s->client->close();
        });
        // As many refreshes under way as the admission bound allows; each
        // that ends starts the next, so no frame waits for a slot.
        std::size_t next = 0;
        Reporter reporter;  // the daemon's log lines, with no retry to announce
        std::function<void()> start_next = [&] {
            if (next == s->config.instances.size()) return;
            const auto& inst = s->config.instances[next++];
            asio::co_spawn(ioc_, refresh_and_record(s, inst),
                           [&, s, name = inst.name, labels = labels_of(inst)](std::exception_ptr e,
                                                                              RefreshResult r) {
                               if (e) r.failure = fail("aborted");
                               if (!r.ok()) ++failed;
                               InstanceLog log;
                               reporter.refreshed(name, labels, r, log, std::nullopt,
                                                  std::chrono::steady_clock::now());
                               if (--pending == 0) {
                                   s->client->close();
                                   signals_.cancel();
                                   once_done_ = true;
                                   if (hooks_running_ == 0) ioc_.stop();
                               }
                               start_next();
                           });
        };
        const auto began = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < admission_slots(s->config); ++i) start_next();
        ioc_.run();  // until every refresh and every hook they started has ended
        const auto total = s->config.instances.size();
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - began);
        reporter.summarize_unreachable();
        spdlog::info("refreshed {}/{} instance(s) in {} ms", total - failed, total, took.count());
        return failed == 0 && service_file_ok_ ? exit_ok : exit_failed;
    }

    int run_daemon() {
        signals_.add(SIGTERM);
        signals_.add(SIGINT);
        signals_.add(SIGHUP);
        wait_for_signal();
        scheduler_.on_empty = [this] {
            if (stopping_) ioc_.stop();
        };
        scheduler_.on_scheduled = [this](const std::string& name,
                                         std::chrono::steady_clock::time_point at) {
            board_.record_schedule(name,
                                   sys_now() + std::chrono::duration_cast<std::chrono::seconds>(
                                                   at - std::chrono::steady_clock::now()));
        };
        if (services_->config.metrics_listen) {
            try {
                server_ = start_http_server(
                    ioc_.get_executor(), parse_listen(*services_->config.metrics_listen).value(),
                    [this](std::string_view method, std::string_view target) {
                        return handle(method, target);
                    });
                spdlog::info("serving /metrics, /livez, /readyz and /status on {}",
                             *services_->config.metrics_listen);
            } catch (const std::exception& e) {
                spdlog::error("{}", e.what());
                return exit_failed;
            }
        }
        if (const auto period = notify_.watchdog_period()) {
            asio::co_spawn(ioc_, watchdog_loop(*period), asio::detached);
        }
        spdlog::info("rootcertd {} started: {} instance(s), certs in {}", ROOTCERTD_VERSION,
                     services_->config.instances.size(), services_->config.cert_dir.string());
        start_all(services_);
        ready_deadline_.expires_after(
            std::min<Duration>(services_->config.timeout, max_ready_wait));
        ready_deadline_.async_wait([this](boost::system::error_code ec) {
            if (ec || ready_sent_) return;
            ready_wait_over_ = true;
            spdlog::info("ready before every first refresh ended: {}", board_.summary());
            update_notify();
        });
        ioc_.run();
        spdlog::info("stopped");
        return exit_ok;
    }

    void wait_for_signal() {
        signals_.async_wait([this](boost::system::error_code ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                reload();
                wait_for_signal();
            } else {
                shutdown(sig);
            }
        });
    }

    // Starts every instance of S, a chunk at a time: the loop runs what is
    // ready between chunks, so the first refreshes are under way before the
    // last of 5,000 loops has started (starting them all takes ~20 ms).
    void start_all(const std::shared_ptr<Services>& s) {
        starting_ = s;
        next_start_ = 0;
        start_some(kStartChunk);
    }

    void start_some(std::size_t chunk) {
        if (!starting_) return;
        const auto& list = starting_->config.instances;
        const auto end = std::min(list.size(), next_start_ + std::min(chunk, list.size()));
        for (; next_start_ < end; ++next_start_) start(starting_, list[next_start_]);
        if (next_start_ == list.size()) {
            starting_.reset();
            return;
        }
        asio::post(ioc_, [this, s = starting_] {
            if (starting_ == s) start_some(kStartChunk);
        });
    }

    void start(const std::shared_ptr<Services>& s, const Instance& inst) {
        const RetryPolicy policy{inst.refresh_interval, s->config.jitter, s->config.retry_min,
                                 s->config.retry_max};
        std::optional<Scheduler::Checker> checker;
        if (inst.host) {
            checker = Scheduler::Checker{[this, s, inst] { return check_and_record(s, inst); },
                                         inst.verify_interval};
        }
        scheduler_.start(
            inst.name, labels_of(inst), policy,
            [this, s, inst] { return refresh_and_record(s, inst); }, checker,
            &s->refreshes_admitted);
    }

    asio::awaitable<RefreshResult> refresh_and_record(std::shared_ptr<Services> s, Instance inst) {
        const auto started = std::chrono::steady_clock::now();
        auto r = co_await refresh(s, inst);
        record(s, inst, r,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started));
        co_return r;
    }

    asio::awaitable<CheckResult> check_and_record(std::shared_ptr<Services> s, Instance inst) {
        auto c = co_await check_live(s, inst);
        board_.record_check(inst.name, c);
        co_return c;
    }

    void record(const std::shared_ptr<Services>& s, const Instance& inst, const RefreshResult& r,
                std::chrono::duration<double> took) {
        // A changed file runs its hook and counts once, even when the live
        // check that followed it failed: it will not change again.
        if (r.change != Change::unchanged) start_hook(s, inst, *r.bundle);
        if (options_.once) return;  // nothing reads the status board of a --once pass
        board_.record_refresh(inst.name, r, took.count());
        update_notify();
    }

    // READY=1 once every instance has had its first refresh, or the wait for
    // that is over; STATUS= on change.
    void update_notify() {
        if (options_.once || !notify_.enabled()) return;
        const auto summary = board_.summary();
        if (!ready_sent_) {
            if (!ready_wait_over_ && !board_.all_attempted()) return;
            notify_.ready(summary);
            ready_sent_ = true;
            ready_deadline_.cancel();
        } else if (summary != last_status_) {
            notify_.status(summary);
        }
        last_status_ = summary;
    }

    // WATCHDOG=1 from the event loop itself: a stuck loop stops the pings.
    asio::awaitable<void> watchdog_loop(std::chrono::microseconds period) {
        for (;;) {
            notify_.watchdog();
            watchdog_.expires_after(period);
            auto [ec] = co_await watchdog_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
        }
    }

    // Runs the instance's on_change command, detached: it never delays a refresh.
    void start_hook(const std::shared_ptr<Services>& s, const Instance& inst, const CertBundle& b) {
        if (!inst.on_change) return;
        std::vector<std::string> hidden;
        if (s->config.token_env) hidden.push_back(*s->config.token_env);
        ++hooks_running_;
        asio::co_spawn(ioc_,
                       run_hook(ioc_.get_executor(), *inst.on_change,
                                {{"ROOTCERTD_NAME", inst.name},
                                 {"ROOTCERTD_PATH", s->config.cert_path(inst).string()},
                                 {"ROOTCERTD_SHA256", b.certs.front().sha256}},
                                hidden, inst.name),
                       [this, inst](std::exception_ptr e, HookRun run) {
                           if (e) run = fail(Stage::hook, "aborted");
                           board_.record_hook(inst.name, run.ok());
                           log_event(run ? spdlog::level::info : spdlog::level::warn,
                                     inst.name + ": on_change " + inst.on_change->command[0] + " " +
                                         (run ? run.value() : run.error()),
                                     labels_of(inst));
                           if (--hooks_running_ == 0 && once_done_) ioc_.stop();
                       });
    }

    // Files already in place count for readiness until a refresh says
    // otherwise. Validation goes through the content-keyed cache: one data
    // plane's CA is parsed once, however many instances share it.
    // NAMES is a copy: a reload may replace the instance list while this
    // waits for a read.
    asio::awaitable<void> scan_existing(std::shared_ptr<Services> s,
                                        std::vector<std::string> names) {
        spdlog::debug("reading {} existing file(s)", names.size());
        for (const auto& name : names) {
            if (auto* st = board_.find(name); !st || st->attempted) continue;
            auto read = [s, file = name + ".crt"] { return s->store.read(file); };
            auto bytes = co_await run_blocking(pool_, std::move(read));
            if (!bytes || !bytes->has_value()) continue;
            auto bundle = co_await validate_with_cache(s, **bytes, sys_now());
            if (bundle) board_.record_found(name, bundle.value());
        }
        spdlog::debug("read the existing files");
    }

    HttpReply handle(std::string_view method, std::string_view target) {
        static const std::set<std::string_view> known{"/metrics", "/livez", "/healthz", "/readyz",
                                                      "/status"};
        if (!known.contains(target)) return {404, "text/plain; charset=utf-8", "not found\n", ""};
        if (method != "GET" && method != "HEAD") {
            return {405, "text/plain; charset=utf-8", "method not allowed\n", "GET, HEAD"};
        }
        if (target == "/metrics") {
            return {200, "text/plain; version=0.0.4; charset=utf-8", render_metrics(board_), ""};
        }
        if (target == "/status") return {200, "application/json", board_.to_json(), ""};
        if (target == "/readyz") {
            std::string reason;
            if (board_.ready(&reason)) return {200, "text/plain; charset=utf-8", "ready\n", ""};
            return {503, "text/plain; charset=utf-8", reason + "\n", ""};
        }
        return {200, "text/plain; charset=utf-8", "ok\n",
                ""};  // /livez, /healthz: the loop answered
    }

    void reload() {
        spdlog::info("SIGHUP: reloading {}", options_.config_path);
        notify_.reloading();
        apply_reload();
        notify_.ready(board_.summary());
        last_status_ = board_.summary();
    }

    void apply_reload() {
        auto cfg = load(true);
        if (!cfg) return;
        start_some(SIZE_MAX);  // the diff below expects every loop started
        if (!same_globals(*cfg, services_->config)) {
            auto fresh = make_services(*cfg);
            if (!fresh) {
                spdlog::error("reload failed, still running the previous configuration");
                return;
            }
            scheduler_.stop_all();
            services_->client->close();
            services_ = fresh;
            board_.sync(services_->config);
            start_all(services_);
            spdlog::info("reloaded: global settings changed; restarted all {} instance(s)",
                         cfg->instances.size());
            return;
        }
        std::map<std::string, const Instance*> old;
        for (const auto& inst : services_->config.instances) old[inst.name] = &inst;
        std::vector<std::string> added, changed, removed;
        for (const auto& inst : cfg->instances) {
            auto it = old.find(inst.name);
            if (it == old.end()) {
                added.push_back(inst.name);
            } else if (!(*it->second == inst)) {
                changed.push_back(inst.name);
            }
            if (it != old.end()) old.erase(it);
        }
        for (const auto& [name, _] : old) {
            removed.push_back(name);
            scheduler_.stop(name);
        }
        services_->config.instances = cfg->instances;
        board_.sync(services_->config);
        service_file_ok_ = write_service_file(services_->config);
        for (const auto& inst : services_->config.instances) {
            if (std::find(added.begin(), added.end(), inst.name) != added.end() ||
                std::find(changed.begin(), changed.end(), inst.name) != changed.end()) {
                start(services_, inst);
            }
        }
        const auto join = [](const std::vector<std::string>& v) {
            std::string out;
            for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
            return out.empty() ? "-" : out;
        };
        spdlog::info("reloaded: {} instance(s); added {}; changed {}; removed {} (files kept)",
                     cfg->instances.size(), join(added), join(changed), join(removed));
    }

    void shutdown(int sig) {
        spdlog::info("{}: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        notify_.stopping();
        stopping_ = true;
        starting_.reset();
        watchdog_.cancel();
        ready_deadline_.cancel();
        signals_.cancel();
        scheduler_.stop_all();
        services_->client->close();
        if (server_) server_->stop();
        if (scheduler_.alive() == 0) {
            ioc_.stop();
            return;
        }
        // on_empty stops the loop when the last refresh ends; this bounds the wait.
        grace_.expires_after(shutdown_grace);
        grace_.async_wait([this](boost::system::error_code ec) {
            if (!ec) {
                spdlog::warn("work still running after {} ms; exiting anyway",
                             shutdown_grace.count());
                ioc_.stop();
            }
        });
    }

    RunOptions options_;
    asio::io_context ioc_{1};
    asio::thread_pool pool_{2};
    asio::signal_set signals_;
    asio::steady_timer grace_;
    Scheduler scheduler_;
    std::shared_ptr<Services> services_;
    std::shared_ptr<Services> starting_;  // whose instances start_some() is starting
    std::size_t next_start_ = 0;
    StatusBoard board_;
    std::shared_ptr<HttpServer> server_;
    Notifier notify_ = Notifier::from_environment();
    asio::steady_timer watchdog_{ioc_};
    asio::steady_timer ready_deadline_{ioc_};
    bool ready_wait_over_ = false;
    bool ready_sent_ = false;
    std::string last_status_;
    std::size_t hooks_running_ = 0;
    bool once_done_ = false;
    bool stopping_ = false;
    bool service_file_ok_ = true;  // the last write of pg_service_file succeeded
};

}  // namespace

int run(const RunOptions& options) {
    App app(options);
    return app.run();
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
