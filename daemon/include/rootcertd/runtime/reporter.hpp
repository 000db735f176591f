// The log lines refresh outcomes produce, the same for the daemon and --once.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "rootcertd/core/logging.hpp"
#include "rootcertd/core/model.hpp"
#include "rootcertd/pki/rotation.hpp"
#include "rootcertd/runtime/fleet.hpp"
#include "rootcertd/sources/hooks.hpp"
#include "rootcertd/sources/results.hpp"
#include "rootcertd/store/cert_store.hpp"
#include "rootcertd/store/outputs.hpp"

namespace rootcertd {

// What the log already said about one instance's refreshes.
struct InstanceLog {
    FailureLog failures, warnings;
    std::optional<std::string> outage;  // the unreachable origin its last refresh met
};

// Logs refresh outcomes so that a persistent failure does not flood the log:
// a failure when it starts or changes (and hourly while it lasts), a
// recovery once, and an API origin that cannot be reached once for all the
// instances behind it (the others at debug level). Every line carries the
// instance's name, org and id as structured fields. Event loop only.
class Reporter {
  public:
    // The fields of an instance's lines, built only for a line that is
    // logged: most refreshes log nothing, and a daemon's loop keeps this
    // instead of the fields. Empty: no fields.
    using Labels = std::function<LogFields()>;

    // After a refresh of instance NAME, whose lines carry LABELS(). RETRY is
    // when the daemon tries again, or nullopt for --once, whose failures are
    // errors; NOW orders repeats.
    void refreshed(const std::string& name, const Labels& labels, const RefreshResult& result,
                   InstanceLog& log, std::optional<Duration> retry,
                   std::chrono::steady_clock::time_point now);

    // After a live check of instance NAME: a problem when it starts or
    // changes (and hourly), passing again once (LOG: what was said).
    static void checked(const std::string& name, const Labels& labels, const CheckResult& check,
                        FailureLog& log, std::chrono::steady_clock::time_point now);

    // --once, at the end: "N instance(s) could not reach ORIGIN", per origin,
    // then "refreshed X/TOTAL instance(s) in N ms", naming each failed
    // instance with its reason (up to 20; the rest are counted).
    void summarize_pass(std::size_t total, std::chrono::milliseconds took) const;

    // Whether --once counts RESULT as a failure: the refresh failed, or the
    // live check could not reach the instance's host.
    static bool failed_pass(const RefreshResult& result) {
        return !result.ok() || result.live_unreachable;
    }

  private:
    std::map<std::string, FailureLog> unreachable_;            // by origin, shared by its instances
    std::vector<std::pair<std::string, std::string>> failed_;  // --once: name, reason
};

// The line about an instance's file after an install that changed it:
// installed (created), CA changed (with the fingerprints before and after and
// what the rotation added, kept and dropped), or restored (something other
// than rootcertd had changed it).
void log_change(const Instance& instance, const std::filesystem::path& path, const Installed& done,
                const CertBundle& installed, const Composition& rotation);

// The line about an on_change run of NAME (an instance or an output):
// what it did, or why it failed and, in the daemon, when it is retried.
void log_hook_run(const std::string& name, const LogFields& labels, const std::string& program,
                  const HookRun& run, std::optional<Duration> retry);

// The refresh pipeline's own lines: a rotation state that cannot be read
// (the file is adopted instead), and a server that does not yet present a
// certificate under the new CA (both are installed together).
void log_unreadable_state(const std::string& name, const std::string& why);
void log_server_behind(const Instance& instance, const std::string& server);

// The line about an output's write (outputs:): written, with the
// fingerprints added and removed; waiting for members' files; failed.
// Unchanged: debug only.
void log_output_write(const Output& output, const std::vector<std::string>& members,
                      const Outcome<OutputWrite>& done);

// Discovery's lines. --once's pass: each failed list and refused instance
// (errors), then how many instances each source kept.
void log_discovery_pass(const DiscoveredAll& pass);

// The daemon's: each refused instance once per source and name (LOGGED:
// those already said).
void log_refused(const std::vector<Refused>& refused, std::set<std::string>& logged);

// The daemon's, after SOURCE listed: again after FAILURES failed lists; a
// list that leaves out instances kept until the next one agrees; the
// instances KEPT and what changed (nothing when nothing did).
void log_listed(const Discovery& source, unsigned failures, const Fleet::Accepted& accepted,
                std::size_t kept, const FleetDiff& change);

// The daemon's, after SOURCE's list failed: said when it starts, changes
// or repeats hourly (LOG).
void log_list_failed(const Failure& failure, FailureLog& log);

// The structured fields of every log line about INSTANCE: name, org, id.
LogFields labels_of(const Instance& instance);

// "250ms", "30s", "5m", "2h": a delay as an operator reads it.
std::string human(Duration d);

}  // namespace rootcertd
