#include "rootcertd/sources/hooks.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <thread>

using namespace rootcertd;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// Runs HOOK to the end on a fresh event loop. BLOCK_LOOP, when given, is
// posted right behind the hook's start and runs on the loop.
HookRun run_to_end(Hook hook, std::function<void()> block_loop = {}) {
    asio::io_context ioc;
    HookRun out;
    asio::co_spawn(
        ioc, run_hook(ioc.get_executor(), std::move(hook), {}, {}, "test"),
        [&](std::exception_ptr e, HookRun r) { out = e ? HookRun(fail("threw")) : std::move(r); });
    if (block_loop) asio::post(ioc, block_loop);
    ioc.run();
    return out;
}

Hook shell(const std::string& script) { return Hook{{"/bin/sh", "-c", script}, 5s}; }

}  // namespace

TEST(Hooks, InheritNoDescriptorOfTheDaemons) {
    // A socket without close-on-exec, as Asio opens its sockets.
    const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(sock, 3);
    const auto fd = std::to_string(sock);
    const auto run = run_to_end(shell("test ! -e /proc/$$/fd/" + fd + " || exit 7"));
    ::close(sock);
    EXPECT_TRUE(run.ok()) << run.error();
}

TEST(Hooks, GetNoSystemdPlumbingNorSecrets) {
    ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
    ::setenv("CREDENTIALS_DIRECTORY", "/run/credentials/rootcertd.service", 1);
    ::setenv("https_proxy", "http://user:secret@proxy:3128", 1);
    ::setenv("HTTP_PROXY", "http://proxy:3128", 1);  // no password: kept
    const auto run = run_to_end(
        shell("test -z \"$NOTIFY_SOCKET$CREDENTIALS_DIRECTORY$https_proxy\" && "
              "test \"$HTTP_PROXY\" = http://proxy:3128 && test -n \"$PATH\" || exit 7"));
    for (const char* v : {"NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY", "https_proxy", "HTTP_PROXY"})
        ::unsetenv(v);
    EXPECT_TRUE(run.ok()) << run.error();
    EXPECT_TRUE(withheld_from_hooks("WATCHDOG_USEC", "30000000"));
    EXPECT_TRUE(withheld_from_hooks("ALL_PROXY", "socks5://u:p@h"));
    EXPECT_FALSE(withheld_from_hooks("https_proxy", "http://proxy:3128/path@x"));
    EXPECT_FALSE(withheld_from_hooks("LANG", "C.UTF-8"));
}

TEST(Hooks, ADeadlineThatPassesAsTheHookExitsIsHarmless) {
    // The loop is held while the hook exits and its deadline passes, so both
    // are ready in the same turn: the exit is handled first, the frame ends,
    // and the deadline's handler must touch neither the frame nor the
    // (reaped, reusable) pid. ASan reports the frame's use after free.
    const auto timeout = 20ms;
    const auto run = run_to_end(Hook{{"/bin/true"}, timeout}, [timeout] {
        const auto started = std::chrono::steady_clock::now();
        siginfo_t info{};
        ::waitid(P_ALL, 0, &info, WEXITED | WNOWAIT);  // the hook has exited, unreaped
        std::this_thread::sleep_until(started + 2 * timeout);
    });
    ASSERT_TRUE(run.ok()) << run.error();
    EXPECT_EQ(run.value(), "exited 0");
}
