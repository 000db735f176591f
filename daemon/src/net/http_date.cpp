#include "rootcertd/net/http_date.hpp"

#include <algorithm>
#include <ctime>
#include <string>

namespace rootcertd {

std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view value) {
    std::tm tm{};
    const std::string text(value);
    const char* end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == nullptr || *end != '\0') return std::nullopt;
    return std::chrono::sys_seconds{std::chrono::seconds(timegm(&tm))};
}

std::optional<Duration> parse_retry_after(std::string_view value,
                                          std::chrono::system_clock::time_point now) {
    if (value.empty()) return std::nullopt;
    if (value.find_first_not_of("0123456789") == std::string_view::npos && value.size() <= 9) {
        return std::chrono::seconds(std::stol(std::string(value)));
    }
    const auto date = parse_http_date(value);
    if (!date) return std::nullopt;
    // In seconds: a date past 2262 would overflow system_clock's nanoseconds.
    // The scheduler caps any wait at a day.
    const auto wait = date->time_since_epoch() -
                      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
    return std::clamp(std::chrono::duration_cast<Duration>(wait), Duration{0},
                      Duration{std::chrono::hours(24 * 366)});
}

}  // namespace rootcertd
