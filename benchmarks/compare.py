"""Side-by-side benchmark: every way of moving the same collection, in one run.

    bash scripts/benchmark.sh [--documents 100000] [--workers 4]

Seeds (once) a collection of ``--documents`` users, then moves it into a table
of its own with each method below and checks every table's row count. Writes
``benchmarks/results/compare.{json,md,png}``: one table, and a chart of the
total per method and of each page's time by page number (which shows whether
a method's cost grows with the page's position).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook
from psycopg import Connection, sql

from benchmarks.machine import RESULTS, machine, measured_on, save_results
from benchmarks.write_path import pre_encode
from include import config
from mongo_migration import target
from mongo_migration.documents import Conversion
from mongo_migration.page_copy import READ_BATCH_SIZE, copy_page, read_page
from mongo_migration.pages import plan_pages
from mongo_migration.target import Tables
from mongo_migration.users import seed_users
from tests.airflow_api import AirflowApi, admin_password
from tests.staging import OUTSIDE_A_RUN, USERS, reset_staging, users

ROOT = Path(__file__).resolve().parents[1]
DATABASE, COLLECTION = "benchmark", "users"
CONVERSION = Conversion(USERS)
AIRFLOW_URL = f"http://127.0.0.1:{os.environ.get('AIRFLOW_PORT', '8088')}"


@dataclass
class Result:
    method: str
    what: str
    seconds: float
    documents: int
    page_seconds: list[float] = field(default_factory=list)
    page_peak_memory_mb: int | None = None  # the largest page task process, where pages run as tasks


def source():
    return MongoHook().get_collection(COLLECTION, DATABASE)


def fresh_table(name: str) -> tuple[Connection, Tables]:
    """A connection, and the staging tables of ``name`` reset for the methods that load outside the DAG."""
    conn = PostgresHook().get_conn()
    conn.autocommit = True
    return conn, reset_staging(conn, name)


def timed(function: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


# --- the methods -------------------------------------------------------------


def source_floor(documents: int) -> Result:
    def scan():
        cursor = source().find_raw_batches({}, sort=[("_id", 1)], batch_size=READ_BATCH_SIZE)
        return sum(len(batch) for batch in cursor)

    seconds, _ = timed(scan)
    return Result("source floor", "one ordered full scan, raw batches, nothing written", seconds, documents)


def sink_floor(documents: int) -> Result:
    batches = list(source().find_raw_batches({}, batch_size=READ_BATCH_SIZE))
    pre_encoded = pre_encode(CONVERSION, 0, batches).rows
    conn, tables = fresh_table("benchmark_sink_floor")

    def copy():
        with conn.cursor() as cursor, cursor.copy(target.statement("copy_into_staging", tables)) as out:
            out.write(pre_encoded)

    seconds, _ = timed(copy)
    return Result("sink floor", "COPY of the same rows, pre-encoded", seconds, _count(conn, tables))


def page_work(documents: int, items_per_page: int) -> Result:
    conn, tables = fresh_table("benchmark_page_work")
    collection = source()
    page_seconds = []

    def run():
        for page in plan_pages(collection, items_per_page):
            seconds, _ = timed(
                lambda page=page: copy_page(
                    read_page(collection, page), conn, tables, CONVERSION, OUTSIDE_A_RUN, page
                )
            )
            page_seconds.append(seconds)

    seconds, _ = timed(run)
    return Result(
        "page work alone",
        "plan + every page in one process, no Airflow",
        seconds,
        _count(conn, tables),
        page_seconds,
    )


def sequential_baseline(documents: int) -> Result:
    conn, tables = fresh_table("benchmark_sequential")

    def run():
        with (
            conn.transaction(),
            conn.cursor() as cursor,
            cursor.copy(target.statement("copy_into_staging", tables)) as out,
        ):
            for batch in source().find_raw_batches({}, batch_size=READ_BATCH_SIZE):
                out.write(CONVERSION.rows(batch, 0).rows)

    seconds, _ = timed(run)
    return Result("sequential baseline", "one process, one cursor, one COPY", seconds, _count(conn, tables))


def _skip_limit_page(job: tuple[int, int, str, bool]) -> float:
    """One page of the seed's method, in a pool worker: ``skip()``/``limit()``, then COPY."""
    number, items_per_page, table, sorted_by_id = job
    started = time.perf_counter()
    order = {"sort": [("_id", 1)]} if sorted_by_id else {}
    cursor = source().find_raw_batches({}, skip=number * items_per_page, limit=items_per_page, **order)
    with (
        PostgresHook().get_conn() as conn,
        conn.cursor() as pg,
        pg.copy(target.statement("copy_into_staging", users(table))) as out,
    ):
        for batch in cursor:
            out.write(CONVERSION.rows(batch, number).rows)
    return time.perf_counter() - started


def _warm_up(_: int) -> None:
    """Import what a page needs, so that the clock measures paging, not Python's start-up."""
    source().database.command("ping")


