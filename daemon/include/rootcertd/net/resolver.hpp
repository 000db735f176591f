// Host-name lookups on the event loop: c-ares driven by Asio's reactor.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"

namespace rootcertd {

// Asio 1.81 runs every async_resolve of an io_context on one private thread
// with a blocking getaddrinfo(): one name that never resolves delays every
// other lookup behind it, cannot be cancelled, and holds up the process's
// exit until the C library gives up. These lookups run concurrently on the
// loop's own reactor, each bounded, and end at once on close().
class Resolver {
  public:
    virtual ~Resolver() = default;

    // The addresses of HOST (a name, or an IP literal, which is not looked
    // up) with PORT. /etc/hosts first, then the servers of resolv.conf.
    // Fails with "timed out" after TIMEOUT, and at once after close().
    virtual boost::asio::awaitable<Outcome<std::vector<boost::asio::ip::tcp::endpoint>>> resolve(
        std::string host, std::uint16_t port, Duration timeout) = 0;

    // Fails every lookup under way and every later one.
    virtual void close() = 0;
};

// Fails (Stage::resolve) when the resolver cannot start: out of memory, not
// an unusable resolv.conf (lookups then fail).
Outcome<std::shared_ptr<Resolver>> make_resolver(boost::asio::any_io_executor executor);

}  // namespace rootcertd
