"""The refresh pipeline end to end: the built binary against real nginx over TLS."""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import pytest

from harness import (API_PATH, BINARY, GOOD_TOKEN, OTHER_TOKEN, NotifySocket, Postgres, peak_rss,
                     free_port, serve_fleet, wait_for, with_mounts)


def inst(org, id, **kw):
    return {"org": org, "id": id, **kw}


def test_once_installs_every_instance_across_two_orgs(api, pki, make_daemon):
    cas = {"inst_1": pki.ca("ca-one"), "inst_2": pki.ca("ca-two"), "inst_3": pki.ca("ca-three")}
    api.serve("org_a", "inst_1", cas["inst_1"])
    api.serve("org_a", "inst_2", cas["inst_2"])
    api.serve("org_b", "inst_3", cas["inst_3"])
    d = make_daemon([inst("org_a", "inst_1"), inst("org_a", "inst_2", name="prod"),
                     inst("org_b", "inst_3", name="analytics.eu")])
    r = d.once()
    assert r.returncode == 0, r.stderr
    for name, ca in (("inst_1", cas["inst_1"]), ("prod", cas["inst_2"]), ("analytics.eu", cas["inst_3"])):
        assert d.file(name).read_text() == ca.read_text()
        assert d.file(name).stat().st_mode & 0o777 == 0o644
        assert f"{name}: installed CA at {d.file(name)}: sha256={pki.fingerprint(ca)}" in r.stderr
    assert "notAfter=" in r.stderr
    assert GOOD_TOKEN not in r.stderr
    assert sorted(os.listdir(d.cert_dir)) == ["analytics.eu.crt", "inst_1.crt", "prod.crt"]


def test_once_exits_1_when_one_fails_and_still_writes_the_others(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("ca-one"))
    d = make_daemon([inst("org_a", "inst_1"), inst("org_a", "missing")])
    r = d.once()
    assert r.returncode == 1
    assert d.file("inst_1").exists()
    assert not d.file("missing").exists()
    assert (f"missing: refresh failed: GET {API_PATH.format(org='org_a', id='missing')} on "
            f"{api.url}: HTTP 404: Secret not found") in r.stderr


def test_bad_responses_never_replace_a_good_file(api, pki, make_daemon):
    good = pki.ca("ca-one")
    api.serve("org_a", "inst_1", good)
    d = make_daemon([inst("org_a", "inst_1")])
    assert d.once().returncode == 0
    before = d.file("inst_1").stat()
    leaf, _ = pki.leaf("some-leaf", good, "DNS:db.example")
    bad_bodies = {
        "{}": "response is {}: it holds no CA",
        '{"ca.crt": "-----BEGIN CERTIFICATE-----\\nMIIB': "response is not JSON",
        '"Secret not found"': "response is a string, not a JSON object",
        '{"ca.crt": "not a certificate"}': "no PEM CERTIFICATE block found",
        None: "is not a CA",
    }
    for body, reason in bad_bodies.items():
        if body is None:
            api.serve("org_a", "inst_1", leaf)
        else:
            api.serve("org_a", "inst_1", body=body)
        r = d.once()
        assert r.returncode == 1, body
        assert reason in r.stderr, r.stderr
        after = d.file("inst_1").stat()
        assert d.file("inst_1").read_text() == good.read_text()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert os.listdir(d.cert_dir) == ["inst_1.crt"]


@pytest.mark.parametrize("fault, reason", [
    ("html", "response is not JSON"),
    ("moved", "HTTP 302: redirect to 'https://elsewhere.example/steal' not followed"),
    ("busy", "HTTP 503: Service temporarily unavailable"),
])
def test_faulty_answers_are_named(api, make_daemon, fault, reason):
    d = make_daemon([inst("org_fault", fault)])
    r = d.once()
    assert r.returncode == 1
    assert reason in r.stderr, r.stderr
    assert len(api.requests(API_PATH.format(org="org_fault", id=fault))) == 1, "no redirect followed"


def test_unchanged_refresh_does_not_touch_the_file(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("ca-one"))
    d = make_daemon([inst("org_a", "inst_1")])
    assert d.once().returncode == 0
    os.utime(d.file("inst_1"), ns=(10**18, 10**18))
    r = d.once()
    assert r.returncode == 0
    assert d.file("inst_1").stat().st_mtime_ns == 10**18
    assert "installed" not in r.stderr and "changed" not in r.stderr


