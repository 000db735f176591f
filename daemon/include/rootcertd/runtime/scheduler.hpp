// Runs each instance's refresh loop: jittered cadence, capped backoff.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "rootcertd/core/logging.hpp"
#include "rootcertd/core/model.hpp"
#include "rootcertd/core/semaphore.hpp"
#include "rootcertd/runtime/refresh.hpp"
#include "rootcertd/runtime/reporter.hpp"

namespace rootcertd {

struct RetryPolicy {
    Duration interval{};
    double jitter = 0.1;
    Duration retry_min{};
    Duration retry_max{};
};

// When to refresh next. After a success (FAILURES == 0): the interval, moved
// by up to ±jitter. After the Nth consecutive failure: retry_min·2^(N-1)
// capped at retry_max and at the interval, then drawn from [half, all] of
// that ("equal jitter"). A Retry-After is honoured when longer, up to a day.
// UNIFORM is a random number in [0, 1): tests pass fixed values.
Duration next_delay(const RetryPolicy& policy, unsigned failures,
                    std::optional<Duration> retry_after, double uniform);

// Owns one loop per instance name on one executor.
class Scheduler {
  public:
    using Job = std::function<boost::asio::awaitable<RefreshResult>()>;
    using Check = std::function<boost::asio::awaitable<CheckResult>()>;

    // An optional second job, run every `interval` between refreshes.
    struct Checker {
        Check check;
        Duration interval{};
    };

    explicit Scheduler(boost::asio::any_io_executor executor);

    // Starts NAME's loop: refresh at once, then again after next_delay();
    // with a checker, also check every checker.interval, and refresh at once
    // when a check asks for it (unless already retrying a failure). A loop
    // already running under NAME is stopped first.
    // LABELS() (name, org, id) go into every structured log record of the
    // loop; built for each record, so a loop keeps no fields.
    // With ADMISSION, each refresh first takes one of its slots and holds it
    // while the job runs; the loop waits in its own frame, so no job frame
    // exists until a slot is free. ADMISSION must outlive the loop.
    void start(const std::string& name, Reporter::Labels labels, RetryPolicy policy, Job job,
               std::optional<Checker> checker = std::nullopt, Semaphore* admission = nullptr);
    // Ends NAME's loop at its next wait; a refresh in flight completes.
    void stop(const std::string& name);
    void stop_all();
    // Loops still running, stopped ones that have not yet ended included.
    std::size_t alive() const { return alive_; }

    // Called whenever a loop has ended and none are left.
    std::function<void()> on_empty;
    // Called with each loop's next refresh time after a refresh.
    std::function<void(const std::string& name, std::chrono::steady_clock::time_point)>
        on_scheduled;

  private:
    struct Loop {
        boost::asio::cancellation_signal cancel;
    };
    Reporter reporter_;  // the log lines of every loop's refreshes
    boost::asio::awaitable<void> run(std::string name, Reporter::Labels labels, RetryPolicy policy,
                                     Job job, std::optional<Checker> checker, Semaphore* admission);

    boost::asio::any_io_executor executor_;
    std::map<std::string, std::shared_ptr<Loop>> loops_;
    std::size_t alive_ = 0;
    std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace rootcertd
