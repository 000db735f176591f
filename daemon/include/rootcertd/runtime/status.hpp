// What rootcertd knows about each instance, for /status, /readyz, metrics and sd_notify.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rootcertd/core/model.hpp"
#include "rootcertd/pki/cert_bundle.hpp"
#include "rootcertd/sources/discovery.hpp"
#include "rootcertd/sources/results.hpp"
#include "rootcertd/store/outputs.hpp"

namespace rootcertd {

struct InstanceStatus {
    std::string name, org, id, provider, file;
    bool attempted = false;            // a first refresh has completed, either way
    bool file_valid = false;           // a valid CA file is in place (this run or found at start)
    std::string fingerprint;           // of the installed file's certificates, comma-separated
    std::optional<SysTime> not_after;  // latest notAfter in the installed file
    std::optional<SysTime> last_success;
    std::string last_error;
    std::optional<SysTime> next_refresh;
    double refresh_interval = 0;  // seconds: the alert on a failing refresh compares with it
    std::uint64_t successes = 0, failures = 0, changes = 0;
    std::uint64_t not_modified = 0;  // successes that were a 304
    unsigned consecutive_failures = 0;
    std::optional<bool> live_ok;              // last live check, when the instance has a host
    std::optional<SysTime> server_not_after;  // the server leaf's notAfter at that check
    std::uint64_t hook_successes = 0, hook_failures = 0;
};

// Process-wide counters that belong to no instance.
struct GlobalStatus {
    std::optional<SysTime> token_expiry;
    // Refresh latency histogram (seconds): cumulative counts per upper bound.
    static constexpr double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    std::uint64_t latency_counts[std::size(buckets)] = {};
    std::uint64_t latency_count = 0;
    double latency_sum = 0;
    void observe_latency(double seconds);
};

// One discovery source: what its last list kept, and how it went.
struct DiscoveryStatus {
    std::size_t kept = 0;
    std::optional<SysTime> last_success;
    std::string last_error;
    std::vector<std::string> pending_removal;  // kept until the next list agrees
};

// One output (outputs:): its members and its last write.
struct OutputStatus {
    std::string path, format;
    std::vector<std::string> members;
    std::vector<std::string> waiting_for;  // members without a file: not written yet
    std::size_t certificates = 0;          // in the file at the last write or check
    std::optional<SysTime> last_change;
    std::string last_error;
    std::uint64_t writes_ok = 0, writes_failed = 0;  // writes that changed the file, failures
    std::uint64_t hook_successes = 0, hook_failures = 0;
};

// Event-loop only. Instances are kept in name order.
class StatusBoard {
  public:
    // Makes the board list exactly CONFIG's instances, keeping what it knew
    // about those that stay.
    void sync(const Config& config);

    // What each event says about an instance, recorded by the board itself.
    // An instance a reload removed meanwhile is not recorded.
    // After a refresh that took TOOK_SECONDS:
    void record_refresh(const std::string& name, const RefreshResult& result, double took_seconds);
    // After a live check between refreshes:
    void record_check(const std::string& name, const CheckResult& check);
    // After an on_change hook ended:
    void record_hook(const std::string& name, bool ok);
    // A valid file found at start-up: counts until a refresh says otherwise.
    void record_found(const std::string& name, const CertBundle& bundle);
    // A discovery source listed KEPT instances, or failed with ERROR.
    void record_discovery(const std::string& source, std::optional<std::size_t> kept,
                          const std::string& error = "");
    // The instances SOURCE's last list left out that wait for the next to agree.
    void record_pending_removal(const std::string& source, std::vector<std::string> names);
    // After an output's write (OutputWriter::on_written).
    void record_output(const Output& output, const std::vector<std::string>& members,
                       const Outcome<OutputWrite>& done);
    const std::map<std::string, OutputStatus>& outputs() const { return outputs_; }
    // Discovered instances refused for their name, and why.
    std::vector<Refused> refused;
    const std::map<std::string, DiscoveryStatus>& discovery() const { return discovery_; }
    // When the instance's next refresh is due.
    void record_schedule(const std::string& name, SysTime next);

    InstanceStatus* find(const std::string& name);
    const std::map<std::string, InstanceStatus>& instances() const { return instances_; }
    GlobalStatus& global() { return global_; }
    const GlobalStatus& global() const { return global_; }

    bool all_attempted() const;
    // Every instance has a valid file in place; REASON says which do not.
    Outcome<void> ready() const;
    // "3/3 fresh" or "2/3 fresh; failing: prod (HTTP 404: ...)".
    std::string summary() const;
    // GET /status: a JSON document with every instance.
    std::string to_json() const;

  private:
    std::map<std::string, InstanceStatus> instances_;
    std::map<std::string, DiscoveryStatus> discovery_;
    std::map<std::string, OutputStatus> outputs_;
    GlobalStatus global_;
};

// Prometheus text exposition format 0.0.4 for BOARD.
std::string render_metrics(const StatusBoard& board);

}  // namespace rootcertd
