"""Narrated demo: rootcertd keeps verify-full clients working through a CA rotation.

Uses the integration tests' real peers (tests/integration/harness.py)."""
import os
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "integration"))
from harness import ConnectionLoop, Daemon, FakeApi, Pki, Postgres, wait_for  # noqa: E402

LOCAL = "DNS:localhost,IP:127.0.0.1"


def say(text):
    print(f"\n\033[1mdemo:\033[0m {text}", flush=True)


class LogTail:
    def __init__(self, daemon):
        self.daemon, self.seen = daemon, 0

    def show(self):
        lines = self.daemon.output().splitlines()
        for line in lines[self.seen:]:
            print(f"    rootcertd | {line}")
        self.seen = len(lines)


def psql_service(services):
    r = Postgres.psql("service=prod", env={**os.environ, "PGSERVICEFILE": str(services)})
    verdict = "connected" if r.returncode == 0 else "FAILED: " + r.stderr.strip().splitlines()[-1]
    print(f"    PGSERVICEFILE={services} psql service=prod -> {verdict}")
    return r.returncode == 0


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-demo-"))
    pki = Pki(work / "pki")
    say("a fake Tembo data-plane API (nginx over TLS) and a PostgreSQL with TLS, on loopback")
    api = FakeApi(work / "api", pki)
    ca_v1 = pki.ca("instance-ca-v1", "Tembo Instance CA v1")
    api.serve("org_demo", "inst_prod", ca_v1)
    pg = Postgres(*pki.leaf("pg-v1", ca_v1, LOCAL, "localhost"))
    services = work / "pg_service.conf"
    daemon = Daemon(work / "rootcertd", api,
                    [{"org": "org_demo", "id": "inst_prod", "name": "prod", "host": "localhost",
                      "port": pg.port, "dbname": "postgres", "user": "postgres"}],
                    refresh_interval="1s", jitter=0, verify_interval="1s",
                    pg_service_file=str(services))
    log = LogTail(daemon)
    loop = None
    ok = True
    try:
        say(f"rootcertd --config {daemon.config}")
        daemon.start()
        daemon.wait_log("installed CA")
        log.show()
        say("clients connect by service name; rootcertd keeps the section in pg_service.conf")
        print("    " + "\n    ".join(services.read_text().splitlines()))
        ok &= psql_service(services)

        say("a client keeps connecting with verify-full every 100 ms while the CA rotates")
        loop = ConnectionLoop(pg, daemon.file("prod"))
        ca_v2 = pki.ca("instance-ca-v2", "Tembo Instance CA v2")
        say("1. the API starts serving CA v2: rootcertd installs v2 and keeps v1 for the overlap")
        api.serve("org_demo", "inst_prod", ca_v2)
        wait_for(lambda: daemon.file("prod").read_text().startswith(ca_v2.read_text()), 10, "v2")
        log.show()
        installed = time.monotonic()
        wait_for(lambda: loop.successes_after(installed) >= 5, 10, "connections")
        say("2. the server switches to a certificate under v2")
        pg.use_certificate(*pki.leaf("pg-v2", ca_v2, LOCAL, "localhost"))
        switched = time.monotonic()
        wait_for(lambda: loop.successes_after(switched) >= 5, 10, "connections")
        results = loop.stop()
        failed = len(loop.failures())
        print(f"    {len(results)} connections during the rotation, {failed} failed")
        ok &= failed == 0
        ok &= psql_service(services)

        say("a bad answer from the API never replaces a good file")
        api.serve("org_demo", "inst_prod", body="{}")
        daemon.wait_log("secret holds no CA")
        log.show()
        ok &= psql_service(services)

        say("SIGTERM: rootcertd stops at once and leaves only whole files")
        daemon.stop()
        log.show()
        print(f"    {daemon.cert_dir}: {sorted(p.name for p in daemon.cert_dir.iterdir())}")
    finally:
        if loop:
            loop.stop()
        daemon.stop()
        pg.stop()
        api.stop()
        shutil.rmtree(work, ignore_errors=True)
    say("done: every connection verified" if ok else "a connection failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
