"""Which client stacks read sslrootcert again for a new connection?

For each client: a PostgreSQL server with TLS presents a certificate under
CA one, and the rootcert file holds CA one. The client opens its pool and
connects (must be ok). Then the file is replaced by rename with CA two only
(as rootcertd replaces it), and the server switches to a certificate under CA
two. The client opens a new connection from the same pool: it succeeds only
if the stack read the file again."""
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests" / "integration"))
from harness import Pki, Postgres  # noqa: E402

BUILT = pathlib.Path(os.environ.get("CLIENTS_BUILD", "/tmp/rootcertd-clients"))
CLIENTS = {
    "libpq (psycopg2 2.9, SimpleConnectionPool)": ["/usr/bin/python3", str(HERE / "psycopg2_pool.py")],
    "asyncpg 0.27 (create_pool, dsn with sslrootcert)": ["/usr/bin/python3", str(HERE / "asyncpg_pool.py")],
    "pgjdbc 42.5 (DriverManager)": ["java", "-cp", f"{BUILT}:/usr/share/java/postgresql.jar", "Jdbc"],
    "pgx v4 (pgxpool, dsn with sslrootcert)": [str(BUILT / "pgxpool")],
    "node-postgres 8.8 (Pool, ssl.ca read at start)": ["node", str(HERE / "node_pool.js")],
}


def measure(name, cmd, pki, work):
    ca1, ca2 = pki.ca("clients-one"), pki.ca("clients-two")
    leaf1 = pki.leaf("clients-leaf-one", ca1, "DNS:localhost,IP:127.0.0.1", "localhost")
    leaf2 = pki.leaf("clients-leaf-two", ca2, "DNS:localhost,IP:127.0.0.1", "localhost")
    rootcert = work / "root.crt"
    rootcert.write_text(ca1.read_text())
    pg = Postgres(*leaf1)
    try:
        env = dict(os.environ, NODE_PATH=str(BUILT / "node_modules"))
        p = subprocess.Popen([*cmd, "localhost", str(pg.port), str(rootcert)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        first = p.stdout.readline().strip()
        tmp = work / "root.crt.tmp"
        tmp.write_text(ca2.read_text())
        os.replace(tmp, rootcert)
        pg.use_certificate(*leaf2)
        p.stdin.write("\n")
        p.stdin.flush()
        second = p.stdout.readline().strip()
        p.stdin.write("\n")
        p.stdin.close()
        p.wait(30)
        if not first:
            first = "fail " + p.stderr.read().strip().splitlines()[-1]
        return first, second
    finally:
        pg.stop()


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-clients-"))
    pki = Pki(work / "pki")
    print("| client stack | first connection | new connection after the file and the server rotated |")
    print("| --- | --- | --- |")
    for name, cmd in CLIENTS.items():
        first, second = measure(name, cmd, pki, work)
        verdict = "re-reads the file" if second == "ok" else f"keeps the old CA ({second[:80]})"
        print(f"| {name} | {first} | {verdict} |", flush=True)


if __name__ == "__main__":
    main()
