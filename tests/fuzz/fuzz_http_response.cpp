// libFuzzer: raw HTTP response bytes through the parser limits the API client
// uses (16 KiB header, 1 MiB body), then the "ca.crt" extraction. The client's
// ResponseParser must read exactly what Beast's response_parser reads: the
// same verdict, status, body, Location, Retry-After and keep-alive. A date
// the client reads (the input itself, a Last-Modified) reads as strptime()
// reads it.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <string>

#include "rootcertd/net/http_date.hpp"
#include "rootcertd/net/response_parser.hpp"
#include "rootcertd/sources/ca_response.hpp"

namespace {

void expect(bool ok) {
    if (!ok) std::abort();
}

// Feeds DATA to PARSER as the client would see it, then the end of the stream.
template <class Parser>
boost::beast::error_code feed(Parser& parser, const std::uint8_t* data, std::size_t size) {
    parser.body_limit(1 << 20);
    parser.header_limit(16 << 10);
    parser.eager(true);
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(data, size), ec);
    if (!ec && parser.need_eof()) parser.put_eof(ec);
    return ec;
}

// A date parse_http_date() accepts is the one strptime() and timegm() read.
void check_date(const std::string& text) {
    const auto date = rootcertd::parse_http_date(text);
    if (!date) return;
    std::tm tm{};
    const char* end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    expect(end != nullptr && *end == '\0');
    expect(date->time_since_epoch().count() == timegm(&tm));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace http = boost::beast::http;
    http::response_parser<http::string_body> beast;
    rootcertd::ResponseParser lean;
    check_date(std::string(reinterpret_cast<const char*>(data), size));
    const auto beast_ec = feed(beast, data, size);
    const auto lean_ec = feed(lean, data, size);
    expect(beast_ec == lean_ec);
    expect(beast.is_done() == lean.is_done());
    if (!beast_ec && beast.is_done()) {
        const auto& res = beast.get();
        expect(res.result_int() == lean.status);
        expect(res.body() == lean.body);
        expect(res[http::field::location] == lean.location);
        expect(res[http::field::retry_after] == lean.retry_after);
        check_date(lean.last_modified);
        // The parser's verdict, which the client uses: false after a body that
        // ended with the connection, whatever the header says.
        expect(beast.keep_alive() == lean.keep_alive());
        rootcertd::Reading tembo;
        tembo.json_pointer = "/ca.crt";
        if (lean.status == 200) {
            rootcertd::read_ca(lean.body, tembo);
        } else {
            rootcertd::http_error(lean.status, lean.body);
        }
    }
    return 0;
}
