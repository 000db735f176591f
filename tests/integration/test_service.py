"""Operating rootcertd as a service: systemd notify, journal, units, man pages,
container layout, Kubernetes manifests and the Debian package."""
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import yaml

from harness import BINARY, GOOD_TOKEN, ROOT, NotifySocket, free_port, http_get, wait_for


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_notify_protocol(api, pki, make_daemon, tmp_path, kind):
    api.serve("org_a", "inst_1", pki.ca("notify-ca"))
    path = str(tmp_path / "notify.sock") if kind == "path" else f"@rootcertd-test-{os.getpid()}"
    notify = NotifySocket(path)
    d = make_daemon([{"org": "org_a", "id": "inst_1"}])
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    d.start(env=env)
    ready = notify.wait("READY", "1")
    assert ready["STATUS"] == "1/1 fresh"
    assert d.file("inst_1").exists(), "READY only after the first pass"

    # The period the daemon chose, half of systemd's, and pings that keep
    # coming (how late a loaded machine wakes it is not the daemon's choice).
    assert "systemd watchdog: WATCHDOG=1 every 100ms (half of WATCHDOG_USEC)" in d.output()
    start = time.monotonic()
    wait_for(lambda: sum(1 for t, f in notify.drain() if "WATCHDOG" in f and t > start) >= 4, 5,
             "watchdog pings")

    hup = time.monotonic()
    d.signal(signal.SIGHUP)
    reloading = notify.wait("RELOADING", "1", after=hup)
    assert int(reloading["MONOTONIC_USEC"]) > 0
    notify.wait("READY", "1", after=hup)

    term = time.monotonic()
    d.signal(signal.SIGTERM)
    notify.wait("STOPPING", "1", after=term)
    assert d.proc.wait(5) == 0


def test_status_reports_what_fails(api, pki, make_daemon, tmp_path):
    notify = NotifySocket(str(tmp_path / "n.sock"))
    api.serve("org_a", "inst_1", pki.ca("notify-ca"))
    d = make_daemon([{"org": "org_a", "id": "inst_1"}, {"org": "org_a", "id": "gone"}])
    d.start(env={**os.environ, "NOTIFY_SOCKET": notify.path})
    ready = notify.wait("READY", "1")
    assert ready["STATUS"].startswith("1/2 fresh; failing: gone (GET /api/v1/orgs/org_a/instances/gone")


def test_a_fleet_starts_during_an_api_outage(api, pki, make_daemon, tmp_path):
    # The API accepts connections and never answers: each request takes the
    # whole api.timeout, one at a time, so a first pass of 40 would take
    # 80 s. READY=1 comes after one timeout; /readyz says what is missing.
    stall = socket.create_server(("127.0.0.1", 0))
    notify = NotifySocket(str(tmp_path / "n.sock"))
    port = free_port()
    d = make_daemon([{"org": "org_a", "id": f"i{n}"} for n in range(40)], concurrency=1,
                    api={"url": f"https://localhost:{stall.getsockname()[1]}", "timeout": "2s"},
                    metrics={"listen": f"127.0.0.1:{port}"})
    d.start(env={**os.environ, "NOTIFY_SOCKET": notify.path})
    ready = notify.wait("READY", "1", timeout=20)
    assert ready["STATUS"].startswith("0/40 fresh"), ready
    status, _, body = http_get(port, "/readyz")
    assert status == 503 and body.startswith("40 instance(s) without a valid CA file"), body
    assert d.stop() == 0
    stall.close()


def test_no_watchdog_for_another_pid(api, pki, make_daemon, tmp_path):
    notify = NotifySocket(str(tmp_path / "n.sock"))
    api.serve("org_a", "inst_1", pki.ca("notify-ca"))
    d = make_daemon([{"org": "org_a", "id": "inst_1"}])
    d.start(env={**os.environ, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "100000",
                 "WATCHDOG_PID": "1"})
    notify.wait("READY", "1")
    settle = time.monotonic()
    wait_for(lambda: time.monotonic() - settle > 0.3 and notify.drain() is not None, 2)
    assert not any("WATCHDOG" in f for _, f in notify.messages)


