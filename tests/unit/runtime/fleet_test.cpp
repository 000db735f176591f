#include "rootcertd/runtime/fleet.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace rootcertd;

TEST(Fleet, ListedInstancesWinAndTheFirstFoundKeepsAName) {
    Instance listed;
    listed.name = "prod";
    Instance a, b, c;
    a.name = "prod";
    b.name = "x";
    c.name = "x";
    const Refused bad{"y", "digitalocean", "host 'h x' is not a host name or address"};
    const auto out = compose_instances(
        {listed}, {{"tembo:o", Listing{{a, b}, {}}}, {"digitalocean", Listing{{c}, {bad}}}});
    ASSERT_EQ(out.instances.size(), 2u);
    EXPECT_EQ(out.from, (std::vector<std::string>{"listed", "tembo:o"}));
    ASSERT_EQ(out.refused.size(), 3u);
    EXPECT_EQ(out.refused[0],
              (Refused{"prod", "tembo:o", "the name is already used by a listed instance"}));
    EXPECT_EQ(out.refused[1], bad) << "refused by its list, shown with the rest";
    EXPECT_EQ(out.refused[2].reason, "the name is already used by tembo:o (listed before it)");
    EXPECT_EQ(kept_from(out, "tembo:o"), 1u);
    EXPECT_EQ(kept_from(out, "digitalocean"), 0u);
}

namespace {
Listing named(std::initializer_list<const char*> names) {
    Listing l;
    for (const char* n : names) {
        Instance inst;
        inst.name = n;
        l.instances.push_back(inst);
    }
    return l;
}
std::vector<std::string> names_of(const Listing& l) {
    std::vector<std::string> out;
    for (const auto& inst : l.instances) out.push_back(inst.name);
    std::sort(out.begin(), out.end());
    return out;
}
}  // namespace

TEST(Fleet, AMassRemovalWaitsForTheNextListToAgree) {
    const auto before = named({"a", "b", "c", "d"});
    // A list without three of four (a token for another project?): kept.
    auto first = confirm_removals(&before, named({"a"}), {}, true);
    EXPECT_EQ(names_of(first.listing), (std::vector<std::string>{"a", "b", "c", "d"}));
    EXPECT_EQ(first.pending, (std::vector<std::string>{"b", "c", "d"}));
    // The next list leaves out the same: they go.
    auto second = confirm_removals(&first.listing, named({"a"}), first.pending, true);
    EXPECT_EQ(names_of(second.listing), (std::vector<std::string>{"a"}));
    EXPECT_TRUE(second.pending.empty());
    // The next list has them back: nothing goes, nothing waits.
    auto back = confirm_removals(&first.listing, named({"a", "b", "c", "d"}), first.pending, true);
    EXPECT_EQ(names_of(back.listing).size(), 4u);
    EXPECT_TRUE(back.pending.empty());
}

TEST(Fleet, SmallRemovalsAndTurnedOffConfirmationApplyAtOnce) {
    const auto before = named({"a", "b", "c", "d"});
    EXPECT_EQ(names_of(confirm_removals(&before, named({"a", "b"}), {}, true).listing).size(), 2u)
        << "exactly half is not more than half";
    EXPECT_EQ(names_of(confirm_removals(&before, named({"a", "b", "c"}), {}, true).listing).size(),
              3u);
    const auto two = named({"a", "b"});
    EXPECT_EQ(names_of(confirm_removals(&two, named({}), {}, true).listing).size(), 2u)
        << "two of two is a mass removal";
    const auto one = named({"a"});
    EXPECT_TRUE(confirm_removals(&one, named({}), {}, true).listing.instances.empty())
        << "one instance is not a mass";
    EXPECT_TRUE(confirm_removals(&before, named({}), {}, false).listing.instances.empty());
    EXPECT_TRUE(confirm_removals(nullptr, named({}), {}, true).pending.empty()) << "at start";
}

