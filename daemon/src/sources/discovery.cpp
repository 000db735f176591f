#include "rootcertd/sources/discovery.hpp"

#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <map>
#include <set>

#include "rootcertd/sources/ca_response.hpp"
#include "rootcertd/sources/list_kinds.hpp"
#include "rootcertd/sources/providers.hpp"
#include "rootcertd/sources/services.hpp"

namespace rootcertd {

namespace asio = boost::asio;
namespace json = boost::json;

std::string sanitise_name(std::string_view text) {
    // A name starts with a letter, a digit or '_': '_' is put before others.
    const bool prefixed =
        text.empty() || !(std::isalnum(static_cast<unsigned char>(text[0])) || text[0] == '_');
    std::string out = prefixed ? "_" : "";
    for (const char c : text) {
        const bool safe =
            std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
        out += safe ? c : '-';
    }
    for (auto at = out.find(".."); at != std::string::npos; at = out.find("..")) {
        out.erase(at, 1);
    }
    if (out.size() > 200) out.resize(200);
    return out;
}

std::string first_page(const Discovery& d) {
    return expand_path(find_list_kind(d.provider)->first_page,
                       [&](std::string_view) -> const std::string& { return d.scope; });
}

namespace {

// Fails saying why values from a list may not reach pg_service.conf, a
// live check, a log line or /status as they are.
Outcome<void> safe_values(const Instance& inst) {
    if (!inst.server) return Ok{};
    const PgServer& server = *inst.server;
    if (!is_host(server.host)) {
        return fail("host '" + printable_snippet(server.host, 60) +
                    "' is not a host name or address");
    }
    const auto& user = server.user;
    if (user && (user->empty() || std::any_of(user->begin(), user->end(), [](unsigned char c) {
                     return c < 0x20 || c == 0x7f || c == ' ';
                 }))) {
        return fail("user '" + printable_snippet(*user, 60) +
                    "' is empty or has a space or control character");
    }
    return Ok{};
}

}  // namespace

Outcome<ListPage> parse_list_page(const Discovery& d, std::string_view body) {
    boost::system::error_code ec;
    const auto page = json::parse(body, ec);
    if (ec) {
        return fail("the list is not JSON (" + ec.message() + "): '" + printable_snippet(body, 60) +
                    "'");
    }
    const ListKind& kind = *find_list_kind(d.provider);
    auto items = kind.items(page);
    if (!items) return items.failure();
    if (items.value()->size() > d.max_instances) {
        return fail("the list holds " + std::to_string(items.value()->size()) +
                    " objects, more than max_instances (" + std::to_string(d.max_instances) + ")");
    }
    ListPage out;
    SourcePool sources;
    const Preset& preset = *find_preset(d.provider);
    for (std::size_t i = 0; i < items.value()->size(); ++i) {
        const auto& object = (*items.value())[i];
        const std::string which = "listed object " + std::to_string(i) + " ";
        if (!object.is_object()) return fail(which + "is not an object");
        Instance inst = d.defaults;
        inst.discovered_by = d.label();
        ListedItem item{{}, d.ca_api};
        auto keep = kind.read(d, object.get_object(), inst, item);
        if (!keep) return keep.failure().prefixed(which);
        if (!keep.value()) continue;
        auto name = expand_fields(d.name_template, object.get_object());
        if (!name) return name.failure().prefixed(which);
        inst.name = sanitise_name(*name);
        if (auto safe = safe_values(inst); !safe) {
            out.refused.push_back({inst.name, d.label(), safe.error()});
            continue;
        }
        Source source = preset_source(
            preset, [&](std::string_view k) { return value_of(item.keys, k); }, item.origin,
            d.credential, inst);
        source.ca_file = d.ca_file;
        inst.source = std::move(source);
        sources.share(inst.source);
        out.instances.push_back(std::move(inst));
    }
    auto next = kind.next(d, page);
    if (!next) return next.failure();
    out.next = std::move(next.value());
    return out;
}

asio::awaitable<Outcome<Listing>> list_instances(std::shared_ptr<Services> s, Discovery d) {
    Listing all;
    std::string target = first_page(d);
    std::set<std::string> seen_pages;
    for (std::size_t n = 0;; ++n) {
        const std::string where =
            "discovery " + d.label() + ": GET " + target + " on " + d.list_api.origin() + ": ";
        if (n == max_list_pages || !seen_pages.insert(target).second) {
            co_return fail(Stage::response, where + "the list pages in a loop or without end");
        }
        auto secret = co_await s->fetch.credentials.get(d.credential);
        if (!secret) co_return fail(Stage::token, where + secret.error());
        HttpRequest request;
        request.endpoint = d.list_api;
        request.target = target;
        request.authorization =
            std::string(find_preset(d.provider)->auth_scheme) + " " + secret.value();
        request.body_limit = max_list_body;
        std::optional<Outcome<HttpResponse>> response;
        {
            co_await s->fetch.requests_in_flight.async_send(boost::system::error_code{},
                                                            asio::use_awaitable);
            SlotGuard slot(s->fetch.requests_in_flight);
            response = co_await s->fetch.client_for(d.ca_file)->get(std::move(request));
        }
        if (!*response) {
            co_return fail(response->failure().stage,
                           redact(where + response->error(), secret.value()));
        }
        const auto& answer = response->value();
        if (answer.status != 200) {
            if (answer.status == 401) s->fetch.credentials.refused(d.credential);
            co_return fail(Stage::http,
                           redact(where + http_error(answer.status, answer.body), secret.value()));
        }
        auto page = parse_list_page(d, answer.body);
        if (!page) co_return fail(Stage::response, redact(where + page.error(), secret.value()));
        for (auto& inst : page->instances) all.instances.push_back(std::move(inst));
        for (auto& r : page->refused) all.refused.push_back(std::move(r));
        if (all.instances.size() + all.refused.size() > d.max_instances) {
            co_return fail(Stage::response, where + "the list holds more than max_instances (" +
                                                std::to_string(d.max_instances) + ") instances");
        }
        if (!page->next) co_return all;
        target = std::move(*page->next);
    }
}

}  // namespace rootcertd
