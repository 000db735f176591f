"""Narrated demo: rootcertd keeps verify-full clients working through a CA rotation.

An Aiven project's CA, served by nginx over TLS exactly as Aiven's API
documents it (GET /v1/project/{project}/kms/ca, "Authorization: aivenv1
TOKEN"), and a PostgreSQL with TLS; both on loopback. Uses the integration
tests' real peers (tests/integration/harness/).

Every step waits for an outcome the daemon exposes (a file's contents, a
counter in /metrics, /status), never for the wording of a log line."""
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "integration"))
from harness import (PROVIDER_TOKENS, ConnectionLoop, Daemon, Pki, Postgres,  # noqa: E402
                     ProviderApis, free_port, http_get, parse_metrics, wait_for)

LOCAL = "DNS:localhost,IP:127.0.0.1"
PROJECT = "demo-project"


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


def serve(apis, ca):
    """What Aiven's API answers for the project: its CA in "certificate"."""
    apis.put(f"aiven/{PROJECT}.json", json.dumps(
        {"certificate": ca.read_text(), "errors": [], "message": "Completed"}))


def failures(port):
    metrics = parse_metrics(http_get(port, "/metrics")[2])
    return sum(v for (name, labels), v in metrics.items()
               if name == "rootcertd_refresh_total" and ("result", "failure") in labels)


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-demo-"))
    work.chmod(0o755)
    pki = Pki(work / "pki")
    say("an Aiven-shaped API (nginx over TLS) and a PostgreSQL with TLS, on loopback")
    apis = ProviderApis(work / "api", pki)
    ca_v1 = pki.ca("project-ca-v1", "Aiven Project CA v1")
    serve(apis, ca_v1)
    pg = Postgres(*pki.leaf("pg-v1", ca_v1, LOCAL, "localhost"))
    token = work / "aiven-token"
    token.write_text(PROVIDER_TOKENS["aiven"] + "\n")
    token.chmod(0o600)
    services = work / "pg_service.conf"
    port = free_port()
    source = {"provider": "aiven", "project": PROJECT, "credential": "aiven",
              "api_url": apis.url, "ca_file": str(apis.trust)}
    daemon = Daemon(work / "rootcertd", apis,
                    [{"name": "prod", "source": source, "host": "localhost", "port": pg.port,
                      "dbname": "postgres", "user": "postgres"}],
                    api=None, credentials={"aiven": {"file": str(token)}},
                    refresh_interval="1s", jitter=0, verify_interval="1s",
                    pg_service_file=str(services), metrics={"listen": f"127.0.0.1:{port}"})
    log = LogTail(daemon)
    loop = None
    ok = True
    try:
        say(f"rootcertd --config {daemon.config}")
        print("    " + "\n    ".join(daemon.config.read_text().splitlines()))
        daemon.start()
        wait_for(lambda: daemon.file("prod").exists(), 15, "the first install")
        log.show()
        say("clients connect by service name; rootcertd keeps the section in pg_service.conf")
        print("    " + "\n    ".join(services.read_text().splitlines()))
        ok &= psql_service(services)

        say("a client keeps connecting with verify-full every 100 ms while the CA rotates")
        loop = ConnectionLoop(pg, daemon.file("prod"))
        ca_v2 = pki.ca("project-ca-v2", "Aiven Project CA v2")
        say("1. the API starts serving CA v2: rootcertd installs v2 and keeps v1 for the overlap")
        serve(apis, ca_v2)
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
        good = daemon.file("prod").read_bytes()
        before = failures(port)
        apis.put(f"aiven/{PROJECT}.json", "{}")
        wait_for(lambda: failures(port) > before, 10, "a failed refresh in /metrics")
        log.show()
        prod = next(i for i in json.loads(http_get(port, "/status")[2])["instances"]
                    if i["name"] == "prod")
        print(f"    /status: prod last_error = {prod['last_error']!r}")
        kept = daemon.file("prod").read_bytes() == good
        print(f"    {daemon.file('prod')}: {'kept as it was' if kept else 'CHANGED'}")
        ok &= kept
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
        apis.stop()
        shutil.rmtree(work, ignore_errors=True)
    say("done: every connection verified" if ok else "a connection failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
