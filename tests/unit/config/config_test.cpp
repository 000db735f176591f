#include "rootcertd/config/config.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include "rootcertd/sources/providers.hpp"
#include "tempdir.hpp"

using namespace rootcertd;
using namespace std::chrono_literals;

namespace {

const std::string minimal = R"(api:
  url: https://api.data-1.use1.tembo.io
  token_env: TEMBO_TOKEN
cert_dir: /tmp/certs
instances:
  - org: org_a
    id: inst_1
)";

// The ConfigError message for YAML, or "" when it parses.
std::string error_of(const std::string& yaml) {
    try {
        parse_config(yaml, "/etc/rootcertd/test.yaml");
        return "";
    } catch (const ConfigError& e) {
        return e.what();
    }
}

// MINIMAL with LINE appended to its instance (instances are last).
std::string with_instance_line(const std::string& line) { return minimal + "    " + line + "\n"; }

}  // namespace

TEST(Config, MinimalGetsDocumentedDefaults) {
    const auto cfg = parse_config(minimal, "/etc/rootcertd/test.yaml");
    ASSERT_EQ(cfg.instances.size(), 1u);
    const auto& inst = cfg.instances[0];
    EXPECT_EQ(inst.name, "inst_1");
    EXPECT_EQ(inst.source->api.host, "api.data-1.use1.tembo.io");
    EXPECT_EQ(inst.refresh_interval, 1h);
    EXPECT_EQ(inst.file.mode, 0644u);
    EXPECT_EQ(cfg.cert_path(inst), "/tmp/certs/inst_1.crt");
    EXPECT_EQ(cfg.timeout, 10s);
    EXPECT_EQ(cfg.concurrency, 16u);
    EXPECT_EQ(cfg.expiry_warning, 14 * 24h);
    EXPECT_DOUBLE_EQ(cfg.jitter, 0.1);
    EXPECT_EQ(cfg.token_env, "TEMBO_TOKEN");
}

TEST(Config, FullFileWithOverrides) {
    const auto cfg = parse_config(R"(api:
  url: https://api.data-1.use1.tembo.io
  token_file: secrets/token
  timeout: 3s
  connect_timeout: 1s
cert_dir: certs
refresh_interval: 30m
jitter: 0.2
retry: {min: 1s, max: 2m}
concurrency: 4
expiry_warning: 7d
file_mode: "0640"
instances:
  - {org: org_a, id: inst_1, name: prod}
  - org: org_b
    id: inst_2
    api_url: https://api.data-1.euc1.tembo.io:8443
    refresh_interval: 5m
    file_mode: "0600"
)",
                                  "/etc/rootcertd/rootcertd.yaml");
    EXPECT_EQ(cfg.token_file, "/etc/rootcertd/secrets/token");
    EXPECT_EQ(cfg.cert_dir, "/etc/rootcertd/certs");
    EXPECT_EQ(cfg.timeout, 3s);
    EXPECT_EQ(cfg.retry_min, 1s);
    EXPECT_EQ(cfg.retry_max, 2min);
    EXPECT_EQ(cfg.concurrency, 4u);
    EXPECT_EQ(cfg.instances[0].name, "prod");
    EXPECT_EQ(cfg.instances[0].refresh_interval, 30min);
    EXPECT_EQ(cfg.instances[0].file.mode, 0640u);
    EXPECT_EQ(cfg.instances[1].source->api.host, "api.data-1.euc1.tembo.io");
    EXPECT_EQ(cfg.instances[1].source->api.port, 8443);
    EXPECT_EQ(cfg.instances[1].refresh_interval, 5min);
    EXPECT_EQ(cfg.instances[1].file.mode, 0600u);
}

TEST(Config, UnknownKeysNameFileLineAndKey) {
    const auto top = error_of(minimal + "refresh_intervl: 5m\n");
    EXPECT_EQ(top.rfind("/etc/rootcertd/test.yaml:8:1: refresh_intervl: unknown key", 0), 0u)
        << top;
    EXPECT_NE(top.find("refresh_interval"), std::string::npos) << "lists the known keys: " << top;

    const auto inst = error_of(with_instance_line("nmae: prod"));
    EXPECT_NE(inst.find("test.yaml:8:5: instances[0].nmae: unknown key"), std::string::npos)
        << inst;

    const auto api = error_of(R"(api:
  url: https://h
  token_env: T
  tiemout: 5s
instances: [{org: a, id: b}]
)");
    EXPECT_NE(api.find(":4:3: api.tiemout: unknown key"), std::string::npos) << api;
}

TEST(Config, SyntaxErrorsNameLineAndColumn) {
    const auto e = error_of("api:\n  url: [unclosed\ninstances: []\n");
    EXPECT_NE(e.find("test.yaml:"), std::string::npos) << e;
    EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
    EXPECT_NE(
        error_of("api: {url: https://h, token_env: T}\n\tinstances: x\n").find("test.yaml:2:"),
        std::string::npos);
}

