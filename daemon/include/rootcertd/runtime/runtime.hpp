// What the daemon and the one-pass runner share: the event loop, the
// blocking pool, the configuration and the services built from it, hooks.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "rootcertd/core/logging.hpp"
#include "rootcertd/core/model.hpp"
#include "rootcertd/runtime/app.hpp"
#include "rootcertd/runtime/refresh.hpp"
#include "rootcertd/sources/results.hpp"

namespace rootcertd {

class Runtime {
  public:
    explicit Runtime(RunOptions options) : options_(std::move(options)) {}
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;
    ~Runtime() { pool_.join(); }

    boost::asio::io_context& loop() { return ioc_; }
    boost::asio::thread_pool& pool() { return pool_; }
    const RunOptions& options() const { return options_; }

    // The configuration file; nullopt, with the error logged, when it is
    // wrong (RELOADING: the running configuration stays).
    std::optional<Config> load(bool reloading);

    // Services for CONFIG: cert_dir and state_dir ready (stale temps
    // removed), the proxy and pg_service_file set up. Nullptr, with the
    // error logged, when they cannot be.
    std::shared_ptr<Services> make_services(Config config);

    // Keeps the managed block of pg_service_file in step with CONFIG (with
    // KEEP_OTHERS, sections of other instances stay); an error is logged
    // and remembered until a write succeeds.
    void write_service_file(const Config& config, bool keep_others = false);
    bool service_file_ok() const { return service_file_ok_; }

    // refresh(), then INSTANCE's on_change hook when the file changed (even
    // when the live check after it failed: it will not change again). The
    // hook runs detached: it never delays a refresh. The caller keeps
    // INSTANCE alive until it ends.
    boost::asio::awaitable<RefreshResult> refresh_and_hook(std::shared_ptr<Services> services,
                                                           const Instance& instance);

    // Hooks started and not yet ended (a hook waiting to be retried counts).
    std::size_t hooks_running() const { return hooks_running_; }
    // Called as each hook run ends, with its instance's name and whether it
    // succeeded (the daemon counts them; --once waits for the last).
    std::function<void(const std::string& name, bool ok)> on_hook_end;
    // No more hook retries: the daemon is stopping.
    void stop_hook_retries() { hook_retries_stopped_ = true; }

    // An on_change run after NAME's file (an instance's or an output's)
    // changed, with ENV added, its log lines carrying LABELS.
    struct HookJob {
        std::string name;
        Hook hook;
        std::vector<std::pair<std::string, std::string>> env;
        LogFields labels;
    };
    // Starts JOB detached; in the daemon a failed run is retried with the
    // retry backoff until it succeeds, NAME's file changes again or the
    // daemon stops.
    void start_hook(const std::shared_ptr<Services>& s, HookJob job);

  private:
    boost::asio::awaitable<void> hook_until_done(std::shared_ptr<Services> s, HookJob job,
                                                 unsigned generation);
    std::map<std::string, unsigned> hook_generation_;  // per file: its latest change
    bool hook_retries_stopped_ = false;

    RunOptions options_;
    boost::asio::io_context ioc_{1};
    boost::asio::thread_pool pool_{2};
    std::size_t hooks_running_ = 0;
    bool service_file_ok_ = true;
};

// Refreshes every instance once (--once). Exit code: exit_ok when every
// file holds a valid CA fetched in this pass, else exit_failed.
int run_one_pass(Runtime& runtime, std::shared_ptr<Services> services);

// Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads.
int run_daemon(Runtime& runtime, std::shared_ptr<Services> services);

}  // namespace rootcertd
