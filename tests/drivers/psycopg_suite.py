"""psycopg 3 against one database (shardgate or the oracle): prints a transcript that must be
the same for both. Usage: psycopg_suite.py HOST PORT USER PASSWORD DBNAME TABLE BIG_TABLE"""
import sys

import psycopg

host, port, user, password, dbname, table, big = sys.argv[1:8]
DSN = dict(host=host, port=port, user=user, password=password, dbname=dbname, connect_timeout=10)
COLS = "k, v, n, f, b, d, ts, u, j, ba, arr"


def setup():
    """The suite's table, from setup.sql with {t} replaced by its name."""
    import pathlib
    text = (pathlib.Path(__file__).parent / "setup.sql").read_text().replace("{t}", table)
    with psycopg.connect(**DSN, autocommit=True) as c:
        for stmt in text.split(";\n"):
            lines = [l for l in stmt.splitlines() if not l.startswith("--")]
            if "".join(lines).strip():
                c.execute("\n".join(lines))


def out(label, value):
    print(f"{label}: {value!r}", flush=True)


def rows(cur):
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in cur.fetchall()]


def scenario(mode, **kw):
    with psycopg.connect(**DSN, **kw) as c:
        c.autocommit = True
        binary = mode == "binary"
        cur = c.cursor(binary=binary)
        # Keyed lookups: the same statement (prepared by the driver after its threshold) for
        # keys on every node.
        for k in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]:
            cur.execute(f"SELECT {COLS} FROM {table} WHERE k = %s", (k,))
            out(f"{mode} lookup {k}", rows(cur))
        for _ in range(3):
            cur.execute(f"SELECT count(*), sum(n), min(d), max(ts), avg(f) FROM {table} WHERE k > %s", (100,))
            out(f"{mode} scatter aggregate", rows(cur))
        cur.execute(f"SELECT b, count(*), sum(k) FROM {table} WHERE k < %s GROUP BY b ORDER BY b", (500,))
        out(f"{mode} group by", rows(cur))
        cur.execute(f"SELECT k, v FROM {table} WHERE k > %s ORDER BY k DESC LIMIT %s", (10, 5))
        out(f"{mode} order limit", rows(cur))
        base = {"default": 10_000, "binary": 20_000, "prepare0": 30_000}[mode]
        cur.execute(
            f"INSERT INTO {table} (k, v, n, d) VALUES (%s, %s, %s, %s), (%s, %s, %s, %s) RETURNING k, v, n, d",
            (base + 1, "a", 1.5, "2025-01-02", base + 2, "b", 2.5, "2025-01-03"),
        )
        out(f"{mode} insert returning", rows(cur))
        # A transaction over several nodes that commits, one that rolls back.
        c.autocommit = False
        with c.transaction():
            for i in range(3, 9):
                cur.execute(f"INSERT INTO {table} (k, v) VALUES (%s, %s)", (base + i, f"t{i}"))
            cur.execute(f"UPDATE {table} SET v = v || '!' WHERE k IN (%s, %s, %s)", (base + 3, base + 4, base + 5))
            out(f"{mode} update in txn", cur.rowcount)
        try:
            with c.transaction():
                for i in range(10, 16):
                    cur.execute(f"INSERT INTO {table} (k, v) VALUES (%s, %s)", (base + i, f"r{i}"))
                cur.execute(f"DELETE FROM {table} WHERE k IN (%s, %s)", (base + 3, base + 6))
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        c.autocommit = True
        cur.execute(f"SELECT k, v FROM {table} WHERE k > %s ORDER BY k", (base,))
        out(f"{mode} after commit and rollback", rows(cur))
        # An error, then a statement that works.
        for sql, args in [
            (f"SELECT k / (k - k) FROM {table} WHERE k = %s", (7,)),
            (f"SELECT k / (k - k) FROM {table} WHERE k > %s", (0,)),
            (f"SELECT no_such_column FROM {table} WHERE k = %s", (7,)),
        ]:
            try:
                cur.execute(sql, args)
                out(f"{mode} error", "no error")
            except psycopg.Error as e:
                out(f"{mode} error", (e.sqlstate, e.diag.message_primary))
            cur.execute(f"SELECT v FROM {table} WHERE k = %s", (7,))
            out(f"{mode} after error", rows(cur))


