#include "rootcertd/sources/ca_response.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <optional>
#include <vector>

namespace rootcertd {

namespace json = boost::json;

std::string printable_snippet(std::string_view body, std::size_t max) {
    std::string out;
    for (const char c : body) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        const bool printable = c >= 0x20 && c < 0x7f;
        if (printable) {
            out += c;
        } else if (out.empty() || out.back() != ' ') {
            out += ' ';
        }
    }
    return out;
}

namespace {

const char* kind_of(const json::value& v) {
    switch (v.kind()) {
        case json::kind::null:
            return "null";
        case json::kind::bool_:
            return "a boolean";
        case json::kind::array:
            return "an array";
        case json::kind::object:
            return "an object";
        case json::kind::string:
            return "a string";
        default:
            return "a number";
    }
}

std::string error_message(std::string_view body) {
    if (body.empty()) return "(empty body)";
    boost::system::error_code ec;
    const auto v = json::parse(body, ec);
    if (!ec) {
        if (v.is_string()) return printable_snippet(v.get_string());
        if (v.is_object()) {
            for (const char* key : {"message", "error", "detail"}) {
                if (const auto* m = v.get_object().if_contains(key); m && m->is_string()) {
                    return printable_snippet(m->get_string());
                }
            }
        }
    }
    return printable_snippet(body);
}

// Fails saying why the certificate text WHAT is unusable.
Outcome<void> is_text(const json::value* v, const std::string& what) {
    if (v == nullptr) return fail(what + " is missing");
    if (!v->is_string()) return fail(what + " is " + kind_of(*v) + ", not a string");
    if (v->get_string().empty()) return fail(what + " is empty");
    return Ok{};
}

std::string pointer_text(std::string_view pointer) {
    return "\"" + printable_snippet(pointer, 60) + "\"";
}

// The strings READING selects in V: one, or one per array element.
Outcome<std::vector<std::string>> select(const json::value& v, const Reading& reading) {
    boost::system::error_code ec;
    const json::value* at = v.find_pointer(reading.json_pointer, ec);
    const std::string where = pointer_text(reading.json_pointer);
    if (at == nullptr) {
        if (!v.is_object() && !v.is_array()) {
            return fail(std::string("response is ") + kind_of(v) + ", not a JSON object");
        }
        if (v.is_object() && v.get_object().empty()) return fail("response is {}: it holds no CA");
        std::string keys;
        if (v.is_object()) {
            for (const auto& kv : v.get_object()) {
                keys += (keys.empty() ? "" : ", ") + printable_snippet(kv.key(), 40);
            }
        }
        return fail("response has no " + where + (keys.empty() ? "" : " (keys: " + keys + ")"));
    }
    std::vector<std::string> out;
    if (!at->is_array()) {
        if (auto text = is_text(at, where); !text) return text.failure();
        out.emplace_back(at->get_string());
        return out;
    }
    const auto& items = at->get_array();
    if (items.empty()) return fail(where + " is an empty array: it holds no CA");
    for (std::size_t i = 0; i < items.size(); ++i) {
        const std::string what = where + "[" + std::to_string(i) + "]";
        const json::value* item = &items[i];
        if (!reading.member.empty()) {
            item = item->is_object() ? item->get_object().if_contains(reading.member) : nullptr;
        }
        const auto text =
            is_text(item, reading.member.empty() ? what : what + "." + reading.member);
        if (!text) return text.failure();
        out.emplace_back(item->get_string());
    }
    return out;
}

// One piece of certificate text, decoded as READING says, as PEM.
Outcome<std::string> as_pem(std::string text, const Reading& reading) {
    if (reading.base64) {
        auto decoded = decode_base64(text);
        if (!decoded) return decoded.failure().prefixed("base64: ");
        text = std::move(decoded.value());
    }
    const bool pem =
        reading.format == CaFormat::pem ||
        (reading.format == CaFormat::automatic && text.find("-----BEGIN") != std::string::npos);
    if (pem) return text;
    auto converted = der_to_pem(text);
    if (!converted) {
        return fail(reading.format == CaFormat::der
                        ? converted.error()
                        : "neither PEM nor DER (" + converted.error() + ")");
    }
    return converted;
}

}  // namespace

std::string http_error(unsigned status, std::string_view body) {
    return "HTTP " + std::to_string(status) + ": " + error_message(body);
}

Outcome<std::string> read_ca(std::string_view body, const Reading& reading) {
    if (reading.json_pointer.empty()) {
        if (body.empty()) return fail("response body is empty");
        return as_pem(std::string(body), reading);
    }
    boost::system::error_code ec;
    const auto v = json::parse(body, ec);
    if (ec) {
        return fail("response is not JSON (" + ec.message() + "): '" + printable_snippet(body, 60) +
                    "'");
    }
    auto texts = select(v, reading);
    if (!texts) return texts.failure();
    std::string pem;
    for (auto& text : texts.value()) {
        auto one = as_pem(std::move(text), reading);
        if (!one) return one.failure();
        pem += one.value();
        if (!pem.empty() && pem.back() != '\n') pem += '\n';
    }
    return pem;
}

Outcome<std::string> decode_base64(std::string_view text) {
    std::string compact;
    compact.reserve(text.size());
    for (const char c : text) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        const bool alphabet = std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
        if (!alphabet && c != '=') return fail("not base64 (a character outside its alphabet)");
        compact += c;
    }
    if (compact.empty() || compact.size() % 4 != 0) {
        return fail("not base64 (length " + std::to_string(compact.size()) +
                    " is not a multiple of 4)");
    }
    const auto pad = compact.find('=');
    if (pad != std::string::npos &&
        (pad < compact.size() - 2 || compact.find_first_not_of('=', pad) != std::string::npos)) {
        return fail("not base64 ('=' inside the text)");
    }
    std::string out(compact.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(compact.data()),
                                  static_cast<int>(compact.size()));
    if (n < 0) return fail("not base64");
    out.resize(static_cast<std::size_t>(n) - (compact.size() - std::min(pad, compact.size())));
    return out;
}

}  // namespace rootcertd
