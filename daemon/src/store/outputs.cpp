#include "rootcertd/store/outputs.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <map>
#include <set>

#include "rootcertd/pki/cert_bundle.hpp"
#include "rootcertd/pki/keystore.hpp"

namespace rootcertd {

namespace {

bool matches(const OutputSelect& sel, const Instance& inst) {
    return (sel.provider.empty() || sel.provider == inst.source->provider) &&
           (sel.discover.empty() || sel.discover == inst.discovered_by) &&
           (sel.name.empty() || ::fnmatch(sel.name.c_str(), inst.name.c_str(), 0) == 0);
}

// The certificates the file holds now, or nullopt when it is missing or
// cannot be read as OUTPUT's format with PASSWORD (it is written anew).
std::optional<std::vector<std::string>> certificates_in(
    const Output& output, const std::string& bytes, const std::optional<std::string>& password) {
    std::vector<std::string> ders;
    switch (output.format) {
        case OutputFormat::pem: {
            auto certs = trusted_certs(bytes);
            if (!certs) return std::nullopt;
            for (auto& c : certs.value()) ders.push_back(std::move(c.der));
            break;
        }
        case OutputFormat::pkcs12: {
            auto certs = read_pkcs12(bytes, password);
            if (!certs) return std::nullopt;
            ders = std::move(certs.value());
            break;
        }
        case OutputFormat::jks: {
            auto certs = read_jks(bytes, password ? *password : jks_default_password);
            if (!certs) return std::nullopt;
            for (auto& c : certs.value()) ders.push_back(std::move(c.der));
            break;
        }
    }
    return ders;
}

Outcome<std::string> render(const Output& output, const std::vector<TrustedCert>& certs,
                            const std::optional<std::string>& password) {
    switch (output.format) {
        case OutputFormat::pkcs12:
            return write_pkcs12(certs, password);
        case OutputFormat::jks:
            return write_jks(certs, password ? *password : jks_default_password);
        case OutputFormat::pem:
            break;
    }
    std::string der;
    for (const auto& cert : certs) der += cert.der;
    return der_to_pem(der);
}

}  // namespace

bool is_member(const Output& output, const Instance& instance) {
    return std::find(output.instances.begin(), output.instances.end(), instance.name) !=
               output.instances.end() ||
           std::any_of(output.select.begin(), output.select.end(),
                       [&](const OutputSelect& sel) { return matches(sel, instance); });
}

std::vector<std::string> members_of(const Output& output, const std::vector<Instance>& instances) {
    std::vector<std::string> out;
    for (const auto& inst : instances) {
        if (is_member(output, inst)) out.push_back(inst.name);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

Outcome<OutputWrite> write_output(const Output& output, const std::vector<std::string>& members,
                                  const CertStore& certs,
                                  const std::optional<std::string>& password) {
    if (members.empty()) return fail("no instance is a member");
    OutputWrite result;
    std::vector<TrustedCert> all;
    std::set<std::string, std::less<>> seen;
    // One data plane serves thousands of instances the same CA: the same
    // bytes are parsed once.
    std::map<std::string, std::vector<TrustedCert>, std::less<>> parsed;
    for (const auto& name : members) {
        auto bytes = certs.read(name + ".crt");
        if (!bytes) return bytes.failure().prefixed(name + ": ");
        if (!bytes.value()) {
            result.waiting_for.push_back(name);
            continue;
        }
        auto it = parsed.find(*bytes.value());
        if (it == parsed.end()) {
            auto read = trusted_certs(*bytes.value());
            if (!read) return read.failure().prefixed(name + ".crt: ");
            it = parsed.emplace(std::move(*bytes.value()), std::move(read.value())).first;
        }
        for (const auto& cert : it->second) {
            if (seen.insert(cert.der).second) all.push_back(cert);
        }
    }
    if (!result.waiting_for.empty()) return result;
    result.certificates = all.size();

    const CertStore dir(output.path.parent_path());
    const std::string file = output.path.filename().string();
    auto existing = dir.read(file);
    if (!existing) return existing.failure();
    std::optional<std::vector<std::string>> before;
    if (existing.value()) before = certificates_in(output, *existing.value(), password);
    std::vector<std::string> after;
    for (const auto& cert : all) after.push_back(cert.der);
    std::string bytes;
    if (before && *before == after) {
        // The same certificates: the bytes stay (PKCS#12 salts differ on
        // every write); install() only repairs a drifted mode or owner.
        bytes = std::move(*existing.value());
    } else {
        auto rendered = render(output, all, password);
        if (!rendered) return rendered.failure();
        bytes = std::move(rendered.value());
    }
    auto installed = dir.install(file, bytes, output.file);
    if (!installed) return installed.failure();
    result.changed = installed.value().change != Change::unchanged;
    if (result.changed) {
        const std::set<std::string> old(before ? before->begin() : after.end(),
                                        before ? before->end() : after.end());
        const std::set<std::string> now(after.begin(), after.end());
        for (const auto& der : after) {
            if (!old.contains(der)) result.added.push_back(sha256_hex(der));
        }
        for (const auto& der : old) {
            if (!now.contains(der)) result.removed.push_back(sha256_hex(der));
        }
    }
    return result;
}

}  // namespace rootcertd
