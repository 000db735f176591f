// The value checks of the domain model (core/model.hpp) every layer uses.
#include "rootcertd/core/model.hpp"

#include <gtest/gtest.h>

using namespace rootcertd;
using namespace std::chrono_literals;

TEST(Duration, ParsesEveryUnit) {
    EXPECT_EQ(parse_duration("500ms").value(), 500ms);
    EXPECT_EQ(parse_duration("30s").value(), 30s);
    EXPECT_EQ(parse_duration("5m").value(), 5min);
    EXPECT_EQ(parse_duration("1h").value(), 1h);
    EXPECT_EQ(parse_duration("1d").value(), 24h);
    EXPECT_EQ(parse_duration("0").value(), 0ms);
}

TEST(Duration, IsBoundedSoTimeArithmeticCannotOverflow) {
    EXPECT_EQ(parse_duration("3650d").value(), max_duration);
    for (const char* long_one : {"3651d", "110000d", "999999999d", "87601h"}) {
        const auto d = parse_duration(long_one);
        ASSERT_FALSE(d.ok()) << long_one;
        EXPECT_NE(d.error().find("maximum, 3650d"), std::string::npos) << d.error();
    }
}

TEST(Duration, RejectsWhatIsNotADuration) {
    for (const char* bad : {"", "10", "s", "1w", "1.5h", "-1s", "1 h", "1h30m", "99999999999s"}) {
        EXPECT_FALSE(parse_duration(bad).ok()) << bad;
    }
    EXPECT_NE(parse_duration("10").error().find("no unit"), std::string::npos);
}

TEST(HttpsUrl, AcceptsOriginsOnly) {
    auto e = parse_https_url("https://api.data-1.euc1.tembo.io");
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->host, "api.data-1.euc1.tembo.io");
    EXPECT_EQ(e->port, 443);
    EXPECT_EQ(parse_https_url("https://127.0.0.1:8443/")->port, 8443);
    EXPECT_EQ(parse_https_url("https://[::1]:9443")->host, "::1");
    EXPECT_EQ(parse_https_url("https://[::1]:9443")->origin(), "https://[::1]:9443");
    for (const char* bad : {"http://api.tembo.io", "api.tembo.io", "https://u:p@h", "https://h/api",
                            "https://h?x=1", "https://:443", "ftp://h"}) {
        EXPECT_FALSE(parse_https_url(bad).ok()) << bad;
    }
    EXPECT_NE(parse_https_url("http://h").error().find("https"), std::string::npos);
}

TEST(Host, NamesOrAddressesWithoutAPort) {
    for (const char* ok : {"db.example.com", "localhost", "db.", "10.0.0.1", "::1", "a_b-c.d"}) {
        EXPECT_TRUE(is_host(ok)) << ok;
    }
    for (const char* bad :
         {"", ".", "db..example", "db example", "db\nx", "db:5432", "a/b", "[::1]"}) {
        EXPECT_FALSE(is_host(bad)) << bad;
    }
    EXPECT_EQ(host_with_port("db.example.com:5432"),
              (std::pair<std::string, std::string>{"db.example.com", "5432"}));
    EXPECT_EQ(host_with_port("[::1]:5432"), (std::pair<std::string, std::string>{"::1", "5432"}));
    EXPECT_FALSE(host_with_port("db.example.com"));
}