TEST(Config, RejectsEachMistake) {
    struct Case {
        std::string yaml, expect;
    };
    const std::vector<Case> cases{
        {"", "the file is empty"},
        {"instances: []\n", "'instances' must list at least one instance"},
        {"api: {url: http://h, token_env: T}\ninstances: [{org: a, id: b}]\n",
         "api.url: 'http://h' must use https://"},
        {"api: {url: https://h}\ninstances: [{org: a, id: b}]\n",
         "instances[0]: needs api.token_file or api.token_env (or a source credential)"},
        {"instances: [{org: a, id: b}]\n", "instances[0]: no api_url here and no api.url"},
        {"api: {url: https://h, token_env: T, token_file: /t}\ninstances: [{org: a, id: b}]\n",
         "set one of token_file and token_env, not both"},
        {"api: {url: https://h, token_env: T, timeout: 10}\ninstances: [{org: a, id: b}]\n",
         "api.timeout: '10' has no unit"},
        {"api: {url: https://h, token_env: T, timeout: 0}\ninstances: [{org: a, id: b}]\n",
         "greater than zero"},
        {"api: {url: https://h, token_env: T, ca_file: /nonexistent/ca.pem}\ninstances: [{org: a, "
         "id: b}]\n",
         "api.ca_file: cannot read '/nonexistent/ca.pem'"},
        {"api: {token_env: T}\ninstances: [{org: a, id: b}]\n", "no api_url here and no api.url"},
        {minimal + "instances: []\n", "duplicate key"},
        {"api: {url: https://h, token_env: T}\ninstances: []\n", "at least one instance"},
        {"api: {url: https://h, token_env: T}\ninstances: {a: 1}\n", "'instances' must be a list"},
        {with_instance_line("name: ../etc/passwd"),
         "instances[0].name: '../etc/passwd' is not a safe file name"},
        {with_instance_line("name: .hidden"), "not a safe file name"},
        {with_instance_line("name: a..b"), "not a safe file name"},
        {with_instance_line("api_url: https://h/path"), "instances[0].api_url:"},
        {with_instance_line("refresh_interval: soon"), "instances[0].refresh_interval:"},
        {with_instance_line("file_mode: \"0999\""), "not an octal file mode"},
        {with_instance_line("file_mode: \"0200\""), "owner read"},
        {with_instance_line("file_mode: \"0666\""),
         "instances[0].file_mode: '0666' lets group or others write the file"},
        {minimal + "file_mode: \"0620\"\n", "file_mode: '0620' lets group or others write"},
        {minimal + "refresh_interval: 110000d\n",
         "refresh_interval: '110000d' is longer than the maximum, 3650d"},
        {minimal + "rotation: {keep_previous: 999999d}\n",
         "rotation.keep_previous: '999999d' is longer than the maximum, 3650d"},
        {with_instance_line("verify_interval: 3651d"), "longer than the maximum"},
        // libpq's service-file parser reads a newline as the next line: a
        // host, dbname or user must not smuggle settings into pg_service.conf.
        {with_instance_line("host: \"h\\nsslmode=disable\""),
         "instances[0].host: must not contain control characters"},
        {with_instance_line("host: h\n    user: \"u\\rx\""),
         "instances[0].user: must not contain control characters"},
        {with_instance_line("host: h\n    dbname: \"d\\tb\""),
         "instances[0].dbname: must not contain control characters"},
        {with_instance_line("host: h\n    dbname: \" db\""),
         "instances[0].dbname: must not begin or end with white space"},
        {with_instance_line("owner: no_such_user_rootcertd"),
         "no user named 'no_such_user_rootcertd'"},
        {with_instance_line("group: no_such_group_rootcertd"), "no group named"},
        {with_instance_line("name: [a]"), "instances[0].name: must be a single value"},
        {minimal + "jitter: 0.9\n", "jitter: '0.9' must be a fraction between 0 and 0.5"},
        {minimal + "concurrency: 0\n", "concurrency: '0' must be a whole number from 1 to 1024"},
        {minimal + "retry: {min: 10s, max: 1s}\n", "max must not be less than min"},
        {minimal + "retry: {mni: 1s}\n", "retry.mni: unknown key"},
        {"api: [1]\ninstances: [{org: a, id: b}]\n", "api: must be a mapping"},
        {"api: {url: https://h, token_env: T}\ninstances: [{id: b}]\n",
         "instances[0].org: is required"},
    };
    for (const auto& c : cases) {
        const auto e = error_of(c.yaml);
        EXPECT_NE(e.find(c.expect), std::string::npos) << "yaml:\n" << c.yaml << "\nerror: " << e;
        EXPECT_EQ(e.rfind("/etc/rootcertd/test.yaml", 0), 0u) << "names the file: " << e;
    }
}

TEST(Config, IdsMustMatchThePattern) {
    const auto e =
        error_of("api: {url: https://h, token_env: T}\ninstances:\n  - org: org-a\n    id: b\n");
    EXPECT_NE(e.find("test.yaml:3:10: instances[0].org: 'org-a' must match ^[A-Za-z0-9_]+$"),
              std::string::npos)
        << e;
}

TEST(Config, DuplicateNamesPointAtBothInstances) {
    const auto e = error_of(R"(api: {url: https://h, token_env: T}
instances:
  - {org: a, id: one, name: prod}
  - {org: a, id: two, name: prod}
)");
    EXPECT_NE(e.find("test.yaml:4:"), std::string::npos) << e;
    EXPECT_NE(e.find("'prod' is already used by the instance at line 3"), std::string::npos) << e;
    // The default name is the id, so the same id twice collides too.
    EXPECT_NE(
        error_of(
            "api: {url: https://h, token_env: T}\ninstances: [{org: a, id: x}, {org: b, id: x}]\n")
            .find("already used"),
        std::string::npos);
}