def test_journal_gets_priorities(api, make_daemon, tmp_path):
    d = make_daemon([{"org": "org_a", "id": "missing"}])
    err = tmp_path / "journal"
    with open(err, "w") as f:
        st = os.fstat(f.fileno())
        r = subprocess.run([str(BINARY), "--config", str(d.config), "--once"], stderr=f,
                           env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert r.returncode == 1
    lines = err.read_text().splitlines()
    assert any(line.startswith("<3>missing: refresh failed") for line in lines), lines
    assert any(line.startswith("<6>refreshed 0/1") for line in lines), lines


def units_for_build(tmp_path):
    """The unit files with ExecStart pointing at the built binary, for checking."""
    out = tmp_path / "units"
    out.mkdir()
    for unit in ("rootcertd.service", "rootcertd-once.service", "rootcertd-once.timer"):
        text = (ROOT / "systemd" / unit).read_text().replace("/usr/sbin/rootcertd", str(BINARY))
        (out / unit).write_text(text)
    # The reload template, instantiated for a consumer as an operator would.
    for suffix in ("path", "service"):
        text = (ROOT / "systemd" / f"rootcertd-reload@.{suffix}").read_text()
        (out / f"rootcertd-reload@pgbouncer.{suffix}").write_text(text)
    (out / "pgbouncer.service").write_text("[Service]\nExecStart=/bin/true\n")
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_units_verify_and_are_hardened(tmp_path):
    units = units_for_build(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, sorted(units.iterdir()))],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for unit in ("rootcertd.service", "rootcertd-once.service"):
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(units / unit)],
                           capture_output=True, text=True)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
        assert m, r.stdout + r.stderr
        assert float(m.group(1)) <= 1.5, f"{unit}: exposure {m.group(1)}"
    service = (ROOT / "systemd" / "rootcertd.service").read_text()
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID",
                 "Restart=on-failure", "User=rootcertd", "StateDirectory=", "ConfigurationDirectory=",
                 "LoadCredential=token:"):
        assert line in service
    for unit in ("rootcertd.service", "rootcertd-once.service"):
        assert re.search(r"^LimitCORE=0$", (ROOT / "systemd" / unit).read_text(), re.M), unit
    assert not re.search(r"^DynamicUser=", service, re.M)
    assert "RandomizedDelaySec=" in (ROOT / "systemd" / "rootcertd-once.timer").read_text()
    assert "--once" in (ROOT / "systemd" / "rootcertd-once.service").read_text()
    reload = (ROOT / "systemd" / "rootcertd-reload@.path").read_text()
    assert "PathChanged=/var/lib/rootcertd/certs\n" in reload
    assert "ExecStart=/bin/systemctl reload-or-restart %i.service" in (
        ROOT / "systemd" / "rootcertd-reload@.service").read_text()


