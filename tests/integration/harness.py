"""Real peers for the integration tests: PKI from the openssl CLI, nginx over
TLS playing Tembo's data-plane API, PostgreSQL with TLS, and the daemon."""
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

ROOT = pathlib.Path(__file__).resolve().parents[2]
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


class Pki:
    """Certificate authorities and leaves made with the openssl CLI."""

    def __init__(self, directory):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def ca(self, name, cn=None, days=30):
        key, crt = self.dir / f"{name}.key", self.dir / f"{name}.crt"
        if not crt.exists():
            run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", str(key), "-out", str(crt), "-days", str(days),
                "-subj", f"/CN={cn or name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return crt

    def ca_between(self, name, start, end):
        """A self-signed CA valid from START to END ('YYYYMMDDHHMMSSZ'), which may
        be in the past (expired) or the future (not valid yet)."""
        crt = self.dir / f"{name}.crt"
        if crt.exists():
            return crt
        work = self.dir / f"{name}.ca"
        (work / "db").mkdir(parents=True)
        (work / "db" / "index.txt").write_text("")
        (work / "db" / "serial").write_text("01\n")
        (work / "ca.cnf").write_text(
            f"[ca]\ndefault_ca = d\n[d]\ndir = {work}\ndatabase = {work}/db/index.txt\n"
            f"serial = {work}/db/serial\nnew_certs_dir = {work}/db\ndefault_md = sha256\n"
            "policy = p\nx509_extensions = e\n[p]\ncommonName = supplied\n"
            "[e]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n")
        key, csr = self.dir / f"{name}.key", work / "req.csr"
        run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
        run("openssl", "ca", "-batch", "-config", str(work / "ca.cnf"), "-selfsign", "-keyfile",
            str(key), "-in", str(csr), "-out", str(crt), "-startdate", start, "-enddate", end,
            "-notext")
        return crt

    def leaf(self, name, ca, sans, cn=None):
        """A server certificate for SANS (e.g. 'DNS:localhost,IP:127.0.0.1') signed by CA."""
        key, csr, crt = (self.dir / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        if not crt.exists():
            ext = self.dir / f"{name}.ext"
            ext.write_text(f"subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\n"
                           "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
            run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn or name}")
            run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca),
                "-CAkey", str(ca.with_suffix(".key")), "-CAcreateserial", "-out", str(crt),
                "-days", "30", "-extfile", str(ext))
        return crt, key

    @staticmethod
    def fingerprints(pem_text):
        """SHA-256 of each certificate in PEM_TEXT, in order."""
        import re
        blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem_text,
                            re.S)
        return [Pki.fingerprint(b + "\n") for b in blocks]

    @staticmethod
    def fingerprint(crt):
        """SHA-256 of a certificate given as a path or as text holding PEM."""
        pem = crt if isinstance(crt, str) else pathlib.Path(crt).read_text()
        out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=pem,
                             capture_output=True, text=True).stdout
        return out.strip().split("=", 1)[1].replace(":", "").lower() if "=" in out else None


NGINX_FAULTS = """
location = /api/v1/orgs/org_fault/instances/busy/secrets/certificate {
    add_header Retry-After 3 always;
    return 503 '"Service temporarily unavailable"';
}
location = /api/v1/orgs/org_fault/instances/moved/secrets/certificate {
    return 302 https://elsewhere.example/steal;
}
location = /api/v1/orgs/org_fault/instances/slow/secrets/certificate {
    limit_rate 16;
    try_files /org_fault/slow.json =500;
}
location = /api/v1/orgs/org_fault/instances/huge/secrets/certificate {
    try_files /org_fault/huge.json =500;
}
location = /api/v1/orgs/org_fault/instances/html/secrets/certificate {
    default_type text/html;
    return 200 '<html><body>maintenance</body></html>';
}
location ~ "^/api/v1/orgs/org_err/instances/" {
    return 500 '"Internal server error"';
}
location ~ "^/api/v1/orgs/org_oneshot/instances/(?<oneshot>[A-Za-z0-9_]+)/secrets/certificate$" {
    keepalive_requests 1;
    try_files /org_oneshot/$oneshot.json =404;
}
location ~ "^/api/v1/orgs/org_slow/instances/(?<slow>[A-Za-z0-9_]+)/secrets/certificate$" {
    limit_rate 2k;
    try_files /org_slow/$slow.json =404;
}
location ~ "^/api/v1/orgs/(?<org>[A-Za-z0-9_]+)/instances/(?<inst>[A-Za-z0-9_]+)/secrets/certificate$" {
    try_files /$org/$inst.json =404;
}
# Tembo's control plane: the instances of an org.
location ~ "^/api/v1/orgs/(?<org>[A-Za-z0-9_]+)/instances$" {
    try_files /control-plane/$org.json =404;
}
location = /nginx_status {
    stub_status;
}
location @not_found {
    return 404 '"Secret not found"';
}
"""


