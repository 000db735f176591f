"""Rotations without outage, proven with a real PostgreSQL and psql verify-full clients."""
import os
import re
import stat
import subprocess
import time

import pytest

from harness import BINARY, ConnectionLoop, Postgres, free_port, http_get, parse_metrics, wait_for

LOCAL = "DNS:localhost,IP:127.0.0.1"


@pytest.fixture
def world(pki, api, make_daemon, request):
    """A server under CA v1, the API serving v1, and a factory for the daemon."""
    tag = request.node.name.replace("[", "-").replace("]", "")
    ca1 = pki.ca(f"{tag}-v1", "Instance CA v1")
    ca2 = pki.ca(f"{tag}-v2", "Instance CA v2")
    leaf1 = pki.leaf(f"{tag}-leaf-v1", ca1, LOCAL, "localhost")
    leaf2 = pki.leaf(f"{tag}-leaf-v2", ca2, LOCAL, "localhost")
    pg = Postgres(*leaf1)
    api.serve("org_a", "inst_1", ca1)

    class World:
        pass

    w = World()
    w.ca1, w.ca2, w.leaf1, w.leaf2, w.pg, w.api, w.pki = ca1, ca2, leaf1, leaf2, pg, api, pki
    w.loop = None

    def daemon(**settings):
        instance = {"org": "org_a", "id": "inst_1", "host": "localhost", "port": pg.port,
                    **settings.pop("instance", {})}
        base = {"refresh_interval": "300ms", "jitter": 0, "verify_interval": "200ms",
                "retry": {"min": "100ms", "max": "500ms"}}
        base.update(settings)
        d = make_daemon([instance], **base)
        d.start()
        wait_for(lambda: d.file(instance.get("name", "inst_1")).exists(), 10, "the first file")
        return d

    w.daemon = daemon
    yield w
    if w.loop:
        w.loop.stop()
    pg.stop()


def test_api_rotates_first_then_server_zero_failed_connections(world):
    d = world.daemon()
    world.loop = ConnectionLoop(world.pg, d.file("inst_1"))
    wait_for(lambda: world.loop.successes_after(0) >= 3, 10, "connections on v1")
    world.api.serve("org_a", "inst_1", world.ca2)
    wait_for(lambda: d.file("inst_1").read_text().startswith(world.ca2.read_text()), 10, "v2 installed")
    assert world.ca1.read_text() in d.file("inst_1").read_text(), "v1 kept for the overlap"
    installed = time.monotonic()
    wait_for(lambda: world.loop.successes_after(installed) >= 5, 10, "connections after install")
    world.pg.use_certificate(*world.leaf2)  # the server switches seconds later
    switched = time.monotonic()
    wait_for(lambda: world.loop.successes_after(switched) >= 5, 10, "connections after the switch")
    world.loop.stop()
    assert world.loop.failures() == []
    assert len(world.loop.results) >= 13


def test_without_overlap_the_live_check_keeps_clients_working(world):
    d = world.daemon(rotation={"keep_previous": "0"})
    world.loop = ConnectionLoop(world.pg, d.file("inst_1"))
    world.api.serve("org_a", "inst_1", world.ca2)
    d.wait_log("does not yet present a certificate under the new CA")
    union = world.ca2.read_text() + world.ca1.read_text()
    # The warning is logged just before the install: wait for the file itself.
    wait_for(lambda: d.file("inst_1").read_text() == union, 10, "the union installed")
    world.pg.use_certificate(*world.leaf2)
    # Once the server presents v2, the next refresh narrows the file to v2 alone.
    wait_for(lambda: d.file("inst_1").read_text() == world.ca2.read_text(), 10, "v2 alone")
    settled = time.monotonic()
    wait_for(lambda: world.loop.successes_after(settled) >= 3, 10, "connections on v2 alone")
    world.loop.stop()
    assert world.loop.failures() == []


