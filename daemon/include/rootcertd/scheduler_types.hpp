// Results the scheduler acts on, shared with the jobs that produce them.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace rootcertd {

// The outcome of a live check between refreshes.
struct CheckResult {
    std::string problem;          // empty when the server verifies against the file
    bool refresh_now = false;     // the installed file no longer verifies the server
    std::optional<bool> live_ok;  // unset when the server could not be reached
    std::optional<std::chrono::system_clock::time_point> server_not_after;
};

}  // namespace rootcertd
