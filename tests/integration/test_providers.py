"""Every provider's CA source against nginx playing its documented API, the
credential command, conditional requests and the hub pattern."""
import base64
import json
import os
import signal
import subprocess
import time

import pytest

from harness import (BINARY, PROVIDER_TOKENS, Daemon, Pki, Postgres, free_port,
                     http_get, parse_metrics, wait_for)

SQL_INSTANCE = "/v1/projects/example.com:proj/instances/sql-a/listServerCas"


fingerprints = Pki.fingerprints


def der(crt):
    return subprocess.run(["openssl", "x509", "-in", str(crt), "-outform", "DER"],
                          capture_output=True, check=True).stdout


def credentials(tmp_path, calls=None):
    """File, env and command credentials holding PROVIDER_TOKENS. The gcp
    command prints a stale token on its first run, the right one after."""
    (tmp_path / "aiven-token").write_text(PROVIDER_TOKENS["aiven"] + "\n")
    (tmp_path / "aiven-token").chmod(0o600)
    (tmp_path / "cb-key").write_text(PROVIDER_TOKENS["crunchybridge"])
    (tmp_path / "cb-key").chmod(0o600)
    counter = calls or tmp_path / "gcp-calls"
    script = (f'n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; '
              f'if [ $n = 1 ]; then echo ya29.gcp-stale; else echo {PROVIDER_TOKENS["cloudsql"]}; fi')
    return {"aiven": {"file": str(tmp_path / "aiven-token")},
            "do": {"env": "ROOTCERTD_TEST_DO_TOKEN"},
            "gcp": {"command": ["/bin/sh", "-c", script], "ttl": "30m", "timeout": "5s"},
            "cb": {"file": str(tmp_path / "cb-key")},
            "vault": {"env": "ROOTCERTD_TEST_VAULT_TOKEN"}}


def provider_env():
    env = dict(os.environ)
    env["ROOTCERTD_TEST_DO_TOKEN"] = PROVIDER_TOKENS["digitalocean"]
    env["ROOTCERTD_TEST_VAULT_TOKEN"] = PROVIDER_TOKENS["vault"]
    return env


@pytest.fixture
def fleet(tmp_path, pki, api, providers):
    """One instance per provider, each served as its provider documents it."""
    cas = {name: pki.ca(f"prov-{name}", f"{name} CA") for name in
           ("aiven", "do", "crunchy", "rds-a", "rds-b", "vault-a", "vault-b")}
    sql_current = pki.ca("sql-current", "Google Cloud SQL Server CA current")
    sql_next = pki.ca_between("sql-upcoming", "20990101000000Z", "21000101000000Z")
    sql_old = pki.ca_between("sql-expired", "20200101000000Z", "20200201000000Z")
    crunchy_leaf, _ = pki.leaf("crunchy-leaf", cas["crunchy"], "DNS:p.abc.db.postgresbridge.com")

    providers.put("aiven/my-project.json", json.dumps(
        {"certificate": cas["aiven"].read_text(), "errors": [], "message": "Completed"}))
    providers.put("digitalocean/9cc10173-e9ea-4176-9dbc-a4cee4c4ff30.json", json.dumps(
        {"ca": {"certificate": base64.b64encode(cas["do"].read_bytes()).decode()}}))
    providers.put("cloudsql/example.com:proj/sql-a.json", json.dumps({
        "kind": "sql#instancesListServerCas", "activeVersion": "v-current",
        "certs": [{"kind": "sql#sslCert", "certSerialNumber": str(n), "cert": c.read_text(),
                   "commonName": "C=US,O=Google\\, Inc,CN=Google Cloud SQL Server CA",
                   "instance": "sql-a"} for n, c in enumerate((sql_old, sql_current, sql_next))]}))
    providers.put("crunchybridge/abc123.pem",
                  crunchy_leaf.read_text() + cas["crunchy"].read_text())
    # As RDS serves it: many certificates; here with text between them.
    providers.put("rds/eu-west-1.pem", "# Amazon RDS eu-west-1 bundle\n" +
                  cas["rds-a"].read_text() + "\nrotated 2024\n" + cas["rds-b"].read_text())
    providers.put("vault/ca.json", json.dumps({"data": {"certificate": base64.b64encode(
        der(cas["vault-a"]) + der(cas["vault-b"])).decode()}}))

    def source(provider, **keys):
        return {"provider": provider, "api_url": providers.url, "ca_file": str(providers.trust),
                **keys}

    instances = [
        {"name": "aiven", "source": source("aiven", project="my-project", credential="aiven")},
        {"name": "do-main", "source": source(
            "digitalocean", cluster="9cc10173-e9ea-4176-9dbc-a4cee4c4ff30", credential="do")},
        {"name": "sql-a", "source": source("cloudsql", project="example.com:proj",
                                           instance="sql-a", credential="gcp")},
        {"name": "bridge", "source": source("crunchybridge", team="abc123", credential="cb")},
        {"name": "rds", "source": source("rds", region="eu-west-1")},
        {"name": "azure", "source": {"provider": "azure"}},
        {"name": "vault", "source": {
            "url": providers.url + "/v1/pki/ca", "json_pointer": "/data/certificate",
            "base64": True, "format": "der", "ca_file": str(providers.trust),
            "header": {"name": "X-Vault-Token", "credential": "vault"}}},
    ]
    d = Daemon(tmp_path / "d", api, instances, credentials=credentials(tmp_path))
    return d, cas, (sql_current, sql_next, sql_old), crunchy_leaf


