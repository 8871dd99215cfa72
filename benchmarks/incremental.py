"""Incremental benchmark: a nightly run that applies 1 % of changes, against a full copy.

On the local stack, with ``airflow dags test`` (every task one after another in
one process): a full run publishes the collection; then 1 % of its documents
change (updates, inserts, deletes in equal parts); then an incremental run and,
for comparison, a full run publish the result. Each run's time and what its
catch-up applied go to ``benchmarks/results/incremental.{md,json}``.

    bash scripts/benchmark.sh incremental [--documents 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook
from bson.objectid import ObjectId

from benchmarks.machine import machine, measured_on, save_results
from mongo_migration.target import PUBLISHED_TABLE, STAGING_SCHEMA
from mongo_migration.users import seed_users

ROOT = Path(__file__).resolve().parents[1]
DATABASE, COLLECTION, TABLE = "benchmark", "incremental_users", "benchmark_incremental"


def run(mode: str) -> dict:
    """One run of the DAG in ``mode``; its time and what publish recorded."""
    conf = {
        "mode": mode,
        "seed_users": 0,
        "mongo_database": DATABASE,
        "mongo_collection": COLLECTION,
        "target_table": TABLE,
    }
    command = [str(ROOT / ".venv/bin/airflow"), "dags", "test", "mongo_to_postgres", "-c", json.dumps(conf)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    with PostgresHook().get_conn() as conn:
        (result,) = conn.execute(
            f'SELECT result FROM {STAGING_SCHEMA}."{PUBLISHED_TABLE}" '
            "WHERE target_schema = 'public' AND target_table = %s",
            [TABLE],
        ).fetchone()
    return {
        "mode": mode,
        "seconds": round(seconds, 1),
        **{k: result[k] for k in ("rows", "inserted", "updated", "deleted")},
    }


def change(collection, documents: int) -> int:
    """Change 1 % of the collection: a third updated, a third inserted, a third deleted."""
    each = max(1, documents // 300)
    ids = [document["_id"] for document in collection.find({}, {"_id": 1}).limit(2 * each)]
    collection.update_many({"_id": {"$in": ids[:each]}}, {"$set": {"age": 99, "note": "changed tonight"}})
    collection.delete_many({"_id": {"$in": ids[each:]}})
    collection.insert_many([{"_id": ObjectId(), "username": f"new {n}"} for n in range(each)])
    return 3 * each


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=100_000)
    documents = parser.parse_args().documents
    with MongoHook() as hook:
        collection = hook.get_collection(COLLECTION, DATABASE)
        collection.drop()
        seed_users(collection, documents, 1234)
        first = run("full")
        changed = change(collection, documents)
        incremental = run("incremental")
        full = run("full")
    when, where = measured_on(), machine()
    runs = [first, incremental, full]
    lines = [
        f"Incremental against full, {documents:,} documents, {changed:,} changed "
        f"({100 * changed / documents:.0f} %), `airflow dags test` on the local stack; {when} on {where}.",
        "",
        "| Run | Wall time | Rows published | Inserted | Updated | Deleted |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    labels = [
        "first run (full, publishes the table)",
        "incremental, after the changes",
        "full, after the same changes",
    ]
    for label, result in zip(labels, runs, strict=True):
        lines.append(
            f"| {label} | {result['seconds']} s | {result['rows']:,} | {result['inserted']:,} | "
            f"{result['updated']:,} | {result['deleted']:,} |"
        )
    figures = {"measured": when, "machine": where, "documents": documents, "changed": changed, "runs": runs}
    save_results("incremental", figures, "\n".join(lines))


if __name__ == "__main__":
    main()
