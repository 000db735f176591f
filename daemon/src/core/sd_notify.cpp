#include "rootcertd/core/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>

namespace rootcertd {

Notifier Notifier::from_environment() {
    Notifier n;
    if (const char* path = std::getenv("NOTIFY_SOCKET");
        path && (path[0] == '/' || path[0] == '@')) {
        n.socket_path_ = path;
    }
    const char* usec = std::getenv("WATCHDOG_USEC");
    const char* pid = std::getenv("WATCHDOG_PID");
    const bool ours = pid == nullptr || std::strtoll(pid, nullptr, 10) == ::getpid();
    if (n.enabled() && usec != nullptr && ours) {
        const long long v = std::strtoll(usec, nullptr, 10);
        if (v > 0) n.watchdog_period_ = std::chrono::microseconds(v / 2);
    }
    return n;
}

bool Notifier::send(const std::string& state) const {
    if (!enabled()) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path_.size() >= sizeof addr.sun_path) return false;
    std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
    if (socket_path_[0] == '@') {
        addr.sun_path[0] = '\0';  // abstract: no terminating NUL counted
    } else {
        ++len;
    }
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const auto sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                               reinterpret_cast<const sockaddr*>(&addr), len);
    ::close(fd);
    return sent == static_cast<ssize_t>(state.size());
}

bool Notifier::reloading() const {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<long long>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
    return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

}  // namespace rootcertd