def test_each_provider_is_fetched_as_documented(fleet, providers, tmp_path):
    d, cas, (sql_current, sql_next, sql_old), crunchy_leaf = fleet
    r = d.once("--log-level", "debug", env=provider_env())
    assert r.returncode == 0, r.stderr
    fp = Pki.fingerprint
    assert fingerprints(d.file("aiven").read_text()) == [fp(cas["aiven"])]
    assert fingerprints(d.file("do-main").read_text()) == [fp(cas["do"])]
    # Cloud SQL: current and upcoming (not valid yet) kept, the expired one dropped.
    assert fingerprints(d.file("sql-a").read_text()) == [fp(sql_current), fp(sql_next)]
    assert f"sql-a: left out expired 'CN=sql-expired' (notAfter 2020-02-01T00:00:00Z)" in r.stderr
    # Crunchy Bridge: the CA of the published chain, its leaf left out.
    assert fingerprints(d.file("bridge").read_text()) == [fp(cas["crunchy"])]
    assert "bridge: left out leaf 'CN=crunchy-leaf' (not a CA)" in r.stderr
    # RDS: every CA, canonical PEM (nothing between or before the blocks).
    rds = d.file("rds").read_text()
    assert fingerprints(rds) == [fp(cas["rds-a"]), fp(cas["rds-b"])]
    assert rds.startswith("-----BEGIN CERTIFICATE-----") and "rotated" not in rds
    assert [row[2] for row in providers.requests("/eu-west-1/eu-west-1-bundle.pem")] == ["-"], \
        "no Authorization header goes to the public RDS trust store"
    # Azure: the documented roots, from this machine's trust store.
    azure = d.file("azure").read_text()
    assert len(fingerprints(azure)) in (2, 3)
    assert fp(open("/etc/ssl/certs/DigiCert_Global_Root_G2.pem").read()) in fingerprints(azure)
    assert fp(open("/etc/ssl/certs/Microsoft_RSA_Root_Certificate_Authority_2017.pem").read()) \
        in fingerprints(azure)
    # A custom source: header auth, JSON pointer, base64 of concatenated DER.
    assert fingerprints(d.file("vault").read_text()) == [fp(cas["vault-a"]), fp(cas["vault-b"])]
    # The command ran twice: its first token was refused (401), the second taken.
    assert (tmp_path / "gcp-calls").read_text().strip() == "2"
    assert [row[0] for row in providers.requests(SQL_INSTANCE)] == [401, 200]
    # No secret anywhere in the output, debug included.
    for secret in list(PROVIDER_TOKENS.values()) + ["ya29.gcp-stale"]:
        assert secret not in r.stderr


