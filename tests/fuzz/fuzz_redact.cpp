// libFuzzer: redact() with arbitrary secrets and texts. It ends (a secret
// inside "[redacted]" once made it loop forever) and equals a one-pass scan
// of the original text: every occurrence found left to right is replaced,
// nothing inside a replacement is scanned again.
#include <cstdint>
#include <string>
#include <string_view>

#include "rootcertd/runtime/refresh.hpp"

namespace {

std::string reference(std::string_view text, std::string_view secret) {
    if (secret.empty()) return std::string(text);
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
        if (text.substr(i, secret.size()) == secret) {
            out += "[redacted]";
            i += secret.size();
        } else {
            out += text[i++];
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    // First byte: the secret's length (mod 16); the secret, then the text.
    const std::size_t n = std::min<std::size_t>(data[0] % 16, size - 1);
    const std::string secret(reinterpret_cast<const char*>(data) + 1, n);
    const std::string_view text(reinterpret_cast<const char*>(data) + 1 + n, size - 1 - n);
    if (rootcertd::redact(std::string(text), secret) != reference(text, secret)) __builtin_trap();
    return 0;
}
