// One refresh of one instance: fetch, extract, validate, install, log.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <optional>
#include <string>

#include "rootcertd/api_client.hpp"
#include "rootcertd/cert_bundle.hpp"
#include "rootcertd/cert_store.hpp"
#include "rootcertd/config.hpp"
#include "rootcertd/token_source.hpp"

namespace rootcertd {

struct RefreshResult {
    bool ok = false;
    std::string error;  // "GET <path> on <origin>: <reason>"; never the token
    std::optional<Duration> retry_after;
    Change change = Change::unchanged;
    std::optional<CertBundle> bundle;  // what the file now holds, when ok
};

// What every refresh shares; rebuilt when a reload changes global settings.
struct Services {
    Services(boost::asio::any_io_executor ex, Config config,
             boost::asio::thread_pool& blocking_pool);

    Config config;
    std::shared_ptr<HttpClient> client;
    TokenSource token;
    CertStore store;
    boost::asio::thread_pool& blocking;  // fsync and file reads run here
    // A counting semaphore: a send takes a slot, a receive frees one.
    boost::asio::experimental::channel<void(boost::system::error_code)> slots;
};

// Refreshes INSTANCE once. Never throws for expected failures; a request is
// in flight for at most config.timeout, and at most config.concurrency run
// at once across all instances sharing SERVICES.
boost::asio::awaitable<RefreshResult> refresh(std::shared_ptr<Services> services,
                                              Instance instance);

// MESSAGE with every occurrence of SECRET replaced, for defence in depth.
std::string redact(std::string message, const std::string& secret);

}  // namespace rootcertd
