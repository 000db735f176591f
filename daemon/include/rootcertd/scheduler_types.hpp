// Results the scheduler acts on, shared with the jobs that produce them.
#pragma once

#include <string>

namespace rootcertd {

// The outcome of a live check between refreshes.
struct CheckResult {
    std::string problem;       // empty when the server verifies against the file
    bool refresh_now = false;  // the installed file no longer verifies the server
};

}  // namespace rootcertd
