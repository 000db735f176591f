#include "rootcertd/sources/token_source.hpp"

#include <boost/json/parse.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace rootcertd {

TokenSource TokenSource::from_file(std::filesystem::path path, std::string label) {
    TokenSource t;
    t.file_ = std::move(path);
    t.label_ = std::move(label);
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

std::optional<SysTime> jwt_expiry(std::string_view token) {
    const auto first = token.find('.');
    const auto second = token.find('.', first + 1);
    if (first == std::string_view::npos || second == std::string_view::npos) return std::nullopt;
    const auto payload = token.substr(first + 1, second - first - 1);
    std::string decoded;
    unsigned bits = 0;
    int count = 0;
    for (const char c : payload) {  // base64url, no padding
        int v = -1;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        if (c >= '0' && c <= '9') v = c - '0' + 52;
        if (c == '-') v = 62;
        if (c == '_') v = 63;
        if (c == '=') break;
        if (v < 0) return std::nullopt;
        bits = (bits << 6) | static_cast<unsigned>(v);
        if ((count += 6) >= 8) {
            count -= 8;
            decoded += static_cast<char>((bits >> count) & 0xff);
        }
    }
    boost::system::error_code ec;
    const auto claims = boost::json::parse(decoded, ec);
    if (ec || !claims.is_object()) return std::nullopt;
    const auto* exp = claims.get_object().if_contains("exp");
    if (exp == nullptr || !exp->is_number()) return std::nullopt;
    // Past year 9999 (and NaN) a claim means nothing to an operator; a
    // double that size would not convert to a whole number of seconds.
    const double seconds = exp->to_number<double>();
    if (!(seconds >= 0 && seconds <= 253402300799.0)) return std::nullopt;
    return SysTime{std::chrono::seconds(static_cast<std::int64_t>(seconds))};
}

void TokenSource::remember(const std::string& token) {
    if (token == expiry_of_) return;
    expiry_of_ = token;
    expiry_ = jwt_expiry(token);
}

Outcome<std::string> TokenSource::get(std::chrono::steady_clock::time_point now) {
    if (!file_) {
        const char* v = std::getenv(env_.c_str());
        if (v == nullptr) return fail("environment variable " + env_ + " is not set");
        auto token = clean_token(v, "environment variable " + env_);
        if (token) remember(token.value());
        return token;
    }
    if (seen_ && now < next_check_) return cached_;
    struct stat st {};
    if (::stat(file_->c_str(), &st) != 0) {
        return fail(label_ + " " + file_->string() + ": " + std::strerror(errno));
    }
    const bool same = seen_ && seen_->dev == st.st_dev && seen_->ino == st.st_ino &&
                      seen_->size == st.st_size && seen_->mtime.tv_sec == st.st_mtim.tv_sec &&
                      seen_->mtime.tv_nsec == st.st_mtim.tv_nsec && seen_->mode == st.st_mode;
    if (same) {
        next_check_ = now + recheck_interval;
        return cached_;
    }
    std::ifstream in(*file_, std::ios::binary);
    if (!in) return fail(label_ + " " + file_->string() + ": " + std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    auto token = clean_token(text.str(), label_ + " " + file_->string());
    if (!token) return token;
    seen_ = Seen{st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_mode};
    next_check_ = now + recheck_interval;
    cached_ = token.value();
    exposure_.clear();
    // Group read is how Kubernetes mounts a Secret for a pod's fsGroup
    // (0440): a deliberate grant, not an exposure. Others, or a group that
    // may write, are.
    if ((st.st_mode & 027) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        exposure_ = label_ + " " + file_->string() + " is open to others or group-writable (mode " +
                    mode + "): chmod 0600 it, or 0440 for a group that must read it";
    }
    remember(cached_);
    return token;
}

}  // namespace rootcertd
