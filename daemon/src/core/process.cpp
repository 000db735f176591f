#include "rootcertd/core/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>

extern char** environ;

namespace rootcertd {

namespace asio = boost::asio;

namespace {

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

std::vector<std::string> child_environment(
    const std::vector<std::pair<std::string, std::string>>& extra,
    const std::vector<std::string>& hidden) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view entry(*e);
        const auto equals = std::min(entry.find('='), entry.size());
        const auto name = entry.substr(0, equals);
        bool drop = std::find(hidden.begin(), hidden.end(), name) != hidden.end() ||
                    withheld_from_hooks(name, entry.substr(std::min(equals + 1, entry.size())));
        for (const auto& [k, v] : extra) drop = drop || k == name;
        if (!drop) env.emplace_back(entry);
    }
    for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
    return env;
}

Outcome<pid_t> spawn_command(const std::vector<std::string>& args, std::vector<std::string> env,
                             int out_fd, int err_fd) {
    std::vector<std::string> argv_text = args;
    std::vector<char*> envp, argv;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
    // Nothing else of the daemon's: not its listening metrics socket (a
    // command that leaves a child behind would keep the port bound across a
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
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    const int err = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (err != 0) return fail("cannot start " + args[0] + ": " + std::strerror(err));
    return pid;
}

namespace {

auto tuple_token() { return asio::as_tuple(asio::use_awaitable); }

// The process groups of commands still running, for signal_running_commands.
std::mutex running_mutex;
std::set<pid_t> running_groups;

void track(pid_t pid, bool running) {
    std::lock_guard lock(running_mutex);
    if (running) {
        running_groups.insert(pid);
    } else {
        running_groups.erase(pid);
    }
}

// One end of a command's output: read whenever it is readable, kept up to a
// bound. Reads happen only in drain(), on the loop's thread, so what the
// command wrote before it exited is read in order by the last drain().
struct Pipe {
    Pipe(asio::any_io_executor ex, int fd) : end(ex, fd) { end.non_blocking(true); }
    asio::posix::stream_descriptor end;
    std::string text;

    // Reads what is there; false at end of file, on an error or once closed.
    bool drain() {
        if (!end.is_open()) return false;
        char buf[4096];
        for (;;) {
            boost::system::error_code ec;
            const auto n = end.read_some(asio::buffer(buf), ec);
            if (ec == asio::error::would_block) return true;
            if (ec || n == 0) return false;
            if (text.size() < output_limit)
                text.append(buf, std::min<std::size_t>(n, output_limit - text.size()));
        }
    }
};

asio::awaitable<void> collect(std::shared_ptr<Pipe> pipe) {
    for (;;) {
        auto [ec] =
            co_await pipe->end.async_wait(asio::posix::stream_descriptor::wait_read, tuple_token());
        if (ec || !pipe->drain()) co_return;
    }
}

// Waits until PID exits or GIVE_UP passes (then kills its group and waits on),
// without blocking the loop; reaps it. Its wait status, and whether it was killed.
asio::awaitable<std::pair<int, bool>> reap(asio::any_io_executor ex, pid_t pid,
                                           std::chrono::steady_clock::time_point give_up) {
    int status = 0;
    // A pidfd turns "the child exited" into a readable descriptor for the
    // loop; without one (kernels before 5.3), poll with WNOHANG.
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
        bool killed = false;
        asio::steady_timer tick(ex);
        while (::waitpid(pid, &status, WNOHANG) == 0) {
            if (!killed && std::chrono::steady_clock::now() >= give_up) {
                killed = true;
                ::kill(-pid, SIGKILL);
            }
            tick.expires_after(std::chrono::milliseconds(50));
            co_await tick.async_wait(tuple_token());
        }
        track(pid, false);
        co_return std::pair{status, killed};
    }
    asio::posix::stream_descriptor exited(ex, pidfd);
    asio::steady_timer deadline(ex);
    deadline.expires_at(give_up);
    // Shared with the deadline's handler, which may run after this frame is
    // gone: when the child exits in the loop turn its deadline passes,
    // cancel() finds the handler already queued to run.
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
    track(pid, false);  // before the reap: a reaped pid may be reused
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    watch->reaped = true;
    co_return std::pair{status, watch->fired};
}

}  // namespace

asio::awaitable<CommandRun> run_command(asio::any_io_executor ex, std::vector<std::string> argv,
                                        std::vector<std::string> env, Duration timeout,
                                        bool merge_stderr) {
    CommandRun run;
    int out[2], err[2] = {-1, -1};
    if (::pipe2(out, O_CLOEXEC) != 0) {
        run.result = fail(std::string("pipe: ") + std::strerror(errno));
        co_return run;
    }
    if (!merge_stderr && ::pipe2(err, O_CLOEXEC) != 0) {
        ::close(out[0]);
        ::close(out[1]);
        run.result = fail(std::string("pipe: ") + std::strerror(errno));
        co_return run;
    }
    auto pid = spawn_command(argv, std::move(env), out[1], merge_stderr ? out[1] : err[1]);
    ::close(out[1]);
    if (!merge_stderr) ::close(err[1]);
    if (!pid) {
        ::close(out[0]);
        if (!merge_stderr) ::close(err[0]);
        run.result = pid.failure();
        co_return run;
    }
    track(pid.value(), true);
    std::vector<std::shared_ptr<Pipe>> pipes{std::make_shared<Pipe>(ex, out[0])};
    if (!merge_stderr) pipes.push_back(std::make_shared<Pipe>(ex, err[0]));
    for (const auto& p : pipes) asio::co_spawn(ex, collect(p), asio::detached);

    // The timeout covers the whole run; the exit status decides, whoever
    // (a child left in the background) still holds the pipes.
    auto [status, killed] =
        co_await reap(ex, pid.value(), std::chrono::steady_clock::now() + timeout);
    for (const auto& p : pipes) {
        p->drain();
        p->end.close();  // ends collect(); a background child's writes get EPIPE
    }
    run.out = std::move(pipes[0]->text);
    if (!merge_stderr) run.err = std::move(pipes[1]->text);
    // A hook's merged output is logged line by line; a credential command's
    // failure names the program and quotes its stderr's first line.
    const std::string who = merge_stderr ? "" : argv[0] + " ";
    std::string first_line = run.err.substr(0, run.err.find('\n'));
    if (first_line.size() > 200) first_line.resize(200);
    const std::string said = first_line.empty() ? "" : ": " + first_line;
    if (killed) {
        run.result = fail(who + "killed after " + std::to_string(timeout.count()) + " ms");
    } else if (WIFSIGNALED(status)) {
        run.result = fail(who + "killed by signal " + strsignal(WTERMSIG(status)) + said);
    } else if (WEXITSTATUS(status) != 0) {
        run.result = fail(who + "exited " + std::to_string(WEXITSTATUS(status)) + said);
    }
    co_return run;
}

void signal_running_commands(int sig) {
    std::lock_guard lock(running_mutex);
    for (const pid_t group : running_groups) ::kill(-group, sig);
}

void stop_running_commands(asio::any_io_executor ex, Duration grace) {
    signal_running_commands(SIGTERM);
    auto timer = std::make_shared<asio::steady_timer>(ex, grace);
    timer->async_wait([timer](boost::system::error_code ec) {
        if (!ec) signal_running_commands(SIGKILL);
    });
}

}  // namespace rootcertd
