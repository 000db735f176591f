"""Metrics, health and status endpoints, JSON logs, hooks and token expiry, against the binary."""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest

from harness import free_port, http_get, http_status, jwt, parse_metrics, wait_for


def key(metric, **labels):
    return (metric, frozenset(labels.items()))


def inst_labels(name, org="org_a", id=None):
    return {"name": name, "org": org, "id": id or name}


@pytest.fixture
def observed(api, pki, make_daemon):
    """A daemon with metrics on, one healthy instance and one whose secret is missing."""
    port = free_port()
    ca = pki.ca("obs-ca")
    api.serve("org_a", "inst_1", ca)
    d = make_daemon([{"org": "org_a", "id": "inst_1"}, {"org": "org_a", "id": "missing"}],
                    metrics={"listen": f"127.0.0.1:{port}"}, refresh_interval="300ms", jitter=0,
                    retry={"min": "100ms", "max": "300ms"})
    d.start()
    wait_for(lambda: d.file("inst_1").exists(), 10, "the first file")
    d.port, d.ca = port, ca
    return d


def scrape(d):
    status, headers, body = http_get(d.port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return body, parse_metrics(body)


def test_metrics_match_what_is_served(observed, api, pki):
    d = observed
    body, m = scrape(d)
    build = [(dict(labels), v) for (name, labels), v in m.items() if name == "rootcertd_build_info"]
    assert len(build) == 1 and build[0][1] == 1 and build[0][0]["version"]
    ok = inst_labels("inst_1")
    assert m[key("rootcertd_refresh_total", result="success", **ok)] >= 1
    assert m[key("rootcertd_cert_changes_total", **ok)] == 1
    end = subprocess.run(["openssl", "x509", "-in", str(d.ca), "-noout", "-enddate"],
                         capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    not_after = time.mktime(time.strptime(end, "%b %d %H:%M:%S %Y GMT")) - time.timezone
    assert m[key("rootcertd_cert_not_after_timestamp_seconds", **ok)] == pytest.approx(not_after, abs=1)
    assert m[key("rootcertd_last_success_timestamp_seconds", **ok)] == pytest.approx(time.time(), abs=30)
    wait_for(lambda: scrape(d)[1].get(key("rootcertd_refresh_total", result="failure",
                                          **inst_labels("missing")), 0) >= 2, 10, "failures counted")
    _, m = scrape(d)
    assert m[key("rootcertd_consecutive_failures", **inst_labels("missing"))] >= 2
    assert key("rootcertd_cert_not_after_timestamp_seconds", **inst_labels("missing")) not in m
    assert m[("rootcertd_refresh_duration_seconds_count", frozenset())] >= 3

    api.serve("org_a", "inst_1", pki.ca("obs-ca-next"))
    wait_for(lambda: scrape(d)[1][key("rootcertd_cert_changes_total", **ok)] == 2, 10, "the rotation")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus) missing")
def test_promtool_accepts_the_exposition(observed, tmp_path):
    body, _ = scrape(observed)
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_readyz_is_503_until_every_instance_has_a_file(observed, api, pki):
    d = observed
    status, _, body = http_get(d.port, "/readyz")
    assert status == 503
    assert "1 instance(s) without a valid CA file: missing" in body
    api.serve("org_a", "missing", pki.ca("obs-late-ca"))
    wait_for(lambda: http_status(d.port, "/readyz") == 200, 10, "ready")
    assert http_get(d.port, "/livez")[0] == 200
    assert http_get(d.port, "/healthz")[0] == 200


def test_status_document(observed, pki):
    d = observed
    # The file is renamed into place before the refresh that wrote it ends
    # and records it: on a loaded machine /status may not have it yet.
    wait_for(lambda: pki.fingerprint(d.ca) in http_get(d.port, "/status")[2], 10, "the record")
    status, headers, body = http_get(d.port, "/status")
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    by_name = {i["name"]: i for i in doc["instances"]}
    good = by_name["inst_1"]
    assert good["org"] == "org_a" and good["id"] == "inst_1"
    assert good["file"] == str(d.file("inst_1"))
    assert good["fingerprint"] == pki.fingerprint(d.ca)
    assert good["last_error"] is None and good["last_success"] and good["next_refresh"]
    assert good["not_after"].endswith("Z")
    assert "HTTP 404: Secret not found" in by_name["missing"]["last_error"]
    assert doc["ready"] is False


def test_other_paths_and_methods(observed):
    assert http_get(observed.port, "/nope")[0] == 404
    status, headers, _ = http_get(observed.port, "/metrics", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, _, body = http_get(observed.port, "/metrics", method="HEAD")
    assert status == 200 and body == ""


def test_endpoints_survive_malformed_slow_and_excess_clients(observed):
    port = observed.port
    # Malformed requests get a 400 and a close.
    for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\x01\x02\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(garbage)
            assert s.recv(100).startswith(b"HTTP/1.1 400")
    # Oversize headers get a 431.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 431")
    # A slow client dribbling a request does not hold up others.
    slow = socket.create_connection(("127.0.0.1", port), timeout=5)
    slow.sendall(b"GET /metr")
    for _ in range(5):
        assert http_get(port, "/livez")[0] == 200
    # 200 idle connections (the cap is 64) do not lock a probe out: each new
    # connection takes the place of the oldest idle one.
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
    for _ in range(5):
        assert http_get(port, "/livez")[0] == 200
    closed = 0
    for s in idle[:200 - 64]:  # the oldest
        s.settimeout(2)
        try:
            closed += s.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            closed += 1
    assert closed >= 200 - 64, "the oldest idle connections were not closed"
    for s in idle + [slow]:
        s.close()
    wait_for(lambda: http_status(port, "/livez") == 200, 10, "service after the burst")
    assert observed.proc.poll() is None


def test_json_logs_carry_structured_fields_and_never_the_token(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("json-ca"))
    d = make_daemon([{"org": "org_a", "id": "inst_1"}, {"org": "org_a", "id": "missing"}])
    r = d.once("--log-format", "json")
    records = [json.loads(line) for line in r.stderr.splitlines()]
    assert all({"ts", "level", "msg"} <= set(rec) for rec in records)
    installed = next(rec for rec in records if "installed CA" in rec["msg"])
    assert (installed["name"], installed["org"], installed["id"]) == ("inst_1", "org_a", "inst_1")
    assert installed["fingerprint"] == pki.fingerprint(pki.ca("json-ca"))
    assert d.token_file.read_text().strip() not in r.stderr

    d.start("--log-format", "json")
    d.wait_log("refresh failed")
    d.stop()
    failure = next(json.loads(line) for line in d.output().splitlines() if "refresh failed" in line)
    assert failure["level"] == "warning" and failure["status"] == "404"
    assert failure["name"] == "missing" and "Secret not found" in failure["error"]


def write_hook(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_hook_runs_once_per_change_with_its_environment(api, pki, make_daemon, tmp_path):
    """A change runs the hook; a failed run is retried with the retry backoff
    (it was not: a consumer missed the change for good) until one succeeds;
    unchanged refreshes run nothing."""
    calls = tmp_path / "calls"
    hook = write_hook(tmp_path / "hook.sh",
                      f'echo "$ROOTCERTD_NAME $ROOTCERTD_PATH $ROOTCERTD_SHA256" >> {calls}\n'
                      f'env > {tmp_path}/env.$$\necho hello-from-hook\necho oops >&2\n'
                      f'[ -e {tmp_path}/failed-once ] && exit 0\n'
                      f'touch {tmp_path}/failed-once\nexit 3\n')
    first, second = pki.ca("hook-ca"), pki.ca("hook-ca-next")
    api.serve("org_a", "inst_1", first)
    port = free_port()
    d = make_daemon([{"org": "org_a", "id": "inst_1", "name": "prod"}], refresh_interval="200ms",
                    jitter=0, on_change={"command": [hook], "timeout": "5s"},
                    metrics={"listen": f"127.0.0.1:{port}"},
                    api={"token_file": None, "token_env": "ROOTCERTD_TEST_TOKEN"})
    env = {**os.environ, "ROOTCERTD_TEST_TOKEN": d.token_file.read_text().strip()}
    d.start(env=env)
    d.wait_log("hook: hello-from-hook")
    d.wait_log("hook: oops")
    d.wait_log("on_change " + hook + " exited 3; retrying in 100ms")
    d.wait_log("on_change " + hook + " exited 0")
    labels = inst_labels("prod", id="inst_1")

    def metric(name, **extra):
        return parse_metrics(http_get(port, "/metrics")[2]).get(key(name, **labels, **extra), 0)

    # Five unchanged refreshes later, still the failed run and its retry.
    wait_for(lambda: metric("rootcertd_refresh_total", result="success") >= 6, 10, "refreshes")
    run = f"prod {d.file('prod')} {pki.fingerprint(first)}"
    assert calls.read_text().splitlines() == [run, run]
    assert metric("rootcertd_hook_runs_total", result="failure") == 1
    assert metric("rootcertd_hook_runs_total", result="success") == 1
    api.serve("org_a", "inst_1", second)
    wait_for(lambda: len(calls.read_text().splitlines()) == 3, 10, "the next change's hook run")
    assert calls.read_text().splitlines()[2] == f"prod {d.file('prod')} {pki.fingerprint(second)}"
    for env_file in tmp_path.glob("env.*"):
        text = env_file.read_text()
        assert "ROOTCERTD_TEST_TOKEN" not in text and env["ROOTCERTD_TEST_TOKEN"] not in text


def test_a_hanging_hook_is_killed_and_refreshes_go_on(api, pki, make_daemon, tmp_path):
    marker = "61.4321"
    hook = write_hook(tmp_path / "hang.sh", f"sleep {marker} &\nwait\n")
    api.serve("org_a", "inst_1", pki.ca("hang-ca"))
    api.serve("org_a", "inst_2", pki.ca("hang-other"))
    # retry.min 1h: the killed hook's retry is due long after this test.
    d = make_daemon([{"org": "org_a", "id": "inst_1", "on_change": {"command": [hook], "timeout": "700ms"}},
                     {"org": "org_a", "id": "inst_2"}], refresh_interval="200ms", jitter=0,
                    retry={"min": "1h", "max": "1h"})
    d.start()
    wait_for(lambda: subprocess.run(["pgrep", "-f", f"sleep {marker}"]).returncode == 0, 10,
             "the hook's child")
    # While the hook hangs, other refreshes still happen.
    rotated = pki.ca("hang-other-next")
    api.serve("org_a", "inst_2", rotated)
    wait_for(lambda: d.file("inst_2").read_text().startswith(rotated.read_text()), 10, "a rotation")
    d.wait_log("on_change " + hook + " killed after 700 ms")
    wait_for(lambda: subprocess.run(["pgrep", "-f", f"sleep {marker}"]).returncode != 0, 5,
             "the whole process group gone")
    assert d.output().count("on_change") == 1, "no re-fetch loop, no second run"
    d.wait_log("on_change " + hook + " killed after 700 ms; retrying in 60m")


def test_token_expiry_is_exported_and_warned(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("tok-ca"))
    port = free_port()
    exp = int(time.time()) + 3 * 86400
    d = make_daemon([{"org": "org_a", "id": "inst_1"}], token=jwt(exp),
                    metrics={"listen": f"127.0.0.1:{port}"})
    d.start()
    d.wait_log("the API token expires")
    key = ("rootcertd_token_expiry_timestamp_seconds", frozenset())
    # The warning is logged as the token is read; the metric once the refresh ends.
    wait_for(lambda: key in parse_metrics(http_get(port, "/metrics")[2]), 10, "the expiry metric")
    assert parse_metrics(http_get(port, "/metrics")[2])[key] == exp


def test_a_401_with_an_expired_token_says_so(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("tok-ca"))
    d = make_daemon([{"org": "org_a", "id": "inst_1"}], token=jwt(int(time.time()) - 3600))
    r = d.once()
    assert r.returncode == 1
    assert "HTTP 401: Unauthorized (the API token expired" in r.stderr


def test_the_token_reaches_no_log_metric_status_or_process_title(observed):
    token = observed.token_file.read_text().strip()
    observed.wait_log("refresh failed")  # an error path has run as well
    served = [http_get(observed.port, path)[2] for path in ("/metrics", "/status", "/readyz")]
    pid = observed.proc.pid
    titles = [pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode()]
    titles += [p.read_text() for p in pathlib.Path(f"/proc/{pid}/task").glob("*/comm")]
    assert "rootcertd" in titles[0] and "\0--config\0" in titles[0]
    for text in [observed.output(), *served, *titles]:
        assert token not in text
        assert token.split(".")[1] not in text, "not even the JWT's payload"


def test_once_exits_1_when_a_hook_failed(api, pki, make_daemon, tmp_path):
    """A failed on_change left --once exiting 0: a timer unit never told."""
    hook = write_hook(tmp_path / "fail.sh", "exit 4\n")
    api.serve("org_a", "inst_1", pki.ca("hook-once"))
    d = make_daemon([{"org": "org_a", "id": "inst_1", "on_change": {"command": [hook]}}])
    r = d.once()
    assert r.returncode == 1, r.stderr
    assert f"on_change {hook} exited 4" in r.stderr and "retrying" not in r.stderr
    assert d.file("inst_1").exists()


def test_a_hook_that_ignores_sigterm_does_not_outlive_the_daemon(api, pki, make_daemon, tmp_path):
    """Stopping sends running hooks SIGTERM, then SIGKILL 500 ms later; the
    loop could stop before that was due and leave the hook running."""
    pid_file = tmp_path / "hook.pid"
    hook = write_hook(tmp_path / "stubborn.sh",
                      f"trap '' TERM\necho $$ > {pid_file}\nexec sleep 30\n")
    api.serve("org_a", "inst_1", pki.ca("hook-stubborn"))
    d = make_daemon([{"org": "org_a", "id": "inst_1",
                      "on_change": {"command": [hook], "timeout": "60s"}}])
    d.start()
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 10, "the hook")
    pid = int(pid_file.read_text())
    assert d.stop() == 0

    def running():  # a zombie waiting for its reaper counts as gone
        try:
            return pathlib.Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
        except (FileNotFoundError, IndexError):
            return False
    wait_for(lambda: not running(), 5, "the hook gone with the daemon")
