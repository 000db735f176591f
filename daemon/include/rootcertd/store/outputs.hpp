// `outputs:`: files that hold the CAs of several instances (PEM, PKCS#12,
// JKS), rebuilt from the instances' own files when one of them changes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"
#include "rootcertd/store/cert_store.hpp"

namespace rootcertd {

// The names of the instances OUTPUT takes in: those it names that are in
// INSTANCES, and those a select matches. Sorted, no duplicates.
std::vector<std::string> members_of(const Output& output, const std::vector<Instance>& instances);

// Whether INSTANCE is a member of OUTPUT.
bool is_member(const Output& output, const Instance& instance);

// What bringing an output in step did.
struct OutputWrite {
    bool changed = false;                     // the file was written
    std::vector<std::string> waiting_for;     // members without a file yet: nothing written
    std::size_t certificates = 0;             // in the file now
    std::vector<std::string> added, removed;  // SHA-256 fingerprints against the file before
};

// The union of the CA certificates in MEMBERS' files of CERTS (each
// member's current and previous CAs), in member order then file order,
// without duplicates, rendered in OUTPUT's format, written to OUTPUT.path
// atomically and durably when its certificate set differs from the file's
// (a PKCS#12 or JKS file is compared by its certificates, not its bytes).
// Nothing is written while a member has no file. PASSWORD: the output's
// credential's secret. Blocking.
Outcome<OutputWrite> write_output(const Output& output, const std::vector<std::string>& members,
                                  const CertStore& certs,
                                  const std::optional<std::string>& password);

}  // namespace rootcertd
