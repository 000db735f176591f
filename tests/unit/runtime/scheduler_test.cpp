#include "rootcertd/runtime/scheduler.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <sstream>

using namespace rootcertd;
using namespace std::chrono_literals;

namespace {
const RetryPolicy policy{.interval = 1h, .jitter = 0.1, .retry_min = 5s, .retry_max = 5min};
}

TEST(NextDelay, SuccessStaysWithinTheJitterBand) {
    EXPECT_EQ(next_delay(policy, 0, std::nullopt, 0.0), 54min);
    EXPECT_EQ(next_delay(policy, 0, std::nullopt, 0.5), 60min);
    EXPECT_LE(next_delay(policy, 0, std::nullopt, 0.999999), 66min);
    EXPECT_GE(next_delay(policy, 0, std::nullopt, 0.999999), 65min);
    EXPECT_EQ(next_delay({.interval = 1h, .jitter = 0.0}, 0, std::nullopt, 0.9), 1h);
}

TEST(NextDelay, FailuresBackOffExponentiallyWithinBounds) {
    // Nth failure: base = 5s * 2^(N-1), drawn from [base/2, base].
    EXPECT_EQ(next_delay(policy, 1, std::nullopt, 0.0), 2500ms);
    EXPECT_EQ(next_delay(policy, 1, std::nullopt, 1.0), 5s);
    EXPECT_EQ(next_delay(policy, 2, std::nullopt, 1.0), 10s);
    EXPECT_EQ(next_delay(policy, 4, std::nullopt, 1.0), 40s);
    EXPECT_EQ(next_delay(policy, 7, std::nullopt, 1.0), 5min) << "capped at retry.max";
    EXPECT_EQ(next_delay(policy, 1000, std::nullopt, 0.0), 150s) << "no overflow, still capped";
    EXPECT_EQ(next_delay({.interval = 20s, .jitter = 0, .retry_min = 5s, .retry_max = 5min}, 9,
                         std::nullopt, 1.0),
              20s)
        << "never waits longer than the normal cadence";
}

TEST(NextDelay, RetryAfterIsHonouredWhenLonger) {
    EXPECT_EQ(next_delay(policy, 1, 2min, 1.0), 2min);
    EXPECT_EQ(next_delay(policy, 7, 1s, 1.0), 5min) << "a shorter Retry-After does not hurry us";
    EXPECT_EQ(next_delay(policy, 1, 1000h, 1.0), 24h) << "bounded to a day";
}

TEST(FailureLog, LogsChangesAndHourlyRemindersOnly) {
    FailureLog log;
    const auto t0 = std::chrono::steady_clock::time_point{} + 100h;
    using V = FailureLog::Verdict;
    EXPECT_EQ(log.on_failure("HTTP 503", t0), V::log);
    EXPECT_EQ(log.on_failure("HTTP 503", t0 + 1min), V::quiet);
    EXPECT_EQ(log.on_failure("HTTP 503", t0 + 59min), V::quiet);
    EXPECT_EQ(log.on_failure("HTTP 503", t0 + 61min), V::repeat);
    EXPECT_EQ(log.on_failure("timed out", t0 + 62min), V::log);
    EXPECT_EQ(log.on_success(), 5u);
    EXPECT_EQ(log.on_success(), 0u);
    EXPECT_EQ(log.on_failure("timed out", t0 + 63min), V::log) << "a success resets the memory";
}

TEST(Scheduler, RefreshesAtOnceThenOnCadenceUntilStopped) {
    boost::asio::io_context ioc;
    Scheduler scheduler(ioc.get_executor());
    int runs = 0;
    bool emptied = false;
    scheduler.on_empty = [&] { emptied = true; };
    scheduler.start("a", {}, {.interval = 1ms, .jitter = 0.1, .retry_min = 1ms, .retry_max = 1ms},
                    [&]() -> boost::asio::awaitable<RefreshResult> {
                        if (++runs == 3) scheduler.stop("a");
                        co_return RefreshResult{};
                    });
    EXPECT_EQ(scheduler.alive(), 1u);
    ioc.run();
    EXPECT_EQ(runs, 3);
    EXPECT_TRUE(emptied);
    EXPECT_EQ(scheduler.alive(), 0u);
}

