"""Faults the daemon must survive without ever leaving a client a broken file."""
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from fault_server import FaultServer
from harness import BINARY, GOOD_TOKEN, free_port, serve_fleet, wait_for, with_mounts

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, other users)")


def test_kill_9_at_random_moments_never_leaves_a_broken_file(api, pki, make_daemon):
    a, b = pki.ca("k9-a").read_text(), pki.ca("k9-b").read_text()
    names = [f"i{n}" for n in range(60)]

    def serve(pem):
        body = json.dumps({"ca.crt": pem})
        for n in names:
            api.serve("org_a", n, body=body)

    serve(a)
    d = make_daemon([{"org": "org_a", "id": n} for n in names], refresh_interval="20ms", jitter=0,
                    rotation={"keep_previous": "0"})
    rng = random.Random(20261128)  # reproducible kill moments
    rewrites = 0
    writes = ("installed CA", "CA changed")
    for round_ in range(12):
        d.start()
        # The kill window opens only once this daemon is writing (a slower,
        # sanitized build takes longer to get there). Serving the opposite of
        # what the first file holds guarantees there is something to write.
        first = d.file(names[0])
        serve(b if first.exists() and first.read_text() == a else a)
        wait_for(lambda: any(w in d.output() for w in writes), 30, "the daemon writing")
        # Keep the files changing: the API flips between two CAs every ~20 ms.
        for flip in range(rng.randint(2, 12)):
            serve(a if (round_ + flip) % 2 == 0 else b)
            time.sleep(0.02)
        d.proc.send_signal(signal.SIGKILL)  # at whatever point the rewrites are
        d.proc.wait()
        for n in names:
            f = d.file(n)
            if f.exists():
                assert f.read_text() in (a, b), f"round {round_}: {f.name} is not a whole bundle"
        rewrites += sum(d.output().count(w) for w in writes)
    # Each round waited for its daemon to write before the kill; a loaded
    # machine writes fewer times between the flips.
    assert rewrites >= 12 * 5, f"only {rewrites} rewrites: the kills did not land amid writes"
    serve(a)
    # The killed daemons' temp files are removed once provably stale: their
    # writers are gone and a minute has passed (here: made an hour old).
    hour_ago = time.time() - 3600
    for p in d.cert_dir.iterdir():
        if ".tmp-" in p.name:
            os.utime(p, (hour_ago, hour_ago))
    r = d.once()
    assert r.returncode == 0, r.stderr
    assert all(d.file(n).read_text() == a for n in names)
    assert not [p for p in os.listdir(d.cert_dir) if ".tmp-" in p], "temp files cleaned at start"


@ROOT_ONLY
def test_unwritable_cert_dir_keeps_the_old_file(api, pki):
    root = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-eacces-"))
    try:
        root.chmod(0o755)
        certs = root / "certs"
        certs.mkdir()  # owned by root, 0755: not writable by the daemon's user
        (certs / "inst_1.crt").write_text(pki.ca("eacces-old").read_text())
        (root / "token").write_text(GOOD_TOKEN)
        (root / "token").chmod(0o644)
        shutil.copy(api.trust, root / "api-ca.pem")
        api.serve("org_a", "inst_1", pki.ca("eacces-new"))
        (root / "cfg.yaml").write_text(
            f"api: {{url: '{api.url}', token_file: {root}/token, ca_file: {root}/api-ca.pem}}\n"
            f"cert_dir: {certs}\nstate_dir: /tmp/rootcertd-eacces-state-{os.getpid()}\n"
            "instances: [{org: org_a, id: inst_1}]\n")
        r = subprocess.run(["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups",
                            str(BINARY), "--config", str(root / "cfg.yaml"), "--once"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        assert f"create temp file in {certs}: Permission denied" in r.stderr, r.stderr
        assert (certs / "inst_1.crt").read_text() == pki.ca("eacces-old").read_text()
        assert os.listdir(certs) == ["inst_1.crt"]
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(f"/tmp/rootcertd-eacces-state-{os.getpid()}", ignore_errors=True)


@ROOT_ONLY
def test_read_only_filesystem_keeps_the_old_file(api, pki, make_daemon):
    old = pki.ca("erofs-old")
    api.serve("org_a", "inst_1", old)
    d = make_daemon([{"org": "org_a", "id": "inst_1"}])
    d.cert_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d.cert_dir)], check=True)
    try:
        assert d.once().returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(d.cert_dir)], check=True)
        api.serve("org_a", "inst_1", pki.ca("erofs-new"))
        r = d.once()
        assert r.returncode == 1
        assert "Read-only file system" in r.stderr, r.stderr
        assert d.file("inst_1").read_text() == old.read_text()
    finally:
        subprocess.run(["umount", str(d.cert_dir)], check=True)