TEST(Config, RotationAndLiveCheckKeys) {
    const auto cfg = parse_config(R"(api: {url: https://h, token_env: T}
cert_dir: /srv/certs
state_dir: /srv/state
pg_service_file: /etc/postgresql-common/pg_service.conf
rotation: {keep_previous: 3d}
verify_interval: 30s
instances:
  - {org: a, id: one}
  - {org: a, id: two, host: db.example, port: 6432, verify_interval: 5s, dbname: app, user: svc,
     rotation: {keep_previous: 0}}
)",
                                  "/etc/x.yaml");
    EXPECT_EQ(cfg.state_dir, "/srv/state");
    EXPECT_EQ(cfg.pg_service_file, "/etc/postgresql-common/pg_service.conf");
    EXPECT_EQ(cfg.instances[0].keep_previous, 72h);
    EXPECT_FALSE(cfg.instances[0].server.has_value());
    EXPECT_EQ(cfg.instances[0].verify_interval, 30s);
    EXPECT_EQ(cfg.instances[1].keep_previous, 0ms);
    ASSERT_TRUE(cfg.instances[1].server.has_value());
    EXPECT_EQ(cfg.instances[1].server->host, "db.example");
    EXPECT_EQ(cfg.instances[1].port, 6432);
    EXPECT_EQ(cfg.instances[1].verify_interval, 5s);
    EXPECT_EQ(cfg.instances[1].server->user, "svc");

    const auto defaults = parse_config(minimal, "/etc/x.yaml");
    EXPECT_EQ(defaults.state_dir, "/var/lib/rootcertd/state");
    EXPECT_EQ(defaults.instances[0].keep_previous, 7 * 24h);
    EXPECT_EQ(defaults.instances[0].verify_interval, 1min);
    EXPECT_EQ(defaults.instances[0].port, 5432);
}

TEST(Config, RotationAndLiveCheckMistakes) {
    EXPECT_NE(
        error_of(minimal + "state_dir: /tmp/certs/state\n").find("must not be inside cert_dir"),
        std::string::npos);
    EXPECT_NE(error_of(minimal + "state_dir: /tmp/certs\n").find("must not be inside cert_dir"),
              std::string::npos);
    EXPECT_EQ(error_of(minimal + "state_dir: /tmp/certs-state\n"), "");
    EXPECT_NE(error_of(minimal + "rotation: {keep: 1d}\n").find("rotation.keep: unknown key"),
              std::string::npos);
    EXPECT_NE(error_of(with_instance_line("port: 5433")).find("instances[0].port: needs 'host'"),
              std::string::npos);
    EXPECT_NE(error_of(with_instance_line("host: db.example\n    port: 70000")).find("not a port"),
              std::string::npos);
    EXPECT_NE(error_of(with_instance_line("host: \"a b\"")).find("not a host name"),
              std::string::npos);
    EXPECT_NE(error_of(with_instance_line("rotation: {keep_previous: soon}"))
                  .find("instances[0].rotation.keep_previous:"),
              std::string::npos);
}

TEST(Config, HooksAndMetrics) {
    const auto cfg = parse_config(R"(api: {url: https://h, token_env: T}
metrics: {listen: "[::1]:9464"}
on_change: {command: [/bin/true, reload], timeout: 5s}
instances:
  - {org: a, id: one}
  - {org: a, id: two, on_change: {command: [/bin/echo, two]}}
)",
                                  "/etc/x.yaml");
    EXPECT_EQ(cfg.metrics_listen, "[::1]:9464");
    ASSERT_TRUE(cfg.instances[0].on_change.has_value());
    EXPECT_EQ(cfg.instances[0].on_change->command,
              (std::vector<std::string>{"/bin/true", "reload"}));
    EXPECT_EQ(cfg.instances[0].on_change->timeout, 5s);
    EXPECT_EQ(cfg.instances[1].on_change->command[0], "/bin/echo");
    EXPECT_EQ(cfg.instances[1].on_change->timeout, 30s) << "default timeout";

    EXPECT_NE(error_of(minimal + "on_change: {command: [systemctl, reload, x]}\n")
                  .find("on_change.command: 'systemctl' must be an absolute path"),
              std::string::npos);
    EXPECT_NE(
        error_of(minimal + "on_change: {command: /bin/true}\n").find("command must be a list"),
        std::string::npos);
    EXPECT_NE(
        error_of(minimal + "on_change: {command: [/nonexistent/hook]}\n").find("cannot execute"),
        std::string::npos);
    EXPECT_NE(error_of(minimal + "metrics: {listen: 9464}\n")
                  .find("metrics.listen: '9464' is not host:port"),
              std::string::npos);
    EXPECT_NE(error_of(minimal + "metrics: {port: 9464}\n").find("metrics.port: unknown key"),
              std::string::npos);
}

TEST(Config, ExpandsEnvironmentVariables) {
    ::setenv("ROOTCERTD_TEST_CREDS", "/run/credentials/rootcertd.service", 1);
    const auto cfg = parse_config(
        "api: {url: https://h, token_file: \"${ROOTCERTD_TEST_CREDS}/token\"}\ninstances: [{org: "
        "a, id: b}]\n",
        "/etc/x.yaml");
    EXPECT_EQ(cfg.token_file, "/run/credentials/rootcertd.service/token");
    ::unsetenv("ROOTCERTD_TEST_UNSET");
    const auto fallback = parse_config(
        "api: {url: https://h, token_file: "
        "\"${ROOTCERTD_TEST_UNSET:-/etc/rootcertd}/token\"}\ninstances: [{org: a, id: b}]\n",
        "/etc/x.yaml");
    EXPECT_EQ(fallback.token_file, "/etc/rootcertd/token");
    const auto e = error_of(
        "api: {url: https://h, token_file: \"${ROOTCERTD_TEST_UNSET}/t\"}\ninstances: [{org: a, "
        "id: b}]\n");
    EXPECT_NE(e.find("api.token_file: environment variable 'ROOTCERTD_TEST_UNSET' is not set"),
              std::string::npos)
        << e;
}

