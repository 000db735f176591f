// Supplies the API bearer token, re-reading its file when it changes.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "rootcertd/core/outcome.hpp"
#include "rootcertd/pki/cert_bundle.hpp"

namespace rootcertd {

// Not thread-safe: use from the event loop. The token itself never appears
// in any message this class produces.
class TokenSource {
  public:
    // LABEL names the file in messages ("token file", "proxy auth file").
    static TokenSource from_file(std::filesystem::path path, std::string label = "token file");
    static TokenSource from_env(std::string variable);

    // The current token. A token file is looked at (one stat) at most once
    // per recheck_interval, NOW being the time of this call, and re-read
    // whenever its identity, size, mtime or mode changed: rotating the token
    // needs no restart. A fleet's pass costs one stat, not one per request.
    Outcome<std::string> get(
        std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
    static constexpr std::chrono::seconds recheck_interval{1};

    // The next get() looks at the file, however recent the last look: for
    // when the API refused the token.
    void recheck() { next_check_ = {}; }

    // When the last token read expires, from its JWT "exp" claim; nullopt
    // for a token that is not a JWT or has no exp.
    std::optional<SysTime> expiry() const { return expiry_; }

    // Why the token file is less private than a secret should be (readable
    // by group or others), or empty.
    const std::string& exposure() const { return exposure_; }

  private:
    void remember(const std::string& token);

    std::optional<std::filesystem::path> file_;
    std::string label_;
    std::string env_;
    struct Seen {
        dev_t dev;
        ino_t ino;
        off_t size;
        timespec mtime;
        mode_t mode;  // a chmod alone changes what exposure() says
    };
    std::optional<Seen> seen_;
    std::chrono::steady_clock::time_point next_check_{};
    std::string cached_;
    std::string exposure_;
    std::string expiry_of_;  // the token expiry_ was computed for
    std::optional<SysTime> expiry_;
};

// The "exp" claim of a JWT (no signature check: this is only for warnings).
std::optional<SysTime> jwt_expiry(std::string_view token);

// Trims surrounding whitespace; fails when empty or not a single header-safe token.
Outcome<std::string> clean_token(std::string raw, const std::string& origin);

}  // namespace rootcertd