namespace {
Discovery source(const char* provider, const char* scope) {
    Discovery d;
    d.provider = provider;
    d.scope = scope;
    return d;
}
Instance instance(const char* name, const char* dbname = "postgres") {
    Instance inst;
    inst.name = name;
    inst.server = PgServer{"db.example", dbname, std::nullopt};
    return inst;
}
std::vector<std::string> names_of(const Composed& c) {
    std::vector<std::string> out;
    for (const auto& inst : c.instances) out.push_back(inst.name);
    return out;
}
}  // namespace

TEST(Fleet, TheFirstDiscoverEntryKeepsANameWhicheverListsFirst) {
    Config config;
    config.discover = {source("tembo", "a"), source("cloudsql", "b")};
    Fleet fleet({instance("listed")});
    // The second entry answers first: its instance is kept until the first lists.
    fleet.accept(config.discover[1], Listing{{instance("db")}, {}}, config);
    EXPECT_EQ(fleet.compose().from, (std::vector<std::string>{"listed", "cloudsql:b"}));
    EXPECT_TRUE(fleet.a_source_has_not_listed(config));
    fleet.accept(config.discover[0], Listing{{instance("db")}, {}}, config);
    const auto composed = fleet.compose();
    EXPECT_EQ(composed.from, (std::vector<std::string>{"listed", "tembo:a"}));
    ASSERT_EQ(composed.refused.size(), 1u);
    EXPECT_EQ(composed.refused[0].source, "cloudsql:b");
    EXPECT_FALSE(fleet.a_source_has_not_listed(config));
}

TEST(Fleet, AReloadKeepsTheListsOfSourcesStillConfiguredOnly) {
    Config config;
    config.discover = {source("tembo", "a"), source("cloudsql", "b")};
    Fleet fleet({instance("old")});
    fleet.accept(config.discover[0], Listing{{instance("x")}, {}}, config);
    fleet.accept(config.discover[1], Listing{{instance("y")}, {}}, config);
    config.discover.pop_back();
    config.instances = {instance("new")};
    fleet.reload(config);
    EXPECT_EQ(names_of(fleet.compose()), (std::vector<std::string>{"new", "x"}));
}

TEST(Fleet, AMassRemovalIsNewsOnceAndCountsTheListBefore) {
    Config config;
    config.discover = {source("tembo", "a")};
    config.discover[0].confirm_mass_removal = true;
    Fleet fleet({});
    Listing four;
    for (const char* n : {"a", "b", "c", "d"}) four.instances.push_back(instance(n));
    fleet.accept(config.discover[0], four, config);
    const auto first = fleet.accept(config.discover[0], Listing{{instance("a")}, {}}, config);
    EXPECT_TRUE(first.newly_pending);
    EXPECT_EQ(first.before, 4u);
    EXPECT_EQ(first.pending, (std::vector<std::string>{"b", "c", "d"}));
    EXPECT_EQ(fleet.compose().instances.size(), 4u) << "kept until the next list agrees";
    const auto second = fleet.accept(config.discover[0], Listing{{instance("a")}, {}}, config);
    EXPECT_FALSE(second.newly_pending);
    EXPECT_TRUE(second.pending.empty());
    EXPECT_EQ(names_of(fleet.compose()), (std::vector<std::string>{"a"}));
}

TEST(Fleet, TheDiffNamesAddedChangedAndRemovedInstances) {
    const auto diff = diff_fleet({instance("a"), instance("b"), instance("c")},
                                 {instance("b", "other"), instance("c"), instance("d")});
    EXPECT_EQ(diff.added, (std::vector<std::string>{"d"}));
    EXPECT_EQ(diff.changed, (std::vector<std::string>{"b"}));
    EXPECT_EQ(diff.removed, (std::vector<std::string>{"a"}));
    EXPECT_EQ(diff.describe(), "added d; changed b; removed a (files kept, no longer refreshed)");
    EXPECT_TRUE(diff_fleet({instance("a")}, {instance("a")}).empty());
}
