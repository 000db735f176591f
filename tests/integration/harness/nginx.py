"""nginx over TLS playing the APIs: Tembo's (FakeApi, with faults) and every
provider's (ProviderApis)."""
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

from .common import *  # noqa: F401,F403
from .pki import Pki  # noqa: F401

def start_nginx(directory, log_format, access_log, connections, http_body):
    """Writes DIRECTORY/nginx.conf (one worker in the foreground, JSON by
    default, temp files in DIRECTORY/tmp, LOG_FORMAT to ACCESS_LOG) around
    HTTP_BODY, and starts nginx on it."""
    # As root, the worker would drop to nobody and not reach pytest's 0700 tmp tree.
    user = "user root;" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    log_format t '{log_format}';
    access_log {access_log} t;
    client_body_temp_path {directory}/tmp; proxy_temp_path {directory}/tmp;
    fastcgi_temp_path {directory}/tmp; uwsgi_temp_path {directory}/tmp; scgi_temp_path {directory}/tmp;
    default_type application/json;
{http_body}
}}
""")
    (directory / "tmp").mkdir()
    return subprocess.Popen(["nginx", "-c", str(directory / "nginx.conf"), "-p", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


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
        self.proc = start_nginx(
            self.dir, "$msec $connection $connection_requests $status $uri $ssl_session_reused",
            self.access_log, 1024, f"""
    keepalive_requests 10000;
    map_hash_bucket_size 128;
    map $http_authorization $authorized {{
        "Bearer {GOOD_TOKEN}" 1;
        "Bearer {OTHER_TOKEN}" 1;
        "Bearer {LONG_JWT}" 1;
        default 0;
    }}
    {servers}""")
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
        t = PROVIDER_TOKENS
        self.proc = start_nginx(self.dir, "$status $request_uri $has_auth $http_if_none_match",
                                self.access_log, 256, f"""
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
    }}""")
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


def serve_fleet(api, ca, org, count):
    """Serves CA for instances i0 .. i<COUNT-1> of ORG; returns their ids."""
    ids = [f"i{n}" for n in range(count)]
    for i in ids:
        api.serve(org, i, ca)
    return ids