class FakeApi:
    """nginx over TLS serving per-instance JSON files behind a Bearer check.

    Three servers: `url` (trusted, right name), `untrusted_url` (self-signed),
    `wrong_host_url` (trusted CA, certificate for another name)."""

    def __init__(self, directory, pki):
        self.dir = pathlib.Path(directory)
        self.data = self.dir / "data"
        self.data.mkdir(parents=True)
        self.pki = pki
        self.trust = pki.ca("api-ca", "Test API CA")
        good = pki.leaf("api-localhost", self.trust, "DNS:localhost,IP:127.0.0.1", "localhost")
        wrong = pki.leaf("api-other", self.trust, "DNS:other.example", "other.example")
        rogue_ca = pki.ca("rogue-ca", "Rogue CA")
        rogue = pki.leaf("api-rogue", rogue_ca, "DNS:localhost,IP:127.0.0.1", "localhost")
        self.port, self.untrusted_port, self.wrong_port = free_port(), free_port(), free_port()
        self.url = f"https://localhost:{self.port}"
        self.untrusted_url = f"https://localhost:{self.untrusted_port}"
        self.wrong_host_url = f"https://localhost:{self.wrong_port}"
        self.access_log = self.dir / "access.log"
        (self.dir / "faults.conf").write_text(NGINX_FAULTS)
        servers = "".join(self._server(port, crt, key) for port, (crt, key) in
                          ((self.port, good), (self.untrusted_port, rogue),
                           (self.wrong_port, wrong)))
        # As root, the worker would drop to nobody and not reach pytest's 0700 tmp tree.
        user = "user root;" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format t '$msec $connection $connection_requests $status $uri $ssl_session_reused';
    access_log {self.access_log} t;
    client_body_temp_path {self.dir}/tmp; proxy_temp_path {self.dir}/tmp;
    fastcgi_temp_path {self.dir}/tmp; uwsgi_temp_path {self.dir}/tmp; scgi_temp_path {self.dir}/tmp;
    default_type application/json;
    keepalive_requests 10000;
    map_hash_bucket_size 128;
    map $http_authorization $authorized {{
        "Bearer {GOOD_TOKEN}" 1;
        "Bearer {OTHER_TOKEN}" 1;
        "Bearer {LONG_JWT}" 1;
        default 0;
    }}
    {servers}
}}
""")
        (self.dir / "tmp").mkdir()
        self.proc = subprocess.Popen(["nginx", "-c", str(self.dir / "nginx.conf"),
                                      "-p", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for port in (self.port, self.untrusted_port, self.wrong_port):
            wait_for(lambda: self._up(port), 10, f"nginx on port {port}")

    def _up(self, port):
        if self.proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()}")
        return self._listening(port)

    def _server(self, port, crt, key):
        return f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        root {self.data};
        error_page 404 = @not_found;
        if ($authorized = 0) {{ return 401 '"Unauthorized"'; }}
        include {self.dir}/faults.conf;
    }}"""

    @staticmethod
    def _listening(port):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def serve(self, org, inst, pem=None, body=None):
        """Serves {"ca.crt": PEM}, or BODY verbatim; replaced atomically."""
        path = self.data / org / f"{inst}.json"
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(body if body is not None else json.dumps({"ca.crt": pathlib.Path(pem).read_text()}))
        os.replace(tmp, path)

    def requests(self, uri=None):
        """Access-log entries: (msec, connection, connection_requests, status, uri,
        'r' when the TLS session was resumed, else '.')."""
        if not self.access_log.exists():
            return []
        rows = [line.split() for line in self.access_log.read_text().splitlines()]
        rows = [(float(r[0]), int(r[1]), int(r[2]), int(r[3]), r[4], r[5])
                for r in rows if len(r) == 6]
        return [r for r in rows if uri is None or r[4] == uri]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


