#include "rootcertd/sources/discovery.hpp"

#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <map>
#include <set>

#include "rootcertd/sources/ca_response.hpp"
#include "rootcertd/sources/providers.hpp"
#include "rootcertd/sources/services.hpp"

namespace rootcertd {

namespace asio = boost::asio;
namespace json = boost::json;

std::string sanitise_name(std::string_view text) {
    std::string out;
    for (const char c : text) {
        const bool safe =
            std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
        out += safe ? c : '-';
    }
    for (auto at = out.find(".."); at != std::string::npos; at = out.find("..")) {
        out.erase(at, 1);
    }
    if (out.empty() || !(std::isalnum(static_cast<unsigned char>(out[0])) || out[0] == '_')) {
        out.insert(0, "_");
    }
    if (out.size() > 200) out.resize(200);
    return out;
}

std::string first_page(const Discovery& d) {
    if (d.provider == "tembo") return "/api/v1/orgs/" + d.scope + "/instances";
    if (d.provider == "cloudsql") return "/v1/projects/" + d.scope + "/instances";
    return "/v2/databases";
}

namespace {

// A listed object's top-level field as text: strings and whole numbers.
std::optional<std::string> field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) return std::nullopt;
    if (v->is_string()) return std::string(v->get_string());
    if (v->is_int64()) return std::to_string(v->get_int64());
    if (v->is_uint64()) return std::to_string(v->get_uint64());
    return std::nullopt;
}

// TEMPLATE with each {field} from O; fails naming a missing field.
Outcome<std::string> expand(const std::string& text, const json::object& o) {
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
        if (text[i] != '{') {
            out += text[i++];
            continue;
        }
        const auto end = text.find('}', i);
        const std::string key = text.substr(i + 1, end - i - 1);
        auto value = field(o, key);
        if (!value)
            return fail("has no string field '" + key + "' for the template '" + text + "'");
        out += *value;
        i = end + 1;
    }
    return out;
}

// host, port and user from a connection object, when it has a host.
void take_connection(const json::value* conn, Instance& inst) {
    if (conn == nullptr || !conn->is_object()) return;
    const auto& c = conn->get_object();
    inst.host = field(c, "host");
    if (auto port = field(c, "port")) {
        const int p = std::atoi(port->c_str());
        if (p > 0 && p < 65536) inst.port = static_cast<std::uint16_t>(p);
    }
    inst.user = field(c, "user");
}

// Why values from a list may not reach pg_service.conf, a live check, a log
// line or /status as they are; nullopt when they may.
std::optional<std::string> unsafe_values(const Instance& inst) {
    if (inst.host && !is_host(*inst.host)) {
        return "host '" + printable_snippet(*inst.host, 60) + "' is not a host name or address";
    }
    if (inst.user && (inst.user->empty() ||
                      std::any_of(inst.user->begin(), inst.user->end(), [](unsigned char c) {
                          return c < 0x20 || c == 0x7f || c == ' ';
                      }))) {
        return "user '" + printable_snippet(*inst.user, 60) +
               "' is empty or has a space or "
               "control character";
    }
    return std::nullopt;
}

// The array of listed objects on a page, as DISCOVERY's provider lists them.
// A page of another shape is malformed: read as "no instances", it would
// remove every instance found before.
Outcome<const json::array*> items_of(const Discovery& d, const json::value& page) {
    static const json::array none;
    if (d.provider == "tembo") {
        if (!page.is_array()) return fail("the list is not a JSON array");
        return &page.get_array();
    }
    if (!page.is_object()) return fail("the list is not a JSON object");
    const auto& o = page.get_object();
    const bool cloudsql = d.provider == "cloudsql";
    const char* key = cloudsql ? "items" : "databases";
    // Cloud SQL leaves "items" out of an empty project's list, as Google's
    // APIs leave out every empty list: "kind" says what the page is.
    // DigitalOcean writes an empty list as null (Go's empty slice).
    if (cloudsql && field(o, "kind") != "sql#instancesList") {
        return fail("the list has no \"kind\": \"sql#instancesList\"");
    }
    const auto* items = o.if_contains(key);
    if (items == nullptr && !cloudsql) return fail("the list has no \"databases\"");
    if (items == nullptr || items->is_null()) return &none;
    if (!items->is_array()) return fail(std::string("\"") + key + "\" is not an array");
    return &items->get_array();
}

}  // namespace

