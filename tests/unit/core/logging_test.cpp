#include "rootcertd/core/logging.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>
#include <sstream>

using namespace rootcertd;

TEST(Logging, JsonLinesParseEvenWithQuotesAndNewlines) {
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    sink->set_formatter(make_formatter(LogFormat::json));
    spdlog::logger logger("t", sink);
    logger.warn("prod: refresh failed: HTTP 404: \"Secret\nnot found\" \\ {}", "\x01");
    const auto line = out.str();
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.back(), '\n');
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << "one line per record";
    const auto v = boost::json::parse(line);
    EXPECT_EQ(v.at("level").as_string(), "warning");
    EXPECT_EQ(v.at("msg").as_string(),
              "prod: refresh failed: HTTP 404: \"Secret\nnot found\" \\ \x01");
    const std::string ts(v.at("ts").as_string());
    EXPECT_EQ(ts.size(), 24u) << ts;
    EXPECT_EQ(ts.back(), 'Z');
}

TEST(Logging, ParsesLevelsAndFormats) {
    EXPECT_EQ(parse_log_level("warning"), spdlog::level::warn);
    EXPECT_EQ(parse_log_level("debug"), spdlog::level::debug);
    EXPECT_FALSE(parse_log_level("loud").has_value());
    EXPECT_EQ(parse_log_format("json"), LogFormat::json);
    EXPECT_FALSE(parse_log_format("xml").has_value());
}