def test_server_rotates_first_then_clients_recover_at_the_next_retry(world):
    d = world.daemon(refresh_interval="1h")
    world.loop = ConnectionLoop(world.pg, d.file("inst_1"))
    wait_for(lambda: world.loop.successes_after(0) >= 2, 10, "connections on v1")
    world.pg.use_certificate(*world.leaf2)  # the API still serves v1
    d.wait_log("no longer verifies against")  # noticed by the live check, not the hourly refresh
    d.wait_log("the API has not served its new CA yet")
    world.api.serve("org_a", "inst_1", world.ca2)
    served = time.monotonic()
    wait_for(lambda: world.loop.successes_after(served) >= 1, 10, "a connection on v2")
    # Recovered at a retry (at most retry.max, 500 ms, apart), not at the
    # hourly refresh: the daemon's own schedule, read from its log rather
    # than from a loaded machine's clock.
    delays = [int(ms) for ms in re.findall(r"retrying in (\d+)ms", d.output())]
    assert delays and max(delays) <= 500, d.output()


def test_server_rotates_first_then_the_api_is_asked_at_the_verify_cadence(world):
    """With the API answering well and only the live check failing, retries
    followed the backoff (retry.min here 30 s, up to retry.max): clients kept
    failing for that long after the API served the new CA."""
    d = world.daemon(refresh_interval="1h", retry={"min": "30s", "max": "5m"})
    world.pg.use_certificate(*world.leaf2)  # the API still serves v1
    d.wait_log("the API has not served its new CA yet")
    # The daemon's own decision, from its log: the next try is one
    # verify_interval (200 ms) away, not retry.min.
    delays = re.findall(r"the API has not served its new CA yet; retrying in (\w+)", d.output())
    assert delays == ["200ms"], d.output()
    world.loop = ConnectionLoop(world.pg, d.file("inst_1"))
    world.api.serve("org_a", "inst_1", world.ca2)
    served = time.monotonic()
    wait_for(lambda: world.loop.successes_after(served) >= 1, 10, "a connection on v2")


def test_previous_ca_is_dropped_after_keep_previous(world):
    d = world.daemon(rotation={"keep_previous": "2s"})
    world.api.serve("org_a", "inst_1", world.ca2)
    wait_for(lambda: d.file("inst_1").read_text() == world.ca2.read_text() + world.ca1.read_text(),
             10, "the overlap bundle")
    world.pg.use_certificate(*world.leaf2)
    world.loop = ConnectionLoop(world.pg, d.file("inst_1"))
    wait_for(lambda: d.file("inst_1").read_text() == world.ca2.read_text(), 10, "v1 dropped")
    d.wait_log("dropped")
    dropped = time.monotonic()
    wait_for(lambda: world.loop.successes_after(dropped) >= 3, 10, "connections after the drop")
    world.loop.stop()
    assert world.loop.failures() == []


def test_a_bundle_that_would_break_verify_full_is_never_installed(world):
    d = world.daemon(rotation={"keep_previous": "0"})
    world.loop = ConnectionLoop(world.pg, d.file("inst_1"))
    unrelated = world.pki.ca("unrelated-ca", "Unrelated CA")
    world.api.serve("org_a", "inst_1", unrelated)
    d.wait_log("does not yet present a certificate under the new CA")
    assert world.ca1.read_text() in d.file("inst_1").read_text()
    after = time.monotonic()
    wait_for(lambda: world.loop.successes_after(after) >= 5, 10, "connections after the bad CA")
    world.loop.stop()
    assert world.loop.failures() == []


def test_overlap_survives_a_restart(world):
    d = world.daemon()
    world.api.serve("org_a", "inst_1", world.ca2)
    both = world.ca2.read_text() + world.ca1.read_text()
    wait_for(lambda: d.file("inst_1").read_text() == both, 10, "the overlap bundle")
    assert d.stop() == 0
    state = d.dir / "state" / "inst_1.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert str(d.cert_dir) not in str(state.parent)
    r = d.once()
    assert r.returncode == 0, r.stderr
    assert d.file("inst_1").read_text() == both, "the kept CA survived the restart"


