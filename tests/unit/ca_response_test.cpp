#include "rootcertd/ca_response.hpp"

#include <gtest/gtest.h>

using namespace rootcertd;

namespace {
std::string error_of(unsigned status, std::string_view body) {
    auto r = extract_ca(status, body);
    return r ? "" : r.error();
}
}  // namespace

TEST(ExtractCa, ReturnsThePemOfA200) {
    auto r = extract_ca(
        200, R"({"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"})");
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r.value(), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
}

TEST(ExtractCa, NamesWhatIsWrongWithA200) {
    EXPECT_EQ(error_of(200, "{}"), "response is {}: the instance's secret holds no CA");
    EXPECT_EQ(error_of(200, "null"), "response is null, not a JSON object");
    EXPECT_EQ(error_of(200, "[1,2]"), "response is an array, not a JSON object");
    EXPECT_EQ(error_of(200, R"({"ca.crt": 5})"), "\"ca.crt\" is a number, not a string");
    EXPECT_EQ(error_of(200, R"({"ca.crt": null})"), "\"ca.crt\" is null, not a string");
    EXPECT_EQ(error_of(200, R"({"ca.crt": ""})"), "\"ca.crt\" is empty");
    EXPECT_EQ(error_of(200, R"({"tls.crt": "x", "tls.key": "y"})"),
              "response has no \"ca.crt\" (keys: tls.crt, tls.key)");
    EXPECT_EQ(
        error_of(200, "<html><body>Bad gateway</body></html>").rfind("response is not JSON", 0),
        0u);
    EXPECT_EQ(error_of(200, R"({"ca.crt": "-----BEGIN)").rfind("response is not JSON", 0), 0u);
    EXPECT_EQ(error_of(200, "").rfind("response is not JSON", 0), 0u);
}

TEST(ExtractCa, ErrorStatusesCarryTembosMessage) {
    EXPECT_EQ(error_of(404, "\"Secret not found\""), "HTTP 404: Secret not found");
    EXPECT_EQ(error_of(401, R"({"message": "token expired"})"), "HTTP 401: token expired");
    EXPECT_EQ(error_of(500, ""), "HTTP 500: (empty body)");
    EXPECT_EQ(error_of(502, "<html>\n<b>502</b>\n</html>"), "HTTP 502: <html> <b>502</b> </html>");
    // Even a 200-shaped body on an error status is an error.
    EXPECT_EQ(error_of(403, R"({"ca.crt": "x"})").rfind("HTTP 403", 0), 0u);
}

TEST(ExtractCa, SnippetsAreBoundedAndPrintable) {
    const auto e = error_of(500, std::string(10000, 'x') + "\x01\x02");
    EXPECT_LE(e.size(), 140u);
    EXPECT_EQ(printable_snippet("a\x01\x02"
                                "b\n"),
              "a b ");
}
