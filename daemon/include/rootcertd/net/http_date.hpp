// The dates and delays of HTTP headers: Last-Modified, Retry-After.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "rootcertd/core/model.hpp"

namespace rootcertd {

// An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), as in Last-Modified;
// names are case-sensitive (RFC 9110, 5.6.7), the obsolete formats refused.
std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view value);

// Seconds or an HTTP-date, as in a Retry-After header; nullopt if neither.
std::optional<Duration> parse_retry_after(std::string_view value,
                                          std::chrono::system_clock::time_point now);

}  // namespace rootcertd
