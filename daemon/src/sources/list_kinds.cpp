#include "rootcertd/sources/list_kinds.hpp"

#include <boost/json/value.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <cstdlib>

#include "rootcertd/sources/providers.hpp"

namespace rootcertd {

namespace json = boost::json;

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

// The server at HOST, with the discover entry's dbname and USER.
SharedOptional<PgServer> server_at(const Discovery& d, std::optional<std::string> host,
                                   std::optional<std::string> user = std::nullopt) {
    if (!host) return {};
    return PgServer{std::move(*host), d.dbname, std::move(user)};
}

// host, port and user from a connection object, when it has a host.
void take_connection(const Discovery& d, const json::value* conn, Instance& inst) {
    if (conn == nullptr || !conn->is_object()) return;
    const auto& c = conn->get_object();
    if (auto port = field(c, "port")) {
        const int p = std::atoi(port->c_str());
        if (p > 0 && p < 65536) inst.port = static_cast<std::uint16_t>(p);
    }
    inst.server = server_at(d, field(c, "host"), field(c, "user"));
}

// The object at KEY of PAGE, holding the array of listed objects at ITEMS.
Outcome<const json::array*> items_at(const json::value& page, const char* items) {
    static const json::array none;
    if (!page.is_object()) return fail("the list is not a JSON object");
    const auto* found = page.get_object().if_contains(items);
    if (found == nullptr) return fail(std::string("the list has no \"") + items + "\"");
    if (found->is_null()) return &none;
    if (!found->is_array()) return fail(std::string("\"") + items + "\" is not an array");
    return &found->get_array();
}

// Tembo: GET {control_plane}/api/v1/orgs/{org}/instances, a JSON array of
// instances; each one's CA is asked of its region's data plane.
Outcome<const json::array*> tembo_items(const json::value& page) {
    if (!page.is_array()) return fail("the list is not a JSON array");
    return &page.get_array();
}

Outcome<bool> tembo_read(const Discovery& d, const json::object& o, Instance& inst,
                         ListedItem& item) {
    auto id = field(o, "instance_id");
    if (!id || !is_id(*id)) return fail("has no instance_id of [A-Za-z0-9_]");
    const auto state = field(o, "state").value_or("");
    if (state == "Deleting" || state == "Deleted") return false;
    auto plane = expand_fields(d.data_plane, o);
    if (!plane) return plane.failure().prefixed("(" + *id + ") ");
    auto endpoint = parse_https_url(*plane);
    if (!endpoint) return endpoint.failure().prefixed("(" + *id + "): data plane: ");
    item.origin = endpoint.value();
    inst.org = d.scope;  // the CA path uses the entry's org
    inst.id = *id;
    item.keys = {{"org", d.scope}, {"id", *id}};
    if (const auto* conn = o.if_contains("connection_info")) take_connection(d, conn, inst);
    return true;
}

Outcome<std::optional<std::string>> no_next(const Discovery&, const json::value&) {
    return std::optional<std::string>();
}

// Cloud SQL: instances.list, {"kind": "sql#instancesList", "items": [...],
// "nextPageToken"}. "items" is left out of an empty project's list, as
// Google's APIs leave out every empty list: "kind" says what the page is.
Outcome<const json::array*> cloudsql_items(const json::value& page) {
    static const json::array none;
    if (!page.is_object()) return fail("the list is not a JSON object");
    if (field(page.get_object(), "kind") != "sql#instancesList") {
        return fail("the list has no \"kind\": \"sql#instancesList\"");
    }
    if (!page.get_object().contains("items")) return &none;
    return items_at(page, "items");
}

Outcome<bool> cloudsql_read(const Discovery& d, const json::object& o, Instance& inst,
                            ListedItem& item) {
    auto name = field(o, "name");
    if (!name || !is_path_value(*name)) return fail("has no usable name");
    if (!field(o, "databaseVersion").value_or("").starts_with("POSTGRES")) return false;
    item.keys = {{"project", d.scope}, {"instance", *name}};
    auto host = field(o, "dnsName");
    if (host && host->empty()) host.reset();  // no DNS name: its address
    if (const auto* ips = o.if_contains("ipAddresses"); !host && ips && ips->is_array()) {
        for (const auto& ip : ips->get_array()) {
            if (ip.is_object() && field(ip.get_object(), "type") == "PRIMARY") {
                host = field(ip.get_object(), "ipAddress");
                break;
            }
        }
    }
    inst.server = server_at(d, std::move(host));
    return true;
}

constexpr std::string_view cloudsql_list = "/v1/projects/{scope}/instances";

Outcome<std::optional<std::string>> cloudsql_next(const Discovery& d, const json::value& page) {
    auto token = field(page.get_object(), "nextPageToken");
    if (!token || token->empty()) return std::optional<std::string>();
    return std::optional<std::string>(
        expand_path(cloudsql_list,
                    [&](std::string_view) -> const std::string& { return d.scope; }) +
        "?pageToken=" + boost::urls::encode(*token, boost::urls::unreserved_chars));
}

// DigitalOcean: GET /v2/databases, {"databases": [...] or null (Go's empty
// slice), "links": {"pages": {"next": URL}}}.
Outcome<const json::array*> digitalocean_items(const json::value& page) {
    return items_at(page, "databases");
}

Outcome<bool> digitalocean_read(const Discovery& d, const json::object& o, Instance& inst,
                                ListedItem& item) {
    auto id = field(o, "id");
    if (!id || !is_path_value(*id)) return fail("has no usable id");
    if (field(o, "engine") != "pg") return false;
    item.keys = {{"cluster", *id}};
    if (const auto* conn = o.if_contains("connection")) take_connection(d, conn, inst);
    return true;
}

// links.pages.next is a whole URL: only its path and query are used, asked
// of the same origin (the secret goes nowhere else).
Outcome<std::optional<std::string>> digitalocean_next(const Discovery&, const json::value& page) {
    const auto* links = page.get_object().if_contains("links");
    const json::value* pages =
        links && links->is_object() ? links->get_object().if_contains("pages") : nullptr;
    if (!pages || !pages->is_object()) return std::optional<std::string>();
    auto next = field(pages->get_object(), "next");
    if (!next || next->empty()) return std::optional<std::string>();
    const auto scheme = next->find("://");
    const auto path = next->find('/', scheme == std::string::npos ? 0 : scheme + 3);
    if (path == std::string::npos) return fail("links.pages.next has no path");
    std::string target = next->substr(path);
    if (std::any_of(target.begin(), target.end(),
                    [](unsigned char c) { return c <= 0x20 || c >= 0x7f; })) {
        return fail("links.pages.next is not a usable URL");
    }
    return std::optional<std::string>(std::move(target));
}

bool no_scope(const std::string&) { return true; }

}  // namespace

