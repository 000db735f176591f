// libFuzzer: raw HTTP response bytes through the parser limits the API client
// uses (16 KiB header, 1 MiB body), then the "ca.crt" extraction.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>

#include "rootcertd/ca_response.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace http = boost::beast::http;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    parser.header_limit(16 << 10);
    parser.eager(true);
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(data, size), ec);
    if (!ec && parser.need_eof()) parser.put_eof(ec);
    if (!ec && parser.is_done()) {
        const auto& res = parser.get();
        rootcertd::extract_ca(res.result_int(), res.body());
    }
    return 0;
}