def test_wrong_token_is_refused_and_never_logged(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("ca-one"))
    d = make_daemon([inst("org_a", "inst_1")], token="wrong.token.value")
    r = d.once()
    assert r.returncode == 1
    assert "HTTP 401: Unauthorized" in r.stderr
    assert "wrong.token.value" not in r.stderr


@pytest.mark.parametrize("which, reason", [
    ("untrusted_url", "certificate verify failed"),
    ("wrong_host_url", "certificate verify failed"),
])
def test_api_certificates_are_verified(api, pki, make_daemon, which, reason):
    api.serve("org_a", "inst_1", pki.ca("ca-one"))
    d = make_daemon([inst("org_a", "inst_1", api_url=getattr(api, which))])
    r = d.once()
    assert r.returncode == 1
    assert reason in r.stderr, r.stderr
    assert not d.file("inst_1").exists()
    assert api.requests() == [], "no request is sent over an unverified connection"


def test_without_ca_file_a_private_api_ca_is_not_trusted(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("ca-one"))
    d = make_daemon([inst("org_a", "inst_1")], api={"ca_file": None})
    r = d.once()
    assert r.returncode == 1
    assert "certificate verify failed" in r.stderr, r.stderr
    assert "unable to get local issuer certificate" in r.stderr, "names OpenSSL's reason"


