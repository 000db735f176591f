// How a provider lists a whole organisation's instances, for `discover:`:
// one row per provider, beside its CA preset (providers.hpp). Adding a
// provider's list is its row in list_kinds.cpp, its tests and its docs.
#pragma once

#include <boost/json/fwd.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rootcertd/core/model.hpp"
#include "rootcertd/core/outcome.hpp"
#include "rootcertd/sources/providers.hpp"

namespace rootcertd {

// What one listed object gives: the preset's path keys, the origin of its
// CA request when the list says (Tembo's data plane), and host, port and
// user into the instance.
struct ListedItem {
    PresetValues keys;
    std::optional<Endpoint> origin;
};

struct ListKind {
    std::string_view provider;  // a preset's name: the CA request and its auth scheme
    // The discover key naming what is listed (org, project), what its value
    // must be, and the rule in words; empty: the credential's whole account.
    std::string_view scope_key;
    bool (*scope_ok)(const std::string&);
    std::string_view scope_rule;
    std::string_view first_page;     // path and query; {scope}
    std::string_view name_template;  // the default of `name:`
    // Where the list is asked (`control_plane:`), and the template of each
    // instance's CA origin (`data_plane:`); empty: both at the preset's
    // origin or `api_url:`.
    std::string_view control_plane;
    std::string_view data_plane;
    // Whether api.token_file / api.token_env is its secret when the entry
    // names no credential.
    bool api_token;
    // The array of listed objects on PAGE. A page of another shape fails:
    // read as "no instances", it would remove every instance found before.
    Outcome<const boost::json::array*> (*items)(const boost::json::value& page);
    // One listed object: false when it is not a PostgreSQL instance to keep
    // (left out); fails naming what is missing.
    Outcome<bool> (*read)(const Discovery& d, const boost::json::object& object, Instance& inst,
                          ListedItem& item);
    // The path and query of the page after PAGE, or nullopt at the last.
    Outcome<std::optional<std::string>> (*next)(const Discovery& d, const boost::json::value& page);
};

// Every provider discover: knows, in documentation order.
const std::vector<ListKind>& list_kinds();

// The row of PROVIDER, or nothing.
const ListKind* find_list_kind(std::string_view provider);

// "tembo, cloudsql, digitalocean": for an error about an unknown provider.
std::string list_kind_names();

// TEMPLATE with each {field} from a listed OBJECT's top-level strings and
// whole numbers; fails naming a missing field.
Outcome<std::string> expand_fields(std::string_view text, const boost::json::object& object);

}  // namespace rootcertd
