#include "rootcertd/pki/keystore.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>
#include <set>

namespace rootcertd {

namespace {

struct Free {
    void operator()(BIO* b) const { BIO_free(b); }
    void operator()(X509* x) const { X509_free(x); }
    void operator()(PKCS12* p) const { PKCS12_free(p); }
    void operator()(ASN1_OBJECT* o) const { ASN1_OBJECT_free(o); }
    void operator()(STACK_OF(PKCS12_SAFEBAG) * s) const {
        sk_PKCS12_SAFEBAG_pop_free(s, PKCS12_SAFEBAG_free);
    }
    void operator()(STACK_OF(PKCS7) * s) const { sk_PKCS7_pop_free(s, PKCS7_free); }
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
template <class T>
using Owned = std::unique_ptr<T, Free>;

std::string openssl_error(const std::string& what) {
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return what;
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    return what + ": " + buf;
}

std::string hex(const unsigned char* p, std::size_t n) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        out += digits[p[i] >> 4];
        out += digits[p[i] & 15];
    }
    return out;
}

std::string subject_of(X509* x) {
    Owned<BIO> out(BIO_new(BIO_s_mem()));
    // As trust-manager's aliases show it: RFC 2253, UTF-8 left as it is.
    X509_NAME_print_ex(out.get(), X509_get_subject_name(x), 0,
                       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    const long n = BIO_get_mem_data(out.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

// Java's trusted-key-usage attribute, and the usage it grants: any.
constexpr const char* oracle_trusted_key_usage = "2.16.840.1.113894.746875.1.1";
constexpr const char* any_extended_key_usage = "2.5.29.37.0";
constexpr int mac_iterations = 10000;  // Java's own default for PKCS#12

// Code points of UTF-8 TEXT; nullopt when it is not well-formed.
std::optional<std::vector<char32_t>> code_points(std::string_view text) {
    std::vector<char32_t> out;
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        const int extra = c < 0x80         ? 0
                          : (c >> 5) == 6  ? 1
                          : (c >> 4) == 14 ? 2
                          : (c >> 3) == 30 ? 3
                                           : -1;
        if (extra < 0 || (extra > 0 && i + static_cast<std::size_t>(extra) >= text.size())) {
            return std::nullopt;
        }
        char32_t cp = extra == 0 ? c : (c & (0x3f >> extra));
        for (int k = 1; k <= extra; ++k) {
            const auto b = static_cast<unsigned char>(text[i + k]);
            if ((b >> 6) != 2) return std::nullopt;
            cp = (cp << 6) | (b & 0x3f);
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return std::nullopt;
        out.push_back(cp);
        i += 1 + static_cast<std::size_t>(extra);
    }
    return out;
}

std::vector<char16_t> utf16(std::string_view text) {
    std::vector<char16_t> units;
    // A password that is not UTF-8 is taken a byte a character.
    const auto cps = code_points(text).value_or(std::vector<char32_t>(text.begin(), text.end()));
    for (char32_t cp : cps) {
        if (cp >= 0x10000) {
            cp -= 0x10000;
            units.push_back(static_cast<char16_t>(0xd800 + (cp >> 10)));
            units.push_back(static_cast<char16_t>(0xdc00 + (cp & 0x3ff)));
        } else {
            units.push_back(static_cast<char16_t>(cp));
        }
    }
    return units;
}

void put_u16(std::string& out, unsigned v) {
    out += static_cast<char>((v >> 8) & 0xff);
    out += static_cast<char>(v & 0xff);
}
void put_u32(std::string& out, std::uint32_t v) {
    put_u16(out, v >> 16);
    put_u16(out, v & 0xffff);
}

// DataOutputStream.writeUTF: a 16-bit length, then modified UTF-8 (UTF-16
// units, each encoded alone; NUL as C0 80). Cut to 65,535 bytes.
void put_java_utf(std::string& out, std::string_view text) {
    std::string encoded;
    for (const char16_t u : utf16(text)) {
        std::string one;
        if (u != 0 && u < 0x80) {
            one += static_cast<char>(u);
        } else if (u < 0x800) {
            one += static_cast<char>(0xc0 | (u >> 6));
            one += static_cast<char>(0x80 | (u & 0x3f));
        } else {
            one += static_cast<char>(0xe0 | (u >> 12));
            one += static_cast<char>(0x80 | ((u >> 6) & 0x3f));
            one += static_cast<char>(0x80 | (u & 0x3f));
        }
        if (encoded.size() + one.size() > 0xffff) break;
        encoded += one;
    }
    put_u16(out, static_cast<unsigned>(encoded.size()));
    out += encoded;
}

// The keyed digest JKS ends with: SHA-1 over the password's UTF-16BE units,
// "Mighty Aphrodite", then every byte before it.
std::string jks_digest(std::string_view data, std::string_view password) {
    std::string key;
    for (const char16_t u : utf16(password)) put_u16(key, u);
    key += "Mighty Aphrodite";
    Owned<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestInit_ex(ctx.get(), EVP_sha1(), nullptr);
    EVP_DigestUpdate(ctx.get(), key.data(), key.size());
    EVP_DigestUpdate(ctx.get(), data.data(), data.size());
    EVP_DigestFinal_ex(ctx.get(), md, &n);
    return std::string(reinterpret_cast<char*>(md), n);
}

// Reads big-endian fields off the front of a JKS file.
class Reader {
  public:
    explicit Reader(std::string_view bytes) : rest_(bytes) {}
    std::optional<std::uint64_t> take(std::size_t n) {
        if (rest_.size() < n) return std::nullopt;
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(rest_[i]);
        rest_.remove_prefix(n);
        return v;
    }
    std::optional<std::string_view> bytes(std::size_t n) {
        if (rest_.size() < n) return std::nullopt;
        auto out = rest_.substr(0, n);
        rest_.remove_prefix(n);
        return out;
    }
    // DataInputStream.readUTF, as UTF-8.
    std::optional<std::string> java_utf() {
        const auto n = take(2);
        if (!n) return std::nullopt;
        const auto raw = bytes(static_cast<std::size_t>(*n));
        if (!raw) return std::nullopt;
        std::u16string units;
        for (std::size_t i = 0; i < raw->size();) {
            const auto c = static_cast<unsigned char>((*raw)[i]);
            const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 0;
            if (len == 0 || i + len > raw->size()) return std::nullopt;
            char16_t u = len == 1 ? c : static_cast<char16_t>(c & (len == 2 ? 0x1f : 0x0f));
            for (std::size_t k = 1; k < len; ++k) {
                const auto b = static_cast<unsigned char>((*raw)[i + k]);
                if ((b >> 6) != 2) return std::nullopt;
                u = static_cast<char16_t>((u << 6) | (b & 0x3f));
            }
            units.push_back(u);
            i += len;
        }
        std::string out;
        for (std::size_t i = 0; i < units.size(); ++i) {
            char32_t cp = units[i];
            if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < units.size() && units[i + 1] >= 0xdc00 &&
                units[i + 1] <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (units[++i] - 0xdc00);
            }
            if (cp < 0x80) {
                out += static_cast<char>(cp);
            } else if (cp < 0x800) {
                out += static_cast<char>(0xc0 | (cp >> 6));
                out += static_cast<char>(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                out += static_cast<char>(0xe0 | (cp >> 12));
                out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
                out += static_cast<char>(0x80 | (cp & 0x3f));
            } else {
                out += static_cast<char>(0xf0 | (cp >> 18));
                out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
                out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
                out += static_cast<char>(0x80 | (cp & 0x3f));
            }
        }
        return out;
    }
    std::size_t left() const { return rest_.size(); }

  private:
    std::string_view rest_;
};

constexpr std::uint32_t jks_magic = 0xfeedfeed;
constexpr std::uint32_t jks_version = 2;
constexpr std::uint32_t jks_trusted_cert = 2;
constexpr std::size_t sha1_size = 20;

}  // namespace

std::string sha256_hex(std::string_view bytes) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr);
    return hex(md, n);
}

Outcome<std::vector<TrustedCert>> trusted_certs(std::string_view pem) {
    ERR_clear_error();
    Owned<BIO> in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    std::vector<TrustedCert> out;
    std::set<std::string> seen;
    for (;;) {
        Owned<X509> x(PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
        if (!x) break;
        unsigned char* der = nullptr;
        const int n = i2d_X509(x.get(), &der);
        if (n <= 0) return fail(openssl_error("cannot encode a certificate"));
        std::string bytes(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
        OPENSSL_free(der);
        if (!seen.insert(bytes).second) continue;
        std::tm tm{};
        ASN1_TIME_to_tm(X509_get0_notBefore(x.get()), &tm);
        auto alias = sha256_hex(bytes).substr(0, 8) + "|" + subject_of(x.get());
        out.push_back(TrustedCert{std::move(alias), std::move(bytes),
                                  static_cast<std::int64_t>(timegm(&tm)) * 1000});
    }
    ERR_clear_error();  // the end of the text reads as "no start line"
    if (out.empty()) return fail("no certificate in the PEM text");
    return out;
}

Outcome<std::string> write_pkcs12(const std::vector<TrustedCert>& certs,
                                  const std::optional<std::string>& password) {
    ERR_clear_error();
    Owned<ASN1_OBJECT> any(OBJ_txt2obj(any_extended_key_usage, 1));
    Owned<STACK_OF(PKCS12_SAFEBAG)> bags(sk_PKCS12_SAFEBAG_new_null());
    if (!any || !bags) return fail(openssl_error("PKCS#12"));
    for (const auto& cert : certs) {
        const auto* p = reinterpret_cast<const unsigned char*>(cert.der.data());
        Owned<X509> x(d2i_X509(nullptr, &p, static_cast<long>(cert.der.size())));
        if (!x) return fail(openssl_error("PKCS#12: a certificate does not parse"));
        PKCS12_SAFEBAG* bag = PKCS12_SAFEBAG_create_cert(x.get());
        if (!bag) return fail(openssl_error("PKCS#12: certificate bag"));
        if (sk_PKCS12_SAFEBAG_push(bags.get(), bag) == 0) {
            PKCS12_SAFEBAG_free(bag);
            return fail(openssl_error("PKCS#12"));
        }
        if (PKCS12_add_friendlyname_utf8(bag, cert.alias.c_str(), -1) != 1 ||
            PKCS12_add1_attr_by_txt(bag, oracle_trusted_key_usage, V_ASN1_OBJECT,
                                    reinterpret_cast<const unsigned char*>(any.get()), -1) != 1) {
            return fail(openssl_error("PKCS#12: bag attributes"));
        }
    }
    Owned<STACK_OF(PKCS7)> safes(sk_PKCS7_new_null());
    PKCS7* data = PKCS12_pack_p7data(bags.get());
    if (!safes || !data || sk_PKCS7_push(safes.get(), data) == 0) {
        PKCS7_free(data);
        return fail(openssl_error("PKCS#12: safe contents"));
    }
    Owned<PKCS12> p12(PKCS12_add_safes(safes.get(), 0));
    if (!p12) return fail(openssl_error("PKCS#12"));
    if (password && PKCS12_set_mac(p12.get(), password->c_str(), -1, nullptr, 0, mac_iterations,
                                   EVP_sha256()) != 1) {
        return fail(openssl_error("PKCS#12: MAC"));
    }
    unsigned char* der = nullptr;
    const int n = i2d_PKCS12(p12.get(), &der);
    if (n <= 0) return fail(openssl_error("PKCS#12: encoding"));
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
    return out;
}

Outcome<std::vector<std::string>> read_pkcs12(std::string_view bytes,
                                              const std::optional<std::string>& password) {
    ERR_clear_error();
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    Owned<PKCS12> p12(d2i_PKCS12(nullptr, &p, static_cast<long>(bytes.size())));
    if (!p12) return fail(openssl_error("not a PKCS#12 file"));
    if (PKCS12_mac_present(p12.get()) != 0) {
        if (!password) return fail("the PKCS#12 file has a MAC and no password is set");
        if (PKCS12_verify_mac(p12.get(), password->c_str(), -1) != 1) {
            return fail(openssl_error("the PKCS#12 MAC does not verify (wrong password?)"));
        }
    } else if (password) {
        return fail("the PKCS#12 file has no MAC, and a password is set");
    }
    Owned<STACK_OF(PKCS7)> safes(PKCS12_unpack_authsafes(p12.get()));
    if (!safes) return fail(openssl_error("PKCS#12: no safe contents"));
    std::vector<std::string> out;
    for (int i = 0; i < sk_PKCS7_num(safes.get()); ++i) {
        PKCS7* safe = sk_PKCS7_value(safes.get(), i);
        if (OBJ_obj2nid(safe->type) != NID_pkcs7_data) {
            return fail("PKCS#12: an encrypted safe (not one rootcertd writes)");
        }
        Owned<STACK_OF(PKCS12_SAFEBAG)> bags(PKCS12_unpack_p7data(safe));
        if (!bags) return fail(openssl_error("PKCS#12: safe contents"));
        for (int k = 0; k < sk_PKCS12_SAFEBAG_num(bags.get()); ++k) {
            Owned<X509> x(PKCS12_SAFEBAG_get1_cert(sk_PKCS12_SAFEBAG_value(bags.get(), k)));
            if (!x) return fail("PKCS#12: a bag that is not an X.509 certificate");
            unsigned char* der = nullptr;
            const int n = i2d_X509(x.get(), &der);
            if (n <= 0) return fail(openssl_error("PKCS#12: a certificate"));
            out.emplace_back(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
            OPENSSL_free(der);
        }
    }
    return out;
}

std::string write_jks(const std::vector<TrustedCert>& certs, std::string_view password) {
    std::string out;
    put_u32(out, jks_magic);
    put_u32(out, jks_version);
    put_u32(out, static_cast<std::uint32_t>(certs.size()));
    for (const auto& cert : certs) {
        put_u32(out, jks_trusted_cert);
        // Java's JKS looks aliases up in lower case (its own writer stores
        // them so): an alias with a capital is listed but never found.
        std::string alias = cert.alias;
        for (auto& c : alias) {
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
        put_java_utf(out, alias);
        const auto ms = static_cast<std::uint64_t>(cert.created_ms);
        put_u32(out, static_cast<std::uint32_t>(ms >> 32));
        put_u32(out, static_cast<std::uint32_t>(ms & 0xffffffffu));
        put_java_utf(out, "X.509");
        put_u32(out, static_cast<std::uint32_t>(cert.der.size()));
        out += cert.der;
    }
    out += jks_digest(out, password);
    return out;
}

Outcome<std::vector<TrustedCert>> read_jks(std::string_view bytes, std::string_view password) {
    if (bytes.size() < 12 + sha1_size) return fail("JKS: too short");
    const auto body = bytes.substr(0, bytes.size() - sha1_size);
    Reader r(body);
    if (r.take(4) != jks_magic) return fail("JKS: no FEEDFEED magic");
    if (r.take(4) != jks_version) return fail("JKS: not version 2");
    const auto count = r.take(4);
    std::vector<TrustedCert> out;
    // Each entry takes at least 24 bytes: a count beyond that is a lie.
    if (!count || *count > r.left() / 24) return fail("JKS: an entry count the file cannot hold");
    for (std::uint64_t i = 0; i < *count; ++i) {
        const auto tag = r.take(4);
        if (tag != jks_trusted_cert) return fail("JKS: an entry that is not a trusted certificate");
        TrustedCert cert;
        auto alias = r.java_utf();
        const auto date = r.take(8);
        const auto type = r.java_utf();
        if (!alias || !date || !type) return fail("JKS: a truncated entry");
        if (*type != "X.509") return fail("JKS: a certificate of type " + *type);
        const auto len = r.take(4);
        const auto der = len ? r.bytes(static_cast<std::size_t>(*len)) : std::nullopt;
        if (!der) return fail("JKS: a truncated certificate");
        cert.alias = std::move(*alias);
        cert.created_ms = static_cast<std::int64_t>(*date);
        cert.der = std::string(*der);
        out.push_back(std::move(cert));
    }
    if (r.left() != 0) return fail("JKS: bytes after the last entry");
    if (jks_digest(body, password) != bytes.substr(body.size())) {
        return fail("JKS: the digest does not verify (wrong password?)");
    }
    return out;
}

}  // namespace rootcertd
