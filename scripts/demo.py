"""Narrated demo: rootcertd keeps a verify-full sslrootcert current across a CA rotation.

Uses the integration tests' real peers (tests/integration/harness.py)."""
import pathlib
import shutil
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "integration"))
from harness import Daemon, FakeApi, Pki, Postgres, wait_for  # noqa: E402


def say(text):
    print(f"\n\033[1mdemo:\033[0m {text}", flush=True)


def show_new_log(daemon, seen):
    lines = daemon.output().splitlines()
    for line in lines[seen:]:
        print(f"    rootcertd | {line}")
    return len(lines)


def psql(pg, rootcert):
    r = pg.psql_verify_full(rootcert)
    verdict = "connected" if r.returncode == 0 else "FAILED: " + r.stderr.strip().splitlines()[-1]
    print(f"    psql 'host=localhost port={pg.port} sslmode=verify-full sslrootcert={rootcert}' -> {verdict}")
    return r.returncode == 0


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-demo-"))
    pki = Pki(work / "pki")
    say("starting a fake Tembo data-plane API (nginx over TLS on loopback) and a PostgreSQL with TLS")
    api = FakeApi(work / "api", pki)
    ca_v1 = pki.ca("instance-ca-v1", "Tembo Instance CA v1")
    api.serve("org_demo", "inst_prod", ca_v1)
    pg = Postgres(*pki.leaf("pg-v1", ca_v1, "DNS:localhost,IP:127.0.0.1", "localhost"))
    daemon = Daemon(work / "rootcertd", api, [{"org": "org_demo", "id": "inst_prod", "name": "prod"}],
                    refresh_interval="1s", jitter=0)
    ok = True
    try:
        say(f"running: rootcertd --config {daemon.config}")
        daemon.start()
        wait_for(lambda: daemon.file("prod").exists(), 10, "the first file")
        seen = show_new_log(daemon, 0)
        say("a client connects with sslmode=verify-full using the file rootcertd keeps")
        ok &= psql(pg, daemon.file("prod"))

        say("the CA rotates: the API serves a new CA, then the server switches to a certificate under it")
        ca_v2 = pki.ca("instance-ca-v2", "Tembo Instance CA v2")
        api.serve("org_demo", "inst_prod", ca_v2)
        wait_for(lambda: daemon.file("prod").read_text() == ca_v2.read_text(), 10, "the new CA")
        pg.use_certificate(*pki.leaf("pg-v2", ca_v2, "DNS:localhost,IP:127.0.0.1", "localhost"))
        seen = show_new_log(daemon, seen)
        say("the same client command, no change on its side")
        ok &= psql(pg, daemon.file("prod"))

        say("a bad answer from the API never replaces a good file")
        api.serve("org_demo", "inst_prod", body="{}")
        daemon.wait_log("secret holds no CA")
        seen = show_new_log(daemon, seen)
        ok &= psql(pg, daemon.file("prod"))

        say("SIGTERM: rootcertd stops at once and leaves only whole files")
        daemon.stop()
        show_new_log(daemon, seen)
        print(f"    {daemon.cert_dir}: {sorted(p.name for p in daemon.cert_dir.iterdir())}")
    finally:
        daemon.stop()
        pg.stop()
        api.stop()
        shutil.rmtree(work, ignore_errors=True)
    say("done: every connection verified" if ok else "a connection failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
