"""Discovery: control-plane lists shaped as Tembo, Cloud SQL and DigitalOcean
document them, served by nginx, and the data planes serving the CAs."""
import json
import os
import signal
import subprocess
import time

import pytest

from harness import (BINARY, PROVIDER_TOKENS, Daemon, Pki, free_port,
                     http_get, http_status, parse_metrics, wait_for)


def tembo_instance(id, name, state="Running", port=None, conn=True, host=None):
    """One object of GET /api/v1/orgs/{org}/instances, as Tembo lists it."""
    return {"instance_id": id, "instance_name": name, "organization_id": "org_d",
            "state": state, "dataplane_index": str(port), "region_id": "use1",
            "connection_info": {"host": host or f"{name}.data-1.use1.tembo.io", "port": 5432,
                                "user": "postgres", "password": "never-logged-pw"}
            if conn else None}


def put_list(api, org, objects):
    path = api.data / "control-plane" / f"{org}.json"
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(objects if isinstance(objects, str) else json.dumps(objects))
    os.replace(tmp, path)


def tembo_discovery(api, **kw):
    # The data plane is derived from each listed object: here its
    # dataplane_index carries the test nginx's port.
    return {"provider": "tembo", "org": "org_d", "control_plane": api.url,
            "data_plane": "https://localhost:{dataplane_index}", **kw}


def test_list_instances_prints_what_discovery_would_keep_and_writes_nothing(api, pki, tmp_path):
    ca = pki.ca("disc-ca")
    api.serve("org_a", "static_1", ca)
    p = api.port
    put_list(api, "org_d", [
        tembo_instance("inst_a", "alpha", port=p),
        tembo_instance("inst_b", "beta", port=p, conn=False),       # null connection_info
        tembo_instance("inst_c", "gone", state="Deleting", port=p),  # not kept
        tembo_instance("inst_d", "sleepy", state="Stopped", port=p),  # kept
        tembo_instance("inst_e", "../My DB/prod", port=p, host="e.example"),  # sanitised
        tembo_instance("inst_f", "alpha", port=p),                   # duplicate: refused
        tembo_instance("inst_g", "static", port=p),                  # a listed name: refused
    ])
    d = Daemon(tmp_path / "d", api, [{"org": "org_a", "id": "static_1", "name": "static"}],
               discover=[tembo_discovery(api)])
    r = subprocess.run([str(BINARY), "--config", str(d.config), "--list-instances"],
                       capture_output=True, text=True, timeout=30)
    # Two names were refused: exit 1, as --once gives for the same lists.
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines()[0].split() == ["NAME", "FROM", "SERVER", "CA"]
    rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()[1:]
            if "refused:" not in line}
    certificate = api.url + "/api/v1/orgs/{}/instances/{}/secrets/certificate"
    assert rows["static"] == ["listed", "-", certificate.format("org_a", "static_1")]
    # The CA URL on the data plane derived from the listed object.
    assert rows["alpha"] == ["tembo:org_d", "alpha.data-1.use1.tembo.io:5432",
                             f"https://localhost:{p}/api/v1/orgs/org_d/instances/inst_a/"
                             "secrets/certificate"]
    assert rows["beta"][:2] == ["tembo:org_d", "-"]
    assert rows["sleepy"][0] == "tembo:org_d"
    assert "_.-My-DB-prod" in rows and "gone" not in rows
    refused = [line for line in r.stdout.splitlines() if "refused:" in line]
    assert len(refused) == 2, r.stdout
    assert any(l.startswith("alpha") and "already used by tembo:org_d" in l for l in refused)
    assert any(l.startswith("static") and "already used by a listed instance" in l for l in refused)
    assert not d.cert_dir.exists(), "a dry run writes nothing"
    assert "never-logged-pw" not in r.stdout + r.stderr