TEST(Scheduler, FailingInstanceRetriesWithoutHoldingUpOthers) {
    boost::asio::io_context ioc;
    Scheduler scheduler(ioc.get_executor());
    int healthy = 0, failing = 0;
    const RetryPolicy fast{.interval = 2ms, .jitter = 0, .retry_min = 1ms, .retry_max = 1ms};
    scheduler.start("bad", {}, fast, [&]() -> boost::asio::awaitable<RefreshResult> {
        ++failing;
        co_return RefreshResult{.failure = fail(Stage::http, "HTTP 500")};
    });
    scheduler.start("good", {}, fast, [&]() -> boost::asio::awaitable<RefreshResult> {
        if (++healthy == 5) scheduler.stop_all();
        co_return RefreshResult{};
    });
    ioc.run();
    EXPECT_EQ(healthy, 5);
    EXPECT_GE(failing, 2) << "the failing one kept retrying";
}

TEST(Scheduler, AnExceptionInOneRefreshIsAFailureNotACrash) {
    boost::asio::io_context ioc;
    Scheduler scheduler(ioc.get_executor());
    int runs = 0;
    scheduler.start("x", {}, {.interval = 1ms, .jitter = 0, .retry_min = 1ms, .retry_max = 1ms},
                    [&]() -> boost::asio::awaitable<RefreshResult> {
                        if (++runs == 2) scheduler.stop("x");
                        throw std::runtime_error("boom");
                        co_return RefreshResult{};
                    });
    ioc.run();
    EXPECT_EQ(runs, 2);
}

TEST(Scheduler, StartingANameAgainReplacesItsLoop) {
    boost::asio::io_context ioc;
    Scheduler scheduler(ioc.get_executor());
    int old_runs = 0, new_runs = 0;
    const RetryPolicy slow{.interval = 1h, .jitter = 0, .retry_min = 1h, .retry_max = 1h};
    scheduler.start("x", {}, slow, [&]() -> boost::asio::awaitable<RefreshResult> {
        ++old_runs;
        co_return RefreshResult{};
    });
    while (old_runs == 0) ioc.run_one();  // up to the old loop's first refresh
    scheduler.start("x", {}, slow, [&]() -> boost::asio::awaitable<RefreshResult> {
        ++new_runs;
        scheduler.stop_all();
        co_return RefreshResult{};
    });
    ioc.run();
    EXPECT_EQ(old_runs, 1);
    EXPECT_EQ(new_runs, 1);
    EXPECT_EQ(scheduler.alive(), 0u);
}

TEST(Scheduler, ACheckThatFindsTheServerRotatedRefreshesAtOnce) {
    boost::asio::io_context ioc;
    Scheduler scheduler(ioc.get_executor());
    int runs = 0, checks = 0;
    scheduler.start(
        "x", {}, {.interval = 1h, .jitter = 0, .retry_min = 1h, .retry_max = 1h},
        [&]() -> boost::asio::awaitable<RefreshResult> {
            if (++runs == 2) scheduler.stop_all();
            co_return RefreshResult{};
        },
        Scheduler::Checker{[&]() -> boost::asio::awaitable<CheckResult> {
                               ++checks;
                               co_return CheckResult{.problem = fail(Stage::live, "rotated"),
                                                     .refresh_now = true};
                           },
                           1ms});
    ioc.run();
    EXPECT_EQ(runs, 2) << "the hourly refresh came early";
    EXPECT_EQ(checks, 1);
}

TEST(Scheduler, ChecksDoNotBypassTheBackoffOfAFailingInstance) {
    boost::asio::io_context ioc;
    Scheduler scheduler(ioc.get_executor());
    int runs = 0, checks = 0;
    scheduler.start(
        "x", {}, {.interval = 1h, .jitter = 0, .retry_min = 1h, .retry_max = 1h},
        [&]() -> boost::asio::awaitable<RefreshResult> {
            ++runs;
            co_return RefreshResult{.failure = fail(Stage::http, "HTTP 503: unavailable")};
        },
        Scheduler::Checker{[&]() -> boost::asio::awaitable<CheckResult> {
                               if (++checks == 3) scheduler.stop_all();
                               co_return CheckResult{.problem = fail(Stage::live, "rotated"),
                                                     .refresh_now = true};
                           },
                           1ms});
    ioc.run();
    EXPECT_EQ(runs, 1);
    EXPECT_EQ(checks, 3);
}

