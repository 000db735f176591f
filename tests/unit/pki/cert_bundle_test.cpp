#include "rootcertd/pki/cert_bundle.hpp"

#include <gtest/gtest.h>

#include "pki.hpp"

using namespace rootcertd;
using test::CertSpec;
using test::make_cert_pem;

namespace {
const auto now = sys_now();
std::string error_of(const std::string& pem) {
    auto r = validate_bundle(pem, now);
    return r ? "" : r.error();
}
}  // namespace

TEST(CertBundle, AcceptsAValidCa) {
    const auto pem = make_cert_pem({.cn = "Tembo Data Plane CA"});
    auto b = validate_bundle(pem, now);
    ASSERT_TRUE(b.ok()) << b.error();
    ASSERT_EQ(b->certs.size(), 1u);
    EXPECT_EQ(b->certs[0].subject, "CN=Tembo Data Plane CA");
    EXPECT_EQ(b->certs[0].sha256.size(), 64u);
    EXPECT_EQ(b->pem, pem) << "a clean PEM is kept byte for byte";
    EXPECT_GT(b->newest().not_after, now);
}

TEST(CertBundle, NormalizesAwayTextAroundBlocks) {
    const auto pem = make_cert_pem();
    auto b = validate_bundle("subject=CN = x\nissuer=...\n" + pem + "\n\ntrailing junk\n", now);
    ASSERT_TRUE(b.ok()) << b.error();
    EXPECT_EQ(b->pem, pem);
}

TEST(CertBundle, KeepsOrderAndDropsDuplicates) {
    const auto a = make_cert_pem({.cn = "A"});
    const auto c = make_cert_pem({.cn = "C", .not_after_offset = 800 * 86400L});
    auto b = validate_bundle(a + c + a, now);
    ASSERT_TRUE(b.ok()) << b.error();
    ASSERT_EQ(b->certs.size(), 2u);
    EXPECT_EQ(b->certs[0].subject, "CN=A");
    EXPECT_EQ(b->newest().subject, "CN=C");
    EXPECT_EQ(b->pem, a + c);
    EXPECT_EQ(b->fingerprints(), b->certs[0].sha256 + "," + b->certs[1].sha256);
}

TEST(CertBundle, RejectsALeaf) {
    EXPECT_EQ(error_of(make_cert_pem({.cn = "db.example", .ca = false})),
              "certificate 'CN=db.example' is not a CA (basicConstraints CA:TRUE missing)");
    EXPECT_NE(
        error_of(make_cert_pem() + make_cert_pem({.cn = "leaf", .ca = false})).find("not a CA"),
        std::string::npos)
        << "one leaf in a mixed bundle spoils it";
}

TEST(CertBundle, NeedsOneCertificateValidNow) {
    const auto expired = make_cert_pem(
        {.cn = "Old", .not_before_offset = -900 * 86400L, .not_after_offset = -86400});
    EXPECT_NE(error_of(expired).find("no certificate is valid now (newest 'CN=Old' expired"),
              std::string::npos);
    const auto future = make_cert_pem({.cn = "Next", .not_before_offset = 86400});
    EXPECT_NE(error_of(future).find("starts"), std::string::npos);
    EXPECT_TRUE(validate_bundle(expired + make_cert_pem(), now).ok())
        << "an expired CA beside a valid one is still a usable bundle";
}

TEST(CertBundle, ExpiredCasAreLeftOutAndCasNotValidYetKept) {
    const auto expired = make_cert_pem(
        {.cn = "Old", .not_before_offset = -900 * 86400L, .not_after_offset = -86400});
    const auto current = make_cert_pem({.cn = "Current"});
    const auto next = make_cert_pem({.cn = "Next", .not_before_offset = 86400});
    auto b = validate_bundle(expired + current + next, now);
    ASSERT_TRUE(b.ok()) << b.error();
    EXPECT_EQ(b->pem, current + next) << "the file never carries an expired CA";
    ASSERT_EQ(b->dropped.size(), 1u);
    EXPECT_EQ(b->dropped[0].rfind("expired 'CN=Old' (notAfter ", 0), 0u);
    EXPECT_NE(error_of(expired + next).find("no certificate is valid now"), std::string::npos)
        << "an upcoming CA alone cannot verify anything yet";
}

TEST(CertBundle, APublishedChainKeepsItsCaWhenLeavesMayBeDropped) {
    const auto ca = make_cert_pem({.cn = "Bridge CA"});
    const auto leaf = make_cert_pem({.cn = "p.abc.db.postgresbridge.com", .ca = false});
    auto b = validate_bundle(leaf + ca, now, true);
    ASSERT_TRUE(b.ok()) << b.error();
    EXPECT_EQ(b->pem, ca);
    EXPECT_EQ(b->dropped,
              std::vector<std::string>{"leaf 'CN=p.abc.db.postgresbridge.com' (not a CA)"});
    auto only_leaf = validate_bundle(leaf, now, true);
    ASSERT_FALSE(only_leaf.ok());
    EXPECT_EQ(only_leaf.error(), "no CA certificate among the certificates served");
    EXPECT_FALSE(validate_bundle(leaf + ca, now).ok()) << "elsewhere a leaf still spoils a bundle";
}

TEST(CertBundle, RejectsGarbageAndTruncation) {
    EXPECT_EQ(error_of(""), "no PEM CERTIFICATE block found");
    EXPECT_EQ(error_of("hello world"), "no PEM CERTIFICATE block found");
    const auto pem = make_cert_pem();
    EXPECT_EQ(error_of(pem.substr(0, pem.size() / 2)), "PEM block 1 is malformed or truncated");
    EXPECT_EQ(error_of("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
              "certificate 1 does not parse as X.509");
}

TEST(CertBundle, NeverEchoesAPrivateKey) {
    const auto key = test::make_key_pem();
    const auto e = error_of(make_cert_pem() + key);
    EXPECT_EQ(e, "PEM block 2 is a 'PRIVATE KEY', not a CERTIFICATE");
    const auto body = key.substr(key.find('\n') + 1, 40);
    EXPECT_EQ(e.find(body), std::string::npos);
}

TEST(CertBundle, ParseDescribesWithoutJudging) {
    auto b = parse_bundle(make_cert_pem({.cn = "leaf", .ca = false}));
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->certs[0].subject, "CN=leaf");
    EXPECT_EQ(format_time(SysTime{}), "1970-01-01T00:00:00Z");
}

TEST(CertBundle, ACaThatNeverExpiresIsValid) {
    // RFC 5280 4.1.2.5: 99991231235959Z means "no well-defined expiration".
    const auto forever = make_cert_pem({.cn = "Forever CA", .not_after = "99991231235959Z"});
    auto b = validate_bundle(forever, now);
    ASSERT_TRUE(b.ok()) << b.error();
    EXPECT_EQ(format_time(b->newest().not_after), "9999-12-31T23:59:59Z");
    EXPECT_GT(b->newest().not_after, now);
}
