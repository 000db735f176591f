// systemd's notify protocol, spoken directly on $NOTIFY_SOCKET (no libsystemd).
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace rootcertd {

class Notifier {
  public:
    // Reads NOTIFY_SOCKET ("/path" or "@abstract"), WATCHDOG_USEC and
    // WATCHDOG_PID. Without NOTIFY_SOCKET every call does nothing.
    static Notifier from_environment();

    bool enabled() const { return !socket_path_.empty(); }
    // Sends "STATE\n..." lines as one datagram; false when it could not be sent.
    bool send(const std::string& state) const;

    bool ready(const std::string& status) const { return send("READY=1\nSTATUS=" + status); }
    bool status(const std::string& status) const { return send("STATUS=" + status); }
    bool watchdog() const { return send("WATCHDOG=1"); }
    // RELOADING=1 with MONOTONIC_USEC, as Type=notify-reload expects too.
    bool reloading() const;
    bool stopping() const { return send("STOPPING=1"); }

    // How often to send WATCHDOG=1 (half of WATCHDOG_USEC), when this process
    // is the one systemd watches.
    std::optional<std::chrono::microseconds> watchdog_period() const { return watchdog_period_; }

  private:
    std::string socket_path_;  // a leading '@' means the abstract namespace
    std::optional<std::chrono::microseconds> watchdog_period_;
};

}  // namespace rootcertd
