"""A fleet soak: N instances against nginx, 10% failing (404 and 500), 1%
slow, refreshed on a short interval for a while. Samples the daemon's RSS
and open file descriptors every second and measures each healthy instance's
cadence from nginx's access log. Used by test_soak.py (small, in CI) and
bench/soak (10,000 instances, figures recorded in bench/RESULTS.md)."""
import json
import os
import pathlib
import re
import statistics
import subprocess
import time

from harness import BINARY, GOOD_TOKEN, FakeApi, Pki, wait_for


def kind(i):
    if i % 100 == 0:
        return "slow"
    if i % 10 == 1:
        return "err" if i % 20 == 1 else "missing"
    return "healthy"


ORG = {"healthy": "org_soak", "missing": "org_soak", "err": "org_err", "slow": "org_slow"}


def rss_kib(pid):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quarter_max(samples, q):
    n = len(samples)
    return max(samples[n * q // 4: n * (q + 1) // 4])


def run_soak(work, instances, seconds, interval_s, concurrency, env=None):
    work = pathlib.Path(work)
    api = FakeApi(work / "api", Pki(work / "pki"))
    proc = None
    try:
        ca = api.pki.ca("soak-ca", "Soak CA").read_text()
        body = json.dumps({"ca.crt": ca})
        padded = body + " " * (4096 - len(body))  # ~2 s at the slow location's 2 KiB/s
        kinds = {f"i{i}": kind(i) for i in range(instances)}
        for name, k in kinds.items():
            if k in ("healthy", "slow"):
                api.serve(ORG[k], name, body=padded if k == "slow" else body)
        cert_dir = work / "certs"
        cfg = {"api": {"url": api.url, "token_file": str(work / "token"),
                       "ca_file": str(api.trust), "timeout": "5s"},
               "cert_dir": str(cert_dir), "state_dir": str(work / "state"),
               "refresh_interval": f"{int(interval_s * 1000)}ms", "jitter": 0.1,
               "concurrency": concurrency, "retry": {"min": "1s", "max": "1m"},
               "instances": [{"org": ORG[k], "id": name} for name, k in kinds.items()]}
        (work / "token").write_text(GOOD_TOKEN)
        (work / "token").chmod(0o600)
        (work / "soak.json").write_text(json.dumps(cfg))
        log = open(work / "rootcertd.log", "w")
        proc = subprocess.Popen([str(BINARY), "--config", str(work / "soak.json"),
                                 "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT,
                                env=env)
        served = sum(1 for k in kinds.values() if k in ("healthy", "slow"))
        wait_for(lambda: len(os.listdir(cert_dir)) >= served if cert_dir.exists() else False,
                 300, "the first pass")
        start_wall, start_cpu = time.time(), cpu_seconds(proc.pid)
        rss, fds = [], []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert proc.poll() is None, (work / "rootcertd.log").read_text()[-2000:]
            rss.append(rss_kib(proc.pid))
            fds.append(len(os.listdir(f"/proc/{proc.pid}/fd")))
            time.sleep(1)  # the sampling period, not a synchronisation
        cpu = cpu_seconds(proc.pid) - start_cpu
        proc.terminate()
        # 0 also means LeakSanitizer found nothing, in the sanitizer build.
        assert proc.wait(30) == 0, (work / "rootcertd.log").read_text()[-2000:]
        log.close()
    finally:
        if proc and proc.poll() is None:
            proc.kill()
        api.stop()

    # Requests per instance in the measured window, from nginx's access log.
    times = {}
    statuses = {}
    for line in api.access_log.read_text().splitlines():
        msec, _, _, status, uri = line.split()[:5]
        m = re.search(r"/(i\d+)(?:\.json|/secrets/certificate)$", uri)
        if not m or float(msec) < start_wall:
            continue
        times.setdefault(m.group(1), []).append(float(msec))
        statuses.setdefault(kinds[m.group(1)], set()).add(int(status))
    gaps = {k: [] for k in set(kinds.values())}
    cycles = {k: [] for k in set(kinds.values())}
    fifths = [[] for _ in range(5)]  # healthy gaps by when they ended
    for name, k in kinds.items():
        ts = sorted(times.get(name, []))
        cycles[k].append(len(ts))
        gaps[k] += [b - a for a, b in zip(ts, ts[1:])]
        if k == "healthy":
            for a, b in zip(ts, ts[1:]):
                fifths[min(4, int((b - start_wall) / seconds * 5))].append(b - a)
    healthy = sorted(gaps["healthy"])
    log_text = (work / "rootcertd.log").read_text()
    return {
        "instances": instances, "seconds": seconds, "interval_s": interval_s,
        "concurrency": concurrency,
        "requests": sum(len(v) for v in times.values()),
        "statuses": {k: sorted(v) for k, v in statuses.items()},
        "cycles_min": {k: min(v) for k, v in cycles.items()},
        "cycles_median": {k: statistics.median(v) for k, v in cycles.items()},
        "healthy_gap_p50": healthy[len(healthy) // 2],
        "healthy_gap_p99": healthy[len(healthy) * 99 // 100],
        "healthy_gap_max": healthy[-1],
        "healthy_gap_min": healthy[0],
        "healthy_gap_p99_by_fifth": [sorted(f)[len(f) * 99 // 100] if f else None
                                     for f in fifths],
        "slow_gap_median": statistics.median(gaps["slow"]) if gaps["slow"] else None,
        "rss_kib": rss, "fds": fds,
        "rss_growth_kib": quarter_max(rss, 3) - quarter_max(rss, 1),
        "fd_growth": quarter_max(fds, 3) - quarter_max(fds, 1),
        "cpu_s": cpu,
        "log_lines": len(log_text.splitlines()),
        "log_tail": log_text[-2000:],
    }
