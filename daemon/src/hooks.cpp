#include "rootcertd/hooks.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>

extern char** environ;

namespace rootcertd {

namespace asio = boost::asio;

namespace {

auto tuple_token() { return asio::as_tuple(asio::use_awaitable); }

// Logs what the hook prints, line by line, up to a bound.
asio::awaitable<void> relay_output(asio::posix::stream_descriptor pipe, std::string log_name) {
    asio::streambuf buffer(64 << 10);
    std::size_t logged = 0;
    for (;;) {
        auto [ec, n] = co_await asio::async_read_until(pipe, buffer, '\n', tuple_token());
        if (n == 0 && ec) n = buffer.size();  // a last line without a newline
        if (n == 0) break;
        std::string line(asio::buffers_begin(buffer.data()),
                         asio::buffers_begin(buffer.data()) + n);
        buffer.consume(n);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        if (logged < (64 << 10)) spdlog::info("{}: hook: {}", log_name, line);
        logged += n;
        if (ec) break;
    }
}

// A proxy URL with "user:password@" in it.
bool carries_credentials(std::string_view name, std::string_view value) {
    static constexpr std::string_view proxies[] = {"https_proxy", "HTTPS_PROXY", "http_proxy",
                                                   "HTTP_PROXY",  "all_proxy",   "ALL_PROXY"};
    if (std::find(std::begin(proxies), std::end(proxies), name) == std::end(proxies)) return false;
    const auto authority =
        value.substr(value.find("://") == std::string_view::npos ? 0 : value.find("://") + 3);
    return authority.substr(0, authority.find('/')).find('@') != std::string_view::npos;
}

}  // namespace

bool withheld_from_hooks(std::string_view name, std::string_view value) {
    static constexpr std::string_view systemd[] = {
        "NOTIFY_SOCKET", "WATCHDOG_PID",   "WATCHDOG_USEC",         "LISTEN_PID",
        "LISTEN_FDS",    "LISTEN_FDNAMES", "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM",
        "MAINPID",       "MANAGERPID",     "SYSTEMD_EXEC_PID"};
    return std::find(std::begin(systemd), std::end(systemd), name) != std::end(systemd) ||
           carries_credentials(name, value);
}

asio::awaitable<HookRun> run_hook(asio::any_io_executor ex, Hook hook,
                                  std::vector<std::pair<std::string, std::string>> extra,
                                  std::vector<std::string> hidden, std::string log_name) {
    std::vector<std::string> env_text;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view entry(*e);
        const auto equals = std::min(entry.find('='), entry.size());
        const auto name = entry.substr(0, equals);
        bool drop = std::find(hidden.begin(), hidden.end(), name) != hidden.end() ||
                    withheld_from_hooks(name, entry.substr(std::min(equals + 1, entry.size())));
        for (const auto& [k, v] : extra) drop = drop || k == name;
        if (!drop) env_text.emplace_back(entry);
    }
    for (const auto& [k, v] : extra) env_text.push_back(k + "=" + v);
    std::vector<char*> envp, argv;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    for (auto& a : hook.command) argv.push_back(a.data());
    argv.push_back(nullptr);

    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
        co_return fail(Stage::hook, std::string("cannot start: pipe: ") + std::strerror(errno));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out[1], 2);
    // Nothing else of the daemon's: not its listening metrics socket (a hook
    // that leaves a child behind would keep the port bound across a
    // restart), not its API connections. Asio opens sockets without
    // close-on-exec.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);  // its own group: a timeout kills its children too
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    const int err = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(out[1]);
    if (err != 0) {
        ::close(out[0]);
        co_return fail(Stage::hook, "cannot start " + hook.command[0] + ": " + std::strerror(err));
    }
    asio::co_spawn(ex, relay_output(asio::posix::stream_descriptor(ex, out[0]), log_name),
                   asio::detached);

    // A pidfd turns "the child exited" into a readable descriptor for the loop;
    // without one (kernels before 5.3), poll with WNOHANG. Never block the loop.
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    const auto give_up = std::chrono::steady_clock::now() + hook.timeout;
    bool timed_out = false;
    int status = 0;
    if (pidfd >= 0) {
        asio::posix::stream_descriptor exited(ex, pidfd);
        asio::steady_timer deadline(ex);
        deadline.expires_at(give_up);
        // Shared with the deadline's handler, which may run after this frame
        // is gone: when the child exits in the loop turn its deadline
        // passes, cancel() finds the handler already queued to run.
        struct Watch {
            bool reaped = false, fired = false;
        };
        auto watch = std::make_shared<Watch>();
        deadline.async_wait([pid, watch](boost::system::error_code ec) {
            if (ec || watch->reaped) return;  // a reaped pid may belong to another process
            watch->fired = true;
            ::kill(-pid, SIGKILL);
        });
        co_await exited.async_wait(asio::posix::stream_descriptor::wait_read, tuple_token());
        deadline.cancel();
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        watch->reaped = true;
        timed_out = watch->fired;
    } else {
        asio::steady_timer tick(ex);
        while (::waitpid(pid, &status, WNOHANG) == 0) {
            if (!timed_out && std::chrono::steady_clock::now() >= give_up) {
                timed_out = true;
                ::kill(-pid, SIGKILL);
            }
            tick.expires_after(std::chrono::milliseconds(50));
            co_await tick.async_wait(tuple_token());
        }
    }
    if (timed_out) {
        co_return fail(Stage::hook, "killed after " + std::to_string(hook.timeout.count()) + " ms");
    }
    if (WIFSIGNALED(status)) {
        co_return fail(Stage::hook, std::string("killed by signal ") + strsignal(WTERMSIG(status)));
    }
    const std::string exited = "exited " + std::to_string(WEXITSTATUS(status));
    if (WEXITSTATUS(status) != 0) co_return fail(Stage::hook, exited);
    co_return exited;
}

}  // namespace rootcertd