TEST(Config, LoadNamesAnUnreadableFile) {
    try {
        load_config("/nonexistent/rootcertd.yaml");
        FAIL() << "loaded a missing file";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()),
                  "/nonexistent/rootcertd.yaml: cannot read: No such file or directory");
    }
    test::TempDir dir;
    const auto path = dir.write("c.yaml", minimal);
    EXPECT_EQ(load_config(path.string()).source, path.string());
}

TEST(Config, ProxySettings) {
    test::TempDir dir;
    const auto auth = dir.path() / "proxy-auth";
    std::ofstream(auth) << "svc:secret\n";
    const auto cfg = parse_config(R"(api:
  url: https://h
  token_env: T
  proxy: http://proxy.internal:3128
  proxy_auth_file: )" + auth.string() +
                                      R"(
instances: [{org: a, id: b}]
)",
                                  "/etc/rootcertd/test.yaml");
    EXPECT_EQ(cfg.proxy, "http://proxy.internal:3128");
    EXPECT_EQ(cfg.proxy_auth_file, auth);

    const auto with_api = [](const std::string& lines) {
        return error_of("api:\n  url: https://h\n  token_env: T\n" + lines +
                        "instances: [{org: a, id: b}]\n");
    };
    const auto creds = with_api("  proxy: http://svc:hunter2@proxy:3128\n");
    EXPECT_NE(creds.find(":4:10: api.proxy: "), std::string::npos) << creds;
    EXPECT_NE(creds.find("api.proxy_auth_file"), std::string::npos) << creds;
    EXPECT_EQ(creds.find("hunter2"), std::string::npos) << creds;
    const auto scheme = with_api("  proxy: https://proxy:3128\n");
    EXPECT_NE(scheme.find(":4:10: api.proxy: "), std::string::npos) << scheme;
    const auto missing = with_api("  proxy_auth_file: /nonexistent/auth\n");
    EXPECT_NE(missing.find(":4:20: api.proxy_auth_file: cannot read"), std::string::npos)
        << missing;
    EXPECT_EQ(with_api("  proxy: none\n"), "");
}

// A generated fleet config in JSON is read by the fast path, without marks;
// its mistakes must still name the line and column, as in YAML.
TEST(Config, JsonConfigsReadTheSameAndTheirErrorsNameLineAndColumn) {
    const std::string json = R"({"api": {"url": "https://api.data-1.use1.tembo.io",
         "token_env": "TEMBO_TOKEN"},
 "cert_dir": "/tmp/certs", "concurrency": 4, "jitter": 0.2,
 "instances": [{"org": "org_a", "id": "inst_1"},
               {"org": "org_b", "id": "inst_2", "name": "prod", "refresh_interval": "5m"}]}
)";
    const auto cfg = parse_config(json, "/etc/rootcertd/fleet.json");
    EXPECT_EQ(cfg.concurrency, 4u);
    EXPECT_DOUBLE_EQ(cfg.jitter, 0.2);
    ASSERT_EQ(cfg.instances.size(), 2u);
    EXPECT_EQ(cfg.instances[1].name, "prod");
    EXPECT_EQ(cfg.instances[1].refresh_interval, 5min);

    auto bad = json;
    bad.replace(bad.find("\"name\""), 6, "\"nmae\"");
    EXPECT_NE(error_of(bad).find("test.yaml:5:49: instances[1].nmae: unknown key"),
              std::string::npos)
        << error_of(bad);
    auto twice = json;
    twice.replace(twice.find("\"prod\""), 6, "\"inst_1\"");
    EXPECT_NE(error_of(twice).find("'inst_1' is already used by the instance at line 4"),
              std::string::npos)
        << error_of(twice);
}

// yaml-cpp refuses a key and its ':' on different lines; JSON allows it, so
// such a file loads, and a mistake in it is still reported, without a place.
TEST(Config, JsonThatYamlCppRefusesIsReadAsJson) {
    const std::string json =
        "{\"api\": {\"url\": \"https://h\", \"token_env\": \"T\"},\n"
        " \"instances\"\n : [{\"org\": \"a\", \"id\": \"b\"}]}";
    EXPECT_EQ(parse_config(json, "f.json").instances.at(0).id, "b");
    auto bad = json;
    bad.replace(bad.find("\"id\""), 4, "\"xyz\"");  // no near miss of "id": "is required"
    EXPECT_EQ(error_of(bad).rfind("/etc/rootcertd/test.yaml: instances[0].id: is required", 0), 0u)
        << error_of(bad);
}

TEST(Config, RelativePathsOfABareConfigNameAreAbsolute) {
    // Loaded as "rootcertd.yaml" from the working directory: every relative
    // path is made absolute against it, so pg_service_file has a directory.
    const auto cfg = parse_config(minimal + "pg_service_file: pg_service.conf\n", "rootcertd.yaml");
    const auto cwd = std::filesystem::current_path();
    EXPECT_EQ(cfg.pg_service_file.value(), cwd / "pg_service.conf");
    EXPECT_TRUE(cfg.pg_service_file->parent_path().is_absolute());
}