def test_a_provider_file_proves_itself_to_psql_verify_full(fleet, pki):
    """The Cloud SQL bundle (two CAs) verifies a real server signed by the
    current CA, in the daemon's live check and in psql."""
    d, _, (sql_current, _, _), _ = fleet
    pg = Postgres(*pki.leaf("sql-server", sql_current, "DNS:localhost,IP:127.0.0.1", "localhost"))
    try:
        cfg = json.loads(d.config.read_text())
        for i in cfg["instances"]:
            if i["name"] == "sql-a":
                i.update(host="localhost", port=pg.port)
        d.config.write_text(json.dumps(cfg))
        r = d.once(env=provider_env())
        assert r.returncode == 0, r.stderr
        assert "does not verify" not in r.stderr
        ok = pg.psql_verify_full(d.file("sql-a"))
        assert ok.returncode == 0 and ok.stdout.strip() == "1", ok.stderr
    finally:
        pg.stop()


def test_wrong_answers_keep_the_last_good_file_and_say_where(fleet, providers):
    d, cas, _, crunchy_leaf = fleet
    assert d.once(env=provider_env()).returncode == 0
    kept = {n: d.file(n).read_bytes() for n in ("do-main", "sql-a", "bridge", "vault", "rds")}
    wrong = [
        ("digitalocean/9cc10173-e9ea-4176-9dbc-a4cee4c4ff30.json",
         json.dumps({"ca": {"certificate": "%%% not base64 %%%"}}),
         "do-main: refresh failed: GET /v2/databases/9cc10173-e9ea-4176-9dbc-a4cee4c4ff30/ca on "
         f"{providers.url}: base64: not base64"),
        # Empty, as in a CAS server CA mode, with no connectSettings to fall back on.
        ("cloudsql/example.com:proj/sql-a.json", json.dumps({"certs": []}),
         f"sql-a: refresh failed: GET {SQL_INSTANCE} on {providers.url}: "
         "\"/certs\" is an empty array: it holds no CA; then GET "
         f"/v1/projects/example.com:proj/instances/sql-a/connectSettings on {providers.url}: "
         "HTTP 404"),
        # A published chain holding only a leaf: no CA in it.
        ("crunchybridge/abc123.pem", crunchy_leaf.read_text(),
         f"bridge: refresh failed: GET /teams/abc123.pem on {providers.url}: invalid CA: "
         "no CA certificate among the certificates served"),
        ("vault/ca.json", json.dumps({"data": {}}),
         f"vault: refresh failed: GET /v1/pki/ca on {providers.url}: response has no "
         "\"/data/certificate\""),
        ("rds/eu-west-1.pem", "x" * (2 << 20),
         f"rds: refresh failed: GET /eu-west-1/eu-west-1-bundle.pem on {providers.url}: "
         "response body exceeds 1048576 bytes"),
    ]
    for relative, body, _ in wrong:
        providers.put(relative, body)
    r = d.once(env=provider_env())
    assert r.returncode == 1
    for _, _, line in wrong:
        assert line in r.stderr, r.stderr
    for name, before in kept.items():
        assert d.file(name).read_bytes() == before, f"{name} was replaced by a wrong answer"


def test_a_failing_credential_command_says_why_and_never_what_it_printed(fleet, tmp_path):
    d, _, _, _ = fleet
    cfg = json.loads(d.config.read_text())
    cfg["credentials"]["gcp"]["command"] = [
        "/bin/sh", "-c", "echo partial-secret-output; echo 'gcloud: not logged in' >&2; "
                         "echo second line >&2; exit 3"]
    d.config.write_text(json.dumps(cfg))
    r = d.once("--log-level", "debug", env=provider_env())
    assert r.returncode == 1
    assert ("credential 'gcp' command: /bin/sh exited 3: gcloud: not logged in") in r.stderr
    assert "partial-secret-output" not in r.stderr and "second line" not in r.stderr
    assert d.file("aiven").exists(), "one failing credential holds up no other instance"


