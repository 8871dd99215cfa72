"""Incremental benchmark: nightly runs with nothing, 1 % and 10 % changed, against a full copy.

On the local stack, with ``airflow dags test`` (every task one after another in
one process): a full run publishes the collection; then, side by side, an
incremental run with nothing changed (the fixed part: what a run costs whatever
it copies), one after 1 % of the documents changed and one after 10 % changed
(picked at random: updates, inserts, deletes in equal parts), an incremental
run that makes the full proof (``full_proof_days`` 0: what the weekly run
costs), and a full run for comparison. Each run's time (the command's, and its
tasks' from the first start to the last end), what it published and
the WAL the target wrote during it (``pg_current_wal_lsn()`` before and after)
go to ``benchmarks/results/incremental_<documents>.{md,json}``, with the size of
the changed rows (``pg_column_size`` of the rows updated and inserted, after,
and deleted, before). The local stack runs PostgreSQL with
``full_page_writes=off``: a server with it on adds an 8 kB image of each page at
its first change after a checkpoint.

    bash scripts/benchmark.sh incremental [--documents 100000] [--items-per-page 8000] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook
from bson.objectid import ObjectId

from benchmarks.machine import machine, measured_on, save_results
from mongo_migration.target import PUBLISHED_TABLE, STAGING_SCHEMA
from mongo_migration.users import seed_users

ROOT = Path(__file__).resolve().parents[1]
DATABASE, COLLECTION, TABLE = "benchmark", "incremental_users", "benchmark_incremental"
# SecantusDB answers one command at a time: while it numbers a million _id values for the plan,
# the driver's heartbeat waits behind it, and after connectTimeoutMS (10 s) the driver takes the
# server for gone and cancels the plan's command. A real MongoDB answers heartbeats meanwhile.
SOURCE = json.loads(os.environ["AIRFLOW_CONN_MONGO_DEFAULT"])
STAND_IN_ENV = {
    **os.environ,
    "AIRFLOW_CONN_MONGO_DEFAULT": json.dumps(
        {**SOURCE, "extra": {**SOURCE["extra"], "connectTimeoutMS": 600000}}
    ),
}


def tasks_seconds(since: datetime) -> float:
    """From the first task's start to the last one's end (the last try of each) of this benchmark's run
    that started after ``since``, in Airflow's metadata: the run without what ``airflow dags test`` spends
    starting up around it, which a resident scheduler does not."""
    metadata = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg", "")
    with psycopg.connect(metadata) as conn:
        (seconds,) = conn.execute(
            "SELECT extract(epoch FROM max(end_date) - min(start_date))::float FROM task_instance "
            "WHERE dag_id = 'mongo_to_postgres' AND run_id = (SELECT run_id FROM dag_run "
            "WHERE dag_id = 'mongo_to_postgres' AND conf->>'target_table' = %s AND start_date >= %s "
            "ORDER BY id DESC LIMIT 1)",
            [TABLE, since],
        ).fetchone()
    return seconds


def wal_position() -> str:
    with PostgresHook().get_conn() as conn:
        return conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]


def wal_since(start: str) -> int:
    with PostgresHook().get_conn() as conn:
        return conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [start]).fetchone()[0]


def forget_table() -> None:
    """Drop the table an earlier run of another size published, and its record: the first run makes it."""
    with PostgresHook().get_conn() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}, {TABLE}_rejects")
        published = f'{STAGING_SCHEMA}."{PUBLISHED_TABLE}"'
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", [published]).fetchone()[0]:  # a run made it
            forget = f"DELETE FROM {published} WHERE target_schema = 'public' AND target_table = %s"
            conn.execute(forget, [TABLE])


def rows_size(ids: list) -> int:
    """The bytes of the live rows of ``ids``."""
    keys = [str(value) for value in ids]
    with PostgresHook().get_conn() as conn:
        query = f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {TABLE} AS t WHERE _id = ANY(%s)"
        return int(conn.execute(query, [keys]).fetchone()[0])


def run(mode: str, items_per_page: int, full_proof_days: int = 7) -> dict:
    """One run of the DAG in ``mode``; its time, what publish recorded and the WAL the target wrote."""
    conf = {
        "mode": mode,
        "full_proof_days": full_proof_days,
        "seed_users": 0,
        "items_per_page": items_per_page,
        "mongo_database": DATABASE,
        "mongo_collection": COLLECTION,
        "target_table": TABLE,
    }
    command = [str(ROOT / ".venv/bin/airflow"), "dags", "test", "mongo_to_postgres", "-c", json.dumps(conf)]
    wal, since = wal_position(), datetime.now(UTC)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=STAND_IN_ENV)
    seconds = time.perf_counter() - started
    wal_bytes = wal_since(wal)
    with PostgresHook().get_conn() as conn:
        (result,) = conn.execute(
            f'SELECT result FROM {STAGING_SCHEMA}."{PUBLISHED_TABLE}" '
            "WHERE target_schema = 'public' AND target_table = %s",
            [TABLE],
        ).fetchone()
    return {
        "mode": mode,
        "seconds": round(seconds, 1),
        "tasks_seconds": round(tasks_seconds(since), 1),
        "wal_bytes": int(wal_bytes),
        "method": result["method"],
        **{k: result[k] for k in ("rows", "inserted", "updated", "deleted")},
    }


def change(collection, documents: int, percent: int, seed: int) -> tuple[int, Callable[[], int]]:
    """Change ``percent`` % of the collection, picked at random: a third updated, a third inserted, a
    third deleted; the changes made and the size of the rows they change."""
    each = max(1, documents * percent // 300)
    ids = [document["_id"] for document in collection.find({}, {"_id": 1})]
    picked = random.Random(seed).sample(ids, 2 * each)
    updated, deleted = picked[:each], picked[each:]
    deleted_size = rows_size(deleted)
    # 1,000 _id values a command: the stand-in matches each document against the whole $in list.
    for at in range(0, each, 1000):
        chunk = {"_id": {"$in": updated[at : at + 1000]}}
        collection.update_many(chunk, {"$set": {"age": 99, "note": "changed tonight"}})
        collection.delete_many({"_id": {"$in": deleted[at : at + 1000]}})
    inserted = [ObjectId() for _ in range(each)]
    collection.insert_many([{"_id": value, "username": f"new {n}"} for n, value in enumerate(inserted)])
    return 3 * each, lambda: deleted_size + rows_size(updated + inserted)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=100_000)
    # The stand-in scans the whole collection for every page, so the fewer the pages, the faster a full
    # run here: at a million documents, pages of 100,000 make the full run it is compared with fastest.
    parser.add_argument("--items-per-page", type=int, default=8000)
    # The collection and its table as a previous run of this benchmark left them (same --documents):
    # no seeding and no first full run, which take most of the time at a million documents.
    parser.add_argument("--reuse", action="store_true")
    arguments = parser.parse_args()
    documents, items_per_page = arguments.documents, arguments.items_per_page
    with MongoHook() as hook:
        collection = hook.get_collection(COLLECTION, DATABASE)
        if arguments.reuse:
            documents = collection.estimated_document_count()
            first = None
        else:
            collection.drop()
            seed_users(collection, documents, 1234)
            forget_table()
            first = run("full", items_per_page)
        steps = Steps(documents, items_per_page)
        steps.add("first run (full, publishes the table)", first)
        steps.add("incremental, nothing changed (the fixed part)", run("incremental", items_per_page))
        changed, size = change(collection, documents, 1, 1234)
        steps.add(
            f"incremental, 1 % changed ({changed:,} changes)", run("incremental", items_per_page), size()
        )
        weekly = run("incremental", items_per_page, full_proof_days=0)
        steps.add("incremental, the full proof, nothing changed (full_proof_days 0: the weekly run)", weekly)
        steps.add("full", run("full", items_per_page))
        # Last, since the stand-in looks up each changed document with a scan of the collection.
        changed, size = change(collection, documents, 10, 4321)
        steps.add(
            f"incremental, 10 % changed ({changed:,} changes)", run("incremental", items_per_page), size()
        )


class Steps:
    """The runs measured so far, saved after each (a long one may be stopped without losing the others)."""

    def __init__(self, documents: int, items_per_page: int):
        self.documents, self.items_per_page, self.runs = documents, items_per_page, {}

    def add(self, label: str, result: dict | None, changed_bytes: int | None = None) -> None:
        if result is not None:
            self.runs[label] = {**result, "changed_bytes": changed_bytes}
            self.save()

    def save(self) -> None:
        when, where = measured_on(), machine()
        full = next((run for label, run in self.runs.items() if label == "full"), None)
        full = full or next((run for label, run in self.runs.items() if label.startswith("first")), None)
        lines = [
            f"Nightly runs against a full one, {self.documents:,} documents in pages of "
            f"{self.items_per_page:,}, `airflow dags test` on the local stack (PostgreSQL with "
            f"full_page_writes=off); {when} on {where}.",
            "",
            "| Run | Wall time | Share of the full run | Tasks | Share of the full run's tasks | WAL written "
            "| WAL / changed rows | Rows published | Inserted | Updated | Deleted |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for label, result in self.runs.items():
            changed = result["changed_bytes"]
            against = f"{result['wal_bytes'] / changed:,.1f} x" if changed else ""
            share = f"{100 * result['seconds'] / full['seconds']:.1f} %" if full else ""
            tasks = result.get("tasks_seconds")
            tasks_share = f"{100 * tasks / full['tasks_seconds']:.1f} %" if full and tasks else ""
            lines.append(
                f"| {label} | {result['seconds']} s | {share} | {tasks} s | {tasks_share} | "
                f"{result['wal_bytes'] / 2**20:,.1f} MB | "
                f"{against} | {result['rows']:,} | {result['inserted']:,} | {result['updated']:,} | "
                f"{result['deleted']:,} |"
            )
        figures = {
            "measured": when,
            "machine": where,
            "documents": self.documents,
            "items_per_page": self.items_per_page,
            "runs": self.runs,
        }
        save_results(f"incremental_{self.documents}", figures, "\n".join(lines))


if __name__ == "__main__":
    main()
