// The daemon: a loop per instance, /metrics, systemd notify, SIGHUP reloads.
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <map>
#include <set>

#include "rootcertd/core/blocking.hpp"
#include "rootcertd/core/model.hpp"
#include "rootcertd/core/process.hpp"
#include "rootcertd/core/sd_notify.hpp"
#include "rootcertd/net/http_server.hpp"
#include "rootcertd/runtime/fleet.hpp"
#include "rootcertd/runtime/fleet_loops.hpp"
#include "rootcertd/runtime/output_writer.hpp"
#include "rootcertd/runtime/refresh.hpp"
#include "rootcertd/runtime/reporter.hpp"
#include "rootcertd/runtime/runtime.hpp"
#include "rootcertd/runtime/scheduler.hpp"
#include "rootcertd/runtime/status.hpp"
#include "rootcertd/sources/discovery.hpp"

namespace rootcertd {

namespace asio = boost::asio;

namespace {

// SIGTERM must end the process within 2 s: anything still running after
// this is abandoned (files are never half-written: installs are atomic).
constexpr auto shutdown_grace = std::chrono::milliseconds(1500);

// How often cert_dir and state_dir are swept for the temp files of a writer
// that was killed (at start-up they may be too young to be provably stale).
constexpr auto temp_sweep_interval = std::chrono::minutes(5);

// READY=1 waits for every instance's first refresh, but no longer than this
// (or api.timeout, if shorter). A stalling API answers ~concurrency
// instances per timeout, so a large fleet's first pass could outlast
// systemd's start timeout (the unit sets TimeoutStartSec=60s) and loop in
// restarts; /readyz keeps telling which files are missing.
constexpr auto max_ready_wait = std::chrono::seconds(30);

// Whether A and B differ only in their instances and outputs: those are
// applied without restarting every loop.
bool same_globals(Config a, Config b) {
    a.instances.clear();
    b.instances.clear();
    a.outputs.clear();
    b.outputs.clear();
    return a == b;
}

class DaemonRunner {
  public:
    DaemonRunner(Runtime& runtime, std::shared_ptr<Services> services)
        : rt_(runtime),
          ioc_(runtime.loop()),
          services_(std::move(services)),
          signals_(ioc_),
          grace_(ioc_),
          loops_(ioc_,
                 [this](const std::shared_ptr<Services>& s, std::shared_ptr<const Instance> inst) {
                     return jobs(s, std::move(inst));
                 }),
          fleet_(services_->config.instances) {}
    DaemonRunner(const DaemonRunner&) = delete;
    DaemonRunner& operator=(const DaemonRunner&) = delete;
    ~DaemonRunner() { rt_.on_hook_end = nullptr; }  // it refers to this runner

    int run() {
        board_.sync(services_->config);
        std::vector<std::string> names;
        names.reserve(services_->config.instances.size());
        for (const auto& inst : services_->config.instances) names.push_back(inst.name);
        asio::co_spawn(ioc_, scan_existing(services_, std::move(names)), asio::detached);
        rt_.on_hook_end = [this](const std::string& name, bool ok) {
            board_.record_hook(name, ok);
        };
        outputs_.on_written = [this](const Output& output, const std::vector<std::string>& members,
                                     const Outcome<OutputWrite>& done) {
            board_.record_output(output, members, done);
        };
        // Outputs are written once every member's file is in: existing
        // files count, so an output added to a settled fleet is written now.
        outputs_.hold(services_, a_source_has_not_listed());
        outputs_.all_due(services_);
        signals_.add(SIGTERM);
        signals_.add(SIGINT);
        signals_.add(SIGHUP);
        wait_for_signal();
        loops_.scheduler().on_empty = [this] {
            if (stopping_) ioc_.stop();
        };
        loops_.scheduler().on_scheduled = [this](const std::string& name,
                                                 std::chrono::steady_clock::time_point at) {
            board_.record_schedule(name,
                                   sys_now() + std::chrono::duration_cast<std::chrono::seconds>(
                                                   at - std::chrono::steady_clock::now()));
        };
        if (services_->config.metrics_listen) {
            auto server = start_http_server(
                ioc_.get_executor(), parse_listen(*services_->config.metrics_listen).value(),
                [this](std::string_view method, std::string_view target) {
                    return handle(method, target);
                });
            if (!server) {
                spdlog::error("{}", server.error());
                return exit_failed;
            }
            server_ = std::move(server.value());
            spdlog::info("serving /metrics, /livez, /readyz and /status on {}",
                         *services_->config.metrics_listen);
        }
        if (const auto period = notify_.watchdog_period()) {
            spdlog::info("systemd watchdog: WATCHDOG=1 every {} (half of WATCHDOG_USEC)",
                         human(std::chrono::duration_cast<Duration>(*period)));
            asio::co_spawn(ioc_, watchdog_loop(*period), asio::detached);
        }
        asio::co_spawn(ioc_, sweep_loop(), asio::detached);
        spdlog::info("rootcertd {} started: {} instance(s), certs in {}", ROOTCERTD_VERSION,
                     services_->config.instances.size(), services_->config.cert_dir.string());
        loops_.start_all(services_);
        start_discovery(services_);
        ready_deadline_.expires_after(
            std::min<Duration>(services_->config.timeout, max_ready_wait));
        ready_deadline_.async_wait([this](boost::system::error_code ec) {
            if (ec || ready_sent_) return;
            ready_wait_over_ = true;
            spdlog::info("ready before every first refresh ended: {}", board_.summary());
            update_notify();
        });
        ioc_.run();
        // A command that ignored SIGTERM does not outlive the daemon, even
        // when the loop stopped before its SIGKILL was due.
        signal_running_commands(SIGKILL);
        spdlog::info("stopped");
        return exit_ok;
    }

