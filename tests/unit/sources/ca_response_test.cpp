#include "rootcertd/sources/ca_response.hpp"

#include <gtest/gtest.h>

#include "pki.hpp"
#include "rootcertd/pki/cert_bundle.hpp"
#include "rootcertd/sources/providers.hpp"

using namespace rootcertd;

namespace {

const Reading& reading_of(std::string_view provider) { return find_preset(provider)->reading; }

std::string error_of(std::string_view body, const Reading& reading = reading_of("tembo")) {
    auto r = read_ca(body, reading);
    return r ? "" : r.error();
}

// PEM's base64 body as one string, and the DER it encodes.
std::string der_of(const std::string& pem) {
    auto body = pem.substr(pem.find('\n') + 1);
    body = body.substr(0, body.find("-----END"));
    return decode_base64(body).value();
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) out += c == '\n' ? std::string("\\n") : std::string(1, c);
    return out + "\"";
}

}  // namespace

TEST(ReadCa, ReturnsTheStringAtThePointer) {
    auto r =
        read_ca(R"({"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"})",
                reading_of("tembo"));
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r.value(), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    // RFC 6901: "~1" is '/', "~0" is '~'.
    Reading nested;
    nested.json_pointer = "/data/a~1b";
    EXPECT_EQ(read_ca(R"({"data": {"a/b": "-----BEGIN X"}})", nested).value(), "-----BEGIN X\n");
}

TEST(ReadCa, NamesWhatIsWrongWithTheBody) {
    EXPECT_EQ(error_of("{}"), "response is {}: it holds no CA");
    EXPECT_EQ(error_of("null"), "response is null, not a JSON object");
    EXPECT_EQ(error_of("[1]"), "response has no \"/ca.crt\"");
    EXPECT_EQ(error_of(R"({"ca.crt": 5})"), "\"/ca.crt\" is a number, not a string");
    EXPECT_EQ(error_of(R"({"ca.crt": null})"), "\"/ca.crt\" is null, not a string");
    EXPECT_EQ(error_of(R"({"ca.crt": ""})"), "\"/ca.crt\" is empty");
    EXPECT_EQ(error_of(R"({"tls.crt": "x", "tls.key": "y"})"),
              "response has no \"/ca.crt\" (keys: tls.crt, tls.key)");
    EXPECT_EQ(error_of("<html><body>Bad gateway</body></html>").rfind("response is not JSON", 0),
              0u);
    EXPECT_EQ(error_of(R"({"ca.crt": "-----BEGIN)").rfind("response is not JSON", 0), 0u);
    EXPECT_EQ(error_of("").rfind("response is not JSON", 0), 0u);
    EXPECT_EQ(error_of("", reading_of("rds")), "response body is empty");
}

TEST(ReadCa, ErrorStatusesCarryTheApisMessage) {
    EXPECT_EQ(http_error(404, "\"Secret not found\""), "HTTP 404: Secret not found");
    EXPECT_EQ(http_error(401, R"({"message": "token expired"})"), "HTTP 401: token expired");
    EXPECT_EQ(http_error(500, ""), "HTTP 500: (empty body)");
    EXPECT_EQ(http_error(502, "<html>\n<b>502</b>\n</html>"),
              "HTTP 502: <html> <b>502</b> </html>");
}

TEST(ReadCa, SnippetsAreBoundedAndPrintable) {
    EXPECT_LE(http_error(500, std::string(10000, 'x') + "\x01\x02").size(), 140u);
    EXPECT_EQ(printable_snippet("a\x01\x02"
                                "b\n"),
              "a b ");
}

TEST(ReadCa, DigitalOceanServesBase64OfThePem) {
    const auto pem = test::make_cert_pem();
    std::string b64;
    {
        // The PEM's bytes, base64-encoded on one line as DigitalOcean does.
        std::string out(4 * ((pem.size() + 2) / 3), '\0');
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(pem.data()),
                        static_cast<int>(pem.size()));
        b64 = out;
    }
    auto r = read_ca(R"({"ca": {"certificate": ")" + b64 + "\"}}", reading_of("digitalocean"));
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r.value(), pem);
    EXPECT_EQ(error_of(R"({"ca": {"certificate": "not base64!"}})", reading_of("digitalocean")),
              "base64: not base64 (a character outside its alphabet)");
}

TEST(ReadCa, CloudSqlListsEveryCaAsAnObjectsCert) {
    const auto a = test::make_cert_pem({.cn = "Cloud SQL A"});
    const auto b = test::make_cert_pem({.cn = "Cloud SQL B"});
    const auto body = R"({"certs": [{"cert": )" + json_string(a) + R"(, "sha1Fingerprint": "x"},
        {"cert": )" + json_string(b) +
                      R"(}], "activeVersion": "x", "kind": "sql#instancesListServerCas"})";
    auto r = read_ca(body, reading_of("cloudsql"));
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r.value(), a + b);
    EXPECT_EQ(error_of(R"({"certs": []})", reading_of("cloudsql")),
              "\"/certs\" is an empty array: it holds no CA");
    EXPECT_EQ(error_of(R"({"certs": [{"cert": 1}]})", reading_of("cloudsql")),
              "\"/certs\"[0].cert is a number, not a string");
    EXPECT_EQ(error_of(R"({"certs": ["x"]})", reading_of("cloudsql")),
              "\"/certs\"[0].cert is missing");
}

TEST(ReadCa, DerIsDetectedOrAskedForAndBecomesPem) {
    const auto a = test::make_cert_pem({.cn = "DER A"});
    const auto b = test::make_cert_pem({.cn = "DER B"});
    const auto der = der_of(a) + der_of(b);
    Reading automatic;
    auto r = read_ca(der, automatic);
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r.value(), a + b);
    Reading der_only;
    der_only.format = CaFormat::der;
    EXPECT_EQ(read_ca(der, der_only).value(), a + b);
    EXPECT_EQ(error_of(a, der_only), "DER certificate 1 does not parse as X.509");
    EXPECT_EQ(error_of(der.substr(0, der.size() - 10), automatic),
              "neither PEM nor DER (DER certificate 2 does not parse as X.509)");
    // Base64 of DER, as some secret stores hold it.
    Reading b64;
    b64.base64 = true;
    b64.json_pointer = "/data";
    std::string text(4 * ((der.size() + 2) / 3), '\0');
    EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()),
                    reinterpret_cast<const unsigned char*>(der.data()),
                    static_cast<int>(der.size()));
    EXPECT_EQ(read_ca(R"({"data": ")" + text + "\"}", b64).value(), a + b);
}

TEST(ReadCa, AnArrayOfStringsIsEveryCa) {
    Reading r;
    r.json_pointer = "/cas";
    EXPECT_EQ(read_ca(R"({"cas": ["-----BEGIN A", "-----BEGIN B\n"]})", r).value(),
              "-----BEGIN A\n-----BEGIN B\n");
    EXPECT_EQ(error_of(R"({"cas": ["-----BEGIN A", {}]})", r),
              "\"/cas\"[1] is an object, not a string");
}

TEST(Base64, DecodesWithLineBreaksAndPadding) {
    EXPECT_EQ(decode_base64("aGVsbG8=").value(), "hello");
    EXPECT_EQ(decode_base64("aGVs\nbG8h").value(), "hello!");
    EXPECT_EQ(decode_base64(" aGk= \n").value(), "hi");
    EXPECT_FALSE(decode_base64("aGk").ok());
    EXPECT_FALSE(decode_base64("a=Gk").ok());
    EXPECT_FALSE(decode_base64("").ok());
    EXPECT_FALSE(decode_base64("aG=k").ok());
}
