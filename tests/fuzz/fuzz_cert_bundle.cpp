// libFuzzer: PEM/X.509 validation accepts only CA bundles and never crashes.
#include <chrono>
#include <cstdint>
#include <string_view>

#include "rootcertd/pki/cert_bundle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto now = rootcertd::sys_now();
    if (auto b = rootcertd::validate_bundle(text, now)) {
        // What is accepted must parse again to the same certificates.
        auto again = rootcertd::parse_bundle(b->pem);
        if (!again || again->fingerprints() != b->fingerprints()) __builtin_trap();
    }
    rootcertd::parse_bundle(text);
    return 0;
}
