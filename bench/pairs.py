"""Two builds side by side, interleaved: bench/pairs.py OLD_BIN NEW_BIN.

A 15% difference hides in this VM's drift when each build gets a run of its
own minutes apart; here each round runs both builds back to back against
one nginx, half the rounds old first and half new first, and every warm
pass is set against a wrk sample taken right after it. Per build: the
median and spread of the cold --once (fresh directories, durable writes),
the warm --once (nothing changed) as a fraction of wrk's rate and against
the curl|jq loop per instance, the warm pass's refresh phase alone (its
summary line: wrk's rate drifts between samples, the phase does not depend
on it), and the --once peak RSS. Appends to
bench/RESULTS.md."""
import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fleet import curl_jq_loop, wrk_rate, write_config  # noqa: E402
from harness import FakeApi, Pki, measured_run  # noqa: E402
from record import SERVICE_ENV, record  # noqa: E402


def timed(binary, cfg, level="warning"):
    """Wall time and peak RSS of one --once; at level info also its refresh
    phase (from its summary line), which leaves out process start and the
    config: the part a warm pass's changes are about."""
    os.sync()  # each pass pays for its own files' flush only
    code, kib, took, stderr = measured_run([binary, "--config", cfg, "--once", "--log-level",
                                            level], env=SERVICE_ENV)
    assert code == 0, stderr[-2000:]
    phase = re.search(r"refreshed \d+/\d+ instance\(s\) in (\d+) ms", stderr)
    return took, kib, int(phase.group(1)) / 1000 if phase else None


def spread(values, fmt="{:.2f}"):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-" \
           f"{fmt.format(max(values))})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--instances", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=10, help="half of them old first")
    ap.add_argument("--sample", type=int, default=20, help="curl|jq loop sample, scaled up")
    args = ap.parse_args()
    n = args.instances
    names = {args.old: "old", args.new: "new"}
    work = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-pairs-"))
    api = FakeApi(work / "api", Pki(work / "pki"))
    runs = {b: {"cold": [], "warm": [], "phase": [], "ratio": [], "rss": []} for b in names}
    try:
        body = json.dumps({"ca.crt": api.pki.ca("bench-ca", "Bench CA").read_text()})
        for i in range(n):
            api.serve("org_bench", f"i{i}", body=body)
        loop_each = curl_jq_loop(api, work, args.sample) / args.sample
        for r in range(args.rounds):
            order = [args.old, args.new] if r % 2 == 0 else [args.new, args.old]
            for binary in order:
                name = f"{names[binary]}{r}"
                cfg = work / f"{name}.json"
                write_config(cfg, api, n, work / f"{name}-certs", work / f"{name}-state")
                cold, _, _ = timed(binary, cfg)  # fresh directories, kept to the end as
                # bench/fleet keeps them: deleting 10,000 files makes the next sync pay for it
                warm, kib, phase = timed(binary, cfg, "info")  # a warm pass logs one line
                rate = wrk_rate(api, seconds=2)
                run = runs[binary]
                run["cold"].append(cold)
                run["warm"].append(warm)
                run["phase"].append(phase)
                run["ratio"].append(n / warm / rate)
                run["rss"].append(kib / 1024)
            print(f"round {r + 1}/{args.rounds} done", flush=True)
    finally:
        api.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for binary, label in names.items():
        run = runs[binary]
        rows += [
            (f"{label}: cold --once", spread(run["cold"]) + " s",
             f"{statistics.median(loop_each * n / c for c in run['cold']):.0f}x the curl\\|jq loop"),
            (f"{label}: warm --once, x wrk", spread(run["ratio"]),
             f"{statistics.median(loop_each * n / w for w in run['warm']):.0f}x the curl\\|jq loop "
             f"per instance; wall {spread(run['warm'])} s"),
            (f"{label}:   of which the refreshes", spread(run["phase"], "{:.3f}") + " s",
             "after start-up and the config, from the pass's summary line"),
            (f"{label}: --once peak RSS", spread(run["rss"], "{:.1f}") + " MiB", ""),
        ]
    record("interleaved pairs, ",
           f"bench/pairs.py OLD NEW --instances {n} --rounds {args.rounds} --sample {args.sample}",
           rows, f"; old = {args.old}, new = {args.new}; each round runs both, "
                 f"{args.rounds // 2 + args.rounds % 2} old first and {args.rounds // 2} new first; "
                 "median (min-max)")


if __name__ == "__main__":
    main()