Outcome<ListPage> parse_list_page(const Discovery& d, std::string_view body) {
    boost::system::error_code ec;
    const auto page = json::parse(body, ec);
    if (ec) {
        return fail("the list is not JSON (" + ec.message() + "): '" + printable_snippet(body, 60) +
                    "'");
    }
    const bool tembo = d.provider == "tembo", cloudsql = d.provider == "cloudsql";
    auto items = items_of(d, page);
    if (!items) return fail(items.error());
    if (items.value()->size() > d.max_instances) {
        return fail("the list holds " + std::to_string(items.value()->size()) +
                    " objects, more than max_instances (" + std::to_string(d.max_instances) + ")");
    }
    ListPage out;
    const Preset& preset = *find_preset(d.provider);
    for (std::size_t i = 0; i < items.value()->size(); ++i) {
        const auto& item = (*items.value())[i];
        const std::string which = "listed object " + std::to_string(i);
        if (!item.is_object()) return fail(which + " is not an object");
        const auto& o = item.get_object();
        Instance inst = d.defaults;
        inst.discovered_by = d.label();
        std::map<std::string, std::string> keys;
        std::optional<Endpoint> origin = d.ca_api;
        if (tembo) {
            auto id = field(o, "instance_id");
            if (!id || !is_id(*id)) return fail(which + " has no instance_id of [A-Za-z0-9_]");
            const auto state = field(o, "state").value_or("");
            if (state == "Deleting" || state == "Deleted") continue;
            auto plane = expand(d.data_plane, o);
            if (!plane) return fail(which + " (" + *id + ") " + plane.error());
            auto endpoint = parse_https_url(*plane);
            if (!endpoint) return fail(which + " (" + *id + "): data plane: " + endpoint.error());
            origin = endpoint.value();
            inst.org = d.scope;  // the CA path uses the entry's org
            inst.id = *id;
            keys = {{"org", d.scope}, {"id", *id}};
            if (const auto* conn = o.if_contains("connection_info")) take_connection(conn, inst);
        } else if (cloudsql) {
            auto name = field(o, "name");
            if (!name || !is_path_value(*name)) return fail(which + " has no usable name");
            if (!field(o, "databaseVersion").value_or("").starts_with("POSTGRES")) continue;
            keys = {{"project", d.scope}, {"instance", *name}};
            inst.host = field(o, "dnsName");
            if (inst.host && inst.host->empty()) inst.host.reset();  // no DNS name: its address
            if (const auto* ips = o.if_contains("ipAddresses");
                !inst.host && ips && ips->is_array()) {
                for (const auto& ip : ips->get_array()) {
                    if (ip.is_object() && field(ip.get_object(), "type") == "PRIMARY") {
                        inst.host = field(ip.get_object(), "ipAddress");
                        break;
                    }
                }
            }
        } else {
            auto id = field(o, "id");
            if (!id || !is_path_value(*id)) return fail(which + " has no usable id");
            if (field(o, "engine") != "pg") continue;
            keys = {{"cluster", *id}};
            if (const auto* conn = o.if_contains("connection")) take_connection(conn, inst);
        }
        auto name = expand(d.name_template, o);
        if (!name) return fail(which + " " + name.error());
        inst.name = sanitise_name(*name);
        if (auto why = unsafe_values(inst)) {
            out.refused.push_back({inst.name, d.label(), *why});
            continue;
        }
        Source source = preset_source(
            preset, [&](const std::string& k) { return keys[k]; }, origin, d.credential);
        source.ca_file = d.ca_file;
        inst.source = std::move(source);
        if (!inst.host) inst.dbname.reset();
        out.instances.push_back(std::move(inst));
    }
    if (cloudsql && page.is_object()) {
        if (auto token = field(page.get_object(), "nextPageToken"); token && !token->empty()) {
            out.next = first_page(d) +
                       "?pageToken=" + boost::urls::encode(*token, boost::urls::unreserved_chars);
        }
    } else if (!tembo && page.is_object()) {
        // links.pages.next is a whole URL: only its path and query are used,
        // asked of the same origin (the secret goes nowhere else).
        const auto* links = page.get_object().if_contains("links");
        const json::value* pages =
            links && links->is_object() ? links->get_object().if_contains("pages") : nullptr;
        if (pages && pages->is_object()) {
            if (auto next = field(pages->get_object(), "next"); next && !next->empty()) {
                const auto scheme = next->find("://");
                const auto path = next->find('/', scheme == std::string::npos ? 0 : scheme + 3);
                if (path == std::string::npos) return fail("links.pages.next has no path");
                std::string target = next->substr(path);
                if (std::any_of(target.begin(), target.end(),
                                [](unsigned char c) { return c <= 0x20 || c >= 0x7f; })) {
                    return fail("links.pages.next is not a usable URL");
                }
                out.next = std::move(target);
            }
        }
    }
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
        auto secret = co_await s->credentials.get(d.credential);
        if (!secret) co_return fail(Stage::token, where + secret.error());
        HttpRequest request;
        request.endpoint = d.list_api;
        request.target = target;
        request.authorization = "Bearer " + secret.value();
        request.body_limit = max_list_body;
        std::optional<Outcome<HttpResponse>> response;
        {
            co_await s->requests_in_flight.async_send(boost::system::error_code{},
                                                      asio::use_awaitable);
            SlotGuard slot(s->requests_in_flight);
            response = co_await s->client_for(d.ca_file)->get(std::move(request));
        }
        if (!*response) {
            co_return fail(response->failure().stage,
                           redact(where + response->error(), secret.value()));
        }
        const auto& answer = response->value();
        if (answer.status != 200) {
            if (answer.status == 401) s->credentials.refused(d.credential);
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
