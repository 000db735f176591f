"""psycopg2 (libpq) with a connection pool: does a new connection read sslrootcert again?"""
import sys

import psycopg2.pool

host, port, rootcert = sys.argv[1:4]
dsn = f"host={host} port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert={rootcert}"
pool = psycopg2.pool.SimpleConnectionPool(1, 4, dsn)


def round_():
    held = [pool.getconn(), pool.getconn()]  # the second is always a new connection
    for c in held:
        c.cursor().execute("select 1")
    pool.putconn(held[1], close=True)
    pool.putconn(held[0], close=True)


for _ in range(2):
    try:
        round_()
        print("ok", flush=True)
    except Exception as e:  # noqa: BLE001 - any failure is the result
        print("fail", str(e).splitlines()[0], flush=True)
    sys.stdin.readline()
