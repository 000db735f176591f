// Discovery: a provider's control-plane list of instances, read into
// Instances kept as if the config listed them.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"

namespace rootcertd {

struct Services;

// Lists can be big: each page's body may hold this much.
inline constexpr std::size_t max_list_body = 16 << 20;
// A list of more pages than this is refused (a server that pages forever).
inline constexpr std::size_t max_list_pages = 1000;

// A listed instance that is not kept, and why: its name taken by another,
// or a value from the list that may not reach a file (a host that is not a
// host name or address, a user with a control character).
struct Refused {
    std::string name;
    std::string source;  // the discovery's label
    std::string reason;
    bool operator==(const Refused&) const = default;
};

// A source's list: the instances it keeps, in list order, and those refused.
struct Listing {
    std::vector<Instance> instances;
    std::vector<Refused> refused;
};

// One page of a list, and the path and query of the next page, if any.
struct ListPage : Listing {
    std::optional<std::string> next;
};

// The path and query of DISCOVERY's first page.
std::string first_page(const Discovery& discovery);

// BODY, one page as DISCOVERY's provider lists it, into instances: Tembo's
// array (Deleting and Deleted ones left out), Cloud SQL's "items"
// (databaseVersion POSTGRES* only), DigitalOcean's "databases" (engine pg
// only). Each gets the entry's defaults, a name from its template
// (sanitised), a source and, where the list says, host, port and user; one
// whose host or user is not well formed is refused. A page without the
// provider's array (Cloud SQL: a "kind" other than sql#instancesList;
// DigitalOcean: no "databases") or with more than DISCOVERY.max_instances
// objects, and any malformed object, fail the whole page, naming it.
Outcome<ListPage> parse_list_page(const Discovery& discovery, std::string_view body);

// TEXT as a safe file stem: characters outside [A-Za-z0-9._-] become '-',
// ".." collapses, a first character that is not a letter, digit or '_' gets
// a '_' before it, at most 200 characters.
std::string sanitise_name(std::string_view text);

// Every page of DISCOVERY's list, fetched with SERVICES' client, secrets,
// proxy, trust, timeouts and request slots. Fails naming the request, or
// when the pages hold more than DISCOVERY.max_instances instances.
boost::asio::awaitable<Outcome<Listing>> list_instances(std::shared_ptr<Services> services,
                                                        Discovery discovery);

}  // namespace rootcertd