// Sources: each preset becomes its provider's documented request.
TEST(Config, EveryProviderPresetBuildsItsDocumentedRequest) {
    ::setenv("ROOTCERTD_TEST_DO", "dop_v1_x", 1);
    const auto cfg = parse_config(R"(credentials:
  do: {env: ROOTCERTD_TEST_DO}
  aiven: {file: /etc/rootcertd/aiven-token}
  gcp: {command: ["/bin/echo", "tok"], ttl: 10m, timeout: 5s}
instances:
  - name: do-main
    source: {provider: digitalocean, cluster: 9cc10173-e9ea-4176-9dbc-a4cee4c4ff30, credential: do}
  - name: aiven
    source: {provider: aiven, project: my-project, credential: aiven}
  - name: sql-a
    source: {provider: cloudsql, project: "example.com:my-proj", instance: sql-a, credential: gcp}
  - name: bridge
    source: {provider: crunchybridge, team: abc123, credential: aiven}
  - name: rds
    source: {provider: rds, region: global}
  - name: azure
    source: {provider: azure}
  - name: tembo
    source: {provider: tembo, org: org_a, id: inst_1, api_url: "https://api.example:8443", credential: do}
)",
                                  "/etc/rootcertd/test.yaml");
    const auto& i = cfg.instances;
    ASSERT_EQ(i.size(), 7u);
    EXPECT_EQ(i[0].source->api.origin(), "https://api.digitalocean.com");
    EXPECT_EQ(i[0].target, "/v2/databases/9cc10173-e9ea-4176-9dbc-a4cee4c4ff30/ca");
    EXPECT_EQ(i[0].source->auth_scheme, "Bearer");
    EXPECT_TRUE(i[0].source->reading.base64);
    EXPECT_EQ(i[1].source->api.origin(), "https://api.aiven.io");
    EXPECT_EQ(i[1].target, "/v1/project/my-project/kms/ca");
    EXPECT_EQ(i[1].source->auth_scheme, "aivenv1");
    EXPECT_EQ(i[2].target, "/v1/projects/example.com:my-proj/instances/sql-a/listServerCas");
    EXPECT_EQ(i[2].source->reading.member, "cert");
    EXPECT_EQ(cfg.credentials.at(2).ttl, 10min);
    EXPECT_EQ(cfg.credentials.at(2).timeout, 5s);
    EXPECT_EQ(i[3].target, "/teams/abc123.pem");
    EXPECT_TRUE(i[3].source->reading.drop_leaves);
    EXPECT_EQ(i[4].source->api.origin(), "https://truststore.pki.rds.amazonaws.com");
    EXPECT_EQ(i[4].target, "/global/global-bundle.pem");
    EXPECT_FALSE(i[4].source->sends_secret()) << "RDS bundles are public: no Authorization header";
    ASSERT_NE(i[5].source->roots, nullptr);
    EXPECT_EQ(i[5].source->roots->system_roots.size(), 2u);
    EXPECT_EQ(i[6].org, "org_a");
    EXPECT_EQ(i[6].target, "/api/v1/orgs/org_a/instances/inst_1/secrets/certificate");
    EXPECT_EQ(i[6].source->api.port, 8443);
    EXPECT_EQ(i[6].source->credential, "do");
}

// IBM Cloud Databases: the region in the origin, the CRN percent-encoded,
// user and endpoint type defaulted as the ibmcloud CLI does.
TEST(Config, IbmCloudPutsTheRegionInTheOriginAndEncodesTheCrn) {
    ::setenv("ROOTCERTD_TEST_DO", "dop_v1_x", 1);
    const std::string head = "credentials:\n  iam: {env: ROOTCERTD_TEST_DO}\ninstances:\n  - ";
    const auto cfg = parse_config(
        head + R"({name: a, source: {provider: ibmcloud, region: eu-de, credential: iam,
          deployment: "crn:v1:bluemix:public:databases-for-postgresql:eu-de:a/b1:c2::"}}
  - {name: b, source: {provider: ibmcloud, region: us-south, deployment: d, user: app,
          endpoint_type: private, credential: iam}}
)",
        "/etc/rootcertd/test.yaml");
    const auto& a = *cfg.instances.at(0).source;
    EXPECT_EQ(a.api.origin(), "https://api.eu-de.databases.cloud.ibm.com");
    EXPECT_EQ(cfg.instances.at(0).target,
              "/v4/ibm/deployments/"
              "crn%3Av1%3Abluemix%3Apublic%3Adatabases-for-postgresql%3Aeu-de%3Aa%2Fb1%3Ac2%3A%3A"
              "/users/admin/connections/public");
    EXPECT_EQ(a.reading.json_pointer, "/connection/postgres/certificate/certificate_base64");
    EXPECT_TRUE(a.reading.base64);
    EXPECT_EQ(cfg.instances.at(1).target, "/v4/ibm/deployments/d/users/app/connections/private");
    const auto bad = [&](const std::string& source) {
        try {
            parse_config(
                head + "{name: a, source: {provider: ibmcloud, credential: iam, " + source + "}}\n",
                "/etc/rootcertd/test.yaml");
            return std::string();
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
    };
    EXPECT_NE(bad("region: evil.com/x, deployment: d").find("source.region: 'evil.com/x' must be"),
              std::string::npos);
    EXPECT_NE(bad("region: eu-de, deployment: d, endpoint_type: vpn")
                  .find("source.endpoint_type: 'vpn' is not public or private"),
              std::string::npos);
    EXPECT_NE(bad("region: eu-de, deployment: \"a b\"").find("source.deployment: 'a b' must be"),
              std::string::npos);
    EXPECT_NE(bad("deployment: d").find("source.region: is required"), std::string::npos);
}

