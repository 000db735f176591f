#include "rootcertd/runtime/fleet_loops.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "rootcertd/config/config.hpp"
#include "tempdir.hpp"

using namespace rootcertd;
using rootcertd::test::TempDir;

namespace {

// A refresh that records which instance ran.
boost::asio::awaitable<RefreshResult> record(std::vector<std::string>* ran, std::string name) {
    ran->push_back(std::move(name));
    co_return RefreshResult{};
}

Config fleet_config(const TempDir& dir, const std::string& instances) {
    return parse_config("cert_dir: " + (dir.path() / "certs").string() +
                            "\nstate_dir: " + (dir.path() / "state").string() +
                            "\nrefresh_interval: 1h\njitter: 0\n"
                            "instances:\n" +
                            instances,
                        "test.yaml");
}

class Loops : public ::testing::Test {
  protected:
    Loops() {
        services = make_services(ioc.get_executor(),
                                 fleet_config(dir,
                                              "  - {name: a, source: {provider: azure}}\n"
                                              "  - {name: b, source: {provider: azure}}\n"
                                              "  - {name: c, source: {provider: azure}}\n"),
                                 pool)
                       .value();
    }
    ~Loops() override { pool.join(); }

    // Runs what is ready until N refreshes have run in all (each loop's
    // first one is at once; the next is an hour away). Never blocks: a loop
    // that should not exist shows as a count, not as a hang.
    void run_until(std::size_t n) {
        for (int turns = 0; ran.size() < n && turns < 100; ++turns) ioc.poll();
    }

    TempDir dir;
    boost::asio::io_context ioc;
    boost::asio::thread_pool pool{1};
    std::shared_ptr<Services> services;
    std::vector<std::string> ran;
    FleetLoops loops{
        ioc, [this](const std::shared_ptr<Services>&, std::shared_ptr<const Instance> inst) {
            return FleetLoops::Jobs{[this, inst] { return record(&ran, inst->name); },
                                    std::nullopt};
        }};
};

}  // namespace

TEST_F(Loops, StartAllRunsEveryInstanceOnce) {
    loops.start_all(services);
    run_until(3);
    EXPECT_EQ(ran, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(loops.scheduler().alive(), 3u);
    loops.stop_all();
    ioc.poll();  // every loop ends at its wait
    EXPECT_EQ(loops.scheduler().alive(), 0u);
    EXPECT_EQ(ran.size(), 3u);
}

TEST_F(Loops, ADiffStopsTheRemovedAndStartsTheAddedAndChanged) {
    loops.start_all(services);
    run_until(3);
    auto next = fleet_config(dir,
                             "  - {name: b, refresh_interval: 2h, source: {provider: azure}}\n"
                             "  - {name: c, source: {provider: azure}}\n"
                             "  - {name: d, source: {provider: azure}}\n")
                    .instances;
    const auto diff = diff_fleet(services->config.instances, next);
    ASSERT_EQ(diff.removed, std::vector<std::string>{"a"});
    services->config.instances = std::move(next);
    loops.apply(services, diff);
    run_until(5);
    // b was changed and d added: each refreshes at once; c keeps its loop.
    EXPECT_EQ(ran, (std::vector<std::string>{"a", "b", "c", "b", "d"}));
    ioc.poll();
    EXPECT_EQ(loops.scheduler().alive(), 3u) << "a's loop ended, b's was replaced";
    loops.stop_all();
    ioc.poll();
    EXPECT_EQ(loops.scheduler().alive(), 0u);
}

TEST_F(Loops, StartAllStartsAChunkPerTurnAndFinishStartingTheRest) {
    std::string twenty;
    for (int i = 0; i < 20; ++i) {
        twenty += "  - {name: i" + std::to_string(i) + ", source: {provider: azure}}\n";
    }
    services->config.instances = fleet_config(dir, twenty).instances;
    loops.start_all(services);
    EXPECT_EQ(loops.scheduler().alive(), 16u) << "16 loops per turn of the event loop";
    loops.finish_starting();
    EXPECT_EQ(loops.scheduler().alive(), 20u);
    loops.stop_all();
    ioc.poll();
    EXPECT_EQ(loops.scheduler().alive(), 0u);
}
