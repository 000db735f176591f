// The fleet: which instances run. The configuration's own instances, each
// discovery source's last good list, the instances composed from them (a
// name once), what changed between two sets, and the one discovery pass
// that --once and --list-instances start from.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rootcertd/core/model.hpp"
#include "rootcertd/sources/discovery.hpp"

namespace rootcertd {

class Runtime;
struct Services;

// What is kept: LISTED first, then each source's instances in order. A name
// already taken is refused, with why.
struct Composed {
    std::vector<Instance> instances;
    std::vector<std::string> from;  // for each instance: "listed" or its source's label
    std::vector<Refused> refused;
};
Composed compose_instances(const std::vector<Instance>& listed,
                           const std::vector<std::pair<std::string, Listing>>& found);

// Every discovery source of SERVICES listed once, in order, and composed
// with LISTED: what --once and --list-instances start from.
struct DiscoveredAll {
    Composed composed;
    std::vector<std::pair<std::string, Failure>> failures;  // by source label
    std::vector<std::pair<std::string, std::size_t>> kept;  // source, instances kept
};
boost::asio::awaitable<DiscoveredAll> discover_all(std::shared_ptr<Services> services,
                                                   std::vector<Instance> listed);

// NEXT, a source's new list, held against the list kept before (PREVIOUS,
// none after a start) when CONFIRM: a list that leaves out more than half of
// the previous instances, and at least two, may be wrong (a token for
// another project, a partial page). Those instances are kept, and named in
// `pending`, until a list leaves out the same ones again (PENDING, the
// previous call's): then they go.
struct Confirmed {
    Listing listing;
    std::vector<std::string> pending;
};
Confirmed confirm_removals(const Listing* previous, Listing next,
                           const std::vector<std::string>& pending, bool confirm);

// How many of SOURCE's instances COMPOSED kept.
std::size_t kept_from(const Composed& composed, const std::string& source);

// --once and --list-instances: every discovery source of S listed once,
// composed with S's instances; runs RT's loop until that is done. Nullopt
// when the pass itself ended in an exception.
std::optional<DiscoveredAll> discover_once(Runtime& rt, const std::shared_ptr<Services>& s);

// What the daemon runs: the configuration's instances and every source's
// last good list, kept in the order of the discover entries (the first one
// keeps a name). Event loop only.
class Fleet {
  public:
    explicit Fleet(std::vector<Instance> listed) : listed_(std::move(listed)) {}

    // After a reload: CONFIG's instances are the listed ones; the lists of
    // sources it no longer has are dropped, the others kept until they list
    // again.
    void reload(const Config& config);

    // A source's new list, held against its last one (confirm_mass_removal).
    struct Accepted {
        std::vector<std::string> pending;  // left out, kept until a list agrees
        bool newly_pending = false;        // pending, and not what it was
        std::size_t before = 0;            // instances in the source's last list
    };
    Accepted accept(const Discovery& source, Listing list, const Config& config);

    // The listed instances, then every source's, names checked.
    Composed compose() const { return compose_instances(listed_, found_); }

    // Whether a discover entry of CONFIG has not listed since start: the
    // pg_service.conf sections it had then stay as they are in the file.
    bool a_source_has_not_listed(const Config& config) const;

  private:
    std::vector<Instance> listed_;
    std::vector<std::pair<std::string, Listing>> found_;               // by source label
    std::map<std::string, std::vector<std::string>> pending_removal_;  // by source label
};

// "a,b,c", or "-" for none: instance names in a log line.
std::string join_names(const std::vector<std::string>& names);

// What changed from one set of instances to the next, by name.
struct FleetDiff {
    std::vector<std::string> added, changed, removed;
    bool empty() const { return added.empty() && changed.empty() && removed.empty(); }
    // "added a,b; changed -; removed c (files kept, no longer refreshed)"
    std::string describe() const;
};
FleetDiff diff_fleet(const std::vector<Instance>& before, const std::vector<Instance>& after);

}  // namespace rootcertd