// Another mistake found while a typo sits beside it: the typo is reported.
TEST(Config, ATypoIsReportedBeforeTheErrorItCauses) {
    const auto e = error_of(with_instance_line("port: 5433") + "    verify_intervall: 5s\n");
    EXPECT_NE(e.find("instances[0].verify_intervall: unknown key 'verify_intervall' (did you mean "
                     "'verify_interval'?)"),
              std::string::npos)
        << e;
    // In a source: "regon" beside an RDS source whose region is then missing.
    ::setenv("ROOTCERTD_TEST_DO", "dop_v1_x", 1);
    const auto src = error_of(
        "instances:\n  - {name: a, source: {provider: ibmcloud, deployment: d, regon: eu-de}}\n");
    EXPECT_NE(src.find("source.regon: unknown key 'regon' (did you mean 'region'?)"),
              std::string::npos)
        << src;
}

TEST(Config, ACustomSourceSpellsOutItsRequest) {
    ::setenv("ROOTCERTD_TEST_VAULT", "s.x", 1);
    const auto cfg = parse_config(R"(credentials:
  vault: {env: ROOTCERTD_TEST_VAULT}
instances:
  - name: custom
    source:
      url: https://vault.internal:8200/v1/pki/ca/pem?format=pem
      json_pointer: /data/certificate
      base64: true
      format: der
      header: {name: X-Vault-Token, credential: vault}
  - name: hub
    source: {url: https://hub.example/certs/prod.crt}
)",
                                  "/etc/rootcertd/test.yaml");
    const auto& s = *cfg.instances.at(0).source;
    EXPECT_EQ(s.provider, "url");
    EXPECT_EQ(s.api.origin(), "https://vault.internal:8200");
    EXPECT_EQ(cfg.instances.at(0).target, "/v1/pki/ca/pem?format=pem");
    EXPECT_EQ(s.reading.json_pointer, "/data/certificate");
    EXPECT_TRUE(s.reading.base64);
    EXPECT_EQ(s.reading.format, CaFormat::der);
    EXPECT_EQ(s.auth_header, "X-Vault-Token");
    EXPECT_FALSE(cfg.instances.at(1).source->sends_secret());
    EXPECT_FALSE(cfg.api) << "no Tembo instance: no api section needed";
}

TEST(Config, SourceMistakesNameTheKey) {
    ::setenv("ROOTCERTD_TEST_DO", "dop_v1_x", 1);
    ::unsetenv("ROOTCERTD_TEST_UNSET");
    const std::string creds = "credentials:\n  do: {env: ROOTCERTD_TEST_DO}\n";
    const auto one = [&](const std::string& instance) {
        return creds + "instances:\n  - " + instance + "\n";
    };
    struct Case {
        std::string yaml, expect;
    };
    const std::vector<Case> cases{
        {one("{name: a, org: o, id: i, source: {provider: rds, region: global}}"),
         "instances[0]: set either org/id (a Tembo instance) or source, not both"},
        {one("{name: a}"), "instances[0]: set org and id (a Tembo instance), or source"},
        {one("{source: {provider: rds, region: global}}"), "instances[0].name: is required"},
        {one("{name: a, api_url: https://x, source: {provider: rds, region: global}}"),
         "instances[0].api_url: not with source"},
        {one("{name: a, source: {provider: heroku}}"),
         "instances[0].source.provider: unknown provider 'heroku' (known: tembo, aiven,"},
        {one("{name: a, source: {provider: aiven, project: p}}"),
         "instances[0].source.credential: is required: aiven needs a secret"},
        {one("{name: a, source: {provider: aiven, project: p, credential: nope}}"),
         "instances[0].source.credential: 'nope' is not defined under credentials"},
        {one("{name: a, source: {provider: digitalocean, credential: do}}"),
         "instances[0].source.cluster: is required"},
        {one("{name: a, source: {provider: digitalocean, cluster: ../x, credential: do}}"),
         "instances[0].source.cluster: '../x' may hold only"},
        {one("{name: a, source: {provider: rds, region: global, credential: do}}"),
         "instances[0].source.credential: not for rds: its CAs are public"},
        {one("{name: a, source: {provider: azure, api_url: https://x}}"),
         "instances[0].source.api_url: not for azure: it makes no request"},
        {one("{name: a, source: {provider: rds, region: global, colour: red}}"),
         "instances[0].source.colour: unknown key"},
        {one("{name: a, source: {url: http://x/ca.pem}}"),
         "instances[0].source.url: 'http://x/ca.pem' must start with https://"},
        {one("{name: a, source: {url: https://x}}"),
         "instances[0].source.url: 'https://x' has no path"},
        {one("{name: a, source: {url: https://x/a b}}"), "may not hold spaces"},
        {one("{name: a, source: {url: https://x/c, json_pointer: data}}"),
         "instances[0].source.json_pointer: 'data' must be empty or start with '/'"},
        {one("{name: a, source: {url: https://x/c, format: p12}}"),
         "instances[0].source.format: 'p12' must be pem, der or auto"},
        {one("{name: a, source: {url: https://x/c, base64: yes}}"),
         "instances[0].source.base64: 'yes' must be true or false"},
        {one("{name: a, source: {url: https://x/c, auth: {scheme: Bearer}}}"),
         "instances[0].source.auth.credential: is required"},
        {one("{name: a, source: {url: https://x/c, header: {name: \"X Bad\", credential: do}}}"),
         "instances[0].source.header.name: 'X Bad' is not a header name"},
        {"credentials:\n  x: {env: ROOTCERTD_TEST_UNSET}\ninstances:\n  - {name: a, source: "
         "{provider: rds, region: global}}\n",
         "credentials.x.env: environment variable 'ROOTCERTD_TEST_UNSET' is not set"},
        {"credentials:\n  x: {file: /a, env: B}\ninstances:\n  - {name: a, source: {provider: "
         "azure}}\n",
         "credentials.x: set exactly one of file, env and command"},
        {"credentials:\n  x: {command: [gcloud, auth]}\ninstances:\n  - {name: a, source: "
         "{provider: azure}}\n",
         "credentials.x.command: 'gcloud' must be an absolute path"},
        {"credentials:\n  x: {command: [/nonexistent/gcloud]}\ninstances:\n  - {name: a, source: "
         "{provider: azure}}\n",
         "credentials.x.command: cannot execute '/nonexistent/gcloud'"},
        {"credentials:\n  x: {file: /a, ttl: 1m}\ninstances:\n  - {name: a, source: {provider: "
         "azure}}\n",
         "credentials.x.ttl: only with command"},
    };
    for (const auto& c : cases) {
        const auto e = error_of(c.yaml);
        EXPECT_NE(e.find(c.expect), std::string::npos) << "yaml:\n" << c.yaml << "\nerror: " << e;
    }
}

