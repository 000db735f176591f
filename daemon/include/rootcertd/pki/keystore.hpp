// Truststores for the JVM: PKCS#12 (through OpenSSL) and the classic JKS
// (hand-written: no Debian library writes it), holding CA certificates only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rootcertd/core/outcome.hpp"

namespace rootcertd {

// One trusted certificate of a truststore.
struct TrustedCert {
    std::string alias;  // trust_alias(): "<8 hex of its SHA-256>|<subject>"
    std::string der;
    std::int64_t created_ms = 0;  // JKS entry date: the certificate's notBefore
};

// The certificates of PEM text (CERTIFICATE blocks only), in order, each
// with trust-manager's alias, duplicates left out.
Outcome<std::vector<TrustedCert>> trusted_certs(std::string_view pem);

// A PKCS#12 file with one certificate bag per certificate, each carrying its
// alias as friendlyName and Oracle's trusted-key-usage attribute (what
// Java's TrustManagerFactory looks for). PASSWORD: a SHA-256 MAC under it;
// nullopt: no MAC (Java reads it without a password). Certificates are
// public: the bags are not encrypted either way.
Outcome<std::string> write_pkcs12(const std::vector<TrustedCert>& certs,
                                  const std::optional<std::string>& password);

// The DER certificates of a PKCS#12 file, in file order, its MAC checked
// with PASSWORD (nullopt: a file without MAC). Fails on a wrong password.
Outcome<std::vector<std::string>> read_pkcs12(std::string_view bytes,
                                              const std::optional<std::string>& password);

// A JKS keystore (magic FEEDFEED, version 2) of trusted-certificate entries,
// its keyed SHA-1 digest under PASSWORD (UTF-8; Java's "changeit" when none).
// Aliases are written in lower case (ASCII), as Java's own JKS writer does:
// Java looks them up that way.
std::string write_jks(const std::vector<TrustedCert>& certs, std::string_view password);

// The entries of a JKS keystore; fails on anything but trusted-certificate
// entries of X.509 certificates, on a truncated file and on a digest that
// PASSWORD does not give.
Outcome<std::vector<TrustedCert>> read_jks(std::string_view bytes, std::string_view password);

// Lower-case hex of BYTES' SHA-256: a DER certificate's fingerprint.
std::string sha256_hex(std::string_view bytes);

// The password JKS files are written with when an output names none.
inline constexpr std::string_view jks_default_password = "changeit";

}  // namespace rootcertd
