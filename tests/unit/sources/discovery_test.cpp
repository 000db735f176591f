#include "rootcertd/sources/discovery.hpp"

#include <gtest/gtest.h>

#include "rootcertd/sources/list_kinds.hpp"
#include "rootcertd/sources/providers.hpp"

using namespace rootcertd;

namespace {

Discovery tembo() {
    Discovery d;
    d.provider = "tembo";
    d.scope = "org_d";
    d.list_api = parse_https_url("https://api.tembo.io").value();
    d.name_template = "{instance_name}";
    d.data_plane = "https://api.{dataplane_index}.{region_id}.tembo.io";
    return d;
}

Discovery cloudsql() {
    Discovery d;
    d.provider = "cloudsql";
    d.scope = "proj";
    d.list_api = parse_https_url("https://sqladmin.googleapis.com").value();
    d.name_template = "{name}";
    d.credential = "gcp";
    return d;
}

Discovery digitalocean() {
    Discovery d;
    d.provider = "digitalocean";
    d.list_api = parse_https_url("https://api.digitalocean.com").value();
    d.name_template = "{name}";
    d.credential = "do";
    return d;
}

}  // namespace

TEST(Discovery, NamesAreSanitisedToSafeStems) {
    EXPECT_EQ(sanitise_name("prod"), "prod");
    EXPECT_EQ(sanitise_name("My DB/prod"), "My-DB-prod");
    EXPECT_EQ(sanitise_name("../etc/passwd"), "_.-etc-passwd");
    EXPECT_EQ(sanitise_name("a....b"), "a.b");
    EXPECT_EQ(sanitise_name(""), "_");
    EXPECT_EQ(sanitise_name("-x"), "_-x");
    EXPECT_EQ(sanitise_name("ünï"), "_--n--");  // each byte outside the set
    EXPECT_EQ(sanitise_name(std::string(300, 'a')).size(), 200u);
}

TEST(Discovery, TemboListKeepsWhatIsNotBeingDeleted) {
    const auto page = parse_list_page(tembo(), R"([
      {"instance_id": "inst_1", "instance_name": "alpha", "state": "Running",
       "dataplane_index": "data-1", "region_id": "use1",
       "connection_info": {"host": "alpha.example", "port": 5433, "user": "app", "password": "pw"}},
      {"instance_id": "inst_2", "instance_name": "beta", "state": "Stopped",
       "dataplane_index": "data-2", "region_id": "euc1", "connection_info": null},
      {"instance_id": "inst_3", "instance_name": "gone", "state": "Deleted",
       "dataplane_index": "data-1", "region_id": "use1"}])");
    ASSERT_TRUE(page.ok()) << page.error();
    ASSERT_EQ(page->instances.size(), 2u);
    const auto& a = page->instances[0];
    EXPECT_EQ(a.name, "alpha");
    EXPECT_EQ(a.org, "org_d");
    EXPECT_EQ(a.source->api.origin(), "https://api.data-1.use1.tembo.io");
    EXPECT_EQ(a.target, "/api/v1/orgs/org_d/instances/inst_1/secrets/certificate");
    ASSERT_TRUE(a.server.has_value());
    EXPECT_EQ(a.server->host, "alpha.example");
    EXPECT_EQ(a.port, 5433);
    EXPECT_EQ(a.server->user, "app");
    EXPECT_FALSE(page->instances[1].server) << "null connection_info: no live check";
    EXPECT_EQ(page->instances[1].source->api.origin(), "https://api.data-2.euc1.tembo.io");
    EXPECT_FALSE(page->next);
}

TEST(Discovery, AMalformedObjectFailsTheWholePage) {
    EXPECT_EQ(parse_list_page(tembo(), "{").error().rfind("the list is not JSON", 0), 0u);
    EXPECT_EQ(parse_list_page(tembo(), "{}").error(), "the list is not a JSON array");
    EXPECT_EQ(parse_list_page(tembo(), R"([{"instance_id": "a/b"}])").error(),
              "listed object 0 has no instance_id of [A-Za-z0-9_]");
    EXPECT_EQ(parse_list_page(tembo(), R"([{"instance_id": "a", "state": "Running"}])").error(),
              "listed object 0 (a) has no string field 'dataplane_index' for the template "
              "'https://api.{dataplane_index}.{region_id}.tembo.io'");
}

