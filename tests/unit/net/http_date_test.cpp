#include "rootcertd/net/http_date.hpp"

#include <gtest/gtest.h>

using namespace rootcertd;

TEST(RetryAfter, SecondsAndHttpDates) {
    const auto now = std::chrono::system_clock::from_time_t(1'700'000'000);
    EXPECT_EQ(parse_retry_after("120", now), std::chrono::seconds(120));
    EXPECT_EQ(parse_retry_after("Wed, 15 Nov 2023 00:13:20 GMT", now), std::chrono::seconds(7200));
    EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 20:00:00 GMT", now), Duration{0});
    EXPECT_FALSE(parse_retry_after("soon", now).has_value());
    EXPECT_FALSE(parse_retry_after("", now).has_value());
}

TEST(HttpDate, LastModifiedIsAnImfFixdate) {
    EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
              std::chrono::sys_seconds{std::chrono::seconds(784111777)});
    EXPECT_FALSE(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT")) << "RFC 850: not sent today";
    EXPECT_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT trailing"));
}

TEST(HttpDate, EveryFieldIsCheckedAndDatesAgreeWithTheCalendar) {
    EXPECT_EQ(parse_http_date("Thu, 29 Feb 2024 23:59:60 GMT"),
              std::chrono::sys_days{std::chrono::year(2024) / 3 / 1} + std::chrono::seconds(0))
        << "a leap day, and a leap second as the next minute's first";
    for (const char* bad : {"Thu, 29 Feb 2023 12:00:00 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
                            "Sun, 06 Nov 1994 08:60:37 GMT", "sun, 06 Nov 1994 08:49:37 GMT",
                            "Sun, 06 nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 UTC",
                            "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:3x GMT",
                            "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun, 00 Nov 1994 08:49:37 GMT", ""}) {
        EXPECT_FALSE(parse_http_date(bad)) << bad;
    }
}