TEST(Scheduler, AServerAheadOfAnAnsweringApiIsRefetchedAtTheCheckCadence) {
    // The API answers, but with the old CA: only the live check fails. The
    // next refresh is one check interval away, not retry_min (1h) away.
    boost::asio::io_context ioc;
    Scheduler scheduler(ioc.get_executor());
    std::vector<std::chrono::steady_clock::duration> delays;
    scheduler.on_scheduled = [&](const std::string&, std::chrono::steady_clock::time_point at) {
        delays.push_back(at - std::chrono::steady_clock::now());
        if (delays.size() == 2) scheduler.stop_all();
    };
    scheduler.start(
        "x", {}, {.interval = 1h, .jitter = 0, .retry_min = 1h, .retry_max = 1h},
        [&]() -> boost::asio::awaitable<RefreshResult> {
            co_return RefreshResult{.failure = fail(Stage::live, "the API has not served it yet")};
        },
        Scheduler::Checker{[&]() -> boost::asio::awaitable<CheckResult> {
                               co_return CheckResult{.problem = fail(Stage::live, "rotated"),
                                                     .refresh_now = true};
                           },
                           5ms});
    ioc.run();
    ASSERT_EQ(delays.size(), 2u) << "a second refresh came at the check cadence";
    for (const auto d : delays) EXPECT_LE(d, 5ms);
}

TEST(Scheduler, WithAdmissionAJobRunsOnlyWhileItHoldsASlot) {
    boost::asio::io_context ioc;
    Scheduler scheduler(ioc.get_executor());
    Semaphore admission(ioc.get_executor(), 1);
    ASSERT_TRUE(admission.try_send(boost::system::error_code{}));  // someone else holds the slot
    int runs = 0;
    bool slot_held_during_job = false;
    scheduler.start(
        "a", {}, policy,
        [&]() -> boost::asio::awaitable<RefreshResult> {
            ++runs;
            slot_held_during_job = !admission.try_send(boost::system::error_code{});
            scheduler.stop("a");
            co_return RefreshResult{};
        },
        std::nullopt, &admission);
    ioc.poll();
    EXPECT_EQ(runs, 0) << "no slot, no job";
    ASSERT_TRUE(admission.try_receive([](boost::system::error_code) {}));  // the holder is done
    ioc.restart();
    ioc.run();
    EXPECT_EQ(runs, 1);
    EXPECT_TRUE(slot_held_during_job);
    EXPECT_TRUE(admission.try_send(boost::system::error_code{})) << "freed when the job ended";
}

// An API that cannot be reached is logged once for all its instances, and so
// is its return; no instance logs a recovery of its own for it.
TEST(Scheduler, AnUnreachableApiIsLoggedOnceForAllItsInstances) {
    std::ostringstream out;
    const auto previous = spdlog::default_logger();
    auto logger = std::make_shared<spdlog::logger>(
        "t", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
    logger->set_pattern("%l %v");
    spdlog::set_default_logger(logger);

    boost::asio::io_context ioc;
    Scheduler scheduler(ioc.get_executor());
    const RetryPolicy fast{.interval = 1h, .jitter = 0, .retry_min = 1ms, .retry_max = 1ms};
    int failures = 0, successes = 0;
    for (std::string name : {"a", "b", "c"}) {
        scheduler.start(name, {}, fast, [&, name]() -> boost::asio::awaitable<RefreshResult> {
            if (failures < 9) {  // about three failed attempts each
                ++failures;
                co_return RefreshResult{
                    .failure = fail(Stage::connect, "GET /orgs/o/instances/" + name +
                                                        " on https://api: connect refused"),
                    .unreachable_origin = "https://api"};
            }
            if (++successes == 3) scheduler.stop_all();
            co_return RefreshResult{};
        });
    }
    ioc.run();
    spdlog::set_default_logger(previous);

    const auto text = out.str();
    const auto count = [&](const std::string& what) {
        std::size_t n = 0;
        for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
        return n;
    };
    EXPECT_EQ(successes, 3);
    EXPECT_EQ(count("refresh failed"), 1u) << text;
    EXPECT_NE(text.find("GET /orgs/o/instances/"), std::string::npos)
        << "names an instance's request";
    EXPECT_EQ(count("https://api answers again after 9 failed refresh(es)"), 1u) << text;
    EXPECT_EQ(count("recovered"), 0u) << text;
}
