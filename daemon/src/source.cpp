#include "rootcertd/source.hpp"

#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <boost/asio/use_awaitable.hpp>
#include <boost/container_hash/hash.hpp>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <sstream>

#include "rootcertd/blocking.hpp"
#include "rootcertd/ca_response.hpp"
#include "rootcertd/providers.hpp"
#include "rootcertd/refresh.hpp"

namespace rootcertd {

namespace asio = boost::asio;

std::string describe_request(const Source& source) {
    if (source.roots != nullptr) return "roots from the system trust store";
    return "GET " + source.target + " on " + source.api.origin();
}

Outcome<std::string> roots_by_subject(std::string_view store_pem,
                                      const std::vector<std::string>& required,
                                      const std::vector<std::string>& optional) {
    auto store = parse_bundle(store_pem);
    if (!store) return fail("cannot read the system trust store: " + store.error());
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

std::size_t request_hash(const Source& source) {
    // Everything that shapes the answer or how it is read: after a reload
    // that changes any of it, a 304 would replay a CA read the old way.
    std::size_t seed = 0;
    const auto& r = source.reading;
    const std::string credential = source.credential ? "credential " + *source.credential : "api";
    const std::string ca_file = source.ca_file ? source.ca_file->native() : std::string();
    const std::string_view texts[] = {source.provider,    source.api.host,    source.target,
                                      source.auth_scheme, source.auth_header, credential,
                                      r.json_pointer,     r.member,           ca_file};
    for (const auto text : texts) boost::hash_combine(seed, text);
    const unsigned numbers[] = {source.api.port, r.base64, static_cast<unsigned>(r.format),
                                r.drop_leaves};
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
        s.token_warnings.on_success();
    } else if (s.token_warnings.on_failure(warning, std::chrono::steady_clock::now()) !=
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
std::optional<Validators> trustworthy_validators(const HttpResponse& answer, std::size_t request,
                                                 SysTime now) {
    if (answer.etag.empty() && answer.last_modified.empty()) return std::nullopt;
    Validators v{request, answer.etag, std::nullopt};
    if (answer.last_modified.empty()) return v;
    v.last_modified = parse_http_date(answer.last_modified);
    if (!v.last_modified || now - *v.last_modified < std::chrono::minutes(1)) return std::nullopt;
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
        if (!roots) return fail(path + ": " + roots.error());
        return roots;
    };
    out.pem = co_await run_blocking(s->blocking, std::move(read));
    if (!out.pem) out.pem = fail(Stage::response, describe_request(src) + ": " + out.pem.error());
    co_return out;
}

}  // namespace

asio::awaitable<Fetched> fetch_ca(std::shared_ptr<Services> s, const Instance& inst) {
    const Source& src = *inst.source;
    if (src.roots != nullptr) co_return co_await fetch_system_roots(s, src);
    Fetched out;
    // Every error names the request; built only for an error.
    const auto where = [&] { return describe_request(src) + ": "; };
    const auto now = sys_now();
    std::string secret;
    const std::size_t request_key = request_hash(src);
    const auto known = s->validators.find(inst.name);
    const bool conditional = known != s->validators.end() && known->second.request == request_key &&
                             s->served_last(inst.name) != nullptr;
    std::optional<Outcome<HttpResponse>> response;
    for (bool again = false;; again = true) {
        HttpRequest request{src.api, src.target, {}, "Authorization", {}, {}};
        // 1. The secret, when the source sends one.
        if (src.sends_secret()) {
            auto got = co_await s->credentials.get(src.credential);
            if (!got) {
                out.pem = fail(Stage::token, where() + got.error());
                co_return out;
            }
            secret = std::move(got.value());
            if (!src.credential) {
                if (const TokenSource* api = s->credentials.api_token()) {
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
        // 2. Conditional, when the last answer had validators and what it
        // served is still known.
        if (conditional) {
            request.if_none_match = known->second.etag;
            if (known->second.last_modified) {
                request.if_modified_since = http_date(*known->second.last_modified);
            }
        }
        // 3. The request, one of at most `concurrency` in flight.
        {
            co_await s->requests_in_flight.async_send(boost::system::error_code{},
                                                      asio::use_awaitable);
            SlotGuard slot(s->requests_in_flight);
            response = co_await s->client_for(src)->get(std::move(request));
        }
        // A refused secret that a credential command replaces is tried once
        // more at once (a --once pass has no later retry).
        if (again || !*response || (*response)->status != 401 ||
            !s->credentials.refused(src.credential)) {
            break;
        }
    }
    if (!*response) {
        out.pem = fail(response->failure().stage, redact(where() + response->error(), secret));
        co_return out;
    }
    // 4. The answer: never a redirect; a 304 to a conditional request; else a 200's CA.
    auto& answer = response->value();
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
        co_return out;
    }
    if (answer.status == 304) {
        if (!conditional) {
            out.pem = fail(Stage::http, where() + "HTTP 304 to a request that was not conditional");
            co_return out;
        }
        out.pem = *s->served_last(inst.name);
        out.not_modified = true;
        co_return out;
    }
    if (answer.status == 200) out.validators = trustworthy_validators(answer, request_key, now);
    // A body whose CA validated before is not read again: on a fleet's warm
    // pass every instance of a data plane is sent the same bytes.
    if (answer.status == 200) {
        if (const auto* hit = s->seen.extracted.find(answer.body);
            hit && hit->reading == src.reading) {
            out.pem = hit->pem;
            co_return out;
        }
        auto pem = read_ca(answer.body, src.reading);
        if (pem) {
            out.pem = std::move(pem);
            out.extracted_from = std::move(answer.body);
            co_return out;
        }
        out.pem = fail(Stage::response, redact(where() + pem.error(), secret));
        co_return out;
    }
    std::string why = redact(where() + http_error(answer.status, answer.body), secret);
    if (answer.status == 401) {
        s->credentials.refused(src.credential);  // a secret rotated this second is used next
        if (out.token_expiry && *out.token_expiry <= now) {
            why += " (the API token expired " + format_time(*out.token_expiry) + ")";
        }
    }
    out.pem = fail(Stage::http, std::move(why));
    co_return out;
}

}  // namespace rootcertd
