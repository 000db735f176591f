#include "rootcertd/runtime/fleet_loops.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <string_view>
#include <unordered_set>

#include "rootcertd/runtime/reporter.hpp"

namespace rootcertd {

namespace asio = boost::asio;

namespace {

// Loops started per turn of the event loop at start-up and reload. Each turn
// also runs the TLS handshakes and requests that are ready, so a small chunk
// gets the first file written sooner (docs/architecture.md, "Start-up in
// chunks", has the measurements).
constexpr std::size_t kStartChunk = 16;

}  // namespace

FleetLoops::FleetLoops(asio::io_context& ioc, MakeJobs make_jobs)
    : ioc_(ioc), make_jobs_(std::move(make_jobs)), scheduler_(ioc.get_executor()) {}

void FleetLoops::start_all(const std::shared_ptr<Services>& services) {
    starting_ = services;
    next_start_ = 0;
    start_some(kStartChunk);
}

void FleetLoops::start_some(std::size_t chunk) {
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

void FleetLoops::apply(const std::shared_ptr<Services>& services, const FleetDiff& diff) {
    for (const auto& name : diff.removed) scheduler_.stop(name);
    // A set, not a search per instance: a first list can add thousands.
    std::unordered_set<std::string_view> starting(diff.added.begin(), diff.added.end());
    starting.insert(diff.changed.begin(), diff.changed.end());
    for (const auto& inst : services->config.instances) {
        if (starting.contains(inst.name)) start(services, inst);
    }
}

void FleetLoops::stop_all() {
    starting_.reset();
    scheduler_.stop_all();
}

void FleetLoops::start(const std::shared_ptr<Services>& s, const Instance& inst) {
    const RetryPolicy policy{inst.refresh_interval, s->config.jitter, s->config.retry_min,
                             s->config.retry_max};
    // One copy shared by the loop's two jobs: a fleet has thousands of loops.
    auto shared = std::make_shared<const Instance>(inst);
    auto jobs = make_jobs_(s, shared);
    scheduler_.start(
        inst.name, [shared] { return labels_of(*shared); }, policy, std::move(jobs.refresh),
        std::move(jobs.checker), &s->refreshes_admitted);
}

}  // namespace rootcertd