  private:
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

    // The jobs of INST's loop; each run holds the loop's one copy of it.
    FleetLoops::Jobs jobs(const std::shared_ptr<Services>& s,
                          std::shared_ptr<const Instance> inst) {
        FleetLoops::Jobs out{[this, s, inst] { return refresh_and_record(s, inst); }, {}};
        if (inst->server) {
            out.checker = Scheduler::Checker{[this, s, inst] { return check_and_record(s, inst); },
                                             inst->verify_interval};
        }
        return out;
    }

    asio::awaitable<RefreshResult> refresh_and_record(std::shared_ptr<Services> s,
                                                      std::shared_ptr<const Instance> shared) {
        const Instance& inst = *shared;
        const auto started = std::chrono::steady_clock::now();
        auto r = co_await rt_.refresh_and_hook(s, inst);
        if (r.change != Change::unchanged && s == services_) outputs_.member_changed(s, inst);
        board_.record_refresh(
            inst.name, r,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        update_notify();
        co_return r;
    }

    asio::awaitable<CheckResult> check_and_record(std::shared_ptr<Services> s,
                                                  std::shared_ptr<const Instance> inst) {
        auto c = co_await check_live(s, *inst);
        board_.record_check(inst->name, c);
        co_return c;
    }

    // READY=1 once every instance has had its first refresh, or the wait for
    // that is over; STATUS= on change.
    void update_notify() {
        if (!notify_.enabled()) return;
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
            auto read = [s, file = name + ".crt"] { return s->files.store.read(file); };
            auto bytes = co_await run_blocking(rt_.pool(), std::move(read));
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
            const auto ready = board_.ready();
            if (ready) return {200, "text/plain; charset=utf-8", "ready\n", ""};
            return {503, "text/plain; charset=utf-8", ready.error() + "\n", ""};
        }
        return {200, "text/plain; charset=utf-8", "ok\n",
                ""};  // /livez, /healthz: the loop answered
    }

    void reload() {
        spdlog::info("SIGHUP: reloading {}", rt_.options().config_path);
        notify_.reloading();
        apply_reload();
        asio::co_spawn(ioc_, sweep_temps(services_), asio::detached);
        notify_.ready(board_.summary());
        last_status_ = board_.summary();
    }

    // Removes the stale temp files of cert_dir and state_dir, off the loop.
    static asio::awaitable<void> sweep_temps(std::shared_ptr<Services> s) {
        for (const CertStore* store : {&s->files.store, &s->files.state_store}) {
            auto removed = co_await run_blocking(s->blocking, [store] { return store->sweep(); });
            if (!removed) {
                spdlog::warn("sweeping temp files: {}", removed.error());
            } else if (removed.value() > 0) {
                spdlog::info("removed {} temp file(s) left in {} by a writer that died",
                             removed.value(), store->dir().string());
            }
        }
    }

    asio::awaitable<void> sweep_loop() {
        for (;;) {
            sweep_timer_.expires_after(temp_sweep_interval);
            auto [ec] = co_await sweep_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec || stopping_) co_return;
            co_await sweep_temps(services_);
        }
    }

    void apply_reload() {
        auto cfg = rt_.load(true);
        if (!cfg) return;
        // What the new config needs is made before anything changes: new
        // Services when global settings changed, else the clients of the
        // trust files it adds. A failure leaves the running config whole.
        auto fresh = services_;
        if (!same_globals(*cfg, services_->config)) {
            fresh = rt_.make_services(*cfg);
        } else if (auto made = services_->fetch.make_clients(*cfg); !made) {
            spdlog::error("{}", made.error());
            fresh = nullptr;
        }
        if (!fresh) {
            spdlog::error("reload failed, still running the previous configuration");
            return;
        }
        loops_.finish_starting();  // the diff below expects every loop started
        // SIGHUP keeps what was discovered (of the sources still configured)
        // and lists again.
        fleet_.reload(*cfg);
        if (fresh != services_) {
            loops_.stop_all();
            services_->close_clients();
            services_ = fresh;
            services_->config.instances = composed().instances;
            if (!services_->config.discover.empty()) {
                rt_.write_service_file(services_->config, a_source_has_not_listed());
            }
            board_.sync(services_->config);
            outputs_.hold(services_, a_source_has_not_listed());
            outputs_.all_due(services_);
            loops_.start_all(services_);
            start_discovery(services_);
            spdlog::info("reloaded: global settings changed; restarted all {} instance(s)",
                         services_->config.instances.size());
            return;
        }
        if (cfg->outputs != services_->config.outputs) {
            services_->config.outputs = cfg->outputs;
            board_.sync(services_->config);
            outputs_.all_due(services_);
            spdlog::info("reloaded: {} output(s)", services_->config.outputs.size());
        }
        const auto change = apply_instances(composed().instances);
        spdlog::info("reloaded: {} instance(s); {}", services_->config.instances.size(),
                     change.empty() ? "nothing changed" : change.describe());
        start_discovery(services_);  // lists again now
    }

