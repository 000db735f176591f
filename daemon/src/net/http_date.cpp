#include "rootcertd/net/http_date.hpp"

#include <algorithm>
#include <string>

namespace rootcertd {

namespace {

// The number in TEXT's N digits at AT, or -1.
int digits(std::string_view text, std::size_t at, std::size_t n) {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (text[i] < '0' || text[i] > '9') return -1;
        v = v * 10 + (text[i] - '0');
    }
    return v;
}

// The index of TEXT's 3 letters at AT in NAMES (3 letters each), or -1.
int name_index(std::string_view names, std::string_view text, std::size_t at) {
    const auto found = names.find(text.substr(at, 3));
    return found == std::string_view::npos || found % 3 != 0 ? -1 : static_cast<int>(found / 3);
}

}  // namespace

// By position: the format has fixed widths, and strptime() with its locale
// lookups cost ~8,000 instructions per answer (bench/RESULTS.md).
std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view v) {
    // 0         1         2
    // 01234567890123456789012345678
    // Sun, 06 Nov 1994 08:49:37 GMT
    if (v.size() != 29 || v.substr(3, 2) != ", " || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' ||
        v[19] != ':' || v[22] != ':' || v.substr(25) != " GMT" ||
        name_index("SunMonTueWedThuFriSat", v, 0) < 0) {
        return std::nullopt;
    }
    const int month = name_index("JanFebMarAprMayJunJulAugSepOctNovDec", v, 8);
    const int day = digits(v, 5, 2), year = digits(v, 12, 4);
    const int hour = digits(v, 17, 2), minute = digits(v, 20, 2), second = digits(v, 23, 2);
    if (month < 0 || day < 0 || year < 0 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
        second < 0 || second > 60) {
        return std::nullopt;
    }
    const std::chrono::year_month_day date{std::chrono::year(year),
                                           std::chrono::month(static_cast<unsigned>(month + 1)),
                                           std::chrono::day(static_cast<unsigned>(day))};
    if (!date.ok()) return std::nullopt;
    return std::chrono::sys_days(date) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
           std::chrono::seconds(second);
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
