// Reads a source's answer into PEM text: a JSON pointer, base64, DER.
#pragma once

#include <string>
#include <string_view>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"
#include "rootcertd/pki/cert_bundle.hpp"  // der_to_pem

namespace rootcertd {

// The CA text of a 200 response BODY as READING says: the whole body, or the
// string (or array of strings, or array of objects' READING.member strings)
// at READING.json_pointer; base64-decoded when READING.base64; DER
// certificates (format der, or auto and not PEM) re-encoded as PEM. Fails
// naming what was wrong, never echoing more than a short printable snippet.
Outcome<std::string> read_ca(std::string_view body, const Reading& reading);

// "HTTP <status>: <message>" for a response that is not a 200: the message
// is a bare JSON string, or an object's "message"/"error"/"detail", else a
// safe snippet of BODY.
std::string http_error(unsigned status, std::string_view body);

// Base64 (RFC 4648, line breaks and surrounding white space allowed) decoded.
Outcome<std::string> decode_base64(std::string_view text);

// BODY shortened to at most MAX printable characters, for error messages.
std::string printable_snippet(std::string_view body, std::size_t max = 120);

}  // namespace rootcertd
