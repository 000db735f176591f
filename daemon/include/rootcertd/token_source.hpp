// Supplies the API bearer token, re-reading its file when it changes.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <string>

#include "rootcertd/outcome.hpp"

namespace rootcertd {

// Not thread-safe: use from the event loop. The token itself never appears
// in any message this class produces.
class TokenSource {
public:
    static TokenSource from_file(std::filesystem::path path);
    static TokenSource from_env(std::string variable);

    // The current token. A token file is re-read whenever its identity, size
    // or mtime changes, so rotating the token needs no restart.
    Outcome<std::string> get();

private:
    std::optional<std::filesystem::path> file_;
    std::string env_;
    struct Seen {
        dev_t dev;
        ino_t ino;
        off_t size;
        timespec mtime;
    };
    std::optional<Seen> seen_;
    std::string cached_;
};

// Trims surrounding whitespace; fails when empty or not a single header-safe token.
Outcome<std::string> clean_token(std::string raw, const std::string& origin);

}  // namespace rootcertd
