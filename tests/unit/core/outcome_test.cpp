#include "rootcertd/core/outcome.hpp"

#include <gtest/gtest.h>

using namespace rootcertd;

TEST(Outcome, ContextAddedToAFailureKeepsItsStage) {
    const Failure tls = fail(Stage::tls, "TLS handshake with https://api.example: expired");
    const Failure wrapped = tls.prefixed("discovery tembo:org: ");
    EXPECT_EQ(wrapped.stage, Stage::tls);
    EXPECT_TRUE(wrapped.unreachable()) << "an unreachable origin stays unreachable";
    EXPECT_EQ(wrapped.message,
              "discovery tembo:org: TLS handshake with https://api.example: expired");
}

TEST(Outcome, AStepWithNothingToReturnIsOkOrSaysWhy) {
    const Outcome<void> done = Ok{};
    EXPECT_TRUE(done.ok());
    const Outcome<void> refused = fail(Stage::connect, "proxy answered 407");
    EXPECT_FALSE(refused);
    EXPECT_EQ(refused.error(), "proxy answered 407");
    EXPECT_TRUE(refused.unreachable());
    EXPECT_FALSE(Outcome<void>().ok()) << "what a coroutine that threw hands its handler";
}
