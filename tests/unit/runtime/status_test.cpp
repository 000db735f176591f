#include "rootcertd/runtime/status.hpp"

#include <gtest/gtest.h>

#include "rootcertd/config/config.hpp"
#include "rootcertd/net/http_server.hpp"
#include "rootcertd/sources/token_source.hpp"

using namespace rootcertd;

namespace {
Config config_with(const std::string& instances) {
    return parse_config(
        "api: {url: https://h, token_env: T}\ncert_dir: /c\ninstances: " + instances + "\n",
        "t.yaml");
}
}  // namespace

TEST(StatusBoard, ReadyOnlyWhenEveryInstanceHasAValidFile) {
    StatusBoard board;
    board.sync(config_with("[{org: a, id: one}, {org: a, id: two}]"));
    EXPECT_FALSE(board.ready());
    EXPECT_EQ(board.ready().error(), "2 instance(s) without a valid CA file: one, two");
    board.find("one")->file_valid = true;
    EXPECT_FALSE(board.ready());
    EXPECT_EQ(board.ready().error(), "1 instance(s) without a valid CA file: two");
    board.find("two")->file_valid = true;
    EXPECT_TRUE(board.ready());
}

TEST(StatusBoard, SummaryNamesWhatFails) {
    StatusBoard board;
    board.sync(config_with("[{org: a, id: one}, {org: a, id: two}, {org: a, id: three}]"));
    for (auto name : {"one", "two", "three"}) board.find(name)->file_valid = true;
    EXPECT_EQ(board.summary(), "3/3 fresh");
    auto* two = board.find("two");
    two->consecutive_failures = 2;
    two->last_error = "HTTP 404: Secret not found";
    EXPECT_EQ(board.summary(), "2/3 fresh; failing: two (HTTP 404: Secret not found)");
    // A long reason ends at a word, marked as cut (it was cut mid-word).
    two->last_error =
        "GET /api/v1/orgs/org_abc/instances/inst_123/secrets/certificate on "
        "https://api.data-1.use1.tembo.io: connect: Connection refused";
    EXPECT_EQ(board.summary(),
              "2/3 fresh; failing: two (GET /api/v1/orgs/org_abc/instances/inst_123/secrets/"
              "certificate on...)");
}

TEST(StatusBoard, SyncKeepsWhatItKnewAboutInstancesThatStay) {
    StatusBoard board;
    board.sync(config_with("[{org: a, id: one}, {org: a, id: two}]"));
    board.find("one")->successes = 7;
    board.sync(config_with("[{org: a, id: one}, {org: a, id: three}]"));
    EXPECT_EQ(board.find("one")->successes, 7u);
    EXPECT_EQ(board.find("two"), nullptr);
    EXPECT_NE(board.find("three"), nullptr);
}

TEST(Metrics, ExpositionHasHelpTypeAndEscapedLabels) {
    StatusBoard board;
    board.sync(config_with("[{org: a, id: one}]"));
    board.find("one")->successes = 3;
    board.find("one")->name = "we\"ird\\name";  // never from config, but escaping must hold
    const auto text = render_metrics(board);
    EXPECT_NE(text.find("# HELP rootcertd_refresh_total "), std::string::npos);
    EXPECT_NE(text.find("# TYPE rootcertd_refresh_total counter"), std::string::npos);
    EXPECT_NE(text.find("rootcertd_refresh_total{name=\"we\\\"ird\\\\name\",org=\"a\",id=\"one\","
                        "result=\"success\"} 3"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("rootcertd_refresh_duration_seconds_bucket{le=\"+Inf\"} 0"),
              std::string::npos);
    EXPECT_EQ(text.find("rootcertd_token_expiry_timestamp_seconds "), std::string::npos)
        << "no token expiry when it is unknown";
}

TEST(Metrics, LatencyHistogramIsCumulative) {
    GlobalStatus g;
    g.observe_latency(0.003);
    g.observe_latency(0.2);
    EXPECT_EQ(g.latency_counts[0], 1u);  // <= 0.005
    EXPECT_EQ(g.latency_counts[5], 2u);  // <= 0.25
    EXPECT_EQ(g.latency_count, 2u);
    EXPECT_DOUBLE_EQ(g.latency_sum, 0.203);
}

TEST(ParseListen, HostPortForms) {
    EXPECT_EQ(parse_listen("127.0.0.1:9464")->port(), 9464);
    EXPECT_EQ(parse_listen("[::1]:9464")->address().to_string(), "::1");
    EXPECT_EQ(parse_listen("localhost:9")->address().to_string(), "127.0.0.1");
    for (const char* bad :
         {"9464", "127.0.0.1", "::1:9464", "[::1]9464", "host:99999", "example.com:1"}) {
        EXPECT_FALSE(parse_listen(bad).ok()) << bad;
    }
}

TEST(JwtExpiry, ReadsTheExpClaim) {
    // {"alg":"HS256"} . {"sub":"x","exp":1767225600} . sig
    EXPECT_EQ(jwt_expiry("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjoxNzY3MjI1NjAwfQ.c2ln"),
              SysTime{std::chrono::seconds(1767225600)});
    EXPECT_FALSE(jwt_expiry("not-a-jwt").has_value());
    EXPECT_FALSE(jwt_expiry("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln").has_value()) << "no exp";
    EXPECT_FALSE(jwt_expiry("a.!!!.c").has_value());
}

TEST(JwtExpiry, AFarFutureExpIsThatFarAhead) {
    // {"sub":"x","exp":9999999999}: 2286-11-20, past system_clock's 2262.
    const auto far = jwt_expiry("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjo5OTk5OTk5OTk5fQ.c2ln");
    ASSERT_TRUE(far.has_value());
    EXPECT_EQ(format_time(*far), "2286-11-20T17:46:39Z");
    EXPECT_GT(*far, sys_now());
    // {"sub":"x","exp":1e300}: no time at all.
    EXPECT_FALSE(
        jwt_expiry("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjoxZSszMDB9.c2ln").has_value());
    // The metric an alert compares with time(): positive, and that far.
    StatusBoard board;
    board.global().token_expiry = far;
    EXPECT_NE(render_metrics(board).find("rootcertd_token_expiry_timestamp_seconds 9999999999"),
              std::string::npos)
        << render_metrics(board);
}