# The secrets each provider's nginx location accepts, as its documentation
# says they are sent.
PROVIDER_TOKENS = {"aiven": "aiven-token-1", "digitalocean": "dop_v1_token",
                   "cloudsql": "ya29.gcp-new", "crunchybridge": "cbkey_123",
                   "vault": "hvs.vault-token", "ubicloud": "pat-ubicloud-token",
                   "ibmcloud": "iam-access-token-ibm"}

PROVIDER_LOCATIONS = """
# Aiven: GET /v1/project/{project}/kms/ca, "Authorization: aivenv1 TOKEN"
location ~ "^/v1/project/(?<project>[^/]+)/kms/ca$" {
    if ($aiven_ok = 0) { return 403 '{"errors":[{"message":"Invalid token","status":403}],"message":"Invalid token"}'; }
    try_files /aiven/$project.json =404;
}
# DigitalOcean: GET /v2/databases/{uuid}/ca, Bearer
location ~ "^/v2/databases/(?<cluster>[^/]+)/ca$" {
    if ($do_ok = 0) { return 401 '{"id":"Unauthorized","message":"Unable to authenticate you"}'; }
    try_files /digitalocean/$cluster.json =404;
}
# Cloud SQL Admin: GET /v1/projects/{p}/instances/{i}/listServerCas, Bearer
location ~ "^/v1/projects/(?<project>[^/]+)/instances/(?<inst>[^/]+)/listServerCas$" {
    if ($gcp_ok = 0) { return 401 '{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}'; }
    try_files /cloudsql/$project/$inst.json =404;
}
# Cloud SQL Admin: GET /v1/projects/{p}/instances/{i}/connectSettings (connect.get), Bearer:
# serverCaCert.cert, where instances in a CAS server CA mode publish their CA
location ~ "^/v1/projects/(?<project>[^/]+)/instances/(?<inst>[^/]+)/connectSettings$" {
    if ($gcp_ok = 0) { return 401 '{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}'; }
    try_files /cloudsql-connect/$project/$inst.json =404;
}
# Crunchy Bridge: GET /teams/{team}.pem, Bearer, raw PEM
location ~ "^/teams/(?<team>[^/]+)\\.pem$" {
    if ($cb_ok = 0) { return 401 '{"message":"unauthorized"}'; }
    default_type application/x-pem-file;
    try_files /crunchybridge/$team.pem =404;
}
# Amazon RDS trust store: GET /{region}/{region}-bundle.pem, public
location ~ "^/(?<region>[a-z0-9-]+)/(?<region2>[a-z0-9-]+)-bundle\\.pem$" {
    if ($http_authorization != "") { return 400 'an Authorization header was sent'; }
    default_type application/x-pem-file;
    try_files /rds/$region.pem =404;
}
# Ubicloud: GET /project/{project}/location/{location}/postgres/{name or ubid}/ca-certificates,
# Bearer, raw PEM (application/x-pem-file), 404 when it has none
location ~ "^/project/(?<project>[^/]+)/location/(?<loc>[^/]+)/postgres/(?<db>[^/]+)/ca-certificates$" {
    if ($ubi_ok = 0) { return 401 '{"error":{"code":401,"type":"InvalidCredentials","message":"invalid JWT format or claim in Authorization header"}}'; }
    default_type application/x-pem-file;
    try_files /ubicloud/$project/$loc/$db.pem =404;
}
# IBM Cloud Databases: GET /v4/ibm/deployments/{CRN, percent-encoded}/users/{user}/
# connections/{public|private}, Bearer IAM token. Matched on the raw request
# URI ($ibm_file): nginx decodes $uri, and the CRN's %2F must stay encoded.
location /v4/ibm/deployments/ {
    if ($ibm_ok = 0) { return 401 '{"errors":"Unauthorized"}'; }
    if ($ibm_file = "") { return 404 '{"errors":"Not Found"}'; }
    try_files $ibm_file =404;
}
# A Vault-like custom source: X-Vault-Token, JSON
location = /v1/pki/ca {
    if ($vault_ok = 0) { return 403 '{"errors":["permission denied"]}'; }
    try_files /vault/ca.json =404;
}
# Cloud SQL Admin: GET /v1/projects/{p}/instances, paged with pageToken
location ~ "^/v1/projects/(?<project>[^/]+)/instances$" {
    if ($gcp_ok = 0) { return 401 '{"error":{"code":401,"status":"UNAUTHENTICATED"}}'; }
    try_files /cloudsql-list/$project/$sql_page.json =404;
}
# DigitalOcean: GET /v2/databases, paged with page (links.pages.next)
location = /v2/databases {
    if ($do_ok = 0) { return 401 '{"id":"Unauthorized","message":"Unable to authenticate you"}'; }
    try_files /digitalocean-list/$do_page.json =404;
}
# The hub: a rootcertd's cert_dir as static files, with nginx's validators.
location /certs/ {
    etag on;
    if_modified_since exact;
    default_type application/x-pem-file;
    alias HUB/;
}
"""


