"""Instruction counts of a warm `rootcertd --once` (every file already in
place, nothing changed) for each binary named, against one nginx serving a
Tembo-shaped fleet: repeatable where seconds are not, so a few percent
between two commits shows. Run by bench/fleet's tools:

  /usr/bin/python3 bench/callgrind_warm.py --instances 2000 OLD_BINARY NEW_BINARY
"""
import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))
from fleet import write_config  # noqa: E402
from harness import FakeApi, Pki  # noqa: E402
from record import SERVICE_ENV  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-callgrind-"))
    api = FakeApi(work / "api", Pki(work / "pki"))
    try:
        body = json.dumps({"ca.crt": api.pki.ca("bench-ca", "Bench CA").read_text()})
        for i in range(args.instances):  # as bench/fleet serves them
            api.serve("org_bench", f"i{i}", body=body)
        for label, binary in enumerate(args.binaries):
            run = work / f"run{label}"
            cfg = run / "rootcertd.yaml"
            run.mkdir()
            write_config(cfg, api, args.instances, run / "certs", run / "state")
            cold = subprocess.run([binary, "--config", str(cfg), "--once", "--log-level", "warning"],
                                  env=SERVICE_ENV, capture_output=True, text=True)
            if cold.returncode != 0:
                sys.exit(f"{binary}: the cold pass failed: {cold.stderr[-2000:]}")
            out = run / "callgrind.out"
            warm = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                   binary, "--config", str(cfg), "--once", "--log-level", "warning"],
                                  env=SERVICE_ENV, capture_output=True, text=True)
            if warm.returncode != 0:
                sys.exit(f"{binary}: the warm pass failed: {warm.stderr[-2000:]}")
            total = int(re.search(r"Collected : (\d+)", warm.stderr).group(1))
            print(f"{binary}: {total:,} instructions, {total / args.instances:,.0f} per instance")
    finally:
        api.stop()
        if os.environ.get("CALLGRIND_KEEP"):
            print(f"callgrind outputs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