def test_the_default_ca_file_is_trusted_without_hash_links(api, pki, make_daemon, tmp_path):
    # A minimal image: /etc/ssl/certs holds the bundle file and no hash
    # links, and nothing sets SSL_CERT_FILE. The API's CA is in the bundle.
    certs = tmp_path / "etc-ssl-certs"
    certs.mkdir()
    shutil.copy(api.trust, certs / "ca-certificates.crt")
    api.serve("org_a", "inst_1", pki.ca("ca-one"))
    d = make_daemon([inst("org_a", "inst_1")], api={"ca_file": None})
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    r = subprocess.run(with_mounts([(certs, "/etc/ssl/certs")],
                                   [BINARY, "--config", d.config, "--once"]),
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert d.file("inst_1").exists()


def test_slow_body_is_bounded_by_the_timeout(api, pki, make_daemon):
    api.serve("org_fault", "slow", body='{"ca.crt": "' + "x" * 4000 + '"}')
    d = make_daemon([inst("org_fault", "slow")], api={"timeout": "1s"})
    started = time.monotonic()
    r = d.once()
    elapsed = time.monotonic() - started
    assert r.returncode == 1
    assert "read response: timed out (budget 1000 ms)" in r.stderr, r.stderr
    # The budget is the daemon's decision (above); the wall clock only shows
    # it did not wait for the 250 s body, whatever the machine's load.
    assert elapsed < 15, elapsed


def test_a_reused_connection_is_bounded_by_the_timeout_of_its_own_request(api, pki, make_daemon):
    # One connection serves a quick request, then a stalled one: the stalled
    # one still times out one budget after it started, not never.
    api.serve("org_a", "quick", pki.ca("quick-ca"))
    api.serve("org_fault", "slow", body='{"ca.crt": "' + "x" * 4000 + '"}')
    d = make_daemon([inst("org_a", "quick"), inst("org_fault", "slow")],
                    api={"timeout": "1s"}, concurrency=1)
    started = time.monotonic()
    r = d.once()
    assert time.monotonic() - started < 15, "not the 250 s of the slow body"
    assert r.returncode == 1
    assert d.file("quick").exists()
    assert "GET /api/v1/orgs/org_fault/instances/slow/secrets/certificate" in r.stderr
    assert "read response: timed out (budget 1000 ms)" in r.stderr, r.stderr
    wait_for(lambda: len(api.requests()) == 2, 5, "both requests in the access log")
    assert len({row[1] for row in api.requests()}) == 1, "both went over one connection"


def asleep(pid):
    """Whether PID's event loop waits in epoll for something to happen."""
    proc = pathlib.Path(f"/proc/{pid}")
    state = (proc / "stat").read_text().rsplit(") ", 1)[1][0]
    return state == "S" and (proc / "wchan").read_text() == "do_epoll_wait"


def wakeups(pid):
    """Voluntary context switches of all of PID's threads: one per sleep that ended."""
    total = 0
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def test_a_daemon_at_rest_is_not_woken(api, pki, make_daemon):
    # Nothing is due for an hour after the first pass: the daemon sleeps,
    # even through the moment its requests' deadlines (1 s) pass. Asio
    # wakes once for the earliest of the deadlines it was told to forget.
    names = serve_fleet(api, pki.ca("ca-one"), "org_a", 1000)
    d = make_daemon([inst("org_a", name) for name in names], api={"timeout": "1s"},
                    concurrency=16, jitter=0)
    notify = NotifySocket(str(d.dir / "notify.sock"))
    d.start(env={**os.environ, "NOTIFY_SOCKET": notify.path})
    notify.wait("READY", "1", timeout=20)
    # READY may come before the first pass ends (at most api.timeout after
    # start); a machine whose disk is busy flushes the installs slowly.
    wait_for(lambda: len(list(d.cert_dir.glob("*.crt"))) == len(names), 120, "the first pass")
    wait_for(lambda: asleep(d.proc.pid), 30, "the event loop asleep")
    before = wakeups(d.proc.pid)
    time.sleep(2.5)  # the window being measured
    assert wakeups(d.proc.pid) - before <= 1


def test_oversize_body_is_refused_without_buffering_it(api, pki, make_daemon):
    big = api.data / "org_fault" / "huge.json"
    big.parent.mkdir(exist_ok=True)
    with open(big, "w") as f:
        f.write('{"ca.crt": "')
        for _ in range(64):
            f.write("A" * (1 << 20))
        f.write('"}')
    api.serve("org_a", "inst_1", pki.ca("ca-one"))
    baseline = make_daemon([inst("org_a", "inst_1")])
    code, base_kib, _ = peak_rss([BINARY, "--config", baseline.config, "--once"])
    assert code == 0
    d = make_daemon([inst("org_fault", "huge")])
    code, kib, stderr = peak_rss([BINARY, "--config", d.config, "--once"])
    assert code == 1
    assert "response body exceeds 1048576 bytes" in stderr, stderr
    # Buffering would add 64 MiB over a small response; allow a little noise.
    assert kib < base_kib + 8 * 1024, f"peak RSS {kib} KiB vs {base_kib} KiB: the body was buffered"


def test_keep_alive_connections_are_reused(api, pki, make_daemon):
    names = serve_fleet(api, pki.ca("ca-one"), "org_a", 40)
    d = make_daemon([inst("org_a", n) for n in names], concurrency=4)
    assert d.once().returncode == 0
    rows = api.requests()
    assert len(rows) == 40
    assert len({r[1] for r in rows}) <= 4, "at most `concurrency` connections"


def test_a_new_connection_resumes_the_origins_tls_session(api, pki, make_daemon):
    # The server closes each connection after one request: every refresh dials.
    ca = pki.ca("ca-one")
    names = serve_fleet(api, ca, "org_oneshot", 5)
    d = make_daemon([inst("org_oneshot", n) for n in names], concurrency=1)
    assert d.once().returncode == 0
    rows = api.requests()
    assert [r[3] for r in rows] == [200] * 5
    assert len({r[1] for r in rows}) == 5, "one connection per request"
    assert [r[5] for r in rows] == [".", "r", "r", "r", "r"], "resumed after the first"
    for n in names:
        assert (d.cert_dir / f"{n}.crt").read_text() == ca.read_text()


def test_stale_temp_files_are_removed_at_start(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("ca-one"))
    d = make_daemon([inst("org_a", "inst_1")])
    d.cert_dir.mkdir()
    # Left an hour ago by a process that is gone: stale.
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = d.cert_dir / f".inst_1.crt.tmp-{gone.pid}-0-1"
    stale.write_text("half a cert")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    # Being written by a process that runs (a daemon beside this --once): kept.
    in_flight = d.cert_dir / f".other.crt.tmp-{os.getpid()}-0-1"
    in_flight.write_text("being written")
    r = d.once()
    assert r.returncode == 0
    assert sorted(os.listdir(d.cert_dir)) == sorted(["inst_1.crt", in_flight.name])
    assert "removed 1 temp file(s)" in r.stderr


def test_temp_files_of_a_writer_killed_after_start_are_swept_while_running(api, pki,
                                                                            make_daemon):
    """Temps were swept only at start-up: one left by a writer killed after
    that stayed for the daemon's whole life. The periodic sweep (every 5
    minutes) also runs at each SIGHUP, the trigger this test uses."""
    api.serve("org_a", "inst_1", pki.ca("ca-sweep"))
    d = make_daemon([inst("org_a", "inst_1")])
    d.start()
    try:
        wait_for(lambda: d.file("inst_1").exists(), 10, "the first file")
        gone = subprocess.Popen(["true"])
        gone.wait()
        stale = d.cert_dir / f".inst_1.crt.tmp-{gone.pid}-0-1"
        stale.write_text("half a cert")
        os.utime(stale, (time.time() - 120, time.time() - 120))
        d.signal(signal.SIGHUP)
        d.wait_log("removed 1 temp file(s) left in")
        assert not stale.exists()
        assert d.file("inst_1").exists()
    finally:
        assert d.stop() == 0


def test_daemon_picks_up_a_rotation_and_logs_it(api, pki, make_daemon):
    old, new = pki.ca("ca-old"), pki.ca("ca-new")
    api.serve("org_a", "inst_1", old)
    d = make_daemon([inst("org_a", "inst_1")], refresh_interval="300ms", jitter=0)
    d.start()
    wait_for(lambda: d.file("inst_1").exists() and d.file("inst_1").read_text() == old.read_text())
    api.serve("org_a", "inst_1", new)
    both = new.read_text() + old.read_text()  # the previous CA stays for rotation.keep_previous
    wait_for(lambda: d.file("inst_1").read_text() == both, 10, "the rotated CA")
    d.wait_log(f"inst_1: CA changed at {d.file('inst_1')}: old sha256={pki.fingerprint(old)} "
               f"new sha256={pki.fingerprint(new)}")
    assert d.stop() == 0
    assert d.output().count("CA changed") == 1, "logged once per change"


def test_retry_after_is_honoured(api, make_daemon):
    d = make_daemon([inst("org_fault", "busy")])
    d.start()
    uri = API_PATH.format(org="org_fault", id="busy")
    wait_for(lambda: len(api.requests(uri)) >= 2, 10, "a retry")
    first, second = api.requests(uri)[:2]
    assert second[0] - first[0] >= 2.9, "retried before Retry-After: 3 had passed"
    assert d.output().count("refresh failed") == 1, "an identical failure is logged once"


def test_sighup_reloads_and_a_bad_config_keeps_the_old_one(api, pki, make_daemon):
    ca_one, ca_two = pki.ca("ca-one"), pki.ca("ca-two")
    api.serve("org_a", "inst_1", ca_one)
    api.serve("org_b", "inst_2", ca_two)
    d = make_daemon([inst("org_a", "inst_1")], refresh_interval="300ms", jitter=0)
    d.start()
    wait_for(lambda: d.file("inst_1").exists())

    d.write_config([inst("org_a", "inst_1"), inst("org_b", "inst_2")], refresh_interval="300ms",
                   jitter=0)
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.file("inst_2").exists(), 10, "the added instance")
    d.wait_log("reloaded: 2 instance(s); added inst_2")

    d.config.write_text(d.config.read_text().replace('"cert_dir"', '"cert_dri"'))
    d.signal(signal.SIGHUP)
    d.wait_log("reload failed, still running the previous configuration")
    assert f"{d.config}:" in d.output() and "cert_dri: unknown key" in d.output()
    # Still running the old config: a rotation is still picked up.
    new = pki.ca("ca-one-next")
    api.serve("org_a", "inst_1", new)
    wait_for(lambda: d.file("inst_1").read_text().startswith(new.read_text()), 10,
             "rotation after bad reload")
    assert d.proc.poll() is None


