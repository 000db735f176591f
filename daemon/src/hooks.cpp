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

#include "rootcertd/process.hpp"

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

}  // namespace

asio::awaitable<HookRun> run_hook(asio::any_io_executor ex, Hook hook,
                                  std::vector<std::pair<std::string, std::string>> extra,
                                  std::vector<std::string> hidden, std::string log_name) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
        co_return fail(Stage::hook, std::string("cannot start: pipe: ") + std::strerror(errno));
    }
    auto spawned = spawn_command(hook.command, child_environment(extra, hidden), out[1], out[1]);
    ::close(out[1]);
    if (!spawned) {
        ::close(out[0]);
        co_return fail(Stage::hook, spawned.error());
    }
    const pid_t pid = spawned.value();
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