def two_sessions():
    with psycopg.connect(**DSN, autocommit=True) as a, psycopg.connect(**DSN, autocommit=True) as b:
        a.execute("CREATE TEMP TABLE drv_tt (x int)")
        a.execute("INSERT INTO drv_tt VALUES (1), (2)")
        try:
            b.execute("SELECT * FROM drv_tt")
            out("temp in other session", "visible")
        except psycopg.Error as e:
            out("temp in other session", e.sqlstate)
        for k in [1, 2, 3]:
            a.execute(f"SELECT v FROM {table} WHERE k = %s", (k,))
        out("temp in own session", a.execute("SELECT sum(x) FROM drv_tt").fetchall())
        out("a locks", a.execute(f"SELECT pg_advisory_lock(hashtext('{table}'))").fetchall())
        out("b tries", b.execute(f"SELECT pg_try_advisory_lock(hashtext('{table}'))").fetchall())
        for k in [1, 2, 3]:
            a.execute(f"SELECT v FROM {table} WHERE k = %s", (k,))
        out("a unlocks", a.execute(f"SELECT pg_advisory_unlock(hashtext('{table}'))").fetchall())
        out("b tries again", b.execute(f"SELECT pg_try_advisory_lock(hashtext('{table}'))").fetchall())
        out("b unlocks", b.execute(f"SELECT pg_advisory_unlock(hashtext('{table}'))").fetchall())


def server_side_cursor():
    with psycopg.connect(**DSN) as c:
        with c.cursor(name="drv_cur") as cur:
            cur.itersize = 1000
            cur.execute(f"SELECT k, v FROM {big} WHERE k > %s ORDER BY k", (0,))
            n, s, first, last = 0, 0, None, None
            for k, v in cur:
                n, s = n + 1, s + k
                first = first or (k, v)
                last = (k, v)
            out("server-side cursor", (n, s, first, last))
        c.commit()
        with c.cursor(name="drv_cur2", binary=True) as cur:
            cur.execute(f"SELECT {COLS} FROM {table} WHERE k < %s ORDER BY k", (20,))
            out("server-side binary cursor", cur.fetchmany(5))
            out("server-side binary cursor rest", len(cur.fetchall()))


def startup_options():
    """Settings in the startup packet's options: what the server reports, and what it uses."""
    opts = "-c TimeZone=America/New_York -c DateStyle=SQL,DMY -c IntervalStyle=iso_8601"
    with psycopg.connect(**DSN, options=opts, autocommit=True) as c:
        for p in ["TimeZone", "DateStyle", "IntervalStyle", "client_encoding", "standard_conforming_strings"]:
            out(f"reported {p}", c.info.parameter_status(p))
        cur = c.cursor()
        cur.execute(f"SELECT ts::text, d::text, (interval '1 day 2 hours')::text FROM {table} WHERE k = %s", (5,))
        out("values under options", cur.fetchall())
        out("show", [c.execute(f"SHOW {p}").fetchone() for p in ["TimeZone", "DateStyle"]])
    for bad in ["-c TimeZone=Nowhere/Special", "-c work_mem=bogus", "-c no_such_setting=1"]:
        try:
            psycopg.connect(**DSN, options=bad).close()
            out(f"bad option {bad}", "accepted")
        except psycopg.OperationalError as e:
            out(f"bad option {bad}", str(e).strip().splitlines()[-1].split("FATAL:")[-1].strip())


setup()
startup_options()
for mode, kw in [("default", {}), ("binary", {}), ("prepare0", {"prepare_threshold": 0})]:
    scenario(mode, **kw)
two_sessions()
server_side_cursor()
print("done")
