// The running fleet: one scheduler loop per instance, started a chunk at a
// time, and a new instance set applied by stopping and starting loops.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <optional>

#include "rootcertd/core/model.hpp"
#include "rootcertd/runtime/fleet.hpp"
#include "rootcertd/runtime/scheduler.hpp"
#include "rootcertd/sources/services.hpp"

namespace rootcertd {

class FleetLoops {
  public:
    // The jobs of one instance's loop: its refresh and, with a server, its live
    // check. Both hold INSTANCE, the loop's one copy.
    struct Jobs {
        Scheduler::Job refresh;
        std::optional<Scheduler::Checker> checker;
    };
    using MakeJobs = std::function<Jobs(const std::shared_ptr<Services>& services,
                                        std::shared_ptr<const Instance> instance)>;

    FleetLoops(boost::asio::io_context& ioc, MakeJobs make_jobs);
    FleetLoops(const FleetLoops&) = delete;
    FleetLoops& operator=(const FleetLoops&) = delete;

    // Starts a loop for every instance of SERVICES, a chunk at a time: the
    // event loop runs what is ready between chunks, so the first refreshes
    // are under way before the last of 5,000 loops has started.
    void start_all(const std::shared_ptr<Services>& services);
    // Starts at once what start_all() has yet to start (before a diff,
    // which expects every loop running).
    void finish_starting() { start_some(SIZE_MAX); }
    // DIFF applied to the running loops: stopped for removed instances,
    // started for the added and changed ones of SERVICES' instances.
    void apply(const std::shared_ptr<Services>& services, const FleetDiff& diff);
    // Every loop ends at its next wait; nothing more starts.
    void stop_all();

    // Its callbacks (on_empty, on_scheduled) and alive().
    Scheduler& scheduler() { return scheduler_; }

  private:
    void start_some(std::size_t chunk);
    void start(const std::shared_ptr<Services>& services, const Instance& instance);

    boost::asio::io_context& ioc_;
    MakeJobs make_jobs_;
    Scheduler scheduler_;
    std::shared_ptr<Services> starting_;  // whose instances start_some() is starting
    std::size_t next_start_ = 0;
};

}  // namespace rootcertd