const std::vector<ListKind>& list_kinds() {
    static const std::vector<ListKind> table{
        {"tembo", "org", is_id, "must match ^[A-Za-z0-9_]+$", "/api/v1/orgs/{scope}/instances",
         "{instance_name}", "https://api.tembo.io",
         "https://api.{dataplane_index}.{region_id}.tembo.io", true, tembo_items, tembo_read,
         no_next},
        {"cloudsql", "project", is_path_value, "may hold only letters, digits and '_.-:@'",
         cloudsql_list, "{name}", "", "", false, cloudsql_items, cloudsql_read, cloudsql_next},
        {"digitalocean", "", no_scope, "", "/v2/databases", "{name}", "", "", false,
         digitalocean_items, digitalocean_read, digitalocean_next},
    };
    return table;
}

const ListKind* find_list_kind(std::string_view provider) {
    for (const auto& kind : list_kinds()) {
        if (kind.provider == provider) return &kind;
    }
    return nullptr;
}

std::string list_kind_names() {
    std::string out;
    for (const auto& kind : list_kinds())
        out += (out.empty() ? "" : ", ") + std::string(kind.provider);
    return out;
}

Outcome<std::string> expand_fields(std::string_view text, const json::object& o) {
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
        if (text[i] != '{') {
            out += text[i++];
            continue;
        }
        const auto end = text.find('}', i);
        const std::string_view key = text.substr(i + 1, end - i - 1);
        auto value = field(o, key);
        if (!value) {
            return fail("has no string field '" + std::string(key) + "' for the template '" +
                        std::string(text) + "'");
        }
        out += *value;
        i = end + 1;
    }
    return out;
}

}  // namespace rootcertd
