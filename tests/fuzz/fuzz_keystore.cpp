// libFuzzer: the truststore readers on arbitrary bytes. They never crash,
// and a JKS that reads is written back to the same entries (aliases in
// Java's lower case), so the writer and the reader agree.
#include <cstdint>
#include <string>
#include <string_view>

#include "rootcertd/pki/keystore.hpp"

namespace {

std::string lower(std::string s) {
    for (auto& c : s) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    (void)rootcertd::read_pkcs12(bytes, std::nullopt);
    (void)rootcertd::read_pkcs12(bytes, std::string("changeit"));
    auto jks = rootcertd::read_jks(bytes, rootcertd::jks_default_password);
    if (!jks) return 0;
    const auto again =
        rootcertd::read_jks(rootcertd::write_jks(jks.value(), rootcertd::jks_default_password),
                            rootcertd::jks_default_password);
    if (!again || again.value().size() != jks.value().size()) __builtin_trap();
    for (std::size_t i = 0; i < jks.value().size(); ++i) {
        const auto& a = jks.value()[i];
        const auto& b = again.value()[i];
        if (b.der != a.der || b.created_ms != a.created_ms) __builtin_trap();
        // Unpaired surrogates do not survive UTF-8; everything else does.
        if (a.alias.find('\xed') == std::string::npos && b.alias != lower(a.alias))
            __builtin_trap();
    }
    return 0;
}
