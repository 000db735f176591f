"""asyncpg's create_pool: does a new connection read sslrootcert again?"""
import asyncio
import sys

import asyncpg

host, port, rootcert = sys.argv[1:4]
dsn = f"postgresql://postgres@{host}:{port}/postgres?sslmode=verify-full&sslrootcert={rootcert}"


async def main():
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=4)
    for _ in range(2):
        try:
            async with pool.acquire() as a, pool.acquire() as b:
                await a.fetchval("select 1")
                await b.fetchval("select 1")
            await pool.expire_connections()  # the next round dials anew
            print("ok", flush=True)
        except Exception as e:  # noqa: BLE001
            print("fail", str(e).splitlines()[0] if str(e) else type(e).__name__, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


asyncio.run(main())
