"""Fleet soak. See bench/soak; results go to bench/RESULTS.md."""
import argparse
import pathlib
import shutil
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from soak import run_soak  # noqa: E402

from record import SERVICE_ENV, record  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=10000)
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--interval", type=float, default=2.0, help="refresh_interval, seconds")
    ap.add_argument("--concurrency", type=int, default=128)
    args = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-soak-"))
    print(f"soak: {args.instances} instances, {args.minutes} min, interval {args.interval} s",
          flush=True)
    try:
        r = run_soak(work, args.instances, int(args.minutes * 60), args.interval,
                     args.concurrency, env=SERVICE_ENV)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rss, fds = r["rss_kib"], r["fds"]
    windows = max(1, len(rss) // 5)
    rss_by_fifth = ", ".join(f"{max(rss[i:i + windows]) / 1024:.1f}"
                             for i in range(0, windows * 5, windows))
    fd_by_fifth = ", ".join(str(max(fds[i:i + windows])) for i in range(0, windows * 5, windows))
    n, s = r["instances"], r["seconds"]
    rows = [
        ("instances (healthy / 404 / 500 / slow ~2 s)",
         f"{n}", f"{n * 89 // 100} / {n * 5 // 100} / {n * 5 // 100} / {n // 100}"),
        ("requests in the measured window", f"{r['requests']}",
         f"{r['requests'] / s:.0f} req/s over {s / 60:.0f} min; concurrency {r['concurrency']}"),
        ("cycles per healthy instance", f"{r['cycles_median']['healthy']:.0f} median",
         f"min {r['cycles_min']['healthy']}; slow ones {r['cycles_median']['slow']:.0f}"),
        ("healthy gap between refreshes", f"p50 {r['healthy_gap_p50']:.3f} s",
         f"p99 {r['healthy_gap_p99']:.3f} s, min {r['healthy_gap_min']:.3f}, "
         f"max {r['healthy_gap_max']:.3f} (interval {r['interval_s']} s +-10% jitter)"),
        ("healthy gap p99, per fifth of the run",
         ", ".join(f"{g:.3f}" for g in r["healthy_gap_p99_by_fifth"]) + " s",
         "a fifth disturbed by other load on the machine shows here"),
        ("RSS, max per fifth of the run", f"{rss_by_fifth} MiB",
         f"growth 2nd->4th quarter {r['rss_growth_kib']} KiB"),
        ("open fds, max per fifth of the run", fd_by_fifth,
         f"growth 2nd->4th quarter {r['fd_growth']}"),
        ("CPU time", f"{r['cpu_s']:.0f} s", f"{r['cpu_s'] / s * 100:.0f}% of one core"),
        ("log lines", f"{r['log_lines']}", "failures logged when they start, then hourly"),
    ]
    record("Soak, ", f"bench/soak --instances {n} --minutes {args.minutes} --interval "
           f"{args.interval} --concurrency {args.concurrency}", rows)

if __name__ == "__main__":
    main()
