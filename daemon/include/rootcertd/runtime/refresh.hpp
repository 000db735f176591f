// One refresh of one instance: fetch, extract, validate, install, log.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/semaphore.hpp"
#include "rootcertd/net/api_client.hpp"
#include "rootcertd/pki/cert_bundle.hpp"
#include "rootcertd/pki/rotation.hpp"
#include "rootcertd/runtime/reporter.hpp"
#include "rootcertd/sources/credentials.hpp"
#include "rootcertd/sources/results.hpp"
#include "rootcertd/sources/services.hpp"
#include "rootcertd/sources/source.hpp"
#include "rootcertd/store/cert_store.hpp"
#include "rootcertd/store/install_queue.hpp"

namespace rootcertd {

// Refreshes INSTANCE once; the caller keeps INSTANCE alive until it ends.
// Never throws for expected failures; a request is in flight for at most
// config.timeout.
boost::asio::awaitable<RefreshResult> refresh(std::shared_ptr<Services> services,
                                              const Instance& instance);

// validate_bundle() through SERVICES' content-keyed cache: bytes validated
// before are not parsed again (only their dates are checked against NOW);
// new ones are parsed on the blocking pool.
// DROP_LEAVES: as validate_bundle's (the cache keeps the two apart).
boost::asio::awaitable<Outcome<CertBundle>> validate_with_cache(std::shared_ptr<Services> services,
                                                                std::string pem, SysTime now,
                                                                bool drop_leaves = false);

// Probes INSTANCE's server and verifies it against the installed file, as
// verify-full clients would. Asks for a refresh when the file no longer
// verifies the server (the server rotated before the API did).
boost::asio::awaitable<CheckResult> check_live(std::shared_ptr<Services> services,
                                               Instance instance);

}  // namespace rootcertd
