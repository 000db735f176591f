// Test helper: makes CA and leaf certificates in memory with OpenSSL.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace rootcertd::test {

struct CertSpec {
    std::string cn = "Test Root CA";
    bool ca = true;
    long not_before_offset = -3600;       // seconds from now
    long not_after_offset = 365 * 86400;  // seconds from now
    std::string not_after;                // instead, as in a certificate: "99991231235959Z"
};

// A certificate with its own fresh key, self-signed.
inline std::string make_cert_pem(const CertSpec& spec = {}) {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
    std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
    if (!key || !x) throw std::runtime_error("openssl");
    X509_set_version(x.get(), 2);
    static long serial = 1;
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), spec.not_before_offset);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), spec.not_after_offset);
    if (!spec.not_after.empty()) {
        ASN1_TIME_set_string_X509(X509_getm_notAfter(x.get()), spec.not_after.c_str());
    }
    X509_set_pubkey(x.get(), key.get());
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x.get(), name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints,
                                              spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(x.get(), key.get(), EVP_sha256());
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
    PEM_write_bio_X509(out.get(), x.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(out.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

inline std::string make_key_pem() {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
    PEM_write_bio_PrivateKey(out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(out.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace rootcertd::test