class ProviderApis:
    """nginx over TLS playing each provider's CA endpoint as its documentation
    shows it: paths, authorization and bodies; and a hub serving a cert_dir."""

    def __init__(self, directory, pki):
        self.dir = pathlib.Path(directory)
        self.data = self.dir / "data"
        self.data.mkdir(parents=True)
        self.hub = self.dir / "hub"  # a symlink to the hub daemon's cert_dir
        self.trust = pki.ca("providers-ca", "Test Providers CA")
        crt, key = pki.leaf("providers-localhost", self.trust, "DNS:localhost,IP:127.0.0.1",
                            "localhost")
        self.port = free_port()
        self.url = f"https://localhost:{self.port}"
        self.access_log = self.dir / "access.log"
        user = "user root;" if os.geteuid() == 0 else ""
        t = PROVIDER_TOKENS
        (self.dir / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format t '$status $request_uri $has_auth $http_if_none_match';
    access_log {self.access_log} t;
    client_body_temp_path {self.dir}/tmp; proxy_temp_path {self.dir}/tmp;
    fastcgi_temp_path {self.dir}/tmp; uwsgi_temp_path {self.dir}/tmp; scgi_temp_path {self.dir}/tmp;
    default_type application/json;
    map $http_authorization $has_auth {{ "" "-"; default "auth"; }}
    map $http_authorization $aiven_ok {{ "aivenv1 {t['aiven']}" 1; default 0; }}
    map $http_authorization $do_ok {{ "Bearer {t['digitalocean']}" 1; default 0; }}
    map $http_authorization $gcp_ok {{ "Bearer {t['cloudsql']}" 1; default 0; }}
    map $http_authorization $cb_ok {{ "Bearer {t['crunchybridge']}" 1; default 0; }}
    map $http_x_vault_token $vault_ok {{ "{t['vault']}" 1; default 0; }}
    map $http_authorization $ubi_ok {{ "Bearer {t['ubicloud']}" 1; default 0; }}
    map $http_authorization $ibm_ok {{ "Bearer {t['ibmcloud']}" 1; default 0; }}
    map $request_uri $ibm_file {{
        "~^/v4/ibm/deployments/(?<d>[A-Za-z0-9%._~-]+)/users/(?<u>[A-Za-z0-9_.-]+)/connections/(?<e>public|private)$" "/ibmcloud/$d/$u-$e.json";
        default "";
    }}
    map $arg_pageToken $sql_page {{ "" first; default $arg_pageToken; }}
    map $arg_page $do_page {{ "" 1; default $arg_page; }}
    server {{
        listen 127.0.0.1:{self.port} ssl;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        root {self.data};
        # Provider APIs are dynamic: no validators. Only the hub has them.
        etag off;
        if_modified_since off;
        {PROVIDER_LOCATIONS.replace("HUB", str(self.hub))}
    }}
}}
""")
        (self.dir / "tmp").mkdir()
        self.proc = subprocess.Popen(["nginx", "-c", str(self.dir / "nginx.conf"),
                                      "-p", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: self._up(), 10, f"nginx on port {self.port}")

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()}")
        return FakeApi._listening(self.port)

    def put(self, relative, content):
        """Serves CONTENT (text or bytes) at data/RELATIVE; replaced atomically."""
        path = self.data / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(content if isinstance(content, bytes) else content.encode())
        os.replace(tmp, path)

    def requests(self, uri=None):
        """Access-log entries: (status, uri, 'auth' or '-', If-None-Match or '-')."""
        if not self.access_log.exists():
            return []
        rows = [line.split(" ", 3) for line in self.access_log.read_text().splitlines()]
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows if uri is None or r[1] == uri]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class NotifySocket:
    """Plays systemd's side of $NOTIFY_SOCKET: records every datagram."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path.startswith("@"):
            self.sock.bind("\0" + path[1:])
        else:
            self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.path = path
        self.messages = []  # (monotonic time, {key: value})

    def drain(self):
        try:
            while True:
                data = self.sock.recv(4096).decode()
                fields = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
                self.messages.append((time.monotonic(), fields))
        except (socket.timeout, BlockingIOError):
            pass
        return self.messages

    def wait(self, key, value=None, after=0, timeout=10):
        def seen():
            return next((f for t, f in self.drain() if t > after and key in f
                         and (value is None or f[key] == value)), None)
        return wait_for(seen, timeout, f"{key}={value or '*'} on the notify socket")


