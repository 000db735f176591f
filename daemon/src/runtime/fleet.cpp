#include "rootcertd/runtime/fleet.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <map>
#include <set>

#include "rootcertd/runtime/runtime.hpp"
#include "rootcertd/sources/services.hpp"

namespace rootcertd {

namespace asio = boost::asio;

Composed compose_instances(const std::vector<Instance>& listed,
                           const std::vector<std::pair<std::string, Listing>>& found) {
    Composed out;
    out.instances = listed;
    out.from.assign(listed.size(), "listed");
    std::map<std::string, std::string, std::less<>> taken;  // name -> who has it
    for (const auto& inst : listed) taken.emplace(inst.name, "a listed instance");
    for (const auto& [label, listing] : found) {
        out.refused.insert(out.refused.end(), listing.refused.begin(), listing.refused.end());
        for (const auto& inst : listing.instances) {
            const auto [it, fresh] = taken.emplace(inst.name, label + " (listed before it)");
            if (!fresh) {
                out.refused.push_back(
                    {inst.name, label, "the name is already used by " + it->second});
                continue;
            }
            out.instances.push_back(inst);
            out.from.push_back(label);
        }
    }
    return out;
}

Confirmed confirm_removals(const Listing* previous, Listing next,
                           const std::vector<std::string>& pending, bool confirm) {
    if (!confirm || previous == nullptr) return {std::move(next), {}};
    std::set<std::string_view> listed;
    for (const auto& inst : next.instances) listed.insert(inst.name);
    std::vector<const Instance*> missing;
    for (const auto& inst : previous->instances) {
        if (!listed.contains(inst.name)) missing.push_back(&inst);
    }
    if (missing.size() < 2 || missing.size() * 2 <= previous->instances.size()) {
        return {std::move(next), {}};
    }
    std::vector<std::string> names;
    for (const auto* inst : missing) names.push_back(inst->name);
    std::sort(names.begin(), names.end());
    if (names == pending) return {std::move(next), {}};  // a second list agrees
    for (const auto* inst : missing) next.instances.push_back(*inst);
    return {std::move(next), std::move(names)};
}

std::size_t kept_from(const Composed& composed, const std::string& source) {
    return static_cast<std::size_t>(std::count(composed.from.begin(), composed.from.end(), source));
}

asio::awaitable<DiscoveredAll> discover_all(std::shared_ptr<Services> s,
                                            std::vector<Instance> listed) {
    DiscoveredAll out;
    std::vector<std::pair<std::string, Listing>> found;
    for (const auto& d : s->config.discover) {
        auto instances = co_await list_instances(s, d);
        if (!instances) {
            out.failures.emplace_back(d.label(), instances.failure());
            continue;
        }
        found.emplace_back(d.label(), std::move(instances.value()));
    }
    out.composed = compose_instances(listed, found);
    for (const auto& [label, _] : found)
        out.kept.emplace_back(label, kept_from(out.composed, label));
    co_return out;
}

std::optional<DiscoveredAll> discover_once(Runtime& rt, const std::shared_ptr<Services>& s) {
    std::optional<DiscoveredAll> result;
    asio::co_spawn(rt.loop(), discover_all(s, s->config.instances),
                   [&](std::exception_ptr e, DiscoveredAll r) {
                       if (!e) result = std::move(r);
                       rt.loop().stop();  // kept-alive connections' timers wait for the pass
                   });
    rt.loop().run();
    rt.loop().restart();
    return result;
}

void Fleet::reload(const Config& config) {
    listed_ = config.instances;
    std::erase_if(found_, [&](const auto& entry) {
        return std::none_of(config.discover.begin(), config.discover.end(),
                            [&](const Discovery& d) { return d.label() == entry.first; });
    });
}

Fleet::Accepted Fleet::accept(const Discovery& source, Listing list, const Config& config) {
    const std::string label = source.label();
    const auto at =
        std::find_if(found_.begin(), found_.end(), [&](const auto& e) { return e.first == label; });
    auto& pending = pending_removal_[label];
    auto confirmed = confirm_removals(at == found_.end() ? nullptr : &at->second, std::move(list),
                                      pending, source.confirm_mass_removal);
    Accepted out;
    out.newly_pending = !confirmed.pending.empty() && confirmed.pending != pending;
    out.before = at == found_.end() ? 0 : at->second.instances.size();
    pending = std::move(confirmed.pending);
    out.pending = pending;
    if (at != found_.end()) {
        at->second = std::move(confirmed.listing);
        return out;
    }
    found_.emplace_back(label, std::move(confirmed.listing));
    // In the order of the discover entries: the first wins a name.
    std::vector<std::pair<std::string, Listing>> ordered;
    for (const auto& d : config.discover) {
        for (auto& e : found_) {
            if (e.first == d.label()) ordered.push_back(std::move(e));
        }
    }
    found_ = std::move(ordered);
    return out;
}

bool Fleet::a_source_has_not_listed(const Config& config) const {
    return std::any_of(config.discover.begin(), config.discover.end(), [&](const Discovery& d) {
        return std::none_of(found_.begin(), found_.end(),
                            [&](const auto& e) { return e.first == d.label(); });
    });
}

std::string join_names(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& name : names) out += (out.empty() ? "" : ",") + name;
    return out.empty() ? "-" : out;
}

FleetDiff diff_fleet(const std::vector<Instance>& before, const std::vector<Instance>& after) {
    std::map<std::string, const Instance*> old;
    for (const auto& inst : before) old[inst.name] = &inst;
    FleetDiff diff;
    for (const auto& inst : after) {
        auto it = old.find(inst.name);
        if (it == old.end()) {
            diff.added.push_back(inst.name);
            continue;
        }
        if (!(*it->second == inst)) diff.changed.push_back(inst.name);
        old.erase(it);
    }
    for (const auto& [name, _] : old) diff.removed.push_back(name);
    return diff;
}

std::string FleetDiff::describe() const {
    return "added " + join_names(added) + "; changed " + join_names(changed) + "; removed " +
           join_names(removed) + " (files kept, no longer refreshed)";
}

}  // namespace rootcertd
