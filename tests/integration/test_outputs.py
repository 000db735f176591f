"""outputs: one file for consumers that read one CA file (PgBouncer, libpq's
root.crt) or a truststore (the JVM), proven with those consumers."""
import json
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from harness import BINARY, Pki, Postgres, free_port, http_get, parse_metrics, wait_for

LOCAL = "DNS:localhost,IP:127.0.0.1"
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
JDBC = pathlib.Path("/usr/share/java/postgresql.jar")


def shared_dir():
    """A directory the postgres user can read (pytest's tmp tree is 0700)."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-out-"))
    d.chmod(0o755)
    if os.geteuid() == 0:  # PgBouncer writes its log there
        pw = pwd.getpwnam("postgres")
        os.chown(d, pw.pw_uid, pw.pw_gid)
    return d


def tembo(inst, **extra):
    return {"org": "org_a", "id": inst, **extra}


def certs_of(path):
    return Pki.fingerprints(pathlib.Path(path).read_text())


@pytest.fixture
def two(pki, api, request):
    """Two instances under different CAs, each served by the API."""
    tag = request.node.name
    cas = {"a": pki.ca(f"{tag}-a", "Instance A CA"), "b": pki.ca(f"{tag}-b", "Instance B CA")}
    api.serve("org_a", "inst_a", cas["a"])
    api.serve("org_a", "inst_b", cas["b"])
    return cas


def test_a_pem_output_holds_every_members_ca_and_keeps_a_failing_members(two, api, make_daemon):
    out = {"name": "bundle", "instances": ["inst_a", "inst_b"]}
    d = make_daemon([tembo("inst_a"), tembo("inst_b")], outputs=[out])
    for flag in ("--check-config", "--list-instances"):
        shown = subprocess.run([str(BINARY), "--config", str(d.config), flag],
                               capture_output=True, text=True, timeout=30)
        assert shown.returncode == 0, shown.stderr
        assert "bundle" in shown.stdout and "inst_a,inst_b" in shown.stdout, shown.stdout
    r = d.once()
    assert r.returncode == 0, r.stderr
    bundle = d.cert_dir / "bundle.pem"
    assert certs_of(bundle) == [Pki.fingerprint(two["a"]), Pki.fingerprint(two["b"])]
    assert "output bundle: wrote" in r.stderr
    mtime = bundle.stat().st_mtime_ns
    assert d.once().returncode == 0
    assert bundle.stat().st_mtime_ns == mtime, "unchanged content is not rewritten"

    # inst_b's API fails: its last good CA stays in the bundle.
    api.serve("org_a", "inst_b", body="oops")
    r = d.once()
    assert r.returncode == 1
    assert certs_of(bundle) == [Pki.fingerprint(two["a"]), Pki.fingerprint(two["b"])]

    # inst_b leaves the configuration: it leaves the bundle at the next write.
    d.write_config([tembo("inst_a")], outputs=[{"name": "bundle", "instances": ["inst_a"]}])
    r = d.once()
    assert r.returncode == 0, r.stderr
    assert certs_of(bundle) == [Pki.fingerprint(two["a"])]
    assert "removed " + Pki.fingerprint(two["b"]) in r.stderr


def test_an_output_is_first_written_when_every_member_has_a_file(two, api, make_daemon):
    api.serve("org_a", "inst_b", body="oops")
    d = make_daemon([tembo("inst_a"), tembo("inst_b")],
                    outputs=[{"name": "bundle", "select": {"name": "inst_*"}}])
    r = d.once()
    assert r.returncode == 1
    assert not (d.cert_dir / "bundle.pem").exists()
    assert "waiting for the file of 1 of 2 member(s) (inst_b)" in r.stderr


def test_outputs_in_the_daemon_one_write_per_burst_status_and_metrics(two, pki, api, tmp_path,
                                                                      make_daemon):
    runs = tmp_path / "runs"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$ROOTCERTD_NAME $ROOTCERTD_FORMAT $ROOTCERTD_PATH" >> {runs}\n')
    hook.chmod(0o755)
    port = free_port()
    out = {"name": "all", "select": {"provider": "tembo"}, "on_change": {"command": [str(hook)]}}
    d = make_daemon([tembo("inst_a"), tembo("inst_b")], outputs=[out], refresh_interval="300ms",
                    jitter=0, metrics={"listen": f"127.0.0.1:{port}"})
    d.start()
    bundle = d.cert_dir / "all.pem"
    wait_for(lambda: runs.exists(), 10, "the first write's hook")
    assert runs.read_text() == f"all pem {bundle}\n"
    # Both instances rotate at once: one write, one hook run.
    new_a, new_b = pki.ca("burst-a2", "A v2"), pki.ca("burst-b2", "B v2")
    api.serve("org_a", "inst_a", new_a)
    api.serve("org_a", "inst_b", new_b)
    want = {Pki.fingerprint(c) for c in (two["a"], two["b"], new_a, new_b)}
    wait_for(lambda: set(certs_of(bundle)) == want, 10, "both rotations in the bundle")
    wait_for(lambda: len(runs.read_text().splitlines()) == 2, 10, "the second hook run")
    status = json.loads(http_get(port, "/status")[2])
    [entry] = status["outputs"]
    assert entry["members"] == ["inst_a", "inst_b"] and entry["certificates"] == 4
    assert entry["path"] == str(bundle) and entry["last_change"]
    metrics = parse_metrics(http_get(port, "/metrics")[2])
    label = frozenset({("output", "all")})
    assert metrics[("rootcertd_output_certificates", label)] == 4
    assert metrics[("rootcertd_output_writes_total", label | {("result", "success")})] == 2
    assert ("rootcertd_output_last_change_timestamp_seconds", label) in metrics
    assert d.output().count("output all: wrote") == 2
    assert len(runs.read_text().splitlines()) == 2, "one hook run per burst"


def test_libpq_default_root_crt_is_a_pem_output(two, pki, api, make_daemon, tmp_path):
    """Clients that never set sslrootcert read ~/.postgresql/root.crt."""
    home = tmp_path / "home"
    (home / ".postgresql").mkdir(parents=True)
    out = {"name": "root", "path": str(home / ".postgresql" / "root.crt"),
           "instances": ["inst_a", "inst_b"]}
    d = make_daemon([tembo("inst_a"), tembo("inst_b")], outputs=[out])
    assert d.once().returncode == 0
    servers = [Postgres(*pki.leaf(f"root-{k}", two[k], LOCAL, "localhost")) for k in "ab"]
    try:
        for pg in servers:
            r = Postgres.psql(f"host=localhost port={pg.port} user=postgres dbname=postgres "
                              "sslmode=verify-full", env={**os.environ, "HOME": str(home)})
            assert r.returncode == 0, r.stderr
    finally:
        for pg in servers:
            pg.stop()


class PgBouncer:
    """Debian's PgBouncer (as user postgres: it refuses root) in front of SERVERS,
    verifying them with server_tls_ca_file = CA_FILE."""

    def __init__(self, directory, servers, ca_file):
        self.dir, self.port = directory, free_port()
        dbs = "".join(f"db{i} = host=localhost port={pg.port} dbname=postgres user=postgres\n"
                      for i, pg in enumerate(servers))
        ini = directory / f"pgbouncer-{self.port}.ini"
        ini.write_text(
            f"[databases]\n{dbs}[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = trust\nauth_file = {directory}/users.txt\n"
            "admin_users = postgres\npool_mode = transaction\n"
            # New server connections all the time: each verifies against the file.
            "server_lifetime = 1\nserver_idle_timeout = 1\n"
            # A RELOAD closes connections being opened; retry them at once.
            "server_login_retry = 1\n"
            # A client waiting for a server that never verifies gets an error.
            "query_wait_timeout = 3\n"
            f"server_tls_sslmode = verify-full\nserver_tls_ca_file = {ca_file}\n"
            f"logfile = {directory}/pgbouncer-{self.port}.log\n")
        (directory / "users.txt").write_text('"postgres" ""\n')
        cmd = [PGBOUNCER, str(ini)]
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for f in (ini, directory / "users.txt"):
                os.chown(f, pw.pw_uid, pw.pw_gid)
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.query("pgbouncer", "SHOW VERSION").returncode == 0, 10,
                 "pgbouncer listening")

    def query(self, db, sql):
        return subprocess.run(["psql", f"host=127.0.0.1 port={self.port} dbname={db} "
                               "user=postgres connect_timeout=5", "-Atc", sql],
                              capture_output=True, text=True, timeout=30)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


class QueryLoop:
    """A client querying each database through PgBouncer every 100 ms."""

    def __init__(self, bouncer, dbs):
        self.bouncer, self.dbs, self.results = bouncer, dbs, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            for db in self.dbs:
                try:
                    r = self.bouncer.query(db, "select 1")
                    ok, err = r.returncode == 0, r.stderr.strip()
                except subprocess.TimeoutExpired:
                    ok, err = False, "timed out"
                self.results.append((time.monotonic(), db, ok, err))
            self._stop.wait(0.1)

    def ok_after(self, t):
        return sum(1 for at, _, ok, _ in self.results if ok and at > t)

    def failures(self):
        return [(db, err) for _, db, ok, err in self.results if not ok]

    def stop(self):
        self._stop.set()
        self._thread.join(60)


def test_pgbouncer_through_a_rotation_zero_failed_queries(two, pki, api, make_daemon):
    out_dir = shared_dir()
    leaf_a = pki.leaf("bouncer-leaf-a", two["a"], LOCAL, "localhost")
    ca_b2 = pki.ca("bouncer-b2", "Instance B CA v2")
    servers = [Postgres(*leaf_a), Postgres(*pki.leaf("bouncer-leaf-b", two["b"], LOCAL, "localhost"))]
    bouncers, loops = [], []
    try:
        bundle = out_dir / "servers.pem"
        # The recipe of docs/clients.md: RELOAD through the admin console.
        reload = ["/usr/bin/psql", "host=127.0.0.1 port=PORT dbname=pgbouncer user=postgres",
                  "-c", "RELOAD"]
        out = {"name": "servers", "path": str(bundle), "instances": ["inst_a", "inst_b"]}
        d = make_daemon([tembo("inst_a"), tembo("inst_b")], outputs=[out],
                        refresh_interval="300ms", jitter=0)
        assert d.once().returncode == 0
        stale = out_dir / "stale.pem"
        shutil.copy(bundle, stale)
        for f in (bundle, stale):
            f.chmod(0o644)
        bouncers = [PgBouncer(out_dir, servers, bundle), PgBouncer(out_dir, servers, stale)]
        reload[1] = reload[1].replace("PORT", str(bouncers[0].port))
        out["on_change"] = {"command": reload}
        d.write_config([tembo("inst_a"), tembo("inst_b")], outputs=[out],
                       refresh_interval="300ms", jitter=0)
        d.start()
        loops = [QueryLoop(b, ["db0", "db1"]) for b in bouncers]
        wait_for(lambda: all(loop.ok_after(0) >= 6 for loop in loops), 20, "queries on v1")

        api.serve("org_a", "inst_b", ca_b2)  # the API rotates first
        wait_for(lambda: Pki.fingerprint(ca_b2) in certs_of(bundle), 10, "v2 in the bundle")
        d.wait_log("servers: on_change /usr/bin/psql exited 0")
        installed = time.monotonic()
        wait_for(lambda: loops[0].ok_after(installed) >= 6, 20, "queries after the reload")
        servers[1].use_certificate(*pki.leaf("bouncer-leaf-b2", ca_b2, LOCAL, "localhost"))
        switched = time.monotonic()
        wait_for(lambda: loops[0].ok_after(switched) >= 20, 30, "queries after the switch")
        wait_for(lambda: loops[1].failures(), 30, "the stale copy failing")
        for loop in loops:
            loop.stop()
        assert loops[0].failures() == []
        assert len(loops[0].results) >= 30
        # The same rotation through a copy taken before it: db1 fails.
        assert any(db == "db1" for db, _ in loops[1].failures()), loops[1].failures()
    finally:
        for loop in loops:
            loop.stop()
        for b in bouncers:
            b.stop()
        for pg in servers:
            pg.stop()
        shutil.rmtree(out_dir, ignore_errors=True)


CONNECT_JAVA = """
import java.sql.*;
public class Connect {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0]);
             ResultSet r = c.createStatement().executeQuery("select 1")) {
            r.next();
            System.out.println("connected " + r.getInt(1));
        }
    }
}
"""


def java_connect(source, pg, store, store_type, password=None):
    url = (f"jdbc:postgresql://localhost:{pg.port}/postgres?user=postgres&sslmode=verify-full"
           "&sslfactory=org.postgresql.ssl.DefaultJavaSSLFactory")
    props = [f"-Djavax.net.ssl.trustStore={store}", f"-Djavax.net.ssl.trustStoreType={store_type}"]
    if password:
        props.append(f"-Djavax.net.ssl.trustStorePassword={password}")
    return subprocess.run(["java", "-cp", str(JDBC), *props, str(source), url],
                          capture_output=True, text=True, timeout=120)


def keytool_aliases(store, store_type, password):
    cmd = ["keytool", "-list", "-keystore", str(store), "-storetype", store_type]
    if password is not None:
        cmd += ["-storepass", password]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    aliases = [line.split(",")[0] for line in r.stdout.splitlines() if "trustedCertEntry" in line]
    return r, aliases


def expected_alias(crt):
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253",
                              "-in", str(crt)], capture_output=True, text=True).stdout
    return (Pki.fingerprint(crt)[:8] + "|" + subject.strip().split("=", 1)[1]).lower()


@pytest.mark.parametrize("fmt,store_type,password", [("pkcs12", "PKCS12", "s3cret-pw"),
                                                      ("pkcs12", "PKCS12", None),
                                                      ("jks", "JKS", None)])
def test_the_jvm_trusts_a_truststore_output_through_a_rotation(fmt, store_type, password, pki,
                                                               api, make_daemon, tmp_path):
    if not JDBC.exists():
        pytest.fail(f"{JDBC} is missing: scripts/deps.sh --test installs it")
    tag = f"jvm-{fmt}-{password is not None}"
    ca1, ca2 = pki.ca(f"{tag}-v1", "JVM CA v1"), pki.ca(f"{tag}-v2", "JVM CA v2")
    api.serve("org_a", "inst_j", ca1)
    source = tmp_path / "Connect.java"
    source.write_text(CONNECT_JAVA)
    out = {"name": "truststore", "format": fmt, "instances": ["inst_j"]}
    settings = {}
    if password:
        secret = tmp_path / "store-password"
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        settings["credentials"] = {"store": {"file": str(secret)}}
        out["password"] = "store"
    d = make_daemon([tembo("inst_j")], outputs=[out], **settings)
    assert d.once().returncode == 0
    store = d.cert_dir / ("truststore.p12" if fmt == "pkcs12" else "truststore.jks")
    store_password = password or ("changeit" if fmt == "jks" else None)
    pg = Postgres(*pki.leaf(f"{tag}-leaf1", ca1, LOCAL, "localhost"))
    try:
        r = java_connect(source, pg, store, store_type, store_password)
        assert r.returncode == 0 and "connected 1" in r.stdout, r.stderr

        api.serve("org_a", "inst_j", ca2)  # rotation: the file holds v2 and v1
        assert d.once().returncode == 0
        r, aliases = keytool_aliases(store, store_type, store_password or "")
        assert r.returncode == 0, r.stdout + r.stderr
        assert sorted(aliases) == sorted([expected_alias(ca2), expected_alias(ca1)])
        pg.use_certificate(*pki.leaf(f"{tag}-leaf2", ca2, LOCAL, "localhost"))
        r = java_connect(source, pg, store, store_type, store_password)
        assert r.returncode == 0 and "connected 1" in r.stdout, r.stderr
        if store_password:
            r, _ = keytool_aliases(store, store_type, "wrong-password")
            assert r.returncode != 0
    finally:
        pg.stop()


def test_a_reload_during_a_write_leaves_the_output_as_the_new_configuration_says(two, api,
                                                                                make_daemon,
                                                                                tmp_path):
    """A write that waits for its password while SIGHUP replaces the global
    settings: the next write uses the new configuration (it used the
    Services of the write that was under way, and the moved output was
    never written)."""
    gate, first = tmp_path / "gate", tmp_path / "asked-once"
    os.mkfifo(gate)
    command = tmp_path / "password.sh"
    # The first run waits for the test to open the gate; later runs answer at once.
    command.write_text(f"#!/bin/sh\nif [ ! -e {first} ]; then : > {first}; cat {gate} >/dev/null; fi\n"
                       "echo s3cret-pw\n")
    command.chmod(0o755)
    creds = {"pw": {"command": [str(command)], "timeout": "60s"}}
    out = {"name": "store", "format": "pkcs12", "password": "pw", "instances": ["inst_a"]}
    d = make_daemon([tembo("inst_a")], outputs=[out], credentials=creds)
    d.start()
    wait_for(first.exists, 10, "the write asking for its password")
    moved = dict(out, path=str(tmp_path / "moved.p12"))
    d.write_config([tembo("inst_a")], outputs=[moved], credentials=creds, concurrency=8)
    d.signal(signal.SIGHUP)
    d.wait_log("reloaded: global settings changed")
    with open(gate, "w") as g:
        g.write("open\n")
    wait_for(lambda: (tmp_path / "moved.p12").exists(), 10, "the output at its new path")
