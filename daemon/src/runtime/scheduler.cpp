#include "rootcertd/runtime/scheduler.hpp"

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

namespace {

// Whether the calling coroutine's loop has been asked to stop.
asio::awaitable<bool> stopped() {
    const auto state = co_await asio::this_coro::cancellation_state;
    co_return state.cancelled() != asio::cancellation_type::none;
}

}  // namespace

Scheduler::Scheduler(asio::any_io_executor executor) : executor_(std::move(executor)) {}

void Scheduler::start(const std::string& name, Reporter::Labels labels, RetryPolicy policy, Job job,
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

asio::awaitable<void> Scheduler::run(std::string name, Reporter::Labels labels, RetryPolicy policy,
                                     Job job, std::optional<Checker> checker,
                                     Semaphore* admission) {
    // A stopped loop ends by returning, never by throwing: in Asio 1.81 a
    // cancelled co_spawn that throws loses its completion handler.
    co_await asio::this_coro::throw_if_cancelled(false);
    asio::steady_timer timer(executor_);
    InstanceLog log;
    FailureLog check_failures;
    unsigned consecutive = 0;
    bool server_ahead = false;  // the last refresh failed at the live check alone
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    auto next_refresh = Steady::now();
    auto next_check = Steady::time_point::max();
    while (!co_await stopped()) {
        timer.expires_at(std::min(next_refresh, next_check));
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || co_await stopped()) break;

        if (Steady::now() < next_refresh) {
            CheckResult c;
            try {
                c = co_await checker->check();
            } catch (const std::exception& e) {
                c.problem = fail(std::string("unexpected error: ") + e.what());
            }
            if (co_await stopped()) break;
            reporter_.checked(name, labels, c, check_failures, Steady::now());
            // While the API fails, its backoff holds; while only the server
            // disagrees, the API is asked again at once.
            if (c.refresh_now && (consecutive == 0 || server_ahead)) next_refresh = Steady::now();
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
            r.failure = fail(std::string("unexpected error: ") + e.what());
        }
        admitted.reset();
        if (co_await stopped()) break;
        consecutive = r.ok() ? 0 : consecutive + 1;
        // The API answered well but the server no longer verifies (it rotated
        // first): ask the API again at the live checks' cadence, not the
        // backoff, so clients recover within one verify_interval of the API
        // serving the new CA.
        server_ahead = r.failure && r.failure->stage == Stage::live && checker;
        auto delay = next_delay(policy, consecutive, r.retry_after, uniform(rng_));
        if (server_ahead) delay = std::min(delay, checker->interval);
        next_refresh = Steady::now() + delay;
        if (checker) next_check = Steady::now() + checker->interval;
        if (on_scheduled) on_scheduled(name, next_refresh);
        reporter_.refreshed(name, labels, r, log, delay, Steady::now());
    }
    co_await asio::this_coro::reset_cancellation_state();
}

}  // namespace rootcertd
