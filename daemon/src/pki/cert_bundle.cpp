#include "rootcertd/pki/cert_bundle.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>
#include <memory>

namespace rootcertd {

namespace {

struct Free {
    void operator()(BIO* b) const { BIO_free(b); }
    void operator()(X509* x) const { X509_free(x); }
    void operator()(char* p) const { OPENSSL_free(p); }
    void operator()(unsigned char* p) const { OPENSSL_free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, Free>;

SysTime to_time(const ASN1_TIME* t) {
    std::tm tm{};
    ASN1_TIME_to_tm(t, &tm);
    return SysTime{std::chrono::seconds{timegm(&tm)}};
}

std::string subject_of(X509* x) {
    Owned<BIO> out(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(out.get(), X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long n = BIO_get_mem_data(out.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string sha256_of(X509* x) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    X509_digest(x, EVP_sha256(), md, &n);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < n; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

struct Parsed {
    std::vector<Owned<X509>> x509;
    CertBundle bundle;
};

Outcome<Parsed> parse(std::string_view pem) {
    ERR_clear_error();
    Owned<BIO> in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    Parsed p;
    for (int block = 1;; ++block) {
        char* name_raw = nullptr;
        char* header_raw = nullptr;
        unsigned char* data_raw = nullptr;
        long len = 0;
        const int ok = PEM_read_bio(in.get(), &name_raw, &header_raw, &data_raw, &len);
        Owned<char> name(name_raw), header(header_raw);
        Owned<unsigned char> data(data_raw);
        if (!ok) {
            const auto err = ERR_peek_last_error();
            ERR_clear_error();
            if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
                break;  // no further block: the end, or trailing text
            }
            return fail("PEM block " + std::to_string(block) + " is malformed or truncated");
        }
        if (std::string_view(name.get()) != "CERTIFICATE") {
            // Name the block type only: a stray key's contents must never be echoed.
            return fail("PEM block " + std::to_string(block) + " is a '" +
                        std::string(name.get()).substr(0, 40) + "', not a CERTIFICATE");
        }
        const unsigned char* cursor = data.get();
        Owned<X509> x(d2i_X509(nullptr, &cursor, len));
        if (!x || cursor != data.get() + len) {
            ERR_clear_error();
            return fail("certificate " + std::to_string(block) + " does not parse as X.509");
        }
        CertInfo info{subject_of(x.get()), sha256_of(x.get()),
                      to_time(X509_get0_notBefore(x.get())), to_time(X509_get0_notAfter(x.get())),
                      ""};
        const bool duplicate =
            std::any_of(p.bundle.certs.begin(), p.bundle.certs.end(),
                        [&](const CertInfo& c) { return c.sha256 == info.sha256; });
        if (duplicate) continue;
        Owned<BIO> one(BIO_new(BIO_s_mem()));
        PEM_write_bio_X509(one.get(), x.get());
        char* text = nullptr;
        const long text_len = BIO_get_mem_data(one.get(), &text);
        info.pem.assign(text, static_cast<std::size_t>(text_len));
        p.bundle.pem += info.pem;
        p.bundle.certs.push_back(std::move(info));
        p.x509.push_back(std::move(x));
    }
    if (p.bundle.certs.empty()) return fail("no PEM CERTIFICATE block found");
    return p;
}

}  // namespace

const CertInfo& CertBundle::newest() const {
    return *std::max_element(certs.begin(), certs.end(), [](const auto& a, const auto& b) {
        return a.not_after < b.not_after;
    });
}

std::string CertBundle::fingerprints() const {
    std::string out;
    for (const auto& c : certs) out += (out.empty() ? "" : ",") + c.sha256;
    return out;
}

std::string format_time(SysTime t) {
    const std::time_t tt = t.time_since_epoch().count();
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

Outcome<CertBundle> parse_bundle(std::string_view pem) {
    auto p = parse(pem);
    if (!p) return p.failure();
    return std::move(p->bundle);
}

Outcome<CertBundle> validate_bundle(std::string_view pem, SysTime now, bool drop_leaves) {
    auto p = parse(pem);
    if (!p) return p.failure();
    CertBundle kept;
    bool any_ca = false;
    for (std::size_t i = 0; i < p->x509.size(); ++i) {
        X509* x = p->x509[i].get();
        auto& info = p->bundle.certs[i];
        const auto flags = X509_get_extension_flags(x);
        if ((flags & EXFLAG_INVALID) != 0) {
            return fail("certificate '" + info.subject + "' has malformed extensions");
        }
        if ((flags & EXFLAG_CA) == 0) {
            if (!drop_leaves) {
                return fail("certificate '" + info.subject +
                            "' is not a CA (basicConstraints CA:TRUE missing)");
            }
            kept.dropped.push_back("leaf '" + info.subject + "' (not a CA)");
            continue;
        }
        any_ca = true;
        if (info.not_after < now) {
            kept.dropped.push_back("expired '" + info.subject + "' (notAfter " +
                                   format_time(info.not_after) + ")");
            continue;
        }
        kept.pem += info.pem;
        kept.certs.push_back(std::move(info));
    }
    const bool any_valid = std::any_of(kept.certs.begin(), kept.certs.end(),
                                       [&](const CertInfo& c) { return c.not_before <= now; });
    if (!any_valid) {
        if (!any_ca) return fail("no CA certificate among the certificates served");
        const auto& newest = p->bundle.newest();
        return fail("no certificate is valid now (newest '" + newest.subject + "' " +
                    (newest.not_after < now ? "expired " + format_time(newest.not_after)
                                            : "starts " + format_time(newest.not_before)) +
                    ")");
    }
    return kept;
}

Outcome<std::string> der_to_pem(std::string_view der) {
    if (der.empty()) return fail("no DER certificate");
    std::string pem;
    const auto* cursor = reinterpret_cast<const unsigned char*>(der.data());
    const auto* end = cursor + der.size();
    for (int n = 1; cursor < end; ++n) {
        const unsigned char* start = cursor;
        X509* raw = d2i_X509(nullptr, &cursor, static_cast<long>(end - cursor));
        if (raw == nullptr || cursor <= start) {
            X509_free(raw);
            ERR_clear_error();
            return fail("DER certificate " + std::to_string(n) + " does not parse as X.509");
        }
        BIO* out = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(out, raw);
        char* data = nullptr;
        const long len = BIO_get_mem_data(out, &data);
        pem.append(data, static_cast<std::size_t>(len));
        BIO_free(out);
        X509_free(raw);
    }
    return pem;
}

}  // namespace rootcertd
