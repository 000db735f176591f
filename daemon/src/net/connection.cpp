#include "rootcertd/net/connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>

namespace rootcertd::https {

namespace http = beast::http;

std::string describe(const Conn& conn, const boost::system::error_code& ec, Duration budget) {
    if (conn.timed_out()) {
        return "timed out (budget " + std::to_string(budget.count()) + " ms)";
    }
    if (ec == ssl::error::stream_truncated || ec == http::error::partial_message) {
        return "connection closed before the response was complete (" + ec.message() + ")";
    }
    return ec.message();
}

asio::awaitable<boost::system::error_code> read_response(Conn& conn, ResponseParser& parser) {
    constexpr std::size_t read_chunk = 16 * 1024;  // a whole TLS record
    parser.eager(true);                            // header and body in one put()
    boost::system::error_code ec;
    for (;;) {
        if (conn.buffer.size() != 0) {
            conn.buffer.consume(parser.put(conn.buffer.data(), ec));
            if (ec == http::error::need_more) {
                ec = {};
            } else if (ec || parser.is_done()) {
                co_return ec;
            }
        }
        auto [rec, n] = co_await conn.stream.async_read_some(conn.buffer.prepare(read_chunk),
                                                             asio::as_tuple(asio::use_awaitable));
        if (rec == asio::error::eof) {
            if (!parser.got_some()) co_return http::error::end_of_stream;
            parser.put_eof(ec);  // a body that ends with the connection, or partial_message
            co_return ec;
        }
        if (rec) co_return rec;
        conn.buffer.commit(n);
    }
}

}  // namespace rootcertd::https
