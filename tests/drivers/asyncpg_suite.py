"""asyncpg against one database (shardgate or the oracle): prints a transcript that must be the
same for both. Usage: asyncpg_suite.py HOST PORT USER PASSWORD DBNAME TABLE BIG_TABLE"""
import asyncio
import pathlib
import sys

import asyncpg

host, port, user, password, dbname, table, big = sys.argv[1:8]
COLS = "k, v, n, f, b, d, ts, u, j, ba, arr"


def out(label, value):
    print(f"{label}: {value!r}", flush=True)


def plain(rows):
    return [tuple(r.values()) for r in rows]


async def connect(**kw):
    return await asyncpg.connect(host=host, port=int(port), user=user, password=password or None,
                                 database=dbname, timeout=10, **kw)


async def setup(c):
    text = (pathlib.Path(__file__).parent / "setup.sql").read_text().replace("{t}", table)
    for stmt in text.split(";\n"):
        lines = [l for l in stmt.splitlines() if not l.startswith("--")]
        if "".join(lines).strip():
            await c.execute("\n".join(lines))


async def scenario(c, mode):
    base = {"fetch": 10_000, "prepared": 20_000}[mode]
    lookup = await c.prepare(f"SELECT {COLS} FROM {table} WHERE k = $1")
    for k in range(1, 13):
        if mode == "prepared":
            out(f"{mode} lookup {k}", plain(await lookup.fetch(k)))
        else:
            out(f"{mode} lookup {k}", plain(await c.fetch(f"SELECT {COLS} FROM {table} WHERE k = $1", k)))
    agg = f"SELECT count(*), sum(n), min(d), max(ts), avg(f) FROM {table} WHERE k > $1"
    for _ in range(3):
        out(f"{mode} scatter aggregate", plain(await c.fetch(agg, 100)))
    out(f"{mode} group by", plain(await c.fetch(
        f"SELECT b, count(*), sum(k) FROM {table} WHERE k < $1 GROUP BY b ORDER BY b", 500)))
    out(f"{mode} fetchval", await c.fetchval(f"SELECT max(k) FROM {table} WHERE k < $1", 900))
    out(f"{mode} insert returning", plain(await c.fetch(
        f"INSERT INTO {table} (k, v, n, d) VALUES ($1, $2, $3, $4), ($5, $6, $7, $8) RETURNING k, v, n, d",
        base + 1, "a", 1.5, __import__("datetime").date(2025, 1, 2),
        base + 2, "b", 2.5, __import__("datetime").date(2025, 1, 3))))
    async with c.transaction():
        ins = await c.prepare(f"INSERT INTO {table} (k, v) VALUES ($1, $2)")
        for i in range(3, 9):
            await ins.fetch(base + i, f"t{i}")
        out(f"{mode} update in txn", await c.execute(
            f"UPDATE {table} SET v = v || '!' WHERE k = ANY($1::int8[])", [base + 3, base + 4, base + 5]))
    try:
        async with c.transaction():
            await c.executemany(f"INSERT INTO {table} (k, v) VALUES ($1, $2)",
                                [(base + i, f"r{i}") for i in range(10, 16)])
            await c.execute(f"DELETE FROM {table} WHERE k = $1 OR k = $2", base + 3, base + 6)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    out(f"{mode} after commit and rollback", plain(await c.fetch(
        f"SELECT k, v FROM {table} WHERE k > $1 ORDER BY k", base)))
    for sql, args in [
        (f"SELECT k / (k - k) FROM {table} WHERE k = $1", (7,)),
        (f"SELECT k / (k - k) FROM {table} WHERE k > $1", (0,)),
        (f"SELECT no_such_column FROM {table} WHERE k = $1", (7,)),
    ]:
        try:
            await c.fetch(sql, *args)
            out(f"{mode} error", "no error")
        except asyncpg.PostgresError as e:
            out(f"{mode} error", (e.sqlstate, str(e)))
        out(f"{mode} after error", await c.fetchval(f"SELECT v FROM {table} WHERE k = $1", 7))


async def two_sessions():
    a, b = await connect(), await connect()
    await a.execute("CREATE TEMP TABLE drv_tt (x int)")
    await a.execute("INSERT INTO drv_tt VALUES (1), (2)")
    try:
        await b.fetch("SELECT * FROM drv_tt")
        out("temp in other session", "visible")
    except asyncpg.PostgresError as e:
        out("temp in other session", e.sqlstate)
    for k in [1, 2, 3]:
        await a.fetch(f"SELECT v FROM {table} WHERE k = $1", k)
    out("temp in own session", await a.fetchval("SELECT sum(x) FROM drv_tt"))
    await a.execute(f"SELECT pg_advisory_lock(hashtext('{table}'))")
    out("b tries", await b.fetchval(f"SELECT pg_try_advisory_lock(hashtext('{table}'))"))
    out("a unlocks", await a.fetchval(f"SELECT pg_advisory_unlock(hashtext('{table}'))"))
    out("b tries again", await b.fetchval(f"SELECT pg_try_advisory_lock(hashtext('{table}'))"))
    out("b unlocks", await b.fetchval(f"SELECT pg_advisory_unlock(hashtext('{table}'))"))
    await a.close()
    await b.close()


async def cursors(c):
    async with c.transaction():
        n, s, first, last = 0, 0, None, None
        async for r in c.cursor(f"SELECT k, v FROM {big} WHERE k > $1 ORDER BY k", 0, prefetch=1000):
            n, s = n + 1, s + r["k"]
            first = first or tuple(r.values())
            last = tuple(r.values())
        out("cursor", (n, s, first, last))
        cur = await c.cursor(f"SELECT {COLS} FROM {table} WHERE k < $1 ORDER BY k", 20)
        out("cursor fetch", plain(await cur.fetch(5)))
        out("cursor forward", await cur.forward(3))
        out("cursor fetchrow", tuple((await cur.fetchrow()).values()))


async def copy(c):
    records = [(50_000 + i, f"c{i}", i * 1.5) for i in range(1, 101)]
    out("copy records", await c.copy_records_to_table(table, records=records, columns=["k", "v", "f"]))
    out("after copy", plain(await c.fetch(
        f"SELECT count(*), sum(k), sum(f) FROM {table} WHERE k > $1", 50_000)))


async def main():
    c = await connect()
    await setup(c)
    await scenario(c, "fetch")
    await scenario(c, "prepared")
    await two_sessions()
    await cursors(c)
    await copy(c)
    await c.close()
    print("done")


asyncio.run(main())
