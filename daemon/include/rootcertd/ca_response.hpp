// Interprets the API's answer to GET .../secrets/certificate.
#pragma once

#include <string>
#include <string_view>

#include "rootcertd/outcome.hpp"

namespace rootcertd {

// The PEM text of "ca.crt" from a 200 response, or why there is none. Non-200
// answers fail with "HTTP <status>: <message>", where the message is Tembo's
// bare JSON string (or an object's "message"/"error"), else a safe snippet.
Outcome<std::string> extract_ca(unsigned status, std::string_view body);

// BODY shortened to at most MAX printable characters, for error messages.
std::string printable_snippet(std::string_view body, std::size_t max = 120);

}  // namespace rootcertd