def skip_limit_pool(documents: int, items_per_page: int, workers: int, sorted_by_id: bool) -> Result:
    """The seed's method. Its own pages use no sort: the server's natural order, which nothing
    keeps from one query to the next (a write between two pages can move a document into a page
    already read, so it is read twice or never). Sorted by ``_id``, each page sees each document
    once, and a real MongoDB walks the ``_id`` index to skip; the benchmark shows both."""
    table = "benchmark_skip_limit_sorted" if sorted_by_id else "benchmark_skip_limit"
    conn, tables = fresh_table(table)
    pages = -(-documents // items_per_page)
    jobs = [(number, items_per_page, table, sorted_by_id) for number in range(pages)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_warm_up, range(workers))
        seconds, page_seconds = timed(lambda: pool.map(_skip_limit_page, jobs, chunksize=1))
    order = "sorted by _id" if sorted_by_id else "natural order, as the seed does"
    return Result(
        "seed's method" + (", sorted" if sorted_by_id else ""),
        f"skip()/limit() pages ({order}) over a pool of {workers} processes, COPY",
        seconds,
        _count(conn, tables),
        page_seconds,
    )


def dag_conf(table: str, items_per_page: int) -> dict:
    return {
        "mode": "full",  # the whole collection, as the other methods copy it
        "seed_users": 0,
        "items_per_page": items_per_page,
        "mongo_database": DATABASE,
        "mongo_collection": COLLECTION,
        "target_table": table,
    }


def dags_test(documents: int, items_per_page: int) -> Result:
    table = "benchmark_dags_test"
    conf = json.dumps(dag_conf(table, items_per_page))
    command = [str(ROOT / ".venv/bin/airflow"), "dags", "test", "mongo_to_postgres", "-c", conf]
    seconds, _ = timed(lambda: subprocess.run(command, check=True, capture_output=True))
    return Result(
        "DAG, airflow dags test",
        "every task one after another in one process",
        seconds,
        _count_published(table),
    )


def local_executor(documents: int, items_per_page: int) -> Result:
    table = "benchmark_local_executor"
    script = str(ROOT / "scripts" / "airflow-local.sh")
    subprocess.run(["bash", script, "start"], check=True, capture_output=True)
    try:
        api = AirflowApi(AIRFLOW_URL, admin_password(Path(os.environ["AIRFLOW_HOME"])))
        api.wait_for_dag()
        run = api.wait(api.trigger(dag_conf(table, items_per_page)), timeout=24 * 3600)
        if run["state"] != "success":
            raise RuntimeError(f"the LocalExecutor run ended {run['state']}: {run['dag_run_id']}")
        tasks = api.task_instances(run["dag_run_id"])
        proof = api.result(run["dag_run_id"], "verify")  # verification.Proof
        pages = sorted((t["map_index"], t["duration"]) for t in tasks if t["task_id"] == "migrate_page")
        parallelism = os.environ.get("AIRFLOW_PARALLELISM", "4")
        return Result(
            "DAG, LocalExecutor",
            f"scheduler, API server and DAG processor running, {parallelism} task slots",
            _seconds_between(run["start_date"], run["end_date"]),
            _count_published(table),
            [duration for _, duration in pages],
            proof["run"]["peak_memory_mb"],
        )
    finally:
        subprocess.run(["bash", script, "stop"], check=True, capture_output=True)


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _count(conn, tables: Tables) -> int:
    """The rows a method loaded into the staging table."""
    with conn:
        return target.count_rows(conn, tables)[0]


def _count_published(table: str) -> int:
    """The rows a DAG run published into the live table."""
    with PostgresHook().get_conn() as conn:
        return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]


# --- the report --------------------------------------------------------------


def write_report(results: list[Result], documents: int, seed_seconds: float) -> None:
    lines = [
        f"{documents:,} documents, pages of {config.ITEMS_PER_PAGE}; measured {measured_on()} on {machine()}",
        "",
        "| method | what it does | seconds | documents/s | rows in target | page task peak MB |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        lines.append(
            f"| {result.method} | {result.what} | {result.seconds:.1f} | "
            f"{documents / result.seconds:,.0f} | {result.documents:,} | {result.page_peak_memory_mb or ''} |"
        )
    markdown = "\n".join(lines)
    figures = {
        "documents": documents,
        "measured": measured_on(),
        "machine": machine(),
        "seed_seconds": round(seed_seconds, 1),
        "results": [result.__dict__ for result in results],
    }
    save_results("compare", figures, markdown)
    _draw_chart(results, documents)


def _draw_chart(results: list[Result], documents: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (bars, pages) = plt.subplots(1, 2, figsize=(14, 5.5))
    names = [result.method for result in results]
    bars.barh(names, [result.seconds for result in results], color="#4c72b0")
    bars.invert_yaxis()
    bars.set_xlabel("seconds (less is better)")
    bars.set_title(f"{documents:,} documents, whole run")
    for result in results:
        if result.page_seconds:
            pages.plot(range(len(result.page_seconds)), result.page_seconds, marker=".", label=result.method)
    pages.set_xlabel("page number (position in the collection)")
    pages.set_ylabel("seconds per page")
    pages.set_title("Time of each page by its position")
    pages.set_ylim(bottom=0)
    pages.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "compare.png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4, help="pool size for the seed's method")
    parser.add_argument("--skip-airflow", action="store_true", help="leave out the two DAG runs")
    args = parser.parse_args()
    items_per_page = config.ITEMS_PER_PAGE

    seed_seconds, _ = timed(lambda: seed_users(source(), args.documents, config.FAKER_SEED))
    documents = source().count_documents({})
    print(f"source {DATABASE}.{COLLECTION}: {documents:,} documents (seeding took {seed_seconds:.0f} s)")
    methods = [
        lambda: source_floor(documents),
        lambda: sink_floor(documents),
        lambda: page_work(documents, items_per_page),
        lambda: sequential_baseline(documents),
        lambda: skip_limit_pool(documents, items_per_page, args.workers, sorted_by_id=False),
        lambda: skip_limit_pool(documents, items_per_page, args.workers, sorted_by_id=True),
    ]
    if not args.skip_airflow:
        methods += [
            lambda: dags_test(documents, items_per_page),
            lambda: local_executor(documents, items_per_page),
        ]
    results = []
    for method in methods:
        result = method()
        print(f"  {result.method}: {result.seconds:.1f} s, {result.documents:,} rows", flush=True)
        results.append(result)
    write_report(results, documents, seed_seconds)


if __name__ == "__main__":
    main()
