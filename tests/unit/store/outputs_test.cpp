// outputs: the config section, membership, the union written, and the
// PKCS#12 and JKS writers against their readers.
#include "rootcertd/store/outputs.hpp"

#include <gtest/gtest.h>
#include <openssl/pkcs12.h>
#include <stdlib.h>

#include "pki.hpp"
#include "rootcertd/config/config.hpp"
#include "rootcertd/pki/keystore.hpp"
#include "tempdir.hpp"

using namespace rootcertd;

namespace {

const std::string fleet = R"(api: {url: "https://api.example", token_env: OUTPUTS_TEST_TOKEN}
cert_dir: /tmp/certs
credentials:
  store: {env: OUTPUTS_TEST_TOKEN}
instances:
  - {org: o, id: a}
  - {org: o, id: b}
  - {name: c, source: {provider: aiven, project: p, api_url: "https://aiven.example",
                       credential: store}}
)";

Config with_outputs(const std::string& outputs) {
    ::setenv("OUTPUTS_TEST_TOKEN", "t", 1);
    return parse_config(fleet + "outputs:\n" + outputs, "/etc/rootcertd/test.yaml");
}

std::string error_of(const std::string& outputs) {
    try {
        with_outputs(outputs);
        return "";
    } catch (const ConfigError& e) {
        return e.what();
    }
}

std::vector<std::string> ders_of(const std::string& pem) {
    std::vector<std::string> out;
    const auto certs = trusted_certs(pem);
    for (const auto& c : certs.value()) out.push_back(c.der);
    return out;
}

}  // namespace