def test_sighup_during_the_start_up_scan_of_existing_files(api, pki, make_daemon):
    # At start the daemon reads the files already in place, one by one, off
    # the event loop; a reload that replaces the instance list meanwhile
    # must not pull the list from under that scan (a use after free, which
    # ASan reports). The API stalls, so no refresh ends during the scan.
    stall = socket.create_server(("127.0.0.1", 0))
    api_url = f"https://localhost:{stall.getsockname()[1]}"
    names = [f"i{n}" for n in range(3000)]
    d = make_daemon([inst("org_a", n) for n in names], api={"url": api_url, "timeout": "30s"})
    d.cert_dir.mkdir()
    pem = pki.ca("scan-ca").read_text()
    for n in names:
        (d.cert_dir / f"{n}.crt").write_text(pem)
    more = names + [f"j{n}" for n in range(3000)]
    d.start("--log-level", "debug")
    d.wait_log("reading 3000 existing file(s)")
    d.write_config([inst("org_a", n) for n in more], api={"url": api_url, "timeout": "30s"})
    d.signal(signal.SIGHUP)
    d.wait_log("read the existing files", timeout=60)
    d.wait_log("reloaded: 6000 instance(s); added j0,", timeout=60)
    out = d.output()
    assert out.index("reloaded: 6000") < out.index("read the existing files"), "reloaded mid-scan"
    assert d.stop() == 0
    stall.close()


