"""Bulk-load benchmark: PostgreSQL's side of a full load, by table persistence, indexes and writers.

No MongoDB is involved, and no conversion is timed: the seeded users' rows
are converted by our own code once, before the clock starts. Concurrent
writers, each on its own connection, then load the pages into the real
staging table as page tasks do: one transaction per page that starts like a
page (load lock, owner check, delete of the page's earlier rows) and COPYs its
rows. Four ways are compared: (a) today's logged table with its indexes, (b)
logged with the indexes built after the last page, (c) unlogged with its
indexes, (d) unlogged with the indexes built after, then made logged. The WAL
each way writes is reported too, since production replicates it.

    bash scripts/benchmark.sh bulk-load [--rows 1000000] [--writers 1,4,16,90] [--repeat 1]
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from airflow.providers.postgres.hooks.postgres import PostgresHook

from benchmarks.machine import machine, measured_on, save_results
from benchmarks.write_path import build_pages, pre_encode, user_documents
from include import config
from mongo_migration import target
from mongo_migration.connections import transaction
from mongo_migration.documents import Conversion
from tests.staging import OUTSIDE_A_RUN, USERS, drop_tables, reset_staging, staged, users

TABLE = "benchmark_bulk_load"
TABLES = users(TABLE)
# The statements that drop each index of a table (its primary key by its constraint) and build it
# again, read from the catalog, so the table's definition stays in include/sql/create_staging.sql alone.
INDEXES = """
SELECT CASE WHEN c.conname IS NULL THEN format('DROP INDEX %%s', i.indexrelid::regclass)
            ELSE format('ALTER TABLE %%s DROP CONSTRAINT %%I', i.indrelid::regclass, c.conname) END,
       CASE WHEN c.conname IS NULL THEN pg_get_indexdef(i.indexrelid)
            ELSE format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', i.indrelid::regclass, c.conname,
                        pg_get_constraintdef(c.oid)) END
FROM pg_index i
LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
WHERE i.indrelid = %s::regclass
"""
# What decides how much WAL there is and what writing it costs; the local stack runs without fsync.
SETTINGS = ("wal_level", "full_page_writes", "fsync", "synchronous_commit")


class Variant(NamedTuple):
    name: str
    unlogged: bool
    indexes_after: bool  # dropped before the first page, built after the last
    set_logged: bool


VARIANTS = (
    Variant("a: logged, indexes during the load (today)", False, False, False),
    Variant("b: logged, indexes built after", False, True, False),
    Variant("c: unlogged, indexes during the load", True, False, False),
    Variant("d: unlogged, indexes built after, then SET LOGGED", True, True, True),
)


def load(pages: list[tuple[int, bytes]], writers: int) -> float:
    """Seconds from the moment every writer is connected until the last page commits.

    The pages are dealt out in turn; threads suffice, as the rows are bytes
    already and each writer mostly waits on its connection.
    """
    connections = [PostgresHook().get_conn() for _ in range(writers)]
    start = threading.Barrier(writers + 1)

    def write(conn, share: list[tuple[int, bytes]]) -> None:
        with conn:
            conn.autocommit = True
            start.wait()
            for number, rows in share:
                with transaction(conn), conn.cursor() as cursor:
                    target.start_page(conn, TABLES, OUTSIDE_A_RUN, number)
                    with cursor.copy(target.statement("copy_into_staging", TABLES)) as copy:
                        copy.write(rows)

    with ThreadPoolExecutor(writers) as pool:
        done = [pool.submit(write, conn, pages[i::writers]) for i, conn in enumerate(connections)]
        start.wait()
        started = time.perf_counter()
        for future in done:
            future.result()
        return time.perf_counter() - started


def timed(conn, statements: list[str]) -> float:
    started = time.perf_counter()
    for statement in statements:
        conn.execute(statement)
    return time.perf_counter() - started


def run(conn, pages: list[tuple[int, bytes]], rows: int, writers: int, variant: Variant) -> dict:
    reset_staging(conn, TABLES)
    if variant.unlogged:
        conn.execute(f"ALTER TABLE {staged(TABLE)} SET UNLOGGED")
    rebuild = []
    if variant.indexes_after:
        for drop, build in conn.execute(INDEXES, (staged(TABLE),)).fetchall():
            conn.execute(drop)
            rebuild.append(build)
    conn.execute("CHECKPOINT")  # every variant starts with nothing of the previous one left to flush
    (wal_start,) = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
    load_seconds = load(pages, writers)
    build_seconds = timed(conn, rebuild)
    logged_seconds = timed(conn, [f"ALTER TABLE {staged(TABLE)} SET LOGGED"] if variant.set_logged else [])
    (wal,) = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (wal_start,)).fetchone()
    loaded, _ = target.count_rows(conn, TABLES)
    if loaded != rows:
        raise RuntimeError(f"{variant.name}, {writers} writers: the table holds {loaded} rows, not {rows}")
    total = load_seconds + build_seconds + logged_seconds
    return {
        "variant": variant.name,
        "writers": writers,
        "total_seconds": round(total, 2),
        "load_seconds": round(load_seconds, 2),
        "index_build_seconds": round(build_seconds, 2),
        "set_logged_seconds": round(logged_seconds, 2),
        "rows_per_second": round(rows / total),
        "wal_bytes": int(wal),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--writers", default="1,4,16,90", help="comma-separated writer counts")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each variant; the fastest counts")
    args = parser.parse_args()
    writer_counts = [int(count) for count in args.writers.split(",")]

    conversion = Conversion(USERS)
    pages = [
        (page.number, pre_encode(conversion, page.number, batches).rows)
        for page, batches in build_pages(args.rows, config.ITEMS_PER_PAGE, user_documents)
    ]
    results = []
    with PostgresHook().get_conn() as conn:
        conn.autocommit = True
        server = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in SETTINGS}
        for writers in writer_counts:
            for variant in VARIANTS:
                runs = [run(conn, pages, args.rows, writers, variant) for _ in range(args.repeat)]
                results.append(min(runs, key=lambda result: result["total_seconds"]))
                print(f"{variant.name}, {writers} writers: {results[-1]['total_seconds']} s", flush=True)
        drop_tables(conn, TABLE)

    result = {
        "rows": args.rows,
        "pages": len(pages),
        "repeat": args.repeat,
        "server": server,
        "results": results,
        "measured": measured_on(),
        "machine": machine(),
    }
    markdown = "\n".join(
        [
            f"{args.rows:,} pre-encoded rows in {len(pages)} pages of {config.ITEMS_PER_PAGE}, one "
            f"transaction each, best of {args.repeat}; measured {result['measured']} on {result['machine']}; "
            f"target PostgreSQL with " + ", ".join(f"{name}={value}" for name, value in server.items()),
            "",
            "| variant | writers | total s | load s | index build s | SET LOGGED s | rows/s | WAL MiB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {r['variant']} | {r['writers']} | {r['total_seconds']:.2f} | {r['load_seconds']:.2f} | "
                f"{r['index_build_seconds']:.2f} | {r['set_logged_seconds']:.2f} | "
                f"{r['rows_per_second']:,} | {r['wal_bytes'] / 2**20:,.0f} |"
                for r in results
            ),
        ]
    )
    save_results("bulk_load", result, markdown)


if __name__ == "__main__":
    main()
