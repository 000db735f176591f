// What an instance's file holds across CA rotations: the CAs the API serves
// first, then previously served ones kept for an overlap window.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"
#include "rootcertd/pki/cert_bundle.hpp"

namespace rootcertd {

struct KeptCert {
    std::string pem;
    std::string sha256;
    std::string subject;
    SysTime until{};  // dropped once this passes
    bool operator==(const KeptCert&) const = default;
};

// Persisted per instance under state_dir, so overlaps survive restarts.
struct RotationState {
    std::string served;          // the normalized PEM the API served last
    std::vector<KeptCert> kept;  // previous CAs, in the order they were served
    bool operator==(const RotationState&) const = default;
};

struct Composition {
    std::string pem;                   // the file: served certificates, then kept ones
    RotationState state;               // to persist
    std::vector<CertInfo> added;       // newly served
    std::vector<KeptCert> kept;        // previous ones still in the file
    std::vector<std::string> dropped;  // "sha256 (subject)" of those leaving the file
};

// When the served set differs from PREVIOUS.served, every certificate that
// stops being served is kept until min(now + KEEP_PREVIOUS, its notAfter).
// Kept certificates past their time, or served again, leave the kept list.
// KEEP_PREVIOUS of zero keeps nothing.
Composition compose(const RotationState& previous, const CertBundle& served, Duration keep_previous,
                    SysTime now);

std::string serialize_state(const RotationState& state);
Outcome<RotationState> parse_state(std::string_view json);

}  // namespace rootcertd
