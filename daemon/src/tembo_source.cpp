#include "rootcertd/tembo_source.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/use_awaitable.hpp>

#include "rootcertd/ca_response.hpp"
#include "rootcertd/refresh.hpp"

namespace rootcertd {

namespace asio = boost::asio;

std::string tembo_ca_path(const Instance& inst) {
    return "/api/v1/orgs/" + inst.org + "/instances/" + inst.id + "/secrets/certificate";
}

namespace {

// About the one token every instance shares (its file's mode, its expiry):
// logged once, and again hourly while it lasts, not per instance.
void warn_about_token(Services& s, std::optional<SysTime> expiry, SysTime now) {
    std::string warning = s.token.exposure();
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

}  // namespace

asio::awaitable<Fetched> fetch_tembo_ca(std::shared_ptr<Services> s, const Instance& inst) {
    Fetched out;
    const auto target = tembo_ca_path(inst);
    // Every error names the request; built only for an error.
    const auto where = [&] { return "GET " + target + " on " + inst.api.origin() + ": "; };
    // 1. The token, re-read when its file changed.
    auto token = s->token.get();
    if (!token) {
        out.pem = fail(Stage::token, where() + token.error());
        co_return out;
    }
    const auto now = sys_now();
    out.token_expiry = s->token.expiry();
    warn_about_token(*s, out.token_expiry, now);
    // 2. The request, one of at most `concurrency` in flight.
    std::optional<Outcome<HttpResponse>> response;
    {
        co_await s->requests_in_flight.async_send(boost::system::error_code{}, asio::use_awaitable);
        SlotGuard slot(s->requests_in_flight);
        response = co_await s->client->get(inst.api, target, token.value());
    }
    if (!*response) {
        out.pem =
            fail(response->failure().stage, redact(where() + response->error(), token.value()));
        co_return out;
    }
    // 3. The answer: never a redirect, else "ca.crt" of a 200.
    const auto& answer = response->value();
    out.http_status = answer.status;
    out.retry_after = answer.retry_after;
    if (answer.status >= 300 && answer.status < 400) {
        out.pem =
            fail(Stage::http, where() + "HTTP " + std::to_string(answer.status) +
                                  ": redirect to '" + printable_snippet(answer.location) +
                                  "' not followed (the token only goes to the configured host)");
        co_return out;
    }
    // A body whose CA validated before is not parsed again: on a fleet's warm
    // pass every instance of a data plane is sent the same bytes.
    if (answer.status == 200) {
        if (const std::string* known = s->seen.extracted.find(answer.body)) {
            out.pem = *known;
            co_return out;
        }
    }
    auto pem = extract_ca(answer.status, answer.body);
    if (pem) {
        out.pem = std::move(pem);
        out.extracted_from = std::move(response->value().body);
        co_return out;
    }
    std::string why = redact(where() + pem.error(), token.value());
    if (answer.status == 401) {
        s->token.recheck();  // a token rotated this second is used next
        if (out.token_expiry && *out.token_expiry <= now) {
            why += " (the API token expired " + format_time(*out.token_expiry) + ")";
        }
    }
    // A 200 without a CA is the response's fault; any other status the exchange's.
    out.pem = fail(answer.status == 200 ? Stage::response : Stage::http, std::move(why));
    co_return out;
}

}  // namespace rootcertd
