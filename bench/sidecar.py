#!/usr/bin/env python3
"""The sidecar image's size and the running sidecar's memory, one instance.

Builds the image (packaging/container/build-image), runs it under podman as
the integration test does (restricted profile, nginx playing the API), and
reads the container's process from the host: VmRSS and VmHWM once its first
file is in place and again after 10 s of refreshing every second. Prints a
table for bench/RESULTS.md."""
import json
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from harness import FakeApi, Pki, wait_for  # noqa: E402
from test_container import PODMAN, SIDECAR_BINARY, Sidecar  # noqa: E402


def status_kib(pid, field):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-sidecar-"))
    archive = work / "rootcertd.oci.tar"
    subprocess.run([str(ROOT / "packaging/container/build-image"), "--binary", str(SIDECAR_BINARY),
                    "--output", str(archive)], check=True, capture_output=True)
    size = subprocess.run([PODMAN, "image", "inspect", "-f", "{{.Size}}", "rootcertd:latest"],
                          capture_output=True, text=True, check=True).stdout.strip()
    pki = Pki(work / "pki")
    api = FakeApi(work / "api", pki)
    api.serve("org_a", "inst_1", pki.ca("sidecar-ca"))
    pod = Sidecar(work / "pod", api, [{"org": "org_a", "id": "inst_1", "name": "db"}])
    pod.start("rootcertd:latest")
    try:
        wait_for(lambda: pod.file("db").exists(), 20, "the first file")
        pid = subprocess.run([PODMAN, "inspect", "-f", "{{.State.Pid}}", pod.name],
                             capture_output=True, text=True, check=True).stdout.strip()
        first = status_kib(pid, "VmRSS")
        time.sleep(10)  # ten refreshes at refresh_interval 1s: a measurement window, not a wait
        rss, hwm = status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM")
    finally:
        pod.remove()
        api.stop()
    print("| figure | value |")
    print("| --- | --- |")
    print(f"| image size (podman image inspect) | {int(size) / 1e6:.1f} MB |")
    print(f"| OCI archive (build-image --output) | {archive.stat().st_size / 1e6:.1f} MB |")
    print(f"| sidecar RSS after its first file | {first / 1024:.1f} MiB |")
    print(f"| sidecar RSS / peak after 10 refreshes | {rss / 1024:.1f} / {hwm / 1024:.1f} MiB |")


if __name__ == "__main__":
    main()
