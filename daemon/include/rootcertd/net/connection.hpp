// One TLS connection of the HTTPS client, with its deadline, and the TLS
// sessions the client resumes. Used by api_client.cpp only.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "rootcertd/core/model.hpp"
#include "rootcertd/net/response_parser.hpp"

namespace rootcertd::https {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using Clock = std::chrono::steady_clock;

class TlsSessions;

// One TLS connection to one origin, registered with its client while it lives
// so that close() can abort it mid-request.
class Conn {
  public:
    Conn(asio::any_io_executor ex, ssl::context& ctx, std::unordered_set<Conn*>& registry)
        : stream(ex, ctx), watchdog_(ex), registry_(registry) {
        registry_.insert(this);
    }
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;
    ~Conn() {
        *self_ = nullptr;  // a watchdog completion already queued finds no connection
        // OpenSSL marks the session of a connection freed without a TLS
        // shutdown as not resumable. One that ended a complete exchange is
        // as good as shut down (a close_notify would cost a write per dial).
        if (clean)
            SSL_set_shutdown(stream.native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        registry_.erase(this);
    }

    void abort() {
        deadline_ = Clock::time_point::max();  // nothing left to watch
        watchdog_.cancel();
        beast::get_lowest_layer(stream).close();
    }

    // Idle, and nothing under way on any connection: the watchdog stops, so
    // a daemon at rest is not woken when the last deadlines pass.
    void rest() {
        if (watching_) watchdog_.cancel();
    }

    // Aborts whatever the connection is doing once AT passes; timed_out()
    // then tells why its operations failed. Moving a deadline costs no timer
    // operation: the one wait per connection is re-armed only when it fires
    // early. beast::tcp_stream's own timeout armed and cancelled a timer
    // around every read and write (docs/architecture.md, "One read loop").
    // Deadlines on one connection only move later (each is now plus one of
    // its client's budgets), so the armed wait is never too late.
    void set_deadline(Clock::time_point at) {
        deadline_ = at;
        if (!watching_) watch();
    }
    void clear_deadline() { deadline_ = Clock::time_point::max(); }
    bool timed_out() const { return timed_out_; }

    beast::ssl_stream<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
    Clock::time_point idle_since{};
    std::string origin;               // whose TLS session a new ticket is (see TlsSessions)
    TlsSessions* sessions = nullptr;  // where that ticket goes
    bool clean = false;               // between complete exchanges

  private:
    void watch() {
        watching_ = true;
        watchdog_.expires_at(deadline_);
        // Fired or cancelled (rest, abort), what counts is the deadline now:
        // a connection taken again before a cancelled wait completes is
        // watched again here.
        watchdog_.async_wait([self = self_](boost::system::error_code) {
            Conn* conn = *self;
            if (conn == nullptr) return;
            conn->watching_ = false;
            if (conn->deadline_ == Clock::time_point::max()) return;   // idle: stay unarmed
            if (Clock::now() < conn->deadline_) return conn->watch();  // not yet
            conn->timed_out_ = true;
            conn->abort();
        });
    }

    asio::steady_timer watchdog_;
    Clock::time_point deadline_ = Clock::time_point::max();
    bool watching_ = false;
    bool timed_out_ = false;
    std::shared_ptr<Conn*> self_ = std::make_shared<Conn*>(this);
    std::unordered_set<Conn*>& registry_;
};

// TLS sessions to resume, the newest per origin. A resumed handshake skips
// parsing and verifying the server's certificate chain, most of what a full
// handshake costs the client (docs/architecture.md, "TLS sessions are
// resumed"), and the server saves its signature. A session only comes from a handshake that
// verified that origin's chain and host name, and the cache dies with its
// client, whose trust it was verified against. A server that declines a
// session gets a full handshake.
class TlsSessions {
  public:
    explicit TlsSessions(SSL_CTX* ctx) {
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, &TlsSessions::on_new);
    }
    TlsSessions(const TlsSessions&) = delete;
    TlsSessions& operator=(const TlsSessions&) = delete;
    ~TlsSessions() {
        for (auto& [origin, session] : by_origin_) SSL_SESSION_free(session);
    }

    // Before CONN's handshake: offers its origin's session, and files the
    // tickets the server sends on this connection under that origin.
    void prepare(Conn& conn) {
        SSL* ssl = conn.stream.native_handle();
        conn.sessions = this;
        SSL_set_ex_data(ssl, ex_index(), &conn);
        const auto it = by_origin_.find(conn.origin);
        if (it != by_origin_.end() && SSL_SESSION_is_resumable(it->second)) {
            SSL_set_session(ssl, it->second);
        }
    }
    // After a failed handshake: a session must not be the reason twice.
    void forget(const std::string& origin) {
        if (const auto it = by_origin_.find(origin); it != by_origin_.end()) {
            SSL_SESSION_free(it->second);
            by_origin_.erase(it);
        }
    }

  private:
    static int ex_index() {  // the SSL's slot for its Conn
        static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
        return index;
    }
    static int on_new(SSL* ssl, SSL_SESSION* session) {
        auto* conn = static_cast<Conn*>(SSL_get_ex_data(ssl, ex_index()));
        if (conn == nullptr || conn->sessions == nullptr) return 0;  // not ours: OpenSSL frees it
        auto& slot = conn->sessions->by_origin_[conn->origin];
        if (slot != nullptr) SSL_SESSION_free(slot);
        slot = session;
        return 1;  // the cache holds the reference now
    }

    std::unordered_map<std::string, SSL_SESSION*> by_origin_;
};

// Why an operation on CONN failed with EC, BUDGET its time limit.
std::string describe(const Conn& conn, const boost::system::error_code& ec, Duration budget);

// What http::async_read does, in one loop: read into the connection's
// buffer, hand it to the parser, until the parser has a whole response. Its
// two composed operations per read, and their first 512-byte reads, cost more
// than parsing a CA's response.
asio::awaitable<boost::system::error_code> read_response(Conn& conn, ResponseParser& parser);

}  // namespace rootcertd::https