TEST(OutputsConfig, DefaultsAndEveryKey) {
    const auto cfg = with_outputs(R"(  - {name: bouncer, instances: [a, b]}
  - name: jvm
    format: jks
    password: store
    select: [{provider: aiven}, {name: "a*"}]
    path: stores/jvm.jks
    file_mode: "0640"
)");
    ASSERT_EQ(cfg.outputs.size(), 2u);
    EXPECT_EQ(cfg.outputs[0].path, "/tmp/certs/bouncer.pem");
    EXPECT_EQ(cfg.outputs[0].format, OutputFormat::pem);
    EXPECT_EQ(cfg.outputs[1].path, "/tmp/certs/stores/jvm.jks");
    EXPECT_EQ(cfg.outputs[1].password, "store");
    EXPECT_EQ(cfg.outputs[1].file.mode, 0640u);
    EXPECT_EQ(members_of(cfg.outputs[0], cfg.instances), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(members_of(cfg.outputs[1], cfg.instances), (std::vector<std::string>{"a", "c"}));
}

TEST(OutputsConfig, MistakesNameTheKey) {
    struct Case {
        std::string yaml, expect;
    };
    const std::vector<Case> cases{
        {"  - {name: a, instances: [b]}\n", "outputs[0].name: 'a' is already used by the entry"},
        {"  - {name: x, instances: [nope]}\n",
         "outputs[0].instances: 'nope' is no instance's name"},
        {"  - {name: x}\n", "outputs[0]: set instances (names) or select"},
        {"  - {name: x, instancs: [a]}\n", "unknown key 'instancs' (did you mean 'instances'?)"},
        {"  - {name: x, instances: [a], format: der}\n", "'der' is not pem, pkcs12 or jks"},
        {"  - {name: x, instances: [a], password: store}\n", "only for format pkcs12 or jks"},
        {"  - {name: x, format: jks, instances: [a], password: nope}\n",
         "'nope' is not defined under credentials"},
        {"  - {name: x, select: {provider: azur}}\n", "unknown provider 'azur'"},
        {"  - {name: x, select: {discover: \"tembo:o\"}}\n", "no discover entry (none is set)"},
        {"  - {name: x, select: {}}\n", "set provider, discover or name"},
        {"  - {name: x, instances: [a], path: a.crt}\n", "is an instance's own file"},
        {"  - {name: x, instances: [a]}\n  - {name: x, instances: [b]}\n",
         "outputs[1].name: 'x' is already used"},
    };
    for (const auto& c : cases) {
        const auto e = error_of(c.yaml);
        EXPECT_NE(e.find(c.expect), std::string::npos) << c.yaml << " gave: " << e;
        EXPECT_NE(e.find("test.yaml:"), std::string::npos) << e;
    }
}

TEST(Keystore, Pkcs12RoundTripsThroughOpenSslWithTheJavaTrustAttribute) {
    const auto pem = test::make_cert_pem({.cn = "One"}) + test::make_cert_pem({.cn = "Two"});
    const auto certs = trusted_certs(pem).value();
    ASSERT_EQ(certs.size(), 2u);
    EXPECT_EQ(certs[0].alias.substr(8), "|CN=One");
    for (const auto& password : {std::optional<std::string>("pw"), std::optional<std::string>()}) {
        const auto bytes = write_pkcs12(certs, password).value();
        EXPECT_EQ(read_pkcs12(bytes, password).value(), ders_of(pem));
        // OpenSSL's own parser finds both certificates.
        const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
        PKCS12* p12 = d2i_PKCS12(nullptr, &p, static_cast<long>(bytes.size()));
        ASSERT_NE(p12, nullptr);
        EVP_PKEY* key = nullptr;
        X509* cert = nullptr;
        STACK_OF(X509)* ca = nullptr;
        ASSERT_EQ(PKCS12_parse(p12, password ? password->c_str() : nullptr, &key, &cert, &ca), 1);
        EXPECT_EQ(key, nullptr);
        EXPECT_EQ(sk_X509_num(ca) + (cert ? 1 : 0), 2);
        sk_X509_pop_free(ca, X509_free);
        X509_free(cert);
        PKCS12_free(p12);
        const std::string oracle_oid("\x06\x0c\x60\x86\x48\x01\x86\xf9\x66\xad\xca\x7b\x01\x01",
                                     14);
        EXPECT_NE(bytes.find(oracle_oid), std::string::npos) << "Oracle's trusted-key-usage OID";
    }
    EXPECT_FALSE(read_pkcs12(write_pkcs12(certs, "pw").value(), "wrong"));
}

TEST(Keystore, JksRoundTripsAndChecksItsDigest) {
    const auto pem = test::make_cert_pem({.cn = "Root G1"}) + test::make_cert_pem({.cn = "Zürich"});
    const auto certs = trusted_certs(pem).value();
    const auto bytes = write_jks(certs, "changeit");
    EXPECT_EQ(bytes.substr(0, 8), std::string("\xfe\xed\xfe\xed\x00\x00\x00\x02", 8));
    const auto read = read_jks(bytes, "changeit").value();
    ASSERT_EQ(read.size(), 2u);
    EXPECT_EQ(read[0].der, certs[0].der);
    EXPECT_EQ(read[0].alias, certs[0].alias.substr(0, 8) + "|cn=root g1");  // Java's lower case
    // Non-ASCII survives modified UTF-8 and back; only ASCII is lowered.
    ASSERT_NE(certs[1].alias.find('\xc3'), std::string::npos) << certs[1].alias;
    std::string lowered = certs[1].alias;
    for (auto& c : lowered) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    EXPECT_EQ(read[1].alias, lowered);
    EXPECT_EQ(read[1].created_ms, certs[1].created_ms);
    EXPECT_FALSE(read_jks(bytes, "wrong"));
    for (std::size_t cut : {0ul, 11ul, 40ul, bytes.size() - 1}) {
        EXPECT_FALSE(read_jks(bytes.substr(0, cut), "changeit")) << cut;
    }
}

class WriteOutput : public ::testing::Test {
  protected:
    test::TempDir dir;
    CertStore store{dir.path()};
    std::string ca1 = test::make_cert_pem({.cn = "A1"}), ca2 = test::make_cert_pem({.cn = "B1"}),
                ca3 = test::make_cert_pem({.cn = "B2"});
    Output output = [this] {
        Output o;
        o.name = "all";
        o.path = dir / "all.pem";
        return o;
    }();

    void member(const std::string& name, const std::string& pem) {
        ASSERT_TRUE(store.install(name + ".crt", pem, {}));
    }
};

TEST_F(WriteOutput, TheUnionInMemberOrderWithoutDuplicates) {
    member("a", ca1);
    member("b", ca2 + ca1);  // b trusts a's CA too: once in the output
    const auto w = write_output(output, {"a", "b"}, store, std::nullopt).value();
    EXPECT_TRUE(w.changed);
    EXPECT_EQ(w.certificates, 2u);
    EXPECT_EQ(ders_of(*store.read("all.pem").value()), ders_of(ca1 + ca2));
    EXPECT_EQ(w.added.size(), 2u);
    EXPECT_TRUE(w.removed.empty());
}

TEST_F(WriteOutput, NothingIsWrittenUntilEveryMemberHasAFile) {
    member("a", ca1);
    const auto w = write_output(output, {"a", "b"}, store, std::nullopt).value();
    EXPECT_FALSE(w.changed);
    EXPECT_EQ(w.waiting_for, std::vector<std::string>{"b"});
    EXPECT_FALSE(store.read("all.pem").value());
    EXPECT_FALSE(write_output(output, {}, store, std::nullopt)) << "no member: no empty file";
}

TEST_F(WriteOutput, AMemberThatLeavesTakesItsCasAndTheRestStay) {
    member("a", ca1);
    member("b", ca3 + ca2);  // b in an overlap: new and previous
    ASSERT_TRUE(write_output(output, {"a", "b"}, store, std::nullopt));
    const auto w = write_output(output, {"a"}, store, std::nullopt).value();
    EXPECT_TRUE(w.changed);
    EXPECT_EQ(w.removed.size(), 2u);
    EXPECT_EQ(ders_of(*store.read("all.pem").value()), ders_of(ca1));
}

TEST_F(WriteOutput, TruststoresAreComparedByTheirCertificatesNotTheirBytes) {
    output.format = OutputFormat::pkcs12;
    output.path = dir / "all.p12";
    member("a", ca1);
    ASSERT_TRUE(write_output(output, {"a"}, store, "pw").value().changed);
    const auto first = *store.read("all.p12").value();
    EXPECT_FALSE(write_output(output, {"a"}, store, "pw").value().changed);
    EXPECT_EQ(*store.read("all.p12").value(), first);
    // Another password: the file no longer opens with it, so it is rewritten.
    EXPECT_TRUE(write_output(output, {"a"}, store, "new").value().changed);
    EXPECT_TRUE(read_pkcs12(*store.read("all.p12").value(), "new"));
}

TEST_F(WriteOutput, AnUnreadableMemberFileFailsAndKeepsTheOutput) {
    member("a", ca1);
    ASSERT_TRUE(write_output(output, {"a"}, store, std::nullopt));
    member("a", "not a certificate\n");
    const auto w = write_output(output, {"a"}, store, std::nullopt);
    ASSERT_FALSE(w);
    EXPECT_NE(w.error().find("a.crt"), std::string::npos) << w.error();
    EXPECT_EQ(ders_of(*store.read("all.pem").value()), ders_of(ca1));
}
