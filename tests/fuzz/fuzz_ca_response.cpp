// libFuzzer: any status and body yields a PEM string or a reason, never a crash.
#include <cstdint>
#include <string_view>

#include "rootcertd/ca_response.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const unsigned status = 100u + (data[0] | (data[1] << 8)) % 500u;
    rootcertd::extract_ca(status,
                          std::string_view(reinterpret_cast<const char*>(data + 2), size - 2));
    return 0;
}
