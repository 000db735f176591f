#include "rootcertd/token_source.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace rootcertd {

TokenSource TokenSource::from_file(std::filesystem::path path) {
    TokenSource t;
    t.file_ = std::move(path);
    return t;
}

TokenSource TokenSource::from_env(std::string variable) {
    TokenSource t;
    t.env_ = std::move(variable);
    return t;
}

Outcome<std::string> clean_token(std::string raw, const std::string& origin) {
    const auto space = " \t\r\n";
    raw.erase(0, raw.find_first_not_of(space));
    raw.erase(raw.find_last_not_of(space) + 1);
    if (raw.empty()) return fail(origin + " holds no token");
    for (const char c : raw) {
        if (c <= 0x20 || c >= 0x7f) {
            return fail(origin + " holds more than one token, or a control character");
        }
    }
    return raw;
}

Outcome<std::string> TokenSource::get() {
    if (!file_) {
        const char* v = std::getenv(env_.c_str());
        if (v == nullptr) return fail("environment variable " + env_ + " is not set");
        return clean_token(v, "environment variable " + env_);
    }
    struct stat st{};
    if (::stat(file_->c_str(), &st) != 0) {
        return fail("token file " + file_->string() + ": " + std::strerror(errno));
    }
    const bool same = seen_ && seen_->dev == st.st_dev && seen_->ino == st.st_ino &&
                      seen_->size == st.st_size && seen_->mtime.tv_sec == st.st_mtim.tv_sec &&
                      seen_->mtime.tv_nsec == st.st_mtim.tv_nsec;
    if (same) return cached_;
    std::ifstream in(*file_, std::ios::binary);
    if (!in) return fail("token file " + file_->string() + ": " + std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    auto token = clean_token(text.str(), "token file " + file_->string());
    if (!token) return token;
    seen_ = Seen{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    cached_ = token.value();
    return token;
}

}  // namespace rootcertd