def test_a_custom_domain_gets_plain_advice(pki, api, make_daemon):
    ca = pki.ca("custom-domain-ca")
    pg = Postgres(*pki.leaf("custom-domain-leaf", ca, "DNS:db.tembo.example", "db.tembo.example"))
    try:
        api.serve("org_a", "inst_1", ca)
        d = make_daemon([{"org": "org_a", "id": "inst_1", "host": "localhost", "port": pg.port}])
        r = d.once()
        assert r.returncode == 0, "the CA itself is right"
        assert "does not cover 'localhost'" in r.stderr, r.stderr
        assert "sslmode=verify-ca" in r.stderr
    finally:
        pg.stop()


def test_pg_service_file_lets_psql_connect_by_service_name(world, tmp_path):
    services = tmp_path / "pg_service.conf"
    services.write_text("# mine\n[handwritten]\nhost=/run/postgresql\n")
    d = world.daemon(pg_service_file=str(services),
                     instance={"name": "prod", "dbname": "postgres", "user": "postgres"})
    wait_for(lambda: "[prod]" in services.read_text(), 10, "the managed block")
    text = services.read_text()
    assert text.startswith("# mine\n[handwritten]\nhost=/run/postgresql\n")
    assert f"sslrootcert={d.file('prod')}" in text and "sslmode=verify-full" in text
    r = Postgres.psql("service=prod", env={**os.environ, "PGSERVICEFILE": str(services)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def test_a_pg_service_file_rootcertd_cannot_safely_edit_is_left_as_is(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("svc-ca"))
    d = make_daemon([{"org": "org_a", "id": "inst_1", "host": "localhost"}],
                    pg_service_file="pg_service.conf")
    # A bare relative path, with the config named relative to the cwd.
    once = [BINARY, "--config", d.config.name, "--once"]
    r = subprocess.run(once, cwd=d.dir, capture_output=True, text=True, timeout=60)
    services = d.dir / "pg_service.conf"
    assert "[inst_1]" in services.read_text(), r.stderr
    # A hand edit left an orphan BEGIN above the user's own section: the file
    # is kept byte for byte, and the run says so in its exit code.
    text = ("# BEGIN rootcertd managed block: edits between these lines are overwritten\n"
            "[mine]\nhost=db\npassword=secret\n")
    services.write_text(text)
    r = subprocess.run(once, cwd=d.dir, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "not one BEGIN followed by one END" in r.stderr
    assert services.read_text() == text


def test_a_change_runs_its_hook_even_when_the_live_check_after_it_fails(world, tmp_path):
    # The API serves a CA the server does not use, and there is no file yet
    # to keep: it is installed, the live check after it fails, and the
    # change still runs its hook and counts once (it will not change again).
    other = world.pki.ca("hook-live-other", "Some other CA")
    world.api.serve("org_a", "inst_1", other)
    calls = tmp_path / "calls"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$ROOTCERTD_SHA256" >> {calls}\n')
    hook.chmod(0o755)
    port = free_port()
    d = world.daemon(on_change={"command": [str(hook)]}, refresh_interval="1h",
                     metrics={"listen": f"127.0.0.1:{port}"})
    labels = {"name": "inst_1", "org": "org_a", "id": "inst_1"}

    def metric(name, **extra):
        key = (name, frozenset({**labels, **extra}.items()))
        return parse_metrics(http_get(port, "/metrics")[2]).get(key, 0)

    d.wait_log("does not verify against the installed file")
    # Retries follow (the server still does not verify); none changes the file.
    wait_for(lambda: metric("rootcertd_refresh_total", result="failure") >= 3, 10, "retries")
    wait_for(lambda: calls.exists(), 10, "the hook's run")
    assert calls.read_text().split() == [world.pki.fingerprint(other)]
    assert metric("rootcertd_cert_changes_total") == 1
