// Tembo's data-plane API as a CA source: what to request, how to
// authenticate, how to read the answer.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <string>

#include "rootcertd/cert_bundle.hpp"
#include "rootcertd/config.hpp"
#include "rootcertd/outcome.hpp"
#include "rootcertd/results.hpp"

namespace rootcertd {

struct Services;

// What a source answered: the CA text, or why there is none, and what the
// scheduler and the status board learn from the exchange either way.
struct Fetched {
    Outcome<std::string> pem = fail("not fetched");  // errors name the request
    unsigned http_status = 0;                        // of the answer, when there was one
    std::optional<Duration> retry_after;             // from a 429 or 503
    std::optional<SysTime> token_expiry;             // the token's JWT exp
    // The answer the CA was just extracted from: remembered with it (in
    // Services::extracted) once the CA validated.
    std::optional<std::string> extracted_from;
};

// /api/v1/orgs/{org}/instances/{id}/secrets/certificate
std::string tembo_ca_path(const Instance& instance);

// GET https://{api}{tembo_ca_path} with "Authorization: Bearer <token>", at
// most services.config.concurrency at once. Redirects are not followed (the
// token only goes to the configured host); a 401 makes the token file be
// read again at once. The CA is the answer's "ca.crt" (see extract_ca).
boost::asio::awaitable<Fetched> fetch_tembo_ca(std::shared_ptr<Services> services,
                                               const Instance& instance);

}  // namespace rootcertd