TEST(Discovery, CloudSqlPagesAndKeepsPostgresOnly) {
    const auto d = cloudsql();
    auto page = parse_list_page(d, R"({"kind": "sql#instancesList", "items": [
        {"name": "a", "databaseVersion": "POSTGRES_15", "dnsName": "",
         "ipAddresses": [{"type": "PRIVATE", "ipAddress": "10.1.1.1"}, {"type": "PRIMARY", "ipAddress": "34.1.2.3"}]},
        {"name": "m", "databaseVersion": "MYSQL_8_0"}], "nextPageToken": "t/1+="})");
    ASSERT_TRUE(page.ok()) << page.error();
    ASSERT_EQ(page->instances.size(), 1u);
    ASSERT_TRUE(page->instances[0].server.has_value());
    EXPECT_EQ(page->instances[0].server->host, "34.1.2.3");
    EXPECT_EQ(page->instances[0].target, "/v1/projects/proj/instances/a/listServerCas");
    EXPECT_EQ(page->instances[0].source->credential, "gcp");
    EXPECT_EQ(page->next, "/v1/projects/proj/instances?pageToken=t%2F1%2B%3D");
    EXPECT_TRUE(parse_list_page(d, R"({"kind": "sql#instancesList"})")->instances.empty())
        << "an empty project's list leaves items out";
}

TEST(Discovery, APageOfAnotherShapeIsMalformedNotEmpty) {
    // Read as "no instances", {} removed every section and stopped every loop.
    EXPECT_EQ(parse_list_page(cloudsql(), "{}").error(),
              "the list has no \"kind\": \"sql#instancesList\"");
    EXPECT_EQ(parse_list_page(cloudsql(), R"({"items": null})").error(),
              "the list has no \"kind\": \"sql#instancesList\"");
    EXPECT_EQ(parse_list_page(digitalocean(), "{}").error(), "the list has no \"databases\"");
    EXPECT_EQ(parse_list_page(digitalocean(), R"({"error": "maintenance"})").error(),
              "the list has no \"databases\"");
    EXPECT_EQ(parse_list_page(digitalocean(), R"({"databases": {}})").error(),
              "\"databases\" is not an array");
}

TEST(Discovery, ValuesThatWouldReachAFileAreCheckedAndTheirItemRefused) {
    // A dnsName with a line break put "sslmode=disable" into pg_service.conf.
    auto page = parse_list_page(cloudsql(), R"({"kind": "sql#instancesList", "items": [
        {"name": "db1", "databaseVersion": "POSTGRES_15",
         "dnsName": "127.0.0.1\nport=15432\nsslmode=disable"},
        {"name": "db2", "databaseVersion": "POSTGRES_15", "dnsName": "",
         "ipAddresses": [{"type": "PRIMARY", "ipAddress": "1.2.3.4 sslmode=disable"}]},
        {"name": "db3", "databaseVersion": "POSTGRES_15", "dnsName": "db3.example.com"}]})");
    ASSERT_TRUE(page.ok()) << page.error();
    ASSERT_EQ(page->instances.size(), 1u);
    EXPECT_EQ(page->instances[0].name, "db3");
    ASSERT_EQ(page->refused.size(), 2u);
    EXPECT_EQ(page->refused[0],
              (Refused{"db1", "cloudsql:proj",
                       "host '127.0.0.1 port=15432 sslmode=disable' is not a host name or "
                       "address"}))
        << "control characters never reach a log line either";
    EXPECT_EQ(page->refused[1].name, "db2");
    auto d = parse_list_page(digitalocean(), R"({"databases": [
        {"id": "1", "name": "a", "engine": "pg", "connection": {"host": "h", "user": "x\ny"}},
        {"id": "2", "name": "b", "engine": "pg", "connection": {"host": "h:5432", "user": "u"}}]})");
    ASSERT_TRUE(d.ok()) << d.error();
    EXPECT_TRUE(d->instances.empty());
    ASSERT_EQ(d->refused.size(), 2u);
    EXPECT_NE(d->refused[0].reason.find("user"), std::string::npos) << d->refused[0].reason;
    EXPECT_NE(d->refused[1].reason.find("host"), std::string::npos) << d->refused[1].reason;
}

TEST(Discovery, AListLongerThanMaxInstancesIsRefusedWhole) {
    auto d = digitalocean();
    d.max_instances = 2;
    const std::string item = R"({"id": "1", "name": "a", "engine": "pg"})";
    EXPECT_TRUE(parse_list_page(d, "{\"databases\": [" + item + "," + item + "]}").ok());
    EXPECT_EQ(
        parse_list_page(d, "{\"databases\": [" + item + "," + item + "," + item + "]}").error(),
        "the list holds 3 objects, more than max_instances (2)");
}

TEST(Discovery, DigitalOceanFollowsNextOnTheSameOrigin) {
    const auto d = digitalocean();
    auto page = parse_list_page(d, R"({"databases": [
        {"id": "9cc1", "name": "main", "engine": "pg", "connection": {"host": "h", "port": 25060, "user": "doadmin"}},
        {"id": "r1", "name": "cache", "engine": "redis"}],
        "links": {"pages": {"next": "https://evil.example/v2/databases?page=2"}}})");
    ASSERT_TRUE(page.ok()) << page.error();
    ASSERT_EQ(page->instances.size(), 1u);
    EXPECT_EQ(page->instances[0].port, 25060);
    EXPECT_EQ(page->next, "/v2/databases?page=2")
        << "only the path and query: the token stays home";
    EXPECT_TRUE(parse_list_page(d, R"({"databases": null})")->instances.empty());
}

TEST(Discovery, EveryListKindAsksForItsCaThroughAPresetThatSendsASecret) {
    for (const auto& kind : list_kinds()) {
        const Preset* preset = find_preset(kind.provider);
        ASSERT_NE(preset, nullptr) << kind.provider;
        EXPECT_FALSE(preset->path.empty()) << kind.provider;
        EXPECT_FALSE(preset->auth_scheme.empty()) << kind.provider << ": the list needs a secret";
        EXPECT_EQ(kind.scope_key.empty(), kind.first_page.find("{scope}") == std::string::npos)
            << kind.provider << ": a scope key exactly when the first page names it";
    }
    EXPECT_EQ(list_kind_names(), "tembo, cloudsql, digitalocean");
}
