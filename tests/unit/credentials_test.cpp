#include "rootcertd/credentials.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <fstream>

#include "rootcertd/process.hpp"
#include "tempdir.hpp"

using namespace rootcertd;
using namespace std::chrono_literals;

namespace {

class CommandCredential : public ::testing::Test {
  protected:
    // A command that counts its runs in a file and prints "token-<run>".
    Config config_with(const std::string& script, Duration ttl = 30min) {
        Config cfg;
        Credential c;
        c.name = "gcp";
        c.command = {"/bin/sh", "-c", script};
        c.ttl = ttl;
        c.timeout = 2s;
        cfg.credentials.push_back(c);
        return cfg;
    }
    std::string counting() const {
        const auto f = (dir / "runs").string();
        return "n=$(cat " + f + " 2>/dev/null || echo 0); n=$((n+1)); echo $n > " + f +
               "; echo \"  token-$n  \"";
    }
    int runs() const {
        std::ifstream in(dir / "runs");
        int n = 0;
        in >> n;
        return n;
    }
    Outcome<std::string> get(Credentials& c) {
        Outcome<std::string> out = fail("not run");
        boost::asio::co_spawn(ioc, c.get(std::string("gcp")),
                              [&](std::exception_ptr e, Outcome<std::string> r) {
                                  if (e) std::rethrow_exception(e);
                                  out = std::move(r);
                              });
        ioc.restart();
        ioc.run();
        return out;
    }

    test::TempDir dir;
    boost::asio::io_context ioc;
    boost::asio::thread_pool pool{1};
};

}  // namespace

TEST_F(CommandCredential, RunsOncePerTtlAndAgainAfterARefusal) {
    Credentials creds(config_with(counting()), ioc.get_executor(), pool);
    EXPECT_EQ(get(creds).value(), "token-1") << "stdout, trimmed";
    EXPECT_EQ(get(creds).value(), "token-1") << "not run again within its ttl";
    EXPECT_EQ(runs(), 1);
    EXPECT_TRUE(creds.refused(std::string("gcp"))) << "a refusal makes a run due";
    EXPECT_EQ(get(creds).value(), "token-2");
    EXPECT_FALSE(creds.refused(std::string("gcp"))) << "at most one refusal run a minute";
    EXPECT_EQ(get(creds).value(), "token-2");
    EXPECT_EQ(runs(), 2);
}

TEST_F(CommandCredential, ATtlThatPassedRunsItAgain) {
    Credentials creds(config_with(counting(), 1ms), ioc.get_executor(), pool);
    EXPECT_EQ(get(creds).value(), "token-1");
    std::this_thread::sleep_for(5ms);  // the ttl itself, not a race
    EXPECT_EQ(get(creds).value(), "token-2");
}

TEST_F(CommandCredential, AFailureNamesStatusAndStderrButNeverStdout) {
    Credentials creds(
        config_with("echo secret-ish; echo 'auth: expired' >&2; echo more >&2; exit 4"),
        ioc.get_executor(), pool);
    auto r = get(creds);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "credential 'gcp' command: /bin/sh exited 4: auth: expired");
    EXPECT_EQ(r.failure().stage, Stage::token);
}

TEST_F(CommandCredential, EmptyOrMultiWordOutputIsRefused) {
    Credentials empty(config_with("true"), ioc.get_executor(), pool);
    EXPECT_EQ(get(empty).error(), "credential 'gcp' command output holds no token");
}

TEST(RunForOutput, AHungCommandIsKilledAtItsTimeout) {
    const auto started = std::chrono::steady_clock::now();
    auto r = run_for_output({"/bin/sh", "-c", "sleep 30"}, 200ms, {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "/bin/sh killed after 200 ms");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
}