def test_a_store_without_an_azure_root_is_an_error_naming_it(fleet, tmp_path):
    d, _, _, _ = fleet
    only_g2 = tmp_path / "store.pem"
    only_g2.write_text(open("/etc/ssl/certs/DigiCert_Global_Root_G2.pem").read())
    env = provider_env()
    env["SSL_CERT_FILE"] = str(only_g2)
    r = d.once(env=env)
    assert r.returncode == 1
    assert ("azure: refresh failed: roots from the system trust store: " + str(only_g2) +
            ": lacks the root 'CN=Microsoft RSA Root Certificate "
            "Authority 2017,O=Microsoft Corporation,C=US'") in r.stderr, r.stderr
    assert not d.file("azure").exists()


def test_hub_edges_get_304s_until_a_rotation(tmp_path, api, pki, providers):
    """One rootcertd holds the Tembo token and writes cert_dir, nginx serves
    it, an edge rootcertd without any token follows it by conditional GETs."""
    ca1, ca2 = pki.ca("hub-one"), pki.ca("hub-two")
    api.serve("org_a", "inst_1", ca1)
    hub = Daemon(tmp_path / "hub", api, [{"org": "org_a", "id": "inst_1", "name": "prod"}])
    assert hub.once().returncode == 0
    providers.hub.symlink_to(hub.cert_dir)
    # The hub's file has not changed for an hour (validators younger than a
    # minute are not trusted: nginx derives them from a whole-second mtime).
    os.utime(hub.file("prod"), (os.path.getatime(hub.file("prod")),
                                os.path.getmtime(hub.file("prod")) - 3600))
    port = free_port()
    edge = Daemon(tmp_path / "edge", api,
                  [{"name": "prod", "source": {"url": providers.url + "/certs/prod.crt",
                                               "ca_file": str(providers.trust)}}],
                  refresh_interval="200ms", jitter=0, metrics={"listen": f"127.0.0.1:{port}"})
    cfg = json.loads(edge.config.read_text())
    del cfg["api"]  # an edge holds no token at all
    edge.config.write_text(json.dumps(cfg))
    edge.start()
    try:
        def counted(result):
            key = ("rootcertd_refresh_total", frozenset(
                {"name": "prod", "org": "", "id": "", "result": result}.items()))
            return parse_metrics(http_get(port, "/metrics")[2]).get(key)
        wait_for(lambda: edge.file("prod").exists(), 10, "the edge's file")
        assert edge.file("prod").read_bytes() == hub.file("prod").read_bytes()
        statuses = lambda: [row[0] for row in providers.requests("/certs/prod.crt")]
        wait_for(lambda: statuses().count(304) >= 3, 10, "304s from the hub")
        assert statuses()[0] == 200 and set(statuses()[1:]) == {304}
        wait_for(lambda: counted("not_modified") >= 3, 5, "304s counted as not_modified")
        assert counted("success") == 1 and counted("failure") == 0
        # A rotation at the hub: the next conditional GET brings it.
        api.serve("org_a", "inst_1", ca2)
        assert hub.once().returncode == 0
        wait_for(lambda: Pki.fingerprint(ca2) in fingerprints(edge.file("prod").read_text()), 10,
                 "the rotated CA at the edge")
        assert 200 in statuses()[3:]
    finally:
        assert edge.stop() == 0


def aiven_via(providers, credential):
    return [{"name": "aiven", "source": {
        "provider": "aiven", "project": "my-project", "credential": credential,
        "api_url": providers.url, "ca_file": str(providers.trust)}}]


def test_a_source_ca_file_that_holds_no_certificate_is_refused_at_start_naming_it(
        tmp_path, api, pki, providers):
    """A trust file that cannot load stops the start (or a reload) with its key
    and path, before any request: it was found only when the first refresh
    needed it, and then said "aborted"."""
    garbage = tmp_path / "not-a-ca.pem"
    garbage.write_text("not a certificate\n")
    providers.hub.mkdir()  # served at /certs/
    (providers.hub / "one.crt").write_text(pki.ca("trust-file-one").read_text())
    d = Daemon(tmp_path / "d", api,
               [{"name": "one", "source": {"url": providers.url + "/certs/one.crt",
                                           "ca_file": str(garbage)}}])
    r = d.once()
    assert r.returncode == 1, r.stderr
    assert f"source ca_file {garbage}: " in r.stderr
    assert "aborted" not in r.stderr
    assert providers.requests("/certs/one.crt") == [], "no request before the trust is whole"
    assert not d.file("one").exists()


