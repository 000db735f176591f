#include "rootcertd/scheduler.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>

namespace rootcertd {

namespace asio = boost::asio;
using std::chrono::duration_cast;
using Steady = std::chrono::steady_clock;

Duration next_delay(const RetryPolicy& p, unsigned failures, std::optional<Duration> retry_after,
                    double uniform) {
    if (failures == 0) {
        const double factor = 1.0 + p.jitter * (2.0 * uniform - 1.0);
        return Duration{
            static_cast<Duration::rep>(static_cast<double>(p.interval.count()) * factor)};
    }
    const double doubled = static_cast<double>(p.retry_min.count()) *
                           std::pow(2.0, static_cast<double>(std::min(failures - 1, 40U)));
    const double cap = static_cast<double>(std::min(p.retry_max, p.interval).count());
    const double base = std::min(doubled, cap);
    Duration delay{static_cast<Duration::rep>(base / 2.0 + base / 2.0 * uniform)};
    if (retry_after)
        delay = std::max(delay, std::min(*retry_after, Duration{std::chrono::hours(24)}));
    return delay;
}

FailureLog::Verdict FailureLog::on_failure(const std::string& reason, Steady::time_point now) {
    ++count_;
    if (reason != last_) {
        last_ = reason;
        last_logged_ = now;
        return Verdict::log;
    }
    if (now - last_logged_ >= std::chrono::hours(1)) {
        last_logged_ = now;
        return Verdict::repeat;
    }
    return Verdict::quiet;
}

unsigned FailureLog::on_success() {
    last_.clear();
    return std::exchange(count_, 0);
}

namespace {

std::string human(Duration d) {
    const auto ms = d.count();
    if (ms < 10'000) return std::to_string(ms) + "ms";
    if (ms < 600'000) return std::to_string(ms / 1000) + "s";
    if (ms < 36'000'000) return std::to_string(ms / 60'000) + "m";
    return std::to_string(ms / 3'600'000) + "h";
}

// Whether the calling coroutine's loop has been asked to stop.
asio::awaitable<bool> stopped() {
    const auto state = co_await asio::this_coro::cancellation_state;
    co_return state.cancelled() != asio::cancellation_type::none;
}

}  // namespace

Scheduler::Scheduler(asio::any_io_executor executor) : executor_(std::move(executor)) {}

void Scheduler::start(const std::string& name, LogFields labels, RetryPolicy policy, Job job,
                      std::optional<Checker> checker, Semaphore* admission) {
    stop(name);
    auto loop = std::make_shared<Loop>();
    loops_[name] = loop;
    ++alive_;
    asio::co_spawn(
        executor_,
        run(name, std::move(labels), policy, std::move(job), std::move(checker), admission),
        asio::bind_cancellation_slot(loop->cancel.slot(), [this, name, loop](std::exception_ptr e) {
            try {
                if (e) std::rethrow_exception(e);
            } catch (const boost::system::system_error& err) {
                if (err.code() != asio::error::operation_aborted) {
                    spdlog::error("{}: refresh loop ended: {}", name, err.what());
                }
            } catch (const std::exception& err) {
                spdlog::error("{}: refresh loop ended: {}", name, err.what());
            }
            auto it = loops_.find(name);
            if (it != loops_.end() && it->second == loop) loops_.erase(it);
            if (--alive_ == 0 && on_empty) on_empty();
        }));
}

void Scheduler::stop(const std::string& name) {
    auto it = loops_.find(name);
    if (it == loops_.end()) return;
    auto loop = it->second;
    loops_.erase(it);
    loop->cancel.emit(asio::cancellation_type::terminal);
}

void Scheduler::stop_all() {
    while (!loops_.empty()) stop(loops_.begin()->first);
}

asio::awaitable<void> Scheduler::run(std::string name, LogFields labels, RetryPolicy policy,
                                     Job job, std::optional<Checker> checker,
                                     Semaphore* admission) {
    // A stopped loop ends by returning, never by throwing: in Asio 1.81 a
    // cancelled co_spawn that throws loses its completion handler.
    co_await asio::this_coro::throw_if_cancelled(false);
    asio::steady_timer timer(executor_);
    FailureLog failures, check_failures, warnings;
    std::optional<std::string> outage;  // the unreachable origin this loop's last refresh met
    unsigned consecutive = 0;
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    auto next_refresh = Steady::now();
    auto next_check = Steady::time_point::max();
    const auto log = [&](spdlog::level::level_enum level, const std::string& text,
                         LogFields extra = {}) {
        LogFields fields = labels;
        fields.insert(fields.end(), extra.begin(), extra.end());
        log_event(level, name + ": " + text, fields);
    };
    while (!co_await stopped()) {
        timer.expires_at(std::min(next_refresh, next_check));
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || co_await stopped()) break;

        if (Steady::now() < next_refresh) {
            CheckResult c;
            try {
                c = co_await checker->check();
            } catch (const std::exception& e) {
                c.problem = std::string("unexpected error: ") + e.what();
            }
            if (co_await stopped()) break;
            if (c.problem.empty()) {
                if (check_failures.on_success() > 0)
                    log(spdlog::level::info, "live check passes again");
            } else if (check_failures.on_failure(c.problem, Steady::now()) !=
                       FailureLog::Verdict::quiet) {
                log(spdlog::level::warn, "live check: " + c.problem, {{"error", c.problem}});
            }
            if (c.refresh_now && consecutive == 0) next_refresh = Steady::now();
            next_check = Steady::now() + checker->interval;
            continue;
        }

        std::optional<SlotGuard> admitted;
        if (admission != nullptr) {
            auto [aec] = co_await admission->async_send(boost::system::error_code{},
                                                        asio::as_tuple(asio::use_awaitable));
            if (aec) break;
            admitted.emplace(*admission);
            if (co_await stopped()) break;
        }
        RefreshResult r;
        try {
            r = co_await job();
        } catch (const std::exception& e) {
            r.error = std::string("unexpected error: ") + e.what();
        }
        admitted.reset();
        if (co_await stopped()) break;
        consecutive = r.ok ? 0 : consecutive + 1;
        const auto delay = next_delay(policy, consecutive, r.retry_after, uniform(rng_));
        next_refresh = Steady::now() + delay;
        if (checker) next_check = Steady::now() + checker->interval;
        if (on_scheduled) on_scheduled(name, next_refresh);
        if (r.warning.empty()) {
            warnings.on_success();
        } else if (warnings.on_failure(r.warning, Steady::now()) != FailureLog::Verdict::quiet) {
            log(spdlog::level::warn, r.warning);
        }
        if (outage && !r.unreachable) {
            if (const auto n = unreachable_[*outage].on_success(); n > 0) {
                log(spdlog::level::info, *outage + " answers again after " + std::to_string(n) +
                                             " failed refresh(es) of its instances");
            }
            outage.reset();
        }
        if (r.ok) {
            if (const auto n = failures.on_success(); n > 0) {
                log(spdlog::level::info,
                    "recovered after " + std::to_string(n) + " failed attempt(s)");
            }
            spdlog::debug("{}: refreshed; next in {}", name, human(delay));
            continue;
        }
        LogFields detail{{"error", r.error}};
        if (r.http_status != 0) detail.emplace_back("status", std::to_string(r.http_status));
        if (r.unreachable) {  // logged for the origin, by whichever instance meets it first
            outage = r.unreachable->origin;
            auto& origin_log = unreachable_[*outage];
            switch (origin_log.on_failure(r.unreachable->reason, Steady::now())) {
                case FailureLog::Verdict::log:
                    log(spdlog::level::warn,
                        "refresh failed: " + r.error + "; retrying in " + human(delay) +
                            "; other instances that cannot reach " + *outage +
                            " are logged at debug level until it answers",
                        detail);
                    break;
                case FailureLog::Verdict::repeat:
                    log(spdlog::level::warn,
                        *outage + " still unreachable after " +
                            std::to_string(origin_log.failures()) +
                            " failed refresh(es) of its instances: " + r.error,
                        detail);
                    break;
                case FailureLog::Verdict::quiet:
                    spdlog::debug("{}: refresh failed: {}", name, r.error);
                    break;
            }
            continue;
        }
        switch (failures.on_failure(r.error, Steady::now())) {
            case FailureLog::Verdict::log:
                log(spdlog::level::warn,
                    "refresh failed: " + r.error + "; retrying in " + human(delay), detail);
                break;
            case FailureLog::Verdict::repeat:
                log(spdlog::level::warn,
                    "still failing after " + std::to_string(consecutive) + " attempts: " + r.error +
                        "; retrying in " + human(delay),
                    detail);
                break;
            case FailureLog::Verdict::quiet:
                spdlog::debug("{}: refresh failed again: {}", name, r.error);
                break;
        }
    }
    co_await asio::this_coro::reset_cancellation_state();
}

}  // namespace rootcertd
