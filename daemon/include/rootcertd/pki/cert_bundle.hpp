// Validates a PEM bundle of CA certificates with OpenSSL and describes it.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "rootcertd/core/outcome.hpp"

namespace rootcertd {

// Wall-clock time in whole seconds. system_clock's own nanoseconds end in
// 2262: a CA with RFC 5280's "no expiry" (notAfter 99991231235959Z) or a JWT
// with exp 9999999999 would wrap around to the past. Seconds hold year 9999
// and far beyond; compare only with sys_now(), never with
// system_clock::now(), whose nanoseconds the comparison would convert to.
using SysTime = std::chrono::sys_seconds;
inline SysTime sys_now() {
    return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
}

struct CertInfo {
    std::string subject;  // RFC 2253
    std::string sha256;   // lowercase hex of the DER encoding
    SysTime not_before;
    SysTime not_after;
    std::string pem;  // this certificate alone, re-encoded
};

struct CertBundle {
    std::vector<CertInfo> certs;  // file order, duplicates removed
    std::string pem;              // every certificate re-encoded, nothing else
    // What validation left out and why ("expired '<subject>' ..."), for a debug line.
    std::vector<std::string> dropped;

    // The certificate that expires last.
    const CertInfo& newest() const;
    // Comma-separated SHA-256 fingerprints in file order.
    std::string fingerprints() const;
};

// Accepts PEM text holding only CERTIFICATE blocks (at least one), each a CA
// (basicConstraints CA:TRUE), at least one valid at NOW. Text between blocks
// is dropped from the normalized `pem`, and so are certificates that expired
// before NOW (a CA not valid yet stays: it is the next one). DROP_LEAVES:
// certificates that are not CAs are left out instead of refused (a server
// chain published with its CA).
Outcome<CertBundle> validate_bundle(std::string_view pem, SysTime now, bool drop_leaves = false);

// Parses without the CA and validity checks: describes a file already on disk.
Outcome<CertBundle> parse_bundle(std::string_view pem);

// Concatenated DER certificates as PEM text.
Outcome<std::string> der_to_pem(std::string_view der);

// "2026-11-28T12:00:00Z"
std::string format_time(SysTime t);

}  // namespace rootcertd