TEST(Config, DiscoverEntriesTakeTheirProvidersKeysAndInstanceDefaults) {
    ::setenv("ROOTCERTD_TEST_DO", "dop_v1_x", 1);
    const auto cfg = parse_config(R"(api: {token_env: ROOTCERTD_TEST_DO}
credentials:
  do: {env: ROOTCERTD_TEST_DO}
discover:
  - {provider: tembo, org: org_abc, refresh_interval: 5m, file_mode: "0640"}
  - {provider: digitalocean, credential: do, interval: 1m, name: "do-{name}"}
)",
                                  "/etc/rootcertd/test.yaml");
    EXPECT_TRUE(cfg.instances.empty());
    ASSERT_EQ(cfg.discover.size(), 2u);
    const auto& t = cfg.discover[0];
    EXPECT_EQ(t.label(), "tembo:org_abc");
    EXPECT_EQ(t.list_api.origin(), "https://api.tembo.io");
    EXPECT_EQ(t.data_plane, "https://api.{dataplane_index}.{region_id}.tembo.io");
    EXPECT_EQ(t.name_template, "{instance_name}");
    EXPECT_EQ(t.interval, 10min);
    EXPECT_EQ(t.defaults.refresh_interval, 5min);
    EXPECT_EQ(t.defaults.file.mode, 0640u);
    const auto& d = cfg.discover[1];
    EXPECT_EQ(d.label(), "digitalocean");
    EXPECT_EQ(d.list_api.origin(), "https://api.digitalocean.com");
    EXPECT_EQ(d.interval, 1min);
    EXPECT_EQ(d.name_template, "do-{name}");

    const auto error = [](const std::string& entry) {
        return error_of("discover:\n  - " + entry + "\n");
    };
    EXPECT_NE(error("{provider: aiven}")
                  .find("discover[0].provider: unknown provider 'aiven' (discovery knows tembo, "
                        "cloudsql, digitalocean)"),
              std::string::npos);
    EXPECT_NE(error("{provider: tembo}").find("discover[0].org: is required"), std::string::npos);
    EXPECT_NE(error("{provider: tembo, org: o}")
                  .find("discover[0].credential: is required without api.token_file"),
              std::string::npos);
    EXPECT_NE(error("{provider: cloudsql, project: p}")
                  .find("discover[0].credential: is required: cloudsql needs a secret"),
              std::string::npos);
    EXPECT_NE(error("{provider: tembo, org: o, credential: x}")
                  .find("'x' is not defined under credentials"),
              std::string::npos);
    EXPECT_NE(error_of("api: {token_env: T}\ndiscover:\n  - {provider: tembo, org: o, data_plane: "
                       "\"http://{x}\"}\n")
                  .find("discover[0].data_plane: 'http://{x}' must start with https://"),
              std::string::npos);
    EXPECT_NE(error_of("api: {token_env: T}\ndiscover:\n  - {provider: tembo, org: o, name: "
                       "\"{}\"}\n")
                  .find("discover[0].name: '{}': every '{' needs a field name"),
              std::string::npos);
}