def test_a_reload_makes_the_client_of_a_new_ca_file_or_fails_whole(tmp_path, api, pki,
                                                                    providers):
    """A reload that keeps the global settings keeps the Services: the trust
    file of an instance it adds must still get its client, and one that
    cannot load refuses the reload (the running instances go on)."""
    api.serve("org_a", "inst_1", pki.ca("reload-tembo"))
    providers.hub.mkdir()  # served at /certs/
    (providers.hub / "added.crt").write_text(pki.ca("reload-added").read_text())
    tembo = {"org": "org_a", "id": "inst_1", "name": "prod"}
    d = Daemon(tmp_path / "d", api, [tembo])
    d.start()
    try:
        wait_for(lambda: d.file("prod").exists(), 10, "the first file")
        garbage = tmp_path / "not-a-ca.pem"
        garbage.write_text("not a certificate\n")
        added = lambda ca: {"name": "added", "source": {"url": providers.url + "/certs/added.crt",
                                                        "ca_file": str(ca)}}
        d.write_config([tembo, added(garbage)])
        d.signal(signal.SIGHUP)
        d.wait_log("reload failed, still running the previous configuration")
        assert f"source ca_file {garbage}: " in d.output()
        d.write_config([tembo, added(providers.trust)])
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.file("added").exists(), 10, "the added instance's file")
        assert fingerprints(d.file("added").read_text()) == \
            [Pki.fingerprint(pki.ca("reload-added"))]
    finally:
        assert d.stop() == 0, d.output()


def test_a_command_that_closes_its_output_is_still_bounded_by_its_timeout(tmp_path, api, providers):
    """The timeout stopped at end of file; waitpid then waited for the whole
    command (60 s) and its token counted."""
    script = "echo tok; exec >/dev/null 2>&1; sleep 60"
    d = Daemon(tmp_path / "d", api, aiven_via(providers, "slow"),
               credentials={"slow": {"command": ["/bin/sh", "-c", script], "timeout": "1s"}})
    r = d.once(timeout=30)
    assert r.returncode == 1, r.stderr
    assert "credential 'slow' command: /bin/sh killed after 1000 ms" in r.stderr


def test_sigterm_ends_a_running_credential_command(tmp_path, api, providers):
    """SIGTERM waited for a running command (8 s for "sleep 9; echo tok")."""
    started = tmp_path / "started"
    script = f"touch {started}; sleep 30; echo tok"
    d = Daemon(tmp_path / "d", api, aiven_via(providers, "slow"),
               credentials={"slow": {"command": ["/bin/sh", "-c", script], "timeout": "60s"}})
    d.start()
    wait_for(started.exists, 10, "the credential command to start")
    assert d.stop(timeout=5) == 0, d.output()
    assert "exiting anyway" not in d.output()
    assert "killed by signal Terminated" in d.output()


def test_a_reload_that_changes_how_the_answer_is_read_drops_the_validators(
        tmp_path, api, pki, providers):
    """The validators' key was host, port and path: after json_pointer changed
    and SIGHUP, If-None-Match went on, 304s came back, the old CA stayed."""
    a, b = pki.ca("read-a"), pki.ca("read-b")
    providers.hub.mkdir()
    doc = providers.hub / "both.json"
    doc.write_text(json.dumps({"a": a.read_text(), "b": b.read_text()}))
    os.utime(doc, (time.time() - 3600, time.time() - 3600))  # validators a minute old are kept

    def source(pointer):
        return [{"name": "v", "source": {"url": providers.url + "/certs/both.json",
                                         "json_pointer": pointer,
                                         "ca_file": str(providers.trust)}}]
    d = Daemon(tmp_path / "d", api, source("/a"), refresh_interval="200ms", jitter=0)
    d.start()
    try:
        statuses = lambda: [row[0] for row in providers.requests("/certs/both.json")]
        wait_for(lambda: statuses().count(304) >= 2, 10, "conditional requests answered 304")
        assert fingerprints(d.file("v").read_text()) == [Pki.fingerprint(a)]
        d.write_config(source("/b"), refresh_interval="200ms", jitter=0)
        d.signal(signal.SIGHUP)
        wait_for(lambda: Pki.fingerprint(b) in fingerprints(d.file("v").read_text()), 10,
                 "the CA the new pointer selects")
    finally:
        assert d.stop() == 0


