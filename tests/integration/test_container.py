"""The sidecar image (packaging/container/build-image), run by podman as
Kubernetes' restricted profile runs it, against nginx playing the API."""
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from harness import ROOT, BINARY, GOOD_TOKEN, Pki, free_port, http_status, wait_for

PODMAN = shutil.which("podman")
pytestmark = pytest.mark.skipif(not PODMAN or os.geteuid() != 0,
                                reason="needs podman, as root (scripts/deps.sh installs it)")
# This kernel's hybrid cgroups defeat crun; runc works with explicit ulimits.
RUNTIME = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
           "--network", "host"]
# Kubernetes' restricted profile.
RESTRICTED = ["--read-only", "--user", "65532:65532", "--cap-drop", "ALL",
              "--security-opt", "no-new-privileges"]


# The image's binary: the static build (scripts/test makes it) when there is
# one, as packaging/container/build-image would use.
SIDECAR_BINARY = pathlib.Path(os.environ.get("ROOTCERTD_SIDECAR_BIN",
                                             ROOT / "build-static" / "rootcertd"))
if not SIDECAR_BINARY.exists():
    SIDECAR_BINARY = BINARY


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    archive = tmp_path_factory.mktemp("image") / "rootcertd.oci.tar"
    r = subprocess.run([str(ROOT / "packaging/container/build-image"), "--binary",
                        str(SIDECAR_BINARY), "--output", str(archive)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert archive.stat().st_size > 0
    return "rootcertd:latest"


class Sidecar:
    """A pod's worth of mounts: config, a Secret directory, the cert volume."""

    def __init__(self, directory, api, instances, token=GOOD_TOKEN, **settings):
        self.dir = pathlib.Path(directory)
        self.config_dir, self.secrets, self.volume = (self.dir / n for n in ("config", "secrets", "volume"))
        for d in (self.config_dir, self.secrets, self.volume):
            d.mkdir(parents=True)
        os.chown(self.volume, 65532, 65532)
        os.chmod(self.dir, 0o755)
        shutil.copy(api.trust, self.config_dir / "api-ca.pem")
        self.metrics_port = free_port()
        cfg = {"api": {"url": f"https://127.0.0.1:{api.port}",
                       "token_file": "/var/run/secrets/rootcertd/token",
                       "ca_file": "/etc/rootcertd/api-ca.pem", "timeout": "5s"},
               "cert_dir": "/var/lib/rootcertd/certs", "state_dir": "/var/lib/rootcertd/state",
               "metrics": {"listen": f"127.0.0.1:{self.metrics_port}"},
               "refresh_interval": "1s", "jitter": 0, "retry": {"min": "100ms", "max": "500ms"},
               "instances": instances, **settings}
        (self.config_dir / "rootcertd.yaml").write_text(json.dumps(cfg))
        if token is not None:
            self.write_token(token)
        self.name = f"rootcertd-test-{os.getpid()}-{self.metrics_port}"

    def write_token(self, token):
        """As a projected Secret: mode 0440, group-readable by the pod's group."""
        path = self.secrets / "token"
        tmp = self.secrets / ".token"
        tmp.write_text(token + "\n")
        os.chown(tmp, 0, 65532)
        os.chmod(tmp, 0o440)
        os.replace(tmp, path)

    def args(self):
        return [*RUNTIME, *RESTRICTED,
                "-v", f"{self.config_dir}:/etc/rootcertd:ro",
                "-v", f"{self.secrets}:/var/run/secrets/rootcertd:ro",
                "-v", f"{self.volume}:/var/lib/rootcertd"]

    def run(self, image, *extra, timeout=60):
        return subprocess.run([PODMAN, "run", "--rm", *self.args(), image, *extra],
                              capture_output=True, text=True, timeout=timeout)

    def start(self, image):
        subprocess.run([PODMAN, "run", "-d", "--name", self.name, *self.args(), image],
                       check=True, capture_output=True, text=True, timeout=60)
        return self

    def logs(self):
        return subprocess.run([PODMAN, "logs", self.name], capture_output=True, text=True).stdout

    def file(self, name):
        return self.volume / "certs" / f"{name}.crt"

    def remove(self):
        subprocess.run([PODMAN, "rm", "-f", "-t", "0", self.name], capture_output=True)


def test_the_static_image_maps_only_glibc_and_records_what_it_linked(image):
    if SIDECAR_BINARY == BINARY:
        pytest.skip("no build-static/rootcertd (scripts/test builds it)")
    libs = subprocess.run(["ldd", str(SIDECAR_BINARY)], capture_output=True, text=True).stdout
    shared = {line.split()[0] for line in libs.splitlines() if "=>" in line}
    assert shared <= {"libc.so.6", "libm.so.6"}, shared
    label = subprocess.run([PODMAN, "image", "inspect", "-f",
                            '{{index .Labels "org.rootcertd.linked"}}', image],
                           capture_output=True, text=True, check=True).stdout
    openssl = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libssl-dev"],
                             capture_output=True, text=True).stdout
    assert f"libssl-dev={openssl}" in label.split(), label


def test_the_sidecar_keeps_the_file_under_the_restricted_profile(image, api, pki, tmp_path):
    ca1, ca2 = pki.ca("pod-one"), pki.ca("pod-two")
    api.serve("org_a", "inst_1", ca1)
    pod = Sidecar(tmp_path / "pod", api, [{"org": "org_a", "id": "inst_1", "name": "db"}])
    pod.start(image)
    try:
        wait_for(lambda: pod.file("db").exists(), 20, "the CA file in the volume")
        assert Pki.fingerprint(pod.file("db")) == Pki.fingerprint(ca1)
        assert pod.file("db").stat().st_mode & 0o777 == 0o644, "readable by the app's user"
        wait_for(lambda: http_status(pod.metrics_port, "/readyz") == 200, 10, "/readyz 200")
        assert http_status(pod.metrics_port, "/livez") == 200
        api.serve("org_a", "inst_1", ca2)
        wait_for(lambda: Pki.fingerprint(ca2) in Pki.fingerprints(pod.file("db").read_text()), 10,
                 "the rotated CA in the volume")
        started = time.monotonic()
        subprocess.run([PODMAN, "stop", "-t", "10", pod.name], check=True, capture_output=True)
        assert time.monotonic() - started < 2.0, "SIGTERM ends it at once"
        state = subprocess.run([PODMAN, "inspect", "-f", "{{.State.ExitCode}}", pod.name],
                               capture_output=True, text=True).stdout.strip()
        assert state == "0"
        logs = pod.logs()
        records = [json.loads(line) for line in logs.splitlines()]  # every line is JSON
        assert any("installed CA" in r["msg"] for r in records)
        assert "chmod" not in logs, "a projected Secret's 0440 draws no advice that breaks the pod"
        assert GOOD_TOKEN not in logs
        assert [p.name for p in (pod.volume / "certs").iterdir()] == ["db.crt"], "no temp files"
    finally:
        pod.remove()


def test_once_works_as_an_init_container(image, api, pki, tmp_path):
    api.serve("org_a", "inst_1", pki.ca("init-one"))
    pod = Sidecar(tmp_path / "init", api, [{"org": "org_a", "id": "inst_1", "name": "db"}])
    r = pod.run(image, "--config", "/etc/rootcertd/rootcertd.yaml", "--once")
    assert r.returncode == 0, r.stdout + r.stderr
    assert pod.file("db").exists()


def test_a_secret_mounted_late_keeps_it_up_and_not_ready(image, api, pki, tmp_path):
    api.serve("org_a", "inst_1", pki.ca("late-one"))
    pod = Sidecar(tmp_path / "late", api, [{"org": "org_a", "id": "inst_1", "name": "db"}],
                  token=None)
    pod.start(image)
    try:
        wait_for(lambda: "token file /var/run/secrets/rootcertd/token" in pod.logs(), 20,
                 "a log line naming the token file")
        assert http_status(pod.metrics_port, "/readyz") == 503
        line = next(json.loads(l) for l in pod.logs().splitlines()
                    if "/var/run/secrets/rootcertd/token" in l)
        assert line["stage"] == "token" and line["level"] == "warning"
        pod.write_token(GOOD_TOKEN)
        wait_for(lambda: pod.file("db").exists(), 20, "the file once the Secret is there")
        wait_for(lambda: http_status(pod.metrics_port, "/readyz") == 200, 10, "/readyz 200")
    finally:
        pod.remove()


def test_a_config_error_exits_2_with_one_json_line_naming_the_key(image, api, tmp_path):
    pod = Sidecar(tmp_path / "bad", api, [{"org": "org_a", "id": "inst_1", "nmae": "db"}])
    r = pod.run(image)
    assert r.returncode == 2
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout + r.stderr
    record = json.loads(lines[0])
    assert record["key"] == "instances[0].nmae" and "unknown key" in record["msg"]