// Like sshd's StrictModes: whoever can change the config or a program it
// names chooses what a root daemon runs.
TEST(Config, ACommandOrConfigOthersCanChangeIsRefused) {
    test::TempDir dir;
    const auto script = dir.write("hook.sh", "#!/bin/sh\nexit 0\n");
    std::filesystem::permissions(script, std::filesystem::perms(0777));
    const auto with_hook = [&](const std::filesystem::path& program) {
        return error_of(
            "api: {url: https://h, token_env: T}\n"
            "on_change: {command: [" +
            program.string() +
            "]}\n"
            "instances: [{org: a, id: b}]\n");
    };
    EXPECT_NE(
        with_hook(script).find(":2:23: on_change.command: refusing to run '" + script.string() +
                               "': " + script.string() + " is writable by others (mode 0777)"),
        std::string::npos)
        << with_hook(script);
    std::filesystem::permissions(script, std::filesystem::perms(0755));
    EXPECT_EQ(with_hook(script), "") << "0755 in a private directory is fine";
    // A safe script in a directory anyone may write to: it can be replaced.
    std::filesystem::permissions(dir.path(), std::filesystem::perms(0777));
    EXPECT_NE(with_hook(script).find("its directory " + dir.path().string() +
                                     " is writable by others (mode 0777)"),
              std::string::npos)
        << with_hook(script);
    std::filesystem::permissions(dir.path(), std::filesystem::perms(01777));
    EXPECT_EQ(with_hook(script), "") << "a sticky directory (/tmp) keeps others' hands off";
    std::filesystem::permissions(dir.path(), std::filesystem::perms(0700));
    // A credential command is held to the same rule.
    std::filesystem::permissions(script, std::filesystem::perms(0757));
    const auto cred = error_of("credentials: {gcp: {command: [" + script.string() +
                               "]}}\ninstances: [{org: a, id: b, name: x}]\n");
    EXPECT_NE(cred.find("credentials.gcp.command: refusing to run"), std::string::npos) << cred;
    // The config file itself.
    const auto path = dir.write("c.yaml",
                                "api: {url: https://h, token_env: T}\n"
                                "instances: [{org: a, id: b}]\n");
    std::filesystem::permissions(path, std::filesystem::perms(0666));
    try {
        load_config(path.string());
        FAIL() << "loaded a config others can change";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()), path.string() +
                                             ": refusing a configuration that others can change: " +
                                             path.string() + " is writable by others (mode 0666)");
    }
    if (::geteuid() == 0) {  // only root can give a file away
        std::filesystem::permissions(path, std::filesystem::perms(0644));
        ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
        EXPECT_THROW(load_config(path.string()), ConfigError);
        ASSERT_EQ(::chown(path.c_str(), 0, 0), 0);
        EXPECT_NO_THROW(load_config(path.string()));
    }
}

TEST(Config, ATypoIsReportedAsATypoWhereItIs) {
    const std::string api = "api: {url: https://h, token_env: HOME}\n";
    const std::vector<std::pair<std::string, std::string>> cases{
        // It said "instances[0].dbname: needs 'host'".
        {"instances:\n  - {org: a, id: b, hots: db.example.com, dbname: app}\n",
         ":3:21: instances[0].hots: unknown key 'hots' (did you mean 'host'?)"},
        // It said "set exactly one of file, env and command".
        {"credentials: {c: {flie: /x}}\ninstances: [{org: a, id: b}]\n",
         ":2:19: credentials.c.flie: unknown key 'flie' (did you mean 'file'?)"},
        // It said "source.project: is required".
        {"credentials: {c: {env: HOME}}\n"
         "instances: [{name: x, source: {provider: aiven, projet: p, credential: c}}]\n",
         "instances[0].source.projet: unknown key 'projet' (did you mean 'project'?)"},
        {"instances: [{org: a, id: b, rotaton: {keep_previous: 1d}}]\n",
         "unknown key 'rotaton' (did you mean 'rotation'?)"},
        // It said "'10min' has no unit".
        {"refresh_interval: 10min\ninstances: [{org: a, id: b}]\n",
         ":2:19: refresh_interval: unknown unit 'min' in '10min' (use ms, s, m, h, d)"},
        // It pointed at the first line of the file (api:).
        {"cert_dir: /srv/certs\nstate_dir: /srv/certs/state\ninstances: [{org: a, id: b}]\n",
         ":3:12: state_dir: state_dir '/srv/certs/state' must not be inside cert_dir"},
        {"cert_dir: /var/lib/rootcertd\ninstances: [{org: a, id: b}]\n",
         ":2:11: cert_dir: state_dir '/var/lib/rootcertd/state' must not be inside cert_dir"},
        {"credentials: {g: {env: HOME}}\ndiscover: [{provider: cloudsql, project: p, credentail: "
         "g}]\n",
         "discover[0].credentail: unknown key 'credentail' (did you mean 'credential'?)"},
        {"instances: [{name: r, source: {provider: rds, region: eu-west}}]\n",
         "instances[0].source.region: 'eu-west' is not an AWS region like eu-west-1 or "
         "us-gov-west-1, nor global"},
        {"credentials: {g: {env: HOME}}\ninstances: [{name: s, source: {provider: cloudsql, "
         "project: p, instance: \"my-proj:us-central1:sql-a\", credential: g}}]\n",
         "'my-proj:us-central1:sql-a' looks like a connection name (project:region:instance): "
         "write project: my-proj and instance: sql-a"},
        // It said "illegal map value".
        {"instances:\n\t- {org: a, id: b}\n",
         ":3:1: tabs are not allowed in YAML indentation; indent with spaces"},
        // It created a directory named "~".
        {"cert_dir: ~/certs\ninstances: [{org: a, id: b}]\n",
         ":2:11: cert_dir: '~/certs': '~' is not expanded; write the absolute path"},
        // It wrote "...:5432:5432" into pg_service.conf.
        {"instances: [{org: a, id: b, host: \"db.example.com:5432\"}]\n",
         "instances[0].host: 'db.example.com:5432' holds a port: write host: db.example.com "
         "and port: 5432"},
    };
    for (const auto& [yaml, expect] : cases) {
        const auto error = error_of(api + yaml);
        EXPECT_NE(error.find(expect), std::string::npos) << yaml << "\n-> " << error;
    }
    // Keys only ever tested for (credential in a discover entry) are listed too.
    const auto far = error_of(api + "discover: [{provider: tembo, org: o, zzzzzz: 1}]\n");
    EXPECT_NE(far.find("credential"), std::string::npos) << far;
    // Far from every key: the list of keys, as before.
    EXPECT_NE(error_of(api + "instances: [{org: a, id: b, zzzzzz: 1}]\n")
                  .find("unknown key 'zzzzzz' (expected one of: "),
              std::string::npos);
}
