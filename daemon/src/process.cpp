#include "rootcertd/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

extern char** environ;

namespace rootcertd {

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

Outcome<std::string> run_for_output(const std::vector<std::string>& argv, Duration timeout,
                                    const std::vector<std::string>& hidden) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return fail(std::string("pipe: ") + std::strerror(errno));
    if (::pipe2(err, O_CLOEXEC) != 0) {
        ::close(out[0]);
        ::close(out[1]);
        return fail(std::string("pipe: ") + std::strerror(errno));
    }
    auto pid = spawn_command(argv, child_environment({}, hidden), out[1], err[1]);
    ::close(out[1]);
    ::close(err[1]);
    if (!pid) {
        ::close(out[0]);
        ::close(err[0]);
        return fail(pid.error());
    }
    constexpr std::size_t limit = 64 << 10;
    std::string stdout_text, stderr_text;
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    bool timed_out = false;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            give_up - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        if (::poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            char buf[4096];
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                continue;
            }
            auto& into = i == 0 ? stdout_text : stderr_text;
            if (into.size() < limit)
                into.append(buf, std::min<std::size_t>(n, limit - into.size()));
        }
    }
    for (auto& f : fds) {
        if (f.fd >= 0) ::close(f.fd);
    }
    if (timed_out) ::kill(-pid.value(), SIGKILL);
    int status = 0;
    while (::waitpid(pid.value(), &status, 0) < 0 && errno == EINTR) {
    }
    std::string first_line = stderr_text.substr(0, stderr_text.find('\n'));
    if (first_line.size() > 200) first_line.resize(200);
    const std::string said = first_line.empty() ? "" : ": " + first_line;
    if (timed_out) {
        return fail(argv[0] + " killed after " + std::to_string(timeout.count()) + " ms");
    }
    if (WIFSIGNALED(status)) {
        return fail(argv[0] + " killed by signal " + strsignal(WTERMSIG(status)) + said);
    }
    if (WEXITSTATUS(status) != 0) {
        return fail(argv[0] + " exited " + std::to_string(WEXITSTATUS(status)) + said);
    }
    return stdout_text;
}

}  // namespace rootcertd
