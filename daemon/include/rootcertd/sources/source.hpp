// Fetching an instance's CA from its source: the request (a provider preset
// or a custom url), its secret, conditional requests, reading the answer.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <string>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"
#include "rootcertd/pki/cert_bundle.hpp"
#include "rootcertd/sources/results.hpp"

namespace rootcertd {

struct Services;

// An answer's validators, sent back as If-None-Match / If-Modified-Since.
// Kept per instance for a fleet's lifetime, so kept small: the request as a
// hash, the date as a time (an ETag usually fits std::string's own buffer).
struct Validators {
    std::size_t request = 0;  // hash of the origin and target they belong to
    std::string etag;
    std::optional<SysTime> last_modified;
    bool operator==(const Validators&) const = default;
};

// The hash Validators::request holds for SOURCE's request: of everything
// that shapes the answer or how it is read (URL, secret, reading, trust).
std::size_t request_hash(const Source& source, std::string_view target);

// What a source answered: the CA text, or why there is none, and what the
// scheduler and the status board learn from the exchange either way.
struct Fetched {
    Outcome<std::string> pem = fail("not fetched");  // errors name the request
    unsigned http_status = 0;                        // of the answer, when there was one
    std::optional<Duration> retry_after;             // from a 429 or 503
    std::optional<SysTime> token_expiry;             // the API token's JWT exp
    bool not_modified = false;                       // a 304: PEM is what was served last time
    // The answer the CA was just extracted from: remembered with it (in
    // Services::seen.extracted) once the CA validated.
    std::optional<std::string> extracted_from;
    std::optional<Validators> validators;  // of a 200, kept once its CA is installed
};

// "GET <target> on <origin>", or what a source without a request reads.
std::string describe_request(const Instance& instance);

// Fetches INSTANCE's CA text: GET {origin}{target} with its secret, at most
// services.config.concurrency at once, conditional when the last answer had
// validators. Redirects are not followed (a secret only goes to the
// configured host); a 401 makes the secret be read (or its command run)
// again. Azure's roots come from the system trust store instead.
boost::asio::awaitable<Fetched> fetch_ca(std::shared_ptr<Services> services,
                                         const Instance& instance);

// The CAs among the trust store's certificates whose subjects are REQUIRED
// (each must be there) or OPTIONAL, as PEM text. STORE_PEM: the store's file.
Outcome<std::string> roots_by_subject(std::string_view store_pem,
                                      const std::vector<std::string>& required,
                                      const std::vector<std::string>& optional);

}  // namespace rootcertd
