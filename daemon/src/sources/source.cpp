#include "rootcertd/sources/source.hpp"

#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <boost/asio/use_awaitable.hpp>
#include <boost/container_hash/hash.hpp>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <sstream>

#include "rootcertd/core/blocking.hpp"
#include "rootcertd/net/http_date.hpp"
#include "rootcertd/sources/ca_response.hpp"
#include "rootcertd/sources/providers.hpp"
#include "rootcertd/sources/services.hpp"

namespace rootcertd {

namespace asio = boost::asio;

std::string describe_request(const Instance& instance) {
    const Source& source = *instance.source;
    if (source.roots != nullptr) return "roots from the system trust store";
    return "GET " + instance.target + " on " + source.api.origin();
}

Outcome<std::string> roots_by_subject(std::string_view store_pem,
                                      const std::vector<std::string>& required,
                                      const std::vector<std::string>& optional) {
    auto store = parse_bundle(store_pem);
    if (!store) return store.failure().prefixed("cannot read the system trust store: ");
    std::string pem;
    const auto take = [&](const std::string& subject) {
        bool found = false;
        for (const auto& c : store->certs) {
            if (c.subject == subject) {
                pem += c.pem;
                found = true;
            }
        }
        return found;
    };
    for (const auto& subject : required) {
        if (!take(subject)) {
            return fail("lacks the root '" + subject +
                        "' (is ca-certificates installed and current?)");
        }
    }
    for (const auto& subject : optional) take(subject);
    return pem;
}

std::size_t request_hash(const Source& source, std::string_view target) {
    // Everything that shapes the answer or how it is read: after a reload
    // that changes any of it, a 304 would replay a CA read the old way.
    std::size_t seed = 0;
    const auto& r = source.reading;
    // Views of the source's own strings (a "" branch would make a temporary).
    const std::string_view credential =
        source.credential ? std::string_view(*source.credential) : std::string_view();
    const std::string_view ca_file =
        source.ca_file ? std::string_view(source.ca_file->native()) : std::string_view();
    const std::string_view texts[] = {source.provider,    source.api.host,    target,
                                      source.auth_scheme, source.auth_header, credential,
                                      r.json_pointer,     r.member,           ca_file};
    for (const auto text : texts) boost::hash_combine(seed, text);
    const unsigned numbers[] = {source.api.port, r.base64, static_cast<unsigned>(r.format),
                                r.drop_leaves, source.credential.has_value()};
    for (const auto n : numbers) boost::hash_combine(seed, n);
    return seed;
}

namespace {

// A redirect's Location as errors show it: its query and fragment, which may
// carry a token (an SSO login page's access_token=...), are left out.
std::string shown_location(std::string_view location) {
    const auto cut = location.find_first_of("?#");
    if (cut == std::string_view::npos) return printable_snippet(location);
    return printable_snippet(location.substr(0, cut)) + "?...";
}

// "Sun, 06 Nov 1994 08:49:37 GMT", for If-Modified-Since.
std::string http_date(SysTime t) {
    const std::time_t tt = t.time_since_epoch().count();
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return buf;
}

// The system trust store's file, as OpenSSL finds it (SSL_CERT_FILE first).
std::string trust_store_file() {
    const char* env = std::getenv(X509_get_default_cert_file_env());
    return env != nullptr && *env != '\0' ? env : X509_get_default_cert_file();
}

// About the API token every Tembo instance shares (its file's mode, its
// expiry): logged once, and again hourly while it lasts, not per instance.
void warn_about_token(Services& s, const TokenSource& token, SysTime now) {
    std::string warning = token.exposure();
    const auto expiry = token.expiry();
    if (expiry && *expiry - now < std::chrono::hours(24 * 7)) {
        warning += (warning.empty() ? "" : "; ") + std::string("the API token ") +
                   (*expiry <= now ? "expired " : "expires ") + format_time(*expiry) +
                   ": rotate it before refreshes fail";
    }
    if (warning.empty()) {
        s.fetch.token_warnings.on_success();
    } else if (s.fetch.token_warnings.on_failure(warning, std::chrono::steady_clock::now()) !=
               FailureLog::Verdict::quiet) {
        spdlog::warn("{}", warning);
    }
}

// ANSWER's validators, when they can tell its content from the next one's.
// A file server derives them from the file's mtime, in whole seconds
// (nginx's ETag is mtime and size): a file replaced within the second it was
// served would keep them, and a 304 would hide the change for good. So, as
// RFC 9110 (8.8.2.2) says of Last-Modified, one less than a minute old is
// weak: not used. An ETag without a Last-Modified is the server's own (a
// content hash, as S3 sends).
// SOURCE: the request they answer, hashed only for validators kept.
std::optional<Validators> trustworthy_validators(const HttpResponse& answer, const Instance& inst,
                                                 SysTime now) {
    if (answer.etag.empty() && answer.last_modified.empty()) return std::nullopt;
    Validators v{0, answer.etag, std::nullopt};
    if (!answer.last_modified.empty()) {
        v.last_modified = parse_http_date(answer.last_modified);
        if (!v.last_modified || now - *v.last_modified < std::chrono::minutes(1)) {
            return std::nullopt;
        }
    }
    v.request = request_hash(*inst.source, inst.target);
    return v;
}

asio::awaitable<Fetched> fetch_system_roots(std::shared_ptr<Services> s, const Source& src) {
    Fetched out;
    auto read = [path = trust_store_file(),
                 required = std::vector<std::string>(src.roots->system_roots.begin(),
                                                     src.roots->system_roots.end()),
                 optional = std::vector<std::string>(
                     src.roots->optional_roots.begin(),
                     src.roots->optional_roots.end())]() -> Outcome<std::string> {
        std::ifstream in(path, std::ios::binary);
        if (!in) return fail("cannot read the system trust store " + path);
        std::ostringstream text;
        text << in.rdbuf();
        auto roots = roots_by_subject(text.str(), required, optional);
        if (!roots) return roots.failure().prefixed(path + ": ");
        return roots;
    };
    out.pem = co_await run_blocking(s->blocking, std::move(read));
    if (!out.pem) {
        out.pem = fail(Stage::response, "roots from the system trust store: " + out.pem.error());
    }
    co_return out;
}

}  // namespace

namespace {

// One GET of SRC's origin at TARGET with its secret (SECRET receives it, for
// redacting), conditional on KNOWN's validators when given; one of at most
// `concurrency` in flight. A refused secret that a credential command
// replaces is tried once more at once (a --once pass has no later retry).
asio::awaitable<Outcome<HttpResponse>> send(std::shared_ptr<Services> s, const Source& src,
                                            std::string_view target, const Validators* known,
                                            Fetched& out, std::string& secret) {
    const auto now = sys_now();
    std::optional<Outcome<HttpResponse>> response;
    for (bool again = false;; again = true) {
        HttpRequest request{src.api, target, {}, "Authorization", {}, {}};
        if (src.sends_secret()) {
            auto got = s->fetch.credentials.ready(src.credential);
            if (!got) got = co_await s->fetch.credentials.get(src.credential);
            if (!*got) co_return fail(Stage::token, got->error());
            secret = std::move(got->value());
            if (!src.credential) {
                if (const TokenSource* api = s->fetch.credentials.api_token()) {
                    out.token_expiry = api->expiry();
                    warn_about_token(*s, *api, now);
                }
            }
            if (!src.auth_header.empty()) {
                request.auth_header = src.auth_header;
                request.authorization = secret;
            } else {
                request.authorization = src.auth_scheme + " " + secret;
            }
        }
        if (known != nullptr) {
            request.if_none_match = known->etag;
            if (known->last_modified) request.if_modified_since = http_date(*known->last_modified);
        }
        {
            co_await s->fetch.requests_in_flight.async_send(boost::system::error_code{},
                                                            asio::use_awaitable);
            SlotGuard slot(s->fetch.requests_in_flight);
            response = co_await s->fetch.client_for(src)->get(std::move(request));
        }
        if (again || !*response || (*response)->status != 401 ||
            !s->fetch.credentials.refused(src.credential)) {
            break;
        }
    }
    co_return std::move(*response);
}

// What ANSWER to "GET <TARGET>" says, read as READING: never a redirect; a 304
// to a conditional request (the CA served last time, LAST); else a 200's CA.
// WHERE starts every error.
// WHERE() is built only for an error: most answers are fine, and a
// fleet's warm pass reads thousands of them.
template <class Where>
void read_answer(Services& s, const Source& src, HttpResponse& answer, const Reading& reading,
                 const Where& where, const std::string* last, const std::string& secret,
                 Fetched& out) {
    out.http_status = answer.status;
    out.retry_after = answer.retry_after;
    if (answer.status >= 300 && answer.status < 400 && answer.status != 304) {
        out.pem = fail(Stage::http, redact(where() + "HTTP " + std::to_string(answer.status) +
                                               ": redirect to '" + shown_location(answer.location) +
                                               "' not followed" +
                                               (secret.empty() ? std::string()
                                                               : " (the secret only goes to the "
                                                                 "configured host)"),
                                           secret));
        return;
    }
    if (answer.status == 304) {
        if (last == nullptr) {
            out.pem = fail(Stage::http, where() + "HTTP 304 to a request that was not conditional");
            return;
        }
        out.pem = *last;
        out.not_modified = true;
        return;
    }
    if (answer.status == 200) {
        // A body whose CA validated before is not read again: on a fleet's
        // warm pass every instance of a data plane is sent the same bytes.
        if (const auto* hit = s.seen.extracted.find(answer.body); hit && hit->reading == reading) {
            out.pem = hit->pem;
            return;
        }
        auto pem = read_ca(answer.body, reading);
        if (pem) {
            out.pem = std::move(pem);
            out.extracted_from = std::move(answer.body);
        } else {
            out.pem = fail(Stage::response, redact(where() + pem.error(), secret));
        }
        return;
    }
    std::string why = redact(where() + http_error(answer.status, answer.body), secret);
    if (answer.status == 401) {
        s.fetch.credentials.refused(src.credential);  // a secret rotated this second is used next
        if (out.token_expiry && *out.token_expiry <= sys_now()) {
            why += " (the API token expired " + format_time(*out.token_expiry) + ")";
        }
    }
    out.pem = fail(Stage::http, std::move(why));
}

}  // namespace

asio::awaitable<Fetched> fetch_ca(std::shared_ptr<Services> s, const Instance& inst) {
    const Source& src = *inst.source;
    if (src.roots != nullptr) co_return co_await fetch_system_roots(s, src);
    Fetched out;
    std::string secret;
    // 1. Conditional when the last answer had validators for this same
    // request and what it served is still known.
    const auto known = s->fetch.validators.find(inst.name);
    const std::string* last = known != s->fetch.validators.end() &&
                                      known->second.request == request_hash(src, inst.target)
                                  ? s->files.served_last(inst.name)
                                  : nullptr;
    // 2. The request and its answer.
    auto response =
        co_await send(s, src, inst.target, last ? &known->second : nullptr, out, secret);
    if (!response) {
        out.pem = fail(response.failure().stage,
                       redact(describe_request(inst) + ": " + response.error(), secret));
        co_return out;
    }
    if (response.value().status == 200) {
        out.validators = trustworthy_validators(response.value(), inst, sys_now());
    }
    read_answer(
        *s, src, response.value(), src.reading, [&] { return describe_request(inst) + ": "; }, last,
        secret, out);
    // 3. A 200 that holds no CA, from a source with a second place to look
    // (Cloud SQL in a CAS mode answers listServerCas empty): that place.
    if (out.pem || out.pem.failure().stage != Stage::response || inst.fallback_target.empty()) {
        co_return out;
    }
    const std::string first = out.pem.error();
    out.validators.reset();  // the fallback's answer is never asked for conditionally
    auto second = co_await send(s, src, inst.fallback_target, nullptr, out, secret);
    const std::string where =
        first + "; then GET " + inst.fallback_target + " on " + src.api.origin() + ": ";
    if (!second) {
        out.pem = fail(second.failure().stage, redact(where + second.error(), secret));
        co_return out;
    }
    read_answer(
        *s, src, second.value(), src.fallback_reading, [&] { return where; }, nullptr, secret, out);
    co_return out;
}

}  // namespace rootcertd