def serve_fleet(api, ca, org, count):
    """Serves CA for instances i0 .. i<COUNT-1> of ORG; returns their ids."""
    ids = [f"i{n}" for n in range(count)]
    for i in ids:
        api.serve(org, i, ca)
    return ids


class Daemon:
    """The built binary, run with a generated config; its stderr is kept."""

    def __init__(self, directory, server, instances, token=GOOD_TOKEN, **settings):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True)
        self.cert_dir = self.dir / "certs"
        self.token_file = self.dir / "token"
        self.token_file.write_text(token + "\n")
        self.token_file.chmod(0o600)  # as a careful operator would
        self.config = self.dir / "rootcertd.yaml"
        self.log = self.dir / "rootcertd.log"
        self.server = server
        self.proc = None
        self.write_config(instances, **settings)

    def write_config(self, instances, **settings):
        api = {"url": self.server.url, "token_file": str(self.token_file),
               "ca_file": str(self.server.trust), "timeout": "5s"}
        extra = settings.pop("api", {})
        cfg = {"cert_dir": str(self.cert_dir), "state_dir": str(self.dir / "state"),
               "refresh_interval": "1h",
               "retry": {"min": "100ms", "max": "1s"}}
        if extra is not None:  # api=None: a fleet without Tembo has no api section
            api.update(extra)
            cfg["api"] = api
        cfg.update(settings)
        cfg["instances"] = instances
        # JSON is YAML: no dependency on a YAML writer.
        self.config.write_text(json.dumps(cfg, indent=2))

    def file(self, name):
        return self.cert_dir / f"{name}.crt"

    def once(self, *extra, timeout=60, env=None):
        return subprocess.run([str(BINARY), "--config", str(self.config), "--once", *extra],
                              capture_output=True, text=True, timeout=timeout, env=env)

    def start(self, *extra, env=None):
        self.log_handle = open(self.log, "w")
        self.proc = subprocess.Popen([str(BINARY), "--config", str(self.config), *extra],
                                     stdout=self.log_handle, stderr=subprocess.STDOUT, env=env)
        return self

    def output(self):
        return self.log.read_text() if self.log.exists() else ""

    def wait_log(self, text, timeout=10.0, count=1):
        return wait_for(lambda: self.output().count(text) >= count, timeout, f"log line {text!r}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=5):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None


class ConnectionLoop:
    """A client connecting with verify-full about every 100 ms, recording each outcome."""

    def __init__(self, pg, rootcert):
        self.pg, self.rootcert = pg, rootcert
        self.results = []  # (monotonic time, ok, stderr)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            r = self.pg.psql_verify_full(self.rootcert)
            self.results.append((time.monotonic(), r.returncode == 0, r.stderr.strip()))
            self._stop.wait(0.1)

    def successes_after(self, t):
        return sum(1 for at, ok, _ in self.results if ok and at > t)

    def failures(self):
        return [(at, err) for at, ok, err in self.results if not ok]

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        return self.results


class Postgres:
    """A throwaway PostgreSQL cluster with TLS on a loopback port."""

    BIN = pathlib.Path("/usr/lib/postgresql/15/bin")

    def __init__(self, server_crt, server_key):
        # Outside pytest's 0700 tmp tree: the server may run as another user.
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-pg-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "pgdata"
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self.as_user = ["runuser", "-u", "postgres", "--"]
        if self.as_user:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._install_certificate(server_crt, server_key)
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.dir}'\nssl = on\n"
                       f"ssl_cert_file = '{self.dir}/server.crt'\n"
                       f"ssl_key_file = '{self.dir}/server.key'\n")
        (self.data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 trust\n"
                                               "local all all trust\n")
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "pg.log"), "-w", "start")

    def _install_certificate(self, server_crt, server_key):
        for src, name in ((server_crt, "server.crt"), (server_key, "server.key")):
            shutil.copy(src, self.dir / name)
            if self.as_user:
                pw = pwd.getpwnam("postgres")
                os.chown(self.dir / name, pw.pw_uid, pw.pw_gid)
        (self.dir / "server.key").chmod(0o600)

    def use_certificate(self, server_crt, server_key):
        """Switches the server to a new certificate (a reload, no restart) and
        returns once the server presents it."""
        self._install_certificate(server_crt, server_key)
        self._pg("pg_ctl", "-D", str(self.data), "reload")
        wanted = Pki.fingerprint(server_crt)
        wait_for(lambda: self.presented_fingerprint() == wanted, 10, "the reloaded certificate")

    def presented_fingerprint(self):
        """SHA-256 of the certificate the server presents in its TLS handshake."""
        hello = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                                f"127.0.0.1:{self.port}"], input="", capture_output=True,
                               text=True, timeout=10)
        return Pki.fingerprint(hello.stdout)

    def _pg(self, tool, *args):
        return run(*self.as_user, str(self.BIN / tool), *args)

    def psql_verify_full(self, rootcert, host="localhost"):
        """Connects with sslmode=verify-full; returns the completed process."""
        dsn = (f"host={host} port={self.port} user=postgres dbname=postgres "
               f"sslmode=verify-full sslrootcert={rootcert} connect_timeout=5")
        return self.psql(dsn)

    @staticmethod
    def psql(dsn, env=None):
        return subprocess.run(["psql", dsn, "-Atc", "select 1"], capture_output=True, text=True,
                              timeout=30, env=env)

    def stop(self):
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class Tinyproxy:
    """Debian's tinyproxy on a free loopback port; BASIC_AUTH is (user, password)."""

    def __init__(self, directory, basic_auth=None):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.dir / "tinyproxy.log"
        auth = f"BasicAuth {basic_auth[0]} {basic_auth[1]}" if basic_auth else ""
        (self.dir / "tinyproxy.conf").write_text(f"""
Port {self.port}
Listen 127.0.0.1
Timeout 30
LogFile "{self.log}"
LogLevel Connect
MaxClients 100
{auth}
""")
        self.proc = subprocess.Popen(["tinyproxy", "-d", "-c", str(self.dir / "tinyproxy.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: FakeApi._listening(self.port), 10, "tinyproxy")

    def connects(self):
        """The CONNECT request lines tinyproxy logged, e.g. 'CONNECT localhost:443 HTTP/1.1'."""
        text = self.log.read_text() if self.log.exists() else ""
        return [line.split("): ", 1)[1] for line in text.splitlines()
                if "Request (file descriptor" in line]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Recorder:
    """A TCP relay to TARGET_PORT that keeps every byte the client sent, to
    prove what crossed the wire in clear text."""

    def __init__(self, target_port):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.sent = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, src, dst, record):
        try:
            while data := src.recv(65536):
                if record:
                    with self.lock:
                        self.sent += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def client_bytes(self):
        with self.lock:
            return bytes(self.sent)

    def stop(self):
        self.listener.close()
