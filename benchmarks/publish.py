"""Publish benchmark: what publishing costs at 1,000,000 rows, by method and by how much changed.

No MongoDB is involved: the staging table is filled by SQL with rows shaped
like the seeded users (a nested address, tags), then published with the real
``target.publish`` into the live table. The previous method, dropping the live
table and moving the staging table in, is measured on the same rows.

    bash scripts/benchmark.sh publish [--rows 1000000]
"""

from __future__ import annotations

import argparse
import time

from airflow.providers.postgres.hooks.postgres import PostgresHook
from psycopg import sql

from benchmarks.machine import machine, measured_on, save_results
from mongo_migration import target
from mongo_migration.run_options import RunOptions
from tests.staging import OUTSIDE_A_RUN, drop_tables, reset_staging, staged, users

TABLE = "benchmark_publish"
TABLES = users(TABLE)
# Rows shaped like the seeded users; "version" changes the documents of the rows n % every = 0.
FILL = f"""
INSERT INTO {staged(TABLE)} (_id, username, email, age, created_at, document, page)
SELECT lpad(to_hex(n), 24, '0'), 'user.' || n, 'user.' || n || '@example.com', 18 + n %% 70,
       timestamptz '2020-01-01' + n * interval '1 minute',
       jsonb_build_object(
           '_id', jsonb_build_object('$oid', lpad(to_hex(n), 24, '0')),
           'username', 'user.' || n, 'email', 'user.' || n || '@example.com', 'age', 18 + n %% 70,
           'active', n %% 5 <> 0, 'version', CASE WHEN n %% %(every)s = 0 THEN %(version)s ELSE 0 END,
           'address', jsonb_build_object('street', n || ' Main Street', 'city', 'Springfield',
                                         'postcode', lpad((n %% 99999)::text, 5, '0'), 'country', 'US'),
           'tags', jsonb_build_array('a', 'b', 'c')),
       n / 8000
FROM generate_series(1, %(rows)s) AS n
"""


def stage(conn, rows: int, version: int = 0, every: int = 1) -> None:
    reset_staging(conn, TABLES)
    conn.execute(FILL, {"rows": rows, "version": version, "every": every})


def timed_publish(conn) -> tuple[float, dict]:
    guards = target.Guards(
        verified=target.staged_state(conn, TABLES), options=RunOptions(max_shrink_percent=100)
    )
    started = time.perf_counter()
    result = target.publish(conn, TABLES, OUTSIDE_A_RUN, guards, wait_seconds=0)
    return time.perf_counter() - started, result


def previous_swap(conn) -> float:
    """The method before: drop the live tables, move the staging ones in (renamed to the live names),
    in one transaction."""
    started = time.perf_counter()
    with conn.transaction():
        for relation in TABLES.relations:
            conn.execute(target.statement("drop_live", TABLES, relation))
            moved = sql.Identifier(TABLES.schema, TABLES.staged_name(relation))
            live_name = sql.Identifier(relation)
            conn.execute(target.statement("move_in", TABLES, relation, moved=moved, live_name=live_name))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = args.rows
    results = []
    with PostgresHook().get_conn() as conn:
        conn.autocommit = True
        drop_tables(conn, TABLE)
        stage(conn, rows)
        seconds, _ = timed_publish(conn)
        results.append(("in place: first publish (no live table yet, moved in)", seconds, rows))
        for label, version, every in (
            ("in place: nothing changed", 0, 1),
            ("in place: 1% of the rows changed", 1, 100),
            ("in place: every row changed", 2, 1),
        ):
            stage(conn, rows, version, every)
            seconds, result = timed_publish(conn)
            results.append((label, seconds, result["updated"] + result["inserted"] + result["deleted"]))
        stage(conn, rows, 3, 1)
        results.append(("previous method: drop the live table, move staging in", previous_swap(conn), rows))
        drop_tables(conn, TABLE)

    when, where = measured_on(), machine()
    markdown = "\n".join(
        [
            f"{rows:,} rows; measured {when} on {where}",
            "",
            "| method | seconds | rows written |",
            "| --- | ---: | ---: |",
            *(f"| {label} | {seconds:.2f} | {written:,} |" for label, seconds, written in results),
        ]
    )
    figures = {
        "rows": rows,
        "measured": when,
        "machine": where,
        "results": [{"method": m, "seconds": round(s, 2), "rows_written": w} for m, s, w in results],
    }
    save_results("publish", figures, markdown)


if __name__ == "__main__":
    main()
