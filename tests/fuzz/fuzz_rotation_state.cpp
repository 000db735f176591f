// libFuzzer: a damaged rotation state file is rejected or round-trips, never crashes.
#include <cstdint>
#include <string_view>

#include "rootcertd/pki/rotation.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto state =
        rootcertd::parse_state(std::string_view(reinterpret_cast<const char*>(data), size));
    if (state) {
        auto again = rootcertd::parse_state(rootcertd::serialize_state(*state));
        if (!again || !(*again == *state)) __builtin_trap();
    }
    return 0;
}