def test_cert_dir_replaced_by_a_file_is_a_clear_start_error(api, pki, make_daemon):
    d = make_daemon([{"org": "org_a", "id": "inst_1"}])
    d.cert_dir.write_text("not a directory")
    r = d.once()
    assert r.returncode == 1
    assert f"cert_dir: create {d.cert_dir}" in r.stderr or f"{d.cert_dir} is not a directory" in r.stderr, r.stderr
    assert d.cert_dir.read_text() == "not a directory"


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind missing")
@pytest.mark.skipif("asan" in str(BINARY), reason="valgrind and ASan do not mix")
def test_valgrind_finds_no_errors_or_leaks_in_once(api, pki, make_daemon):
    api.serve("org_a", "inst_1", pki.ca("vg-ca"))
    d = make_daemon([{"org": "org_a", "id": "inst_1"}, {"org": "org_a", "id": "missing"}])
    r = subprocess.run(["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
                        "--error-exitcode=99", str(BINARY), "--config", str(d.config), "--once"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr[-3000:]  # 1: the missing instance, not 99: valgrind
    assert "ERROR SUMMARY: 0 errors" in r.stderr, r.stderr[-3000:]
    assert "definitely lost: 0 bytes" in r.stderr or "All heap blocks were freed" in r.stderr
    assert d.file("inst_1").exists()


@pytest.fixture
def faults(api, pki):
    server = FaultServer(*pki.leaf("api-localhost", api.trust, "DNS:localhost,IP:127.0.0.1",
                                   "localhost"))
    yield server
    server.stop()


@pytest.mark.parametrize("fault, reason", [
    ("reset", "read response:"),
    ("badchunk", "read response: bad chunk"),
    ("short", "read response: connection closed before the response was complete"),
    ("long", "response is not JSON"),
    ("hugeheader", "response header exceeds 16384 bytes"),
    ("stall", "TLS handshake with https://localhost:"),
    ("stall", "timed out (budget 1000 ms)"),
])
def test_protocol_faults_are_named_and_keep_the_old_file(faults, pki, make_daemon, fault, reason):
    port = faults.stall_port if fault == "stall" else faults.port
    d = make_daemon([{"org": "org_f", "id": fault, "api_url": f"https://localhost:{port}"}],
                    api={"timeout": "1s"})
    d.cert_dir.mkdir()
    good = pki.ca("fault-old").read_text()
    d.file(fault).write_text(good)
    started = time.monotonic()
    r = d.once()
    assert time.monotonic() - started < 15, "bounded by api.timeout (the 1 s budget is named below)"
    assert r.returncode == 1
    assert reason in r.stderr, r.stderr
    assert f"GET /api/v1/orgs/org_f/instances/{fault}/secrets/certificate" in r.stderr
    assert d.file(fault).read_text() == good
    assert os.listdir(d.cert_dir) == [f"{fault}.crt"]


def test_a_body_ended_by_the_connection_is_whole(faults, pki, make_daemon):
    ca = pki.ca("eof-ca").read_text()
    faults.ca_json = json.dumps({"ca.crt": ca}).encode()
    d = make_daemon([{"org": "org_f", "id": "eofbody",
                      "api_url": f"https://localhost:{faults.port}"}])
    r = d.once()
    assert r.returncode == 0, r.stderr
    assert d.file("eofbody").read_text() == ca


def test_a_kept_connection_the_server_closed_is_retried_on_a_new_one(faults, pki, make_daemon):
    ca = pki.ca("kept-ca").read_text()
    faults.ca_json = json.dumps({"ca.crt": ca}).encode()
    url = f"https://localhost:{faults.port}"
    d = make_daemon([{"org": "org_f", "id": "keptclosed", "name": "first", "api_url": url},
                     {"org": "org_f", "id": "keptclosed", "name": "second", "api_url": url}],
                    concurrency=1)
    r = d.once()
    assert r.returncode == 0, r.stderr
    assert d.file("first").read_text() == ca and d.file("second").read_text() == ca
    assert faults.accepted == 2, "one new connection for the retry, no more"


def test_a_file_changed_by_someone_else_is_restored_at_the_next_refresh(api, pki, make_daemon):
    ca = pki.ca("tamper-ca")
    api.serve("org_a", "inst_1", ca)
    d = make_daemon([{"org": "org_a", "id": "inst_1", "name": "prod"}], refresh_interval="200ms",
                    jitter=0)
    d.start()
    path = d.file("prod")
    wait_for(path.exists, 10, "the first file")
    good = path.read_bytes()
    edits = {
        "garbage": lambda: path.write_text("not a certificate\n"),
        "truncated": lambda: path.write_bytes(good[: len(good) // 2]),
        "emptied": lambda: path.write_bytes(b""),
        "deleted": path.unlink,
        "chmod 0600": lambda: path.chmod(0o600),
    }
    for what, edit in edits.items():
        edit()
        wait_for(lambda: path.exists() and path.read_bytes() == good
                 and path.stat().st_mode & 0o777 == 0o644, 10, f"the {what} file restored")
    d.stop()
    out = d.output()
    # The stranger's bytes are never kept as a "previous CA" nor break the refresh.
    assert "refresh failed" not in out
    assert "CA changed" not in out
    assert out.count("something other than rootcertd had changed it (not a valid bundle)") == 3
    assert path.read_bytes() == good


def relay(port, target_port):
    """From now on, PORT forwards each connection to TARGET_PORT: an API that comes back."""
    server = socket.create_server(("127.0.0.1", port))

    def pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve():
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_an_unreachable_api_is_logged_once_and_its_return_once(api, pki, make_daemon):
    names = serve_fleet(api, pki.ca("ca-one"), "org_a", 5)
    port = free_port()  # nothing listens there yet
    url = f"https://localhost:{port}"
    d = make_daemon([{"org": "org_a", "id": n} for n in names], api={"url": url})

    r = d.once()
    assert r.returncode == 1
    assert r.stderr.count("refresh failed") == 1, r.stderr
    assert f"on {url}: connect to {url}: Connection refused" in r.stderr, "names the request"
    assert f"5 instance(s) could not reach {url}" in r.stderr, r.stderr

    def warnings():
        return [line for line in d.output().splitlines() if " warning " in line]

    d.start("--log-level", "debug")
    d.wait_log("refresh failed", count=10)  # every instance, about twice: one of them a warning
    assert len(warnings()) == 1 and "refresh failed" in warnings()[0], d.output()
    server = relay(port, api.port)
    try:
        wait_for(lambda: all(d.file(n).exists() for n in names), 15, "every file")
        d.wait_log(f"{url} answers again after")
    finally:
        server.close()
    out = d.output()
    assert len(warnings()) == 1, out
    assert out.count("answers again") == 1, out
    assert "recovered after" not in out, out


@pytest.fixture
def silent_dns(tmp_path):
    """A resolv.conf whose name server never answers: a UDP socket on
    loopback that reads nothing. Use it through with_mounts."""
    # An address of its own in 127/8, so that runs side by side do not meet.
    address = f"127.53.{random.randrange(256)}.{random.randrange(1, 255)}"
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((address, 53))
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {address}\n")
    yield [(resolv, "/etc/resolv.conf")]
    server.close()


@ROOT_ONLY
def test_a_name_that_never_resolves_delays_no_other_instance(api, pki, make_daemon, silent_dns):
    # The first instance's API name goes to the silent server; the second's
    # (localhost, from /etc/hosts) must not wait behind it.
    api.serve("org_a", "inst_1", pki.ca("dns-ca"))
    slow_api = f"https://api.slow.test:{api.port}"
    d = make_daemon([{"org": "org_a", "id": "stuck", "api_url": slow_api},
                     {"org": "org_a", "id": "inst_1"}], api={"connect_timeout": "1s"})
    r = subprocess.run(with_mounts(silent_dns, [BINARY, "--config", d.config, "--once"]),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert d.file("inst_1").exists(), r.stderr
    assert "inst_1: refresh failed" not in r.stderr, r.stderr
    assert "resolve api.slow.test: timed out" in r.stderr, r.stderr


@ROOT_ONLY
def test_sigterm_ends_a_daemon_whose_server_name_never_resolves(api, pki, make_daemon, silent_dns):
    # The live check's lookup of the PostgreSQL host is under way (for up to
    # connect_timeout, 30 s) when SIGTERM comes: it is abandoned at once.
    api.serve("org_a", "inst_1", pki.ca("dns-ca"))
    d = make_daemon([{"org": "org_a", "id": "inst_1", "host": "db.slow.test"}],
                    api={"connect_timeout": "30s"})
    d.log_handle = open(d.log, "w")
    d.proc = subprocess.Popen(with_mounts(silent_dns, [BINARY, "--config", d.config]),
                              stdout=d.log_handle, stderr=subprocess.STDOUT)
    wait_for(lambda: d.file("inst_1").exists(), 10, "the file, then the live check")
    started = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.proc.wait(10) == 0
    took = time.monotonic() - started
    assert "exiting anyway" not in d.output(), d.output()
    assert took < 5, f"stopped {took:.1f} s after SIGTERM"
