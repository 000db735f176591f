// Results the scheduler acts on, shared with the jobs that produce them.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "rootcertd/cert_bundle.hpp"

namespace rootcertd {

// The outcome of a live check between refreshes.
struct CheckResult {
    std::string problem;          // empty when the server verifies against the file
    bool refresh_now = false;     // the installed file no longer verifies the server
    std::optional<bool> live_ok;  // unset when the server could not be reached
    std::optional<SysTime> server_not_after;
};

// Decides which failures reach the log so a persistent one does not flood it:
// a new or changed reason always, the same reason again once an hour.
class FailureLog {
  public:
    enum class Verdict { log, repeat, quiet };
    Verdict on_failure(const std::string& reason, std::chrono::steady_clock::time_point now);
    // Failures since the last success; resets to 0.
    unsigned on_success();
    unsigned failures() const { return count_; }

  private:
    std::string last_;
    std::chrono::steady_clock::time_point last_logged_{};
    unsigned count_ = 0;
};

}  // namespace rootcertd
