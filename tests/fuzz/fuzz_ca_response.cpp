// libFuzzer: any body, read any way a source may ask (JSON pointer, array
// member, base64, PEM or DER), yields PEM text or a reason, never a crash.
#include <cstdint>
#include <string_view>

#include "rootcertd/sources/ca_response.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    rootcertd::Reading reading;
    const std::uint8_t how = data[0];
    static constexpr const char* pointers[] = {"",       "/ca.crt",    "/ca/certificate",
                                               "/certs", "/data/a~1b", "/0"};
    reading.json_pointer = pointers[how % 6];
    reading.member = (how & 0x08) != 0 ? "cert" : "";
    reading.base64 = (how & 0x10) != 0;
    reading.format = static_cast<rootcertd::CaFormat>((how >> 5) % 3);
    const std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);
    rootcertd::read_ca(body, reading);
    rootcertd::http_error(100u + data[1], body);
    rootcertd::decode_base64(body);
    rootcertd::der_to_pem(body);
    return 0;
}
