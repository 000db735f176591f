// Checks a PostgreSQL server's certificate the way libpq's verify-full does.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"
#include "rootcertd/net/resolver.hpp"
#include "rootcertd/pki/cert_bundle.hpp"

namespace rootcertd {

// The certificates a server presented, leaf first, DER-encoded.
struct PresentedChain {
    std::vector<std::string> der;
    SysTime leaf_not_after{};
    std::string leaf_subject;
};

struct ProbeTimeouts {
    Duration connect;  // the name lookup
    Duration whole;    // connect, SSLRequest and handshake
};

// Connects to HOST:PORT, sends PostgreSQL's SSLRequest, completes a TLS
// handshake with SNI = HOST and returns the presented chain. No credentials
// are sent; the connection is closed right after the handshake. Fails when
// the server is unreachable, refuses TLS or exceeds a timeout.
boost::asio::awaitable<Outcome<PresentedChain>> probe_server(boost::asio::any_io_executor executor,
                                                             std::shared_ptr<Resolver> resolver,
                                                             std::string host, std::uint16_t port,
                                                             ProbeTimeouts timeouts);

// What a verify-full client would conclude: nothing to say, or a Stage::live
// failure with OpenSSL's reason (plus advice for a host mismatch).
struct Verdict {
    std::optional<Failure> failure;
    bool host_mismatch = false;  // the chain is trusted, the name is not covered
    bool ok() const { return !failure; }
    const std::string& reason() const { return failure->message; }  // when !ok()
};

// Whether CHAIN verifies against the CA certificates in BUNDLE_PEM with
// host-name checking for HOST, as libpq's sslmode=verify-full would decide.
Verdict verify_chain(const PresentedChain& chain, std::string_view bundle_pem,
                     const std::string& host);

}  // namespace rootcertd
