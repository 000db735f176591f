// What a refresh and a live check produce: read by the scheduler, the
// reporter that logs them and the status board that shows them.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"
#include "rootcertd/pki/cert_bundle.hpp"
#include "rootcertd/store/cert_store.hpp"

namespace rootcertd {

struct RefreshResult {
    // Why the refresh failed: its stage, and a message that names the
    // request ("GET <path> on <origin>: <reason>"); never the token.
    std::optional<Failure> failure;
    bool ok() const { return !failure; }
    const std::string& error() const {
        static const std::string none;
        return failure ? failure->message : none;
    }
    std::optional<Duration> retry_after;
    // What the refresh did to the file, and what the file now holds: set
    // once it was installed, even when the live check after it failed.
    Change change = Change::unchanged;
    std::optional<CertBundle> bundle;
    std::string warning;        // worth an operator's attention, file still fine
    unsigned http_status = 0;   // of the API's answer, when there was one
    bool not_modified = false;  // the source answered 304: nothing new was served
    std::optional<SysTime> token_expiry;
    std::optional<bool> live_ok;  // the server verified against the installed file
    std::optional<SysTime> server_not_after;
    // Why the live check could not reach the server (a `host` that does not
    // answer): a warning for the daemon, a failure of the instance for --once.
    std::optional<Failure> live_unreachable;
    // The API origin, when the failure is that nothing reached it: every
    // instance behind it fails alike, and the log says so once.
    std::optional<std::string> unreachable_origin;
};

// The outcome of a live check between refreshes.
struct CheckResult {
    std::optional<Failure> problem;  // none when the server verifies against the file
    bool refresh_now = false;        // the installed file no longer verifies the server
    std::optional<bool> live_ok;     // unset when the server could not be reached
    std::optional<SysTime> server_not_after;
};

}  // namespace rootcertd