def test_no_core_dump_can_hold_the_token(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("ca-one"))
    d = make_daemon([inst("org_a", "inst_1")])
    d.start()
    wait_for(lambda: d.file("inst_1").exists())
    limits = pathlib.Path(f"/proc/{d.proc.pid}/limits").read_text()
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"], core


def test_sigterm_stops_within_two_seconds_leaving_no_temp_files(api, pki, make_daemon):
    ca = pki.ca("ca-one")
    api.serve("org_fault", "slow", body='{"ca.crt": "' + "x" * 4000 + '"}')
    names = [f"i{n}" for n in range(20)]
    for n in names:
        api.serve("org_a", n, ca)
    d = make_daemon([inst("org_a", n) for n in names] + [inst("org_fault", "slow")],
                    api={"timeout": "30s"})
    d.start()
    wait_for(lambda: all(d.file(n).exists() for n in names), 10, "the healthy files")
    started = time.monotonic()
    d.signal(signal.SIGTERM)  # the slow request is still in flight
    d.proc.wait(10)
    # The daemon aborted the request instead of waiting out its 1.5 s grace;
    # the wall clock, generous for a loaded machine, shows no 30 s wait.
    assert "exiting anyway" not in d.output(), d.output()
    assert time.monotonic() - started < 5
    assert d.proc.returncode == 0
    assert sorted(os.listdir(d.cert_dir)) == sorted(f"{n}.crt" for n in names)


def test_token_file_rotation_needs_no_restart(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("ca-one"))
    d = make_daemon([inst("org_a", "inst_1")], token="expired.token.x", refresh_interval="300ms",
                    retry={"min": "100ms", "max": "200ms"})
    d.start()
    d.wait_log("HTTP 401: Unauthorized")
    tmp = d.token_file.with_suffix(".new")
    tmp.write_text(OTHER_TOKEN + "\n")
    os.replace(tmp, d.token_file)
    wait_for(lambda: d.file("inst_1").exists(), 10, "a refresh with the rotated token")
    d.wait_log("inst_1: recovered after")
    assert "expired.token.x" not in d.output() and OTHER_TOKEN not in d.output()