def test_list_instances_puts_a_failed_list_in_its_table_and_exits_1(api, pki, tmp_path):
    """A failed list showed only the header row."""
    put_list(api, "org_d", '{"not": "a list"}')
    d = Daemon(tmp_path / "d", api, [], discover=[tembo_discovery(api)])
    r = subprocess.run([str(BINARY), "--config", str(d.config), "--list-instances"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    failed = [line.split(None, 2) for line in r.stdout.splitlines()[1:]]
    assert failed[0][:2] == ["-", "tembo:org_d"] and failed[0][2].startswith(
        "list failed: discovery tembo:org_d: GET /api/v1/orgs/org_d/instances on "), r.stdout


def cloudsql_and_digitalocean(tmp_path, api, providers, **settings):
    """A daemon discovering Cloud SQL project "proj" and a DigitalOcean
    account from the providers' nginx, and the environment its secrets need."""
    gcp = ["/bin/sh", "-c", f"echo {PROVIDER_TOKENS['cloudsql']}"]
    d = Daemon(tmp_path / "d", api, [],
               credentials={"gcp": {"command": gcp}, "do": {"env": "ROOTCERTD_TEST_DO"}},
               discover=[{"provider": "cloudsql", "project": "proj", "credential": "gcp",
                          "api_url": providers.url, "ca_file": str(providers.trust)},
                         {"provider": "digitalocean", "credential": "do",
                          "api_url": providers.url, "ca_file": str(providers.trust)}],
               **settings)
    return d, dict(os.environ, ROOTCERTD_TEST_DO=PROVIDER_TOKENS["digitalocean"])


def test_once_discovers_every_page_then_refreshes(api, pki, providers, tmp_path):
    sql_ca, do_ca = pki.ca("disc-sql"), pki.ca("disc-do")
    providers.put("cloudsql-list/proj/first.json", json.dumps({
        "kind": "sql#instancesList", "nextPageToken": "CiAKGjBpNDd2Nmp2Zml",
        "items": [{"name": "sql-a", "databaseVersion": "POSTGRES_15",
                   "dnsName": "sql-a.proj.sql.goog",
                   "ipAddresses": [{"type": "PRIMARY", "ipAddress": "127.0.0.11"}]},
                  {"name": "my-mysql", "databaseVersion": "MYSQL_8_0"}]}))
    providers.put("cloudsql-list/proj/CiAKGjBpNDd2Nmp2Zml.json", json.dumps({
        "kind": "sql#instancesList",
        "items": [{"name": "sql-b", "databaseVersion": "POSTGRES_16",
                   "ipAddresses": [{"type": "OUTGOING", "ipAddress": "127.9.9.9"},
                                   {"type": "PRIMARY", "ipAddress": "127.0.0.12"}]}]}))
    for name in ("sql-a", "sql-b"):
        providers.put(f"cloudsql/proj/{name}.json", json.dumps(
            {"certs": [{"cert": sql_ca.read_text()}], "kind": "sql#instancesListServerCas"}))
    providers.put("digitalocean-list/1.json", json.dumps({
        "databases": [{"id": "d-1", "name": "do-main", "engine": "pg",
                       "connection": {"host": "do-main.db.ondigitalocean.com", "port": 25060,
                                      "user": "doadmin", "password": "never-logged-pw"}},
                      {"id": "d-2", "name": "cache", "engine": "redis"}],
        "links": {"pages": {"next": "https://api.digitalocean.com/v2/databases?page=2"}}}))
    providers.put("digitalocean-list/2.json", json.dumps({
        "databases": [{"id": "d-3", "name": "do-two", "engine": "pg"}], "links": {}}))
    for cluster in ("d-1", "d-3"):
        providers.put(f"digitalocean/{cluster}.json", json.dumps(
            {"ca": {"certificate": __import__("base64").b64encode(do_ca.read_bytes()).decode()}}))
    d, env = cloudsql_and_digitalocean(tmp_path, api, providers,
                                       pg_service_file=str(tmp_path / "pg_service.conf"))
    r = d.once(env=env)
    # The listed servers are not there: their live checks fail, nothing else.
    assert r.returncode == 1, r.stderr
    failed = [line.split(" ", 2)[2] for line in r.stderr.splitlines() if " failed: " in line]
    assert sorted(line.split(":")[1].strip() for line in failed) == ["do-main", "sql-a", "sql-b"]
    assert all(": live check: " in line for line in failed), failed
    assert sorted(p.name for p in d.cert_dir.iterdir()) == [
        "do-main.crt", "do-two.crt", "sql-a.crt", "sql-b.crt"]
    assert "discovery cloudsql:proj: 2 instance(s) kept" in r.stderr
    assert "discovery digitalocean: 2 instance(s) kept" in r.stderr
    service = (tmp_path / "pg_service.conf").read_text()
    assert "[sql-a]\nhost=sql-a.proj.sql.goog\nport=5432" in service
    assert "[sql-b]\nhost=127.0.0.12\n" in service
    assert "[do-main]\nhost=do-main.db.ondigitalocean.com\nport=25060\n" in service
    assert "user=doadmin" in service and "[do-two]" not in service  # no connection: no host
    assert "never-logged-pw" not in r.stderr + service


def test_once_exits_1_when_a_list_fails_after_refreshing_the_listed(api, pki, tmp_path):
    api.serve("org_a", "static_1", pki.ca("disc-static"))
    put_list(api, "org_d", '{"this is": "not a list"')
    d = Daemon(tmp_path / "d", api, [{"org": "org_a", "id": "static_1", "name": "static"}],
               discover=[tembo_discovery(api)])
    r = d.once()
    assert r.returncode == 1
    assert d.file("static").exists()
    assert (f"discovery tembo:org_d: GET /api/v1/orgs/org_d/instances on {api.url}: "
            "the list is not JSON") in r.stderr, r.stderr


def test_the_daemon_follows_creations_and_deletions_without_a_restart(api, pki, tmp_path):
    ca = pki.ca("disc-live")
    p = api.port
    for inst in ("inst_a", "inst_b"):
        api.serve("org_d", inst, ca)
    put_list(api, "org_d", [tembo_instance("inst_a", "alpha", port=p)])
    port = free_port()
    d = Daemon(tmp_path / "d", api, [], metrics={"listen": f"127.0.0.1:{port}"},
               pg_service_file=str(tmp_path / "pg_service.conf"), refresh_interval="300ms",
               jitter=0, discover=[tembo_discovery(api, interval="500ms")])
    d.start()
    try:
        metric = lambda name: parse_metrics(http_get(port, "/metrics")[2]).get(
            (name, frozenset({"source": "tembo:org_d"}.items())))
        wait_for(lambda: d.file("alpha").exists(), 10, "alpha's file")
        wait_for(lambda: metric("rootcertd_discovery_instances") == 1, 5, "one kept")
        assert metric("rootcertd_discovery_last_success_timestamp_seconds") > time.time() - 60
        # A new instance: added by the next list, its file from its first
        # refresh (started at once, not after a refresh interval).
        put_list(api, "org_d", [tembo_instance("inst_a", "alpha", port=p),
                                tembo_instance("inst_b", "beta", port=p)])
        d.wait_log("discovery tembo:org_d: 2 instance(s) kept; added beta; changed -; removed -")
        wait_for(lambda: d.file("beta").exists(), 5, "beta's file")
        refreshes = lambda result: parse_metrics(http_get(port, "/metrics")[2]).get(
            ("rootcertd_refresh_total",
             frozenset({"name": "beta", "org": "org_d", "id": "inst_b", "result": result}.items())))
        wait_for(lambda: refreshes("success") == 1, 5, "beta's first refresh counted")
        assert refreshes("failure") == 0, "the file came from beta's first refresh"
        wait_for(lambda: "[beta]" in (tmp_path / "pg_service.conf").read_text(), 5,
                 "beta's pg_service section")
        # alpha is deleted: its refreshes stop, its file stays, its section goes.
        put_list(api, "org_d", [tembo_instance("inst_a", "alpha", state="Deleted", port=p),
                                tembo_instance("inst_b", "beta", port=p)])
        d.wait_log("removed alpha (files kept, no longer refreshed)", timeout=5)
        wait_for(lambda: "[alpha]" not in (tmp_path / "pg_service.conf").read_text(), 5,
                 "alpha's section gone")
        # nginx logs the file each request was served from.
        alpha_path, beta_path = "/org_d/inst_a.json", "/org_d/inst_b.json"
        before = len(api.requests(alpha_path))
        beta_before = len(api.requests(beta_path))
        time.sleep(1.5)  # five of beta's refresh intervals: a window to count in
        assert len(api.requests(alpha_path)) == before, "a removed instance is not refreshed"
        assert len(api.requests(beta_path)) > beta_before
        assert d.file("alpha").exists()
        # A list that turns malformed changes nothing.
        put_list(api, "org_d", "[{]")
        wait_for(lambda: "the list is not JSON" in
                 (json.loads(http_get(port, "/status")[2])["discovery"][0]["last_error"] or ""),
                 5, "the error in /status")
        assert metric("rootcertd_discovery_instances") == 1
        d.wait_log("the instances it found before are kept", timeout=5)
        beta_before = len(api.requests(beta_path))
        wait_for(lambda: len(api.requests(beta_path)) > beta_before,
                 5, "beta still refreshed")
        # SIGHUP keeps what was discovered (the list is still malformed).
        d.signal(signal.SIGHUP)
        d.wait_log("reloaded: 1 instance(s); nothing changed", timeout=5)
        assert "[beta]" in (tmp_path / "pg_service.conf").read_text()
        assert "never-logged-pw" not in d.output()
    finally:
        assert d.stop() == 0


def test_list_values_cannot_inject_into_pg_service_and_a_wrong_shape_changes_nothing(
        api, pki, providers, tmp_path):
    """A dnsName with line breaks made `psql service=db1` connect in plaintext;
    a 200 list without "items" removed every section and stopped every loop."""
    ca = pki.ca("disc-inject")
    good = {"kind": "sql#instancesList", "items": [
        {"name": "db1", "databaseVersion": "POSTGRES_15",
         "dnsName": "127.0.0.1\nport=15432\nsslmode=disable"},
        {"name": "db2", "databaseVersion": "POSTGRES_15", "dnsName": "db2.proj.sql.goog"},
        {"name": "db3", "databaseVersion": "POSTGRES_15", "dnsName": "db3.proj.sql.goog"}]}
    providers.put("cloudsql-list/proj/first.json", json.dumps(good))
    for name in ("db1", "db2", "db3"):
        providers.put(f"cloudsql/proj/{name}.json", json.dumps(
            {"certs": [{"cert": ca.read_text()}], "kind": "sql#instancesListServerCas"}))
    gcp = ["/bin/sh", "-c", f"echo {PROVIDER_TOKENS['cloudsql']}"]
    services = tmp_path / "pg_service.conf"
    port = free_port()
    d = Daemon(tmp_path / "d", api, [], pg_service_file=str(services),
               metrics={"listen": f"127.0.0.1:{port}"}, credentials={"gcp": {"command": gcp}},
               discover=[{"provider": "cloudsql", "project": "proj", "credential": "gcp",
                          "interval": "300ms", "api_url": providers.url,
                          "ca_file": str(providers.trust)}])
    listed = subprocess.run([str(BINARY), "--config", str(d.config), "--list-instances"],
                            capture_output=True, text=True, timeout=30)
    assert "db1" in listed.stdout and "refused: host '127.0.0.1 port=15432 sslmode=disable' " \
        "is not a host name or address" in listed.stdout, listed.stdout
    d.start()
    try:
        wait_for(lambda: d.file("db3").exists() and d.file("db2").exists(), 10, "the files")
        wait_for(lambda: "[db3]" in services.read_text(), 5, "the sections")
        text = services.read_text()
        assert "sslmode=disable" not in text and "[db1]" not in text, text
        assert not d.file("db1").exists()
        status = json.loads(http_get(port, "/status")[2])
        assert {r["name"] for r in status["refused"]} == {"db1"}, status["refused"]
        # The same list, but "items" is gone and "kind" with it: malformed.
        providers.put("cloudsql-list/proj/first.json", json.dumps({"items": None}))
        wait_for(lambda: 'the list has no "kind"' in
                 (json.loads(http_get(port, "/status")[2])["discovery"][0]["last_error"] or ""),
                 5, "the error in /status")
        kept = parse_metrics(http_get(port, "/metrics")[2])[
            ("rootcertd_discovery_instances", frozenset({"source": "cloudsql:proj"}.items()))]
        assert kept == 2
        assert "[db2]" in services.read_text() and "[db3]" in services.read_text()
        assert "removed db" not in d.output()
    finally:
        assert d.stop() == 0


def test_after_a_restart_a_failing_source_keeps_its_sections(api, pki, providers, tmp_path):
    """With cloudsql failing at start and digitalocean answering,
    pg_service.conf kept only the DigitalOcean sections."""
    ca = pki.ca("disc-restart")
    sql_list = {"kind": "sql#instancesList", "items": [
        {"name": "sql-a", "databaseVersion": "POSTGRES_15", "dnsName": "sql-a.proj.sql.goog"}]}
    providers.put("cloudsql-list/proj/first.json", json.dumps(sql_list))
    providers.put("cloudsql/proj/sql-a.json", json.dumps(
        {"certs": [{"cert": ca.read_text()}], "kind": "sql#instancesListServerCas"}))
    providers.put("digitalocean-list/1.json", json.dumps({"databases": [
        {"id": "d-1", "name": "do-main", "engine": "pg",
         "connection": {"host": "do-main.db.ondigitalocean.com", "port": 25060}}]}))
    providers.put("digitalocean/d-1.json", json.dumps(
        {"ca": {"certificate": __import__("base64").b64encode(ca.read_bytes()).decode()}}))
    services = tmp_path / "pg_service.conf"
    port = free_port()
    d, env = cloudsql_and_digitalocean(tmp_path, api, providers, pg_service_file=str(services),
                                       metrics={"listen": f"127.0.0.1:{port}"})
    d.once(env=env)  # exit 1: the listed servers are not there for live checks
    assert "[sql-a]" in services.read_text() and "[do-main]" in services.read_text()
    # Restarted while Cloud SQL's list fails; DigitalOcean's answers.
    (providers.data / "cloudsql-list/proj/first.json").unlink()
    d.start(env=env)
    try:
        wait_for(lambda: http_status(port, "/status") == 200, 10, "/status")
        def source(label):
            listed = json.loads(http_get(port, "/status")[2]).get("discovery", [])
            return next((e for e in listed if e["source"] == label), {})
        wait_for(lambda: "HTTP 404" in (source("cloudsql:proj").get("last_error") or ""), 10,
                 "the failed list")
        wait_for(lambda: source("digitalocean").get("last_success"), 10, "DigitalOcean's list")
        text = services.read_text()
        assert "[do-main]" in text and "[sql-a]\nhost=sql-a.proj.sql.goog\n" in text, text
    finally:
        assert d.stop() == 0


def test_a_mass_removal_is_applied_only_when_the_next_list_agrees(api, pki, tmp_path):
    """A well-formed list can still be wrong (a token for another org, a
    partial page): one that drops most instances at once waits a list."""
    ca = pki.ca("disc-mass")
    p = api.port
    for inst in ("inst_a", "inst_b", "inst_c"):
        api.serve("org_d", inst, ca)
    everyone = [tembo_instance("inst_a", "alpha", port=p), tembo_instance("inst_b", "beta", port=p),
                tembo_instance("inst_c", "gamma", port=p)]
    put_list(api, "org_d", everyone)
    port = free_port()
    services = tmp_path / "pg_service.conf"
    d = Daemon(tmp_path / "d", api, [], metrics={"listen": f"127.0.0.1:{port}"},
               pg_service_file=str(services), refresh_interval="1h",
               discover=[tembo_discovery(api, interval="1s")])
    d.start()
    try:
        wait_for(lambda: all(d.file(n).exists() for n in ("alpha", "beta", "gamma")), 10, "files")
        metric = lambda: parse_metrics(http_get(port, "/metrics")[2]).get(
            ("rootcertd_discovery_pending_removals", frozenset({"source": "tembo:org_d"}.items())))
        assert metric() == 0
        put_list(api, "org_d", everyone[:1])
        d.wait_log("discovery tembo:org_d: the list leaves out 2 of 3 instance(s): beta,gamma; "
                   "kept until the next list, in 1000ms, leaves them out too")
        wait_for(lambda: metric() == 2, 5, "the pending removal in /metrics")
        status = json.loads(http_get(port, "/status")[2])
        assert status["discovery"][0]["pending_removal"] == ["beta", "gamma"]
        assert "[beta]" in services.read_text() and "removed beta" not in d.output()
        # One interval later the list still leaves them out: they go.
        d.wait_log("removed beta,gamma (files kept, no longer refreshed)", timeout=10)
        wait_for(lambda: metric() == 0, 5, "nothing pending")
        assert "[beta]" not in services.read_text()
    finally:
        assert d.stop() == 0
