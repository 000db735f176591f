"""What every benchmark shares: the service environment, and one table
printed and appended to bench/RESULTS.md with the date, commit and machine."""
import datetime
import os
import pathlib
import platform
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
# rootcertd runs as systemd would start it: without a shell's SSL_CERT_FILE,
# which makes OpenSSL parse the whole system bundle up front (~60 ms here).
SERVICE_ENV = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}


def git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                          text=True).stdout.strip()


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 30
    return (f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {memory} GiB, "
            f"Debian {pathlib.Path('/etc/debian_version').read_text().strip()}, "
            f"{platform.release()}")


def record(title, command, rows, notes=""):
    """Prints ROWS (figure, value, notes) as a table and appends it to RESULTS.md."""
    width = max(len(r[0]) for r in rows)
    table = [f"| {'figure'.ljust(width)} | value | notes |", f"|{'-' * (width + 2)}|---|---|"]
    table += [f"| {a.ljust(width)} | {b} | {c} |" for a, b, c in rows]
    print("\n".join(table))
    dirty = " (+ uncommitted daemon changes)" if git("status", "--porcelain", "daemon") else ""
    header = (f"\n## {title}{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
              f"commit {git('rev-parse', '--short', 'HEAD') or 'unknown'}{dirty}\n\n"
              f"`{command}` on {machine()}{notes}\n\n")
    with open(ROOT / "bench" / "RESULTS.md", "a") as f:
        f.write(header + "\n".join(table) + "\n")