    // Makes NEXT the running set of instances: loops started for added and
    // changed ones, stopped for removed ones (their files stay), the status
    // board and pg_service.conf's block follow.
    FleetDiff apply_instances(std::vector<Instance> next) {
        auto diff = diff_fleet(services_->config.instances, next);
        if (diff.empty()) return diff;
        services_->config.instances = std::move(next);
        loops_.apply(services_, diff);
        board_.sync(services_->config);
        outputs_.all_due(services_);  // members may have joined or left
        rt_.write_service_file(services_->config, a_source_has_not_listed());
        return diff;
    }

    bool a_source_has_not_listed() const {
        return fleet_.a_source_has_not_listed(services_->config);
    }

    // The listed instances and every source's last good list, names checked.
    Composed composed() {
        auto out = fleet_.compose();
        board_.refused = out.refused;
        log_refused(out.refused, refused_logged_);
        return out;
    }

    // A loop per discovery source of S; loops of an earlier start end.
    void start_discovery(const std::shared_ptr<Services>& s) {
        ++discovery_generation_;
        for (auto& timer : discovery_timers_) timer->cancel();
        discovery_timers_.clear();
        for (const auto& d : s->config.discover) {
            auto timer = std::make_shared<asio::steady_timer>(ioc_);
            discovery_timers_.push_back(timer);
            asio::co_spawn(ioc_, discovery_loop(s, d, discovery_generation_, timer),
                           asio::detached);
        }
    }

    // Lists D's instances every D.interval. A failed or malformed list
    // changes nothing: what was found before keeps being refreshed.
    asio::awaitable<void> discovery_loop(std::shared_ptr<Services> s, Discovery d,
                                         unsigned generation,
                                         std::shared_ptr<asio::steady_timer> timer) {
        const std::string label = d.label();
        for (;;) {
            auto listed = co_await list_instances(s, d);
            if (stopping_ || generation != discovery_generation_) co_return;
            auto& failures = discovery_failures_[label];
            if (!listed) {
                board_.record_discovery(label, std::nullopt, listed.error());
                log_list_failed(listed.failure(), failures);
            } else {
                const unsigned failed_before = failures.on_success();
                const auto accepted = fleet_.accept(d, std::move(listed.value()), s->config);
                board_.record_pending_removal(label, accepted.pending);
                auto next = composed();
                const auto kept = kept_from(next, label);
                board_.record_discovery(label, kept);
                const auto change = apply_instances(std::move(next.instances));
                outputs_.hold(services_, a_source_has_not_listed());
                log_listed(d, failed_before, accepted, kept, change);
            }
            timer->expires_after(d.interval);
            auto [ec] = co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec || stopping_ || generation != discovery_generation_) co_return;
        }
    }

    void shutdown(int sig) {
        spdlog::info("{}: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        notify_.stopping();
        stopping_ = true;
        watchdog_.cancel();
        sweep_timer_.cancel();
        ready_deadline_.cancel();
        signals_.cancel();
        for (auto& timer : discovery_timers_) timer->cancel();
        loops_.stop_all();
        services_->close_clients();
        rt_.stop_hook_retries();
        outputs_.stop();
        stop_running_commands(ioc_.get_executor(), command_stop_grace);
        if (server_) server_->stop();
        if (loops_.scheduler().alive() == 0) {
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

    Runtime& rt_;
    asio::io_context& ioc_;
    std::shared_ptr<Services> services_;
    asio::signal_set signals_;
    asio::steady_timer grace_;
    FleetLoops loops_;
    StatusBoard board_;
    OutputWriter outputs_{rt_};
    std::shared_ptr<HttpServer> server_;
    Notifier notify_ = Notifier::from_environment();
    asio::steady_timer watchdog_{ioc_};
    asio::steady_timer sweep_timer_{ioc_};
    asio::steady_timer ready_deadline_{ioc_};
    bool ready_wait_over_ = false;
    bool ready_sent_ = false;
    std::string last_status_;
    bool stopping_ = false;
    // Discovery: the instance set, refusals already logged, failed lists
    // per source, and the running loops.
    Fleet fleet_;
    std::set<std::string> refused_logged_;
    std::map<std::string, FailureLog> discovery_failures_;
    std::vector<std::shared_ptr<asio::steady_timer>> discovery_timers_;
    unsigned discovery_generation_ = 0;
};

}  // namespace

int run_daemon(Runtime& runtime, std::shared_ptr<Services> services) {
    DaemonRunner daemon(runtime, std::move(services));
    return daemon.run();
}

}  // namespace rootcertd
