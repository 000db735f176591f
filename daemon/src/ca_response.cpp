#include "rootcertd/ca_response.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

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

}  // namespace

Outcome<std::string> extract_ca(unsigned status, std::string_view body) {
    if (status != 200) {
        return fail("HTTP " + std::to_string(status) + ": " + error_message(body));
    }
    boost::system::error_code ec;
    const auto v = json::parse(body, ec);
    if (ec) {
        return fail("response is not JSON (" + ec.message() + "): '" + printable_snippet(body, 60) +
                    "'");
    }
    if (!v.is_object()) {
        return fail(std::string("response is ") + kind_of(v) + ", not a JSON object");
    }
    const auto& obj = v.get_object();
    const auto* ca = obj.if_contains("ca.crt");
    if (ca == nullptr) {
        if (obj.empty()) return fail("response is {}: the instance's secret holds no CA");
        std::string keys;
        for (const auto& kv : obj) {
            keys += (keys.empty() ? "" : ", ") + printable_snippet(kv.key(), 40);
        }
        return fail("response has no \"ca.crt\" (keys: " + keys + ")");
    }
    if (!ca->is_string()) {
        return fail(std::string("\"ca.crt\" is ") + kind_of(*ca) + ", not a string");
    }
    if (ca->get_string().empty()) return fail("\"ca.crt\" is empty");
    return std::string(ca->get_string());
}

}  // namespace rootcertd