def test_packaged_config_reads_the_systemd_credential(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "token").write_text("tok\n")
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(creds)}
    r = subprocess.run([str(BINARY), "--config", str(ROOT / "config" / "rootcertd.yaml"),
                        "--check-config"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr


def test_the_units_start_without_a_tembo_token_and_the_daemon_says_who_needs_it(tmp_path):
    """Both units carried ConditionPathExists=/etc/rootcertd/token: an RDS-only
    host silently skipped the service. Now postinst creates the token file
    empty; a fleet without Tembo never reads it, a Tembo one is told."""
    for unit in ("rootcertd.service", "rootcertd-once.service"):
        assert "ConditionPathExists" not in (ROOT / "systemd" / unit).read_text(), unit
    assert "install -m 0600 /dev/null /etc/rootcertd/token" in (
        ROOT / "packaging" / "debian" / "rootcertd.postinst").read_text()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "token").write_text("")  # what LoadCredential= passes from postinst's file
    (creds / "token").chmod(0o600)
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(creds)}
    tembo = subprocess.run([str(BINARY), "--config", str(ROOT / "config" / "rootcertd.yaml"),
                            "--check-config"], capture_output=True, text=True, env=env)
    assert tembo.returncode == 2
    assert (f"api (the Tembo token, sent by prod): token file {creds}/token holds no token"
            in tembo.stderr), tembo.stderr
    rds_only = tmp_path / "rds.yaml"
    rds_only.write_text('api: {token_file: "${CREDENTIALS_DIRECTORY}/token"}\n'
                        'instances: [{name: rds, source: {provider: rds, region: eu-west-1}}]\n')
    r = subprocess.run([str(BINARY), "--config", str(rds_only), "--check-config"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("page", ["rootcertd.8", "rootcertd.yaml.5"])
def test_man_pages_render_cleanly(page):
    r = subprocess.run(["man", "--warnings", "-l", str(ROOT / "docs" / "man" / page)],
                       capture_output=True, text=True, env={**os.environ, "MANWIDTH": "80",
                                                            "MAN_KEEP_FORMATTING": "0"})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = re.sub(".\x08", "", r.stdout)  # drop overstrike bold
    assert "NAME" in text and "SEE ALSO" in text


def test_kubernetes_manifests():
    for name in ("native-sidecar.yaml", "init-once.yaml"):
        docs = list(yaml.safe_load_all((ROOT / "packaging" / "kubernetes" / name).read_text()))
        pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
        init = pod["initContainers"][0]
        assert init["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["rootcertd-data"]
        for container in pod["initContainers"] + pod["containers"]:
            for mount in container.get("volumeMounts", []):
                assert "subPath" not in mount, "subPath pins the old inode"
        if name == "native-sidecar.yaml":
            assert init["restartPolicy"] == "Always"
            assert init["startupProbe"]["httpGet"]["path"] == "/readyz"
        else:
            assert "--once" in init["args"]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
def test_container_layout_runs_as_non_root(api, pki):
    """The image's config and mounts, run as the image's user (65532) in a plain process."""
    api.serve("org_c", "inst_c", pki.ca("container-ca"))
    root = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-container-"))  # not pytest's 0700 tree
    try:
        root.chmod(0o755)
        data, secrets = root / "var-lib-rootcertd", root / "secrets"  # the emptyDir, the Secret
        data.mkdir()
        secrets.mkdir()
        os.chown(data, 65532, 65532)
        (secrets / "token").write_text(GOOD_TOKEN)
        os.chmod(secrets / "token", 0o444)
        config = (ROOT / "packaging" / "container" / "rootcertd.yaml").read_text()
        config = config.replace("/var/lib/rootcertd", str(data)).replace("0.0.0.0:9464", "127.0.0.1:0")
        cfg = root / "rootcertd.yaml"
        cfg.write_text(config)
        shutil.copy(BINARY, root / "rootcertd")
        shutil.copy(api.trust, root / "api-ca.pem")
        env = {"PATH": "/usr/bin:/bin", "TEMBO_API_URL": api.url, "TEMBO_ORG_ID": "org_c",
               "TEMBO_INSTANCE_ID": "inst_c", "TEMBO_TOKEN_FILE": str(secrets / "token"),
               "SSL_CERT_FILE": str(root / "api-ca.pem")}
        r = subprocess.run(["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups",
                            str(root / "rootcertd"), "--config", str(cfg), "--once",
                            "--log-format", "json", "--log-output", "stdout"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stderr == "" and all(line.startswith("{") for line in r.stdout.splitlines())
        cert = data / "certs" / "db.crt"
        assert cert.read_text() == pki.ca("container-ca").read_text()
        assert cert.stat().st_uid == 65532
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(os.environ.get("ROOTCERTD_TEST_DEB") != "1",
                    reason="set ROOTCERTD_TEST_DEB=1 (scripts/test does, once) to build the package")
def test_debian_package_builds_installs_and_purges():
    r = subprocess.run(["bash", str(ROOT / "packaging" / "build-deb")], capture_output=True,
                       text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    deb = next((ROOT / "dist").glob("rootcertd_*_*.deb"))
    contents = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True).stdout
    for path in ("./usr/sbin/rootcertd", "./etc/rootcertd/rootcertd.yaml",
                 "./lib/systemd/system/rootcertd.service", "./lib/systemd/system/rootcertd-once.timer",
                 "./usr/share/man/man8/rootcertd.8.gz", "./usr/share/man/man5/rootcertd.yaml.5.gz",
                 "./usr/share/rootcertd/monitoring/rootcertd-alerts.yaml",
                 "./usr/share/rootcertd/monitoring/rootcertd-dashboard.json"):
        assert path in contents, path
    control = subprocess.run(["dpkg-deb", "-e", str(deb), "/tmp/rootcertd-deb-control"], check=True)
    assert "/etc/rootcertd/rootcertd.yaml" in pathlib.Path("/tmp/rootcertd-deb-control/conffiles").read_text()
    if os.geteuid() != 0:
        return
    try:
        token = pathlib.Path("/etc/rootcertd/token")
        had_token = token.exists()  # an operator's token on this machine stays as it is
        subprocess.run(["dpkg", "-i", str(deb)], check=True, capture_output=True)
        assert pwd.getpwnam("rootcertd").pw_dir == "/var/lib/rootcertd"
        v = subprocess.run(["/usr/sbin/rootcertd", "--version"], capture_output=True, text=True)
        assert v.stdout.startswith("rootcertd ")
        # LoadCredential= needs the token file: postinst makes it, empty and root's.
        st = token.stat()
        assert (st.st_mode & 0o7777, st.st_uid) == (0o600, 0)
        assert had_token or st.st_size == 0
        for unit in ("rootcertd-reload@.path", "rootcertd-reload@.service"):
            assert pathlib.Path("/lib/systemd/system", unit).exists(), unit
    finally:
        subprocess.run(["dpkg", "--purge", "rootcertd"], check=True, capture_output=True)
    assert not pathlib.Path("/usr/sbin/rootcertd").exists()
    assert not pathlib.Path("/etc/rootcertd/token").exists(), "a purge takes the secret too"


def test_version_names_the_commit_and_every_option_is_documented():
    """--version named no commit, -V was refused, and the README, --help and
    rootcertd(8) each lacked an option the binary accepts."""
    v = subprocess.run([str(BINARY), "--version"], capture_output=True, text=True)
    assert v.returncode == 0
    assert subprocess.run([str(BINARY), "-V"], capture_output=True, text=True).stdout == v.stdout
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True)
    if head.returncode == 0:  # a checkout: the commit it was built from
        assert re.fullmatch(r"rootcertd \S+ \(commit " + head.stdout.strip() + r"(-dirty)?\)\n",
                            v.stdout), v.stdout
    help_text = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True).stdout
    options = set(re.findall(r"(--[a-z-]+|-[A-Za-z])\b", help_text))
    assert {"--config", "--once", "--check-config", "--list-instances", "--log-level",
            "--log-format", "--log-output", "--version", "-V", "--help", "-h"} <= options
    readme = (ROOT / "README.md").read_text()
    man = (ROOT / "docs" / "man" / "rootcertd.8").read_text().replace("\\-", "-")
    for option in options:
        assert f"`{option}" in readme, f"README lacks {option}"
        assert option in man, f"rootcertd(8) lacks {option}"


@pytest.mark.skipif(os.geteuid() != 0, reason="checks as root what user rootcertd can read")
def test_check_config_as_root_names_files_the_service_user_cannot_read():
    if subprocess.run(["getent", "passwd", "rootcertd"], capture_output=True).returncode != 0:
        # As the package's postinst makes it (the package test reuses it).
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/var/lib/rootcertd", "rootcertd"], check=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-svc-"))
    try:
        work.chmod(0o755)
        key = work / "aiven"
        key.write_text("aiven-token\n")
        key.chmod(0o600)  # root's alone, as a careless operator leaves it
        cfg = work / "rootcertd.yaml"
        cfg.write_text(f"credentials: {{aiven: {{file: {key}}}}}\n"
                       "instances: [{name: a, source: {provider: aiven, project: p, "
                       "credential: aiven}}]\n")
        r = subprocess.run([str(BINARY), "--config", str(cfg), "--check-config"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert (f"warning: {cfg}: credentials.aiven: the service user rootcertd cannot read "
                f"{key} (mode 0600, owner uid 0") in r.stderr, r.stderr
        shutil.chown(key, group="rootcertd")
        key.chmod(0o640)
        r = subprocess.run([str(BINARY), "--config", str(cfg), "--check-config"],
                           capture_output=True, text=True)
        assert r.returncode == 0 and "cannot read" not in r.stderr, r.stderr
    finally:
        shutil.rmtree(work)