def test_a_credential_file_open_to_others_draws_the_api_tokens_warning(tmp_path, api, pki,
                                                                      providers):
    """Only the API token file's mode was checked; a named credential file at
    0644 drew no word from the daemon or --check-config."""
    ca = pki.ca("open-cred")
    providers.put("aiven/my-project.json", json.dumps(
        {"certificate": ca.read_text(), "errors": [], "message": "Completed"}))
    key = tmp_path / "aiven-token"
    key.write_text(PROVIDER_TOKENS["aiven"] + "\n")
    key.chmod(0o644)
    d = Daemon(tmp_path / "d", api, aiven_via(providers, "aiven"),
               credentials={"aiven": {"file": str(key)}})
    said = f"credential 'aiven' file {key} is open to others or group-writable (mode 0644)"
    r = d.once()
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(said) == 1, r.stderr
    checked = subprocess.run([str(BINARY), "--config", str(d.config), "--check-config"],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0
    assert f"warning: {d.config}: credentials.aiven: " in checked.stderr, checked.stderr
    assert "is open to others or group-writable (mode 0644)" in checked.stderr
    key.chmod(0o600)
    assert "open to others" not in d.once().stderr


def test_ubicloud_serves_its_ca_certificates_as_pem(tmp_path, api, pki, providers):
    """Ubicloud: the database's CA certificates (current and next) as one
    PEM download, Bearer token; a refused token names the path and status."""
    current, upcoming = pki.ca("ubi-current"), pki.ca("ubi-next")
    providers.put("ubicloud/pj1/eu-central-h1/main-db.pem",
                  current.read_text() + upcoming.read_text())
    (tmp_path / "ubi-token").write_text(PROVIDER_TOKENS["ubicloud"] + "\n")
    (tmp_path / "ubi-token").chmod(0o600)
    source = {"provider": "ubicloud", "project": "pj1", "location": "eu-central-h1",
              "database": "main-db", "credential": "ubi", "api_url": providers.url,
              "ca_file": str(providers.trust)}
    d = Daemon(tmp_path / "d", api, [{"name": "ubi", "source": source}],
               credentials={"ubi": {"file": str(tmp_path / "ubi-token")}})
    r = d.once()
    assert r.returncode == 0, r.stderr
    assert sorted(fingerprints(d.file("ubi").read_text())) == sorted(
        [Pki.fingerprint(current), Pki.fingerprint(upcoming)])
    assert providers.requests(
        "/project/pj1/location/eu-central-h1/postgres/main-db/ca-certificates")[-1][2] == "auth"
    (tmp_path / "ubi-token").write_text("pat-wrong\n")
    r = d.once()
    assert r.returncode == 1
    assert ("GET /project/pj1/location/eu-central-h1/postgres/main-db/ca-certificates on "
            f"{providers.url}: HTTP 401") in r.stderr, r.stderr
    assert "pat-wrong" not in r.stderr


def test_ibmcloud_reads_the_base64_certificate_of_a_deployment_by_its_crn(tmp_path, api, pki,
                                                                       providers):
    """IBM Cloud Databases: the deployment is its CRN, percent-encoded in the
    path ('/' and ':' included); user admin and the public endpoint by
    default; the CA base64 in connection.postgres.certificate."""
    ca = pki.ca("ibm-ca")
    crn = "crn:v1:bluemix:public:databases-for-postgresql:us-south:a/4f5e:9c1d-77::"
    encoded = "crn%3Av1%3Abluemix%3Apublic%3Adatabases-for-postgresql%3Aus-south%3Aa%2F4f5e%3A9c1d-77%3A%3A"
    body = {"connection": {"postgres": {
        "type": "uri", "hosts": [{"hostname": "db.example", "port": 31863}],
        "certificate": {"name": "9c1d-77",
                        "certificate_base64": base64.b64encode(ca.read_bytes()).decode()}}}}
    providers.put(f"ibmcloud/{encoded}/admin-public.json", json.dumps(body))
    (tmp_path / "iam").write_text(PROVIDER_TOKENS["ibmcloud"] + "\n")
    (tmp_path / "iam").chmod(0o600)
    source = {"provider": "ibmcloud", "region": "us-south", "deployment": crn,
              "credential": "iam", "api_url": providers.url, "ca_file": str(providers.trust)}
    d = Daemon(tmp_path / "d", api, [{"name": "ibm", "source": source}], api=None,
               credentials={"iam": {"file": str(tmp_path / "iam")}})
    r = d.once()
    assert r.returncode == 0, r.stderr
    assert fingerprints(d.file("ibm").read_text()) == [Pki.fingerprint(ca)]
    path = f"/v4/ibm/deployments/{encoded}/users/admin/connections/public"
    assert providers.requests(path)[-1][2] == "auth"
    # Without api_url the origin is the region's.
    source.pop("api_url")
    d.write_config([{"name": "ibm", "source": source}], api=None,
                   credentials={"iam": {"file": str(tmp_path / "iam")}})
    shown = subprocess.run([str(BINARY), "--config", str(d.config), "--check-config"],
                           capture_output=True, text=True)
    assert "https://api.us-south.databases.cloud.ibm.com" + path in shown.stdout, shown.stdout


def test_cloudsql_in_a_cas_mode_reads_its_ca_from_connect_settings(tmp_path, api, pki,
                                                                  providers):
    """Cloud SQL instances whose serverCaMode is GOOGLE_MANAGED_CAS_CA or
    CUSTOMER_MANAGED_CAS_CA answer listServerCas without a CA; their CA chain
    is connectSettings' serverCaCert.cert (several PEM blocks). The preset
    looks there without being told the mode."""
    root, sub = pki.ca("cas-root", "CAS root"), pki.ca("cas-regional", "CAS regional")
    providers.put("cloudsql/proj/cas-db.json",
                  json.dumps({"kind": "sql#instancesListServerCas", "certs": []}))
    providers.put("cloudsql-connect/proj/cas-db.json", json.dumps({
        "kind": "sql#connectSettings", "serverCaMode": "GOOGLE_MANAGED_CAS_CA",
        "serverCaCert": {"kind": "sql#sslCert", "cert": sub.read_text() + root.read_text()},
        "databaseVersion": "POSTGRES_16", "region": "europe-west1"}))
    (tmp_path / "gcp").write_text(PROVIDER_TOKENS["cloudsql"] + "\n")
    (tmp_path / "gcp").chmod(0o600)
    source = {"provider": "cloudsql", "project": "proj", "instance": "cas-db",
              "credential": "gcp", "api_url": providers.url, "ca_file": str(providers.trust)}
    d = Daemon(tmp_path / "d", api, [{"name": "cas", "source": source}], api=None,
               credentials={"gcp": {"file": str(tmp_path / "gcp")}})
    r = d.once()
    assert r.returncode == 0, r.stderr
    assert fingerprints(d.file("cas").read_text()) == [Pki.fingerprint(sub), Pki.fingerprint(root)]
    both = [e for e in providers.requests() if "/instances/cas-db/" in e[1]]
    assert [e[1].rsplit("/", 1)[1] for e in both] == ["listServerCas", "connectSettings"]
    assert all(e[2] == "auth" for e in both)
    # An instance in the default mode answers listServerCas: no second request.
    providers.put("cloudsql/proj/cas-db.json", json.dumps(
        {"kind": "sql#instancesListServerCas", "certs": [{"cert": root.read_text()}]}))
    assert d.once().returncode == 0
    assert fingerprints(d.file("cas").read_text())[0] == Pki.fingerprint(root)
    after = [e for e in providers.requests() if "/instances/cas-db/" in e[1]]
    assert after[-1][1].endswith("/listServerCas") and len(after) == 3
