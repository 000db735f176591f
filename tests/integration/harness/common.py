"""What every harness module uses: paths, tokens, polling, HTTP and metrics helpers."""
import base64
import json
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[3]
BINARY = pathlib.Path(os.environ.get("ROOTCERTD_BIN", ROOT / "build" / "rootcertd"))
GOOD_TOKEN = "eyJhbGciOiJIUzI1NiJ9.test-token-value.sig"
OTHER_TOKEN = "eyJhbGciOiJIUzI1NiJ9.rotated-token.sig"
API_PATH = "/api/v1/orgs/{org}/instances/{id}/secrets/certificate"

# Hermetic: every peer is on loopback, and only the proxy tests choose a proxy.
for _var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY",
             "no_proxy", "NO_PROXY"):
    os.environ.pop(_var, None)


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, what="condition"):
    """Polls an observable outcome (a file, a log line, a port) until it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


_PEAK_RSS = """
import os, subprocess, sys, time
start = time.monotonic()
proc = subprocess.Popen(sys.argv[1:], stderr=subprocess.PIPE)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
took = time.monotonic() - start
sys.stderr.buffer.write(err)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, took)
"""


def measured_run(cmd, env=None):
    """Runs CMD; returns (exit code, peak RSS in KiB, wall seconds, stderr).

    Linux carries a parent's peak RSS across fork and exec, so CMD is started
    from a fresh, small interpreter rather than from this one; the wall time
    is CMD's own, from its start to its exit, without that interpreter's."""
    r = subprocess.run([sys.executable, "-c", _PEAK_RSS, *map(str, cmd)], capture_output=True,
                       text=True, timeout=120, env=env)
    code, kib, took = r.stdout.split()
    return int(code), int(kib), float(took), r.stderr


def peak_rss(cmd, env=None):
    """Runs CMD; returns (exit code, peak RSS in KiB, stderr)."""
    code, kib, _, stderr = measured_run(cmd, env)
    return code, kib, stderr


def with_mounts(binds, cmd):
    """CMD run in a private mount namespace where each (source, target) of
    BINDS is bind-mounted: a machine's /etc files as a test needs them,
    without touching the real ones. Needs root (CI runs as root)."""
    mounts = " && ".join(f"mount --bind '{src}' '{dst}'" for src, dst in binds)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'{mounts} && exec "$@"', "sh", *map(str, cmd)]


def jwt(exp):
    """An unsigned-looking JWT whose payload carries EXP (seconds since the epoch)."""
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': 'test', 'exp': exp})}.c2ln"


# A JWT the fake API accepts, expiring in 2100: its expiry is exported.
LONG_JWT = jwt(4102444800)


def http_get(port, path, method="GET", timeout=5):
    """(status, headers, body) of one request to 127.0.0.1:PORT."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        conn.close()


def http_status(port, path):
    """The status of GET PATH, or None when the connection failed (for
    waiting on an endpoint: a reset or refused connection is "not yet")."""
    import http.client
    try:
        return http_get(port, path)[0]
    except (OSError, http.client.HTTPException):
        return None


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} from Prometheus text format."""
    import re
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, f"not an exposition line: {line!r}"
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out
