#include "rootcertd/sources/credentials.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <csignal>
#include <fstream>
#include <functional>

#include "rootcertd/core/process.hpp"
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
};

}  // namespace

TEST_F(CommandCredential, RunsOncePerTtlAndAgainAfterARefusal) {
    Credentials creds(config_with(counting()), ioc.get_executor());
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
    Credentials creds(config_with(counting(), 1ms), ioc.get_executor());
    EXPECT_EQ(get(creds).value(), "token-1");
    std::this_thread::sleep_for(5ms);  // the ttl itself, not a race
    EXPECT_EQ(get(creds).value(), "token-2");
}

TEST_F(CommandCredential, AFailureNamesStatusAndStderrButNeverStdout) {
    Credentials creds(
        config_with("echo secret-ish; echo 'auth: expired' >&2; echo more >&2; exit 4"),
        ioc.get_executor());
    auto r = get(creds);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "credential 'gcp' command: /bin/sh exited 4: auth: expired");
    EXPECT_EQ(r.failure().stage, Stage::token);
}

TEST_F(CommandCredential, EmptyOrMultiWordOutputIsRefused) {
    Credentials empty(config_with("true"), ioc.get_executor());
    EXPECT_EQ(get(empty).error(), "credential 'gcp' command output holds no token");
}

// Runs ARGV with run_command() on a fresh loop; AFTER_START, when given, is
// posted to run on the loop once the command has started.
CommandRun run_on_loop(std::vector<std::string> argv, Duration timeout,
                       std::function<void(boost::asio::io_context&)> after_start = {}) {
    boost::asio::io_context ioc;
    CommandRun out;
    boost::asio::co_spawn(ioc, run_command(ioc.get_executor(), std::move(argv), {}, timeout, false),
                          [&](std::exception_ptr e, CommandRun r) {
                              if (e) std::rethrow_exception(e);
                              out = std::move(r);
                              ioc.stop();  // not waiting for a grace timer left behind
                          });
    if (after_start) boost::asio::post(ioc, [&] { after_start(ioc); });
    ioc.run();
    return out;
}

TEST(RunCommand, AHungCommandIsKilledAtItsTimeout) {
    auto r = run_on_loop({"/bin/sh", "-c", "sleep 30"}, 200ms);
    ASSERT_FALSE(r.result.ok());
    EXPECT_EQ(r.result.error(), "/bin/sh killed after 200 ms");
}

TEST(RunCommand, TheTimeoutCoversACommandThatClosedItsOutput) {
    // Reading ended at end of file, then waitpid() waited 60 s with no limit,
    // on the pool that installs every file, and the token counted.
    auto r = run_on_loop({"/bin/sh", "-c", "echo tok; exec >/dev/null 2>&1; sleep 60"}, 200ms);
    ASSERT_FALSE(r.result.ok());
    EXPECT_EQ(r.result.error(), "/bin/sh killed after 200 ms");
}

TEST(RunCommand, TheExitDecidesThoughABackgroundChildHoldsTheOutput) {
    // "echo tok; sleep 30 & exit 0" was reported as killed at its timeout.
    test::TempDir dir;
    const auto pid_file = (dir / "bg.pid").string();
    auto r = run_on_loop(
        {"/bin/sh", "-c", "echo tok; sleep 30 & echo $! > " + pid_file + "; exit 0"}, 5s);
    std::ifstream in(pid_file);
    pid_t bg = 0;
    in >> bg;
    if (bg > 0) ::kill(bg, SIGKILL);
    ASSERT_TRUE(r.result.ok()) << r.result.error();
    EXPECT_EQ(r.out, "tok\n");
}

TEST(RunCommand, StoppingEndsRunningCommandsWithSigtermThenSigkill) {
    auto polite = run_on_loop({"/bin/sh", "-c", "sleep 30; echo tok"}, 60s,
                              [](auto& ioc) { stop_running_commands(ioc.get_executor(), 60s); });
    ASSERT_FALSE(polite.result.ok());
    EXPECT_EQ(polite.result.error(), "/bin/sh killed by signal Terminated");
    // One that ignores SIGTERM gets SIGKILL after the grace. It says through
    // a FIFO when it ignores SIGTERM; the loop is held until then.
    test::TempDir dir;
    const auto fifo = dir / "ready";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const std::string script = "trap '' TERM; echo > " + fifo.string() + "; sleep 30";
    auto stubborn = run_on_loop({"/bin/sh", "-c", script}, 60s, [&](auto& ioc) {
        std::ifstream(fifo).get();
        stop_running_commands(ioc.get_executor(), 50ms);
    });
    ASSERT_FALSE(stubborn.result.ok());
    EXPECT_EQ(stubborn.result.error(), "/bin/sh killed by signal Killed");
}

TEST(RunCommand, AnExitedCommandIsNoLongerSignalled) {
    auto r = run_on_loop({"/bin/true"}, 5s);
    ASSERT_TRUE(r.result.ok()) << r.result.error();
    signal_running_commands(SIGKILL);  // nothing left to signal: the test process survives
}
