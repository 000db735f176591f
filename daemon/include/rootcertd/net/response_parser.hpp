// Reads an HTTP response keeping only what rootcertd uses.
//
// Beast's response_parser stores every header field in an allocation of its
// own and builds a message around them: nginx sends eight, and storing and
// freeing them showed in a warm pass (docs/architecture.md, "A lean response
// parser"). This parser is the same
// Beast state machine (same syntax, limits and errors) with the fields it
// does not need dropped as they arrive. fuzz_http_response checks that it
// reads what response_parser reads.
#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <cstdint>
#include <string>

namespace rootcertd {

class ResponseParser final : public boost::beast::http::basic_parser<false> {
  public:
    unsigned status = 0;
    std::string body;
    std::string location;       // the first Location field
    std::string retry_after;    // the first Retry-After field
    std::string etag;           // the first ETag field
    std::string last_modified;  // the first Last-Modified field

  private:
    using string_view = boost::beast::string_view;
    using error_code = boost::beast::error_code;

    void on_request_impl(boost::beast::http::verb, string_view, string_view, int,
                         error_code&) override {}
    void on_response_impl(int code, string_view, int, error_code&) override {
        status = static_cast<unsigned>(code);
    }
    void on_field_impl(boost::beast::http::field name, string_view, string_view value,
                       error_code&) override {
        if (name == boost::beast::http::field::location && !seen_location_) {
            location.assign(value.data(), value.size());
            seen_location_ = true;
        } else if (name == boost::beast::http::field::retry_after && !seen_retry_after_) {
            retry_after.assign(value.data(), value.size());
            seen_retry_after_ = true;
        } else if (name == boost::beast::http::field::etag && etag.empty()) {
            keep_validator(etag, value);
        } else if (name == boost::beast::http::field::last_modified && last_modified.empty()) {
            keep_validator(last_modified, value);
        }
    }
    void on_header_impl(error_code&) override {}
    void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
        // The length is within body_limit(): basic_parser checked it first.
        if (length) body.reserve(static_cast<std::size_t>(*length));
    }
    std::size_t on_body_impl(string_view data, error_code&) override {
        body.append(data.data(), data.size());
        return data.size();
    }
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, string_view data, error_code&) override {
        body.append(data.data(), data.size());
        return data.size();
    }
    void on_finish_impl(error_code&) override {}

    // A validator goes back in a request header: kept only when it is short
    // and printable (no CR or LF can come from a peer into our request).
    static void keep_validator(std::string& into, string_view value) {
        if (value.size() > 256) return;
        for (const char c : value) {
            if (c < 0x20 || c == 0x7f) return;
        }
        into.assign(value.data(), value.size());
    }

    bool seen_location_ = false;
    bool seen_retry_after_ = false;
};

}  // namespace rootcertd
