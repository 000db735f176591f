// libFuzzer: the YAML config loader must reject bad input with a ConfigError, never crash.
#include <cstdint>
#include <string>

#include "rootcertd/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        rootcertd::parse_config(std::string(reinterpret_cast<const char*>(data), size),
                                "fuzz.yaml");
    } catch (const rootcertd::ConfigError&) {
    }
    return 0;
}
