#include "rootcertd/pki/rotation.hpp"

#include <gtest/gtest.h>

#include "pki.hpp"

using namespace rootcertd;
using namespace std::chrono_literals;

namespace {

CertBundle bundle(const std::string& pem) { return parse_bundle(pem).value(); }

const auto now = sys_now();
const auto week = Duration{7 * 24h};

}  // namespace

TEST(Compose, FirstSightInstallsWhatIsServed) {
    const auto a = test::make_cert_pem({.cn = "A"});
    auto c = compose({}, bundle(a), week, now);
    EXPECT_EQ(c.pem, a);
    ASSERT_EQ(c.added.size(), 1u);
    EXPECT_TRUE(c.kept.empty());
    EXPECT_EQ(c.state.served, a);
}

TEST(Compose, UnchangedServedSetChangesNothing) {
    const auto a = test::make_cert_pem({.cn = "A"});
    auto first = compose({}, bundle(a), week, now);
    auto again = compose(first.state, bundle(a), week, now + 1h);
    EXPECT_EQ(again.pem, a);
    EXPECT_TRUE(again.added.empty());
    EXPECT_EQ(again.state, first.state);
}

TEST(Compose, ARotationKeepsThePreviousCaAfterTheNewOne) {
    const auto a = test::make_cert_pem({.cn = "A"});
    const auto b = test::make_cert_pem({.cn = "B"});
    auto before = compose({}, bundle(a), week, now);
    auto after = compose(before.state, bundle(b), week, now);
    EXPECT_EQ(after.pem, b + a) << "new first, then previous";
    ASSERT_EQ(after.added.size(), 1u);
    EXPECT_EQ(after.added[0].subject, "CN=B");
    ASSERT_EQ(after.kept.size(), 1u);
    EXPECT_EQ(after.kept[0].subject, "CN=A");
    EXPECT_EQ(after.kept[0].until, now + 7 * 24h);

    // Still kept a day later, gone once keep_previous has passed.
    EXPECT_EQ(compose(after.state, bundle(b), week, now + 24h).pem, b + a);
    auto later = compose(after.state, bundle(b), week, now + 7 * 24h + 1s);
    EXPECT_EQ(later.pem, b);
    ASSERT_EQ(later.dropped.size(), 1u);
    EXPECT_NE(later.dropped[0].find("CN=A"), std::string::npos);
}

TEST(Compose, AKeptCaLeavesWhenItExpiresFirst) {
    const auto a = test::make_cert_pem({.cn = "A", .not_after_offset = 3600});
    const auto b = test::make_cert_pem({.cn = "B"});
    auto after = compose(compose({}, bundle(a), week, now).state, bundle(b), week, now);
    ASSERT_EQ(after.kept.size(), 1u);
    EXPECT_LT(after.kept[0].until, now + 2h) << "min(keep_previous, notAfter)";
    EXPECT_EQ(compose(after.state, bundle(b), week, now + 2h).pem, b);
}

TEST(Compose, ZeroKeepsNothing) {
    const auto a = test::make_cert_pem({.cn = "A"});
    const auto b = test::make_cert_pem({.cn = "B"});
    auto after =
        compose(compose({}, bundle(a), Duration{0}, now).state, bundle(b), Duration{0}, now);
    EXPECT_EQ(after.pem, b);
    EXPECT_TRUE(after.kept.empty());
    EXPECT_EQ(after.dropped.size(), 1u);
}

TEST(Compose, ACaServedAgainIsNotDuplicated) {
    const auto a = test::make_cert_pem({.cn = "A"});
    const auto b = test::make_cert_pem({.cn = "B"});
    auto s1 = compose({}, bundle(a), week, now).state;
    auto s2 = compose(s1, bundle(b), week, now).state;  // A kept
    auto back = compose(s2, bundle(a), week, now);      // rolled back to A
    EXPECT_EQ(back.pem, a + b) << "A served once, B now kept";
}

TEST(RotationState, RoundTripsThroughJson) {
    const auto a = test::make_cert_pem({.cn = "A"});
    const auto b = test::make_cert_pem({.cn = "B"});
    auto state = compose(compose({}, bundle(a), week, now).state, bundle(b), week, now).state;
    auto parsed = parse_state(serialize_state(state));
    ASSERT_TRUE(parsed.ok()) << parsed.error();
    EXPECT_EQ(parsed->served, state.served);
    ASSERT_EQ(parsed->kept.size(), 1u);
    EXPECT_EQ(parsed->kept[0].sha256, state.kept[0].sha256);
    EXPECT_EQ(
        std::chrono::duration_cast<std::chrono::seconds>(parsed->kept[0].until.time_since_epoch()),
        std::chrono::duration_cast<std::chrono::seconds>(state.kept[0].until.time_since_epoch()));
    EXPECT_FALSE(parse_state("{}").ok());
    EXPECT_FALSE(parse_state("not json").ok());
    EXPECT_FALSE(parse_state(R"({"served": "", "kept": [{"pem": 1}]})").ok());
    // Found by fuzz_rotation_state when times were nanoseconds, which end
    // in 2262: 2540 is a time now; only what is past year 9999 is not.
    EXPECT_TRUE(
        parse_state(R"({"served": "", "kept": [{"pem": "", "sha256": "", "until": 18000001000}]})")
            .ok());
    EXPECT_FALSE(
        parse_state(R"({"served": "", "kept": [{"pem": "", "sha256": "", "until": 253402300800}]})")
            .ok());
}
