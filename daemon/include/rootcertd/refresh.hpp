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
#include <map>

#include "rootcertd/config.hpp"
#include "rootcertd/install_queue.hpp"
#include "rootcertd/rotation.hpp"
#include "rootcertd/scheduler_types.hpp"
#include "rootcertd/token_source.hpp"

namespace rootcertd {

struct RefreshResult {
    bool ok = false;
    std::string error;  // "GET <path> on <origin>: <reason>"; never the token
    std::optional<Duration> retry_after;
    Change change = Change::unchanged;
    std::optional<CertBundle> bundle;  // what the file now holds, when ok
    std::string warning;               // worth an operator's attention, file still fine
    unsigned http_status = 0;          // of the API's answer, when there was one
    std::optional<SysTime> token_expiry;
    std::optional<bool> live_ok;       // the server verified against the installed file
    std::optional<SysTime> server_not_after;
};

// What every refresh shares; rebuilt when a reload changes global settings.
struct Services {
    Services(boost::asio::any_io_executor ex, Config config,
             boost::asio::thread_pool& blocking_pool);

    Config config;
    std::shared_ptr<HttpClient> client;
    TokenSource token;
    CertStore store;
    std::shared_ptr<InstallQueue> installs;  // group commit into store
    CertStore state_store;  // rotation state, one JSON file per instance
    std::map<std::string, RotationState> states;  // cache; event loop only
    // The last bundle validated per instance, keyed by SHA-256 of the bytes
    // served: unchanged bytes skip X.509 parsing (costly in OpenSSL 3).
    struct Validated {
        std::string digest;
        CertBundle bundle;
    };
    std::map<std::string, Validated> validated;  // event loop only
    boost::asio::thread_pool& blocking;  // fsync and file reads run here
    // A counting semaphore: a send takes a slot, a receive frees one.
    boost::asio::experimental::channel<void(boost::system::error_code)> slots;
};

// Refreshes INSTANCE once. Never throws for expected failures; a request is
// in flight for at most config.timeout.
boost::asio::awaitable<RefreshResult> refresh(std::shared_ptr<Services> services,
                                              Instance instance);

// refresh(), once one of config.concurrency slots shared by SERVICES is free.
// Waiting costs only this small frame, not a whole refresh's.
boost::asio::awaitable<RefreshResult> refresh_when_free(std::shared_ptr<Services> services,
                                                        Instance instance);

// Probes INSTANCE's server and verifies it against the installed file, as
// verify-full clients would. Asks for a refresh when the file no longer
// verifies the server (the server rotated before the API did).
boost::asio::awaitable<CheckResult> check_live(std::shared_ptr<Services> services,
                                               Instance instance);

// MESSAGE with every occurrence of SECRET replaced, for defence in depth.
std::string redact(std::string message, const std::string& secret);

}  // namespace rootcertd