def test_check_config_and_exit_codes(api, make_daemon, tmp_path):
    d = make_daemon([inst("org_a", "inst_1"),
                     inst("org_a", "inst_2", name="eu", host="db.example.com", port=6432)],
                    discover=[{"provider": "tembo", "org": "org_d", "control_plane": api.url}])
    r = subprocess.run([str(BINARY), "--config", str(d.config), "--check-config"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "OK, 2 instance(s), 1 discover entry" in r.stdout
    # What will happen, one line each (it said "OK, 0 instance(s)" for a
    # discover-only config, and nothing about URLs or files).
    lines = r.stdout.splitlines()[1:]
    path = "/api/v1/orgs/org_a/instances/{}/secrets/certificate"
    assert lines[0] == (f"  inst_1: tembo, CA from {api.url}{path.format('inst_1')}, "
                        f"file {d.cert_dir}/inst_1.crt, live check none (no host)")
    assert lines[1] == (f"  eu: tembo, CA from {api.url}{path.format('inst_2')}, "
                        f"file {d.cert_dir}/eu.crt, live check db.example.com:6432")
    assert lines[2] == (f"  discover tembo:org_d: lists {api.url}/api/v1/orgs/org_d/instances "
                        f"every 10m, files in {d.cert_dir}")

    bad = tmp_path / "bad.yaml"
    bad.write_text("api:\n  url: https://x\n  token_env: T\ninstances:\n  - org: a\n    id: b\n    nmae: c\n")
    for mode in ("--check-config", "--once"):
        r = subprocess.run([str(BINARY), "--config", str(bad), mode], capture_output=True, text=True)
        assert r.returncode == 2, mode
        assert f"{bad}:7:5: instances[0].nmae: unknown key" in r.stderr, r.stderr
    # With --log-format json, a config mistake is one JSON line naming file,
    # line and key, for the daemon, --once and --check-config alike: what a
    # log collector (Kubernetes) shows instead of a line it cannot parse.
    for mode in ("--check-config", "--once", None):
        cmd = [str(BINARY), "--config", str(bad), "--log-format", "json"] + ([mode] if mode else [])
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, mode
        lines = r.stderr.splitlines()
        assert len(lines) == 1, r.stderr
        record = json.loads(lines[0])
        assert record["level"] == "error"
        assert record["key"] == "instances[0].nmae" and record["line"] == "7"
        assert record["config"] == str(bad)
        assert record["msg"].startswith(f"{bad}:7:5: instances[0].nmae: unknown key")
    r = subprocess.run([str(BINARY), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown argument '--bogus'" in r.stderr
    r = subprocess.run([str(BINARY), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("rootcertd ")


def test_json_log_lines_all_parse(api, pki, make_daemon):
    import json
    api.serve("org_a", "inst_1", pki.ca("ca-one"))
    d = make_daemon([inst("org_a", "inst_1"), inst("org_a", "missing")])
    r = d.once("--log-format", "json")
    lines = r.stderr.splitlines()
    assert len(lines) >= 3
    records = [json.loads(line) for line in lines]
    assert {"ts", "level", "msg"} <= set(records[0])
    assert any("Secret not found" in rec["msg"] and rec["level"] == "error" for rec in records)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_keeps_the_old_file(api, pki, make_daemon, tmp_path):
    old = pki.ca("ca-one")
    api.serve("org_a", "inst_1", old)
    d = make_daemon([inst("org_a", "inst_1")])
    d.cert_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d.cert_dir)], check=True)
    try:
        assert d.once().returncode == 0
        fd = os.open(d.cert_dir / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill the disk to the last byte
            while os.write(fd, b"\0" * 512):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        api.serve("org_a", "inst_1", pki.ca("ca-rotated"))
        r = d.once()
        assert r.returncode == 1
        assert "No space left on device" in r.stderr, r.stderr
        assert d.file("inst_1").read_text() == old.read_text()
        assert sorted(os.listdir(d.cert_dir)) == ["filler", "inst_1.crt"]
    finally:
        subprocess.run(["umount", str(d.cert_dir)], check=True)


def test_installed_file_lets_psql_verify_full(api, pki, make_daemon):
    instance_ca = pki.ca("tembo-instance-ca", "Tembo Instance CA")
    server = pki.leaf("pg-server", instance_ca, "DNS:localhost,IP:127.0.0.1", "localhost")
    api.serve("org_a", "inst_1", instance_ca)
    pg = Postgres(*server)
    try:
        d = make_daemon([inst("org_a", "inst_1")])
        wrong = d.dir / "wrong.crt"
        wrong.write_text(pki.ca("unrelated-ca").read_text())
        refused = pg.psql_verify_full(wrong)
        assert refused.returncode != 0 and "certificate verify failed" in refused.stderr
        assert d.once().returncode == 0
        ok = pg.psql_verify_full(d.file("inst_1"))
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == "1"
    finally:
        pg.stop()


def test_a_token_file_others_can_read_is_warned_about_once_without_the_token(api, pki, make_daemon):
    ca = pki.ca("ca-one")
    names = [f"inst_{i}" for i in range(5)]
    for name in names:
        api.serve("org_a", name, ca)
    d = make_daemon([{"org": "org_a", "id": name} for name in names])
    assert "open to others or group-writable" not in d.once().stderr
    d.token_file.chmod(0o644)
    r = d.once()
    assert r.returncode == 0
    # One token, one warning: not one per instance sharing it.
    assert r.stderr.count(f"token file {d.token_file} is open to others or group-writable (mode 0644)") == 1
    assert d.token_file.read_text().strip() not in r.stderr


def test_once_names_each_failed_instance_and_an_unreachable_live_check_fails_it(api, pki,
                                                                               make_daemon):
    """--once said "refreshed 0/5 instance(s)" naming none, and an unreachable
    live-check host was silent (exit 0)."""
    ca = pki.ca("ca-summary")
    api.serve("org_a", "good", ca)
    api.serve("org_a", "noserver", ca)
    closed = free_port()  # nothing listens: the live check cannot reach it
    d = make_daemon([inst("org_a", "good"), inst("org_a", "missing"),
                     {**inst("org_a", "noserver"), "host": "127.0.0.1", "port": closed}])
    r = d.once()
    assert r.returncode == 1, r.stderr
    assert "refreshed 1/3 instance(s) in " in r.stderr and "; failed:" in r.stderr
    lines = [line.split(" ", 2)[2] for line in r.stderr.splitlines() if " failed: " in line]
    assert any(line.startswith("failed: missing: GET /api/v1/orgs/org_a/instances/missing/") and
               "HTTP 404" in line for line in lines), r.stderr
    assert any(line.startswith("failed: noserver: live check: ") for line in lines), r.stderr
    assert not any(line.startswith("failed: good") for line in lines)
    assert d.file("noserver").exists(), "the file was still written: the API is the source"
