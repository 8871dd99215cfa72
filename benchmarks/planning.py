"""Planning benchmark: the pages' bounds found by the server against every ``_id`` read into Python.

On the local MongoDB wire-protocol server, a collection of seeded users (kept
between runs) is planned three ways; each reports its seconds and how many
``_id`` values reached Python:

- the server's numbering of the ``_id`` index (``plan_pages``, what the DAG does);
- every ``_id`` read in order and cut in Python (how planning worked before);
- a walk from page to page, each step ``skip()``-ing a page's worth of the ``_id``
  index from the previous bound (timed over a few pages, scaled to the whole plan).

SecantusDB answers each of these with a scan of the whole collection, so the walk,
one scan per page, is far slower here than on a real MongoDB, where each step
reads one page's worth of index keys.

    bash scripts/benchmark.sh planning [--documents 1000000]
"""

from __future__ import annotations

import argparse
import time

from airflow.providers.mongo.hooks.mongo import MongoHook
from pymongo import monitoring

from benchmarks.machine import machine, measured_on, save_results
from mongo_migration.documents import CODEC_OPTIONS
from mongo_migration.pages import comparison_group, plan_pages
from mongo_migration.users import seed_users
from tests.mongo_replies import Replies

DATABASE, COLLECTION = "benchmark", "planning_users"
WALKED_PAGES = 5
REPLIES = Replies()


def every_id_in_python(collection, items_per_page: int) -> int:
    """The former planner's work: every ``_id`` in order through Python, cut into runs; the pages' count."""
    pages, in_page, group = 0, 0, None
    for document in collection.find({}, {"_id": 1}, sort=[("_id", 1)]):
        value_group = comparison_group(document["_id"])
        if in_page == items_per_page or value_group != group:
            pages, in_page, group = pages + 1, 0, value_group
        in_page += 1
    return pages


def skip_walk(collection, items_per_page: int, steps: int) -> float:
    """Seconds per step of a walk that ``skip()``s a page's worth of ``_id``s from the previous bound."""
    bound = collection.find_one({}, {"_id": 1}, sort=[("_id", 1)])["_id"]
    started = time.perf_counter()
    for _ in range(steps):
        cursor = collection.find({"_id": {"$gte": bound}}, {"_id": 1}, sort=[("_id", 1)])
        bound = next(cursor.skip(items_per_page).limit(1))["_id"]
    return (time.perf_counter() - started) / steps


def timed(method) -> tuple[float, int, object]:
    """Seconds, documents received and result of ``method()``."""
    REPLIES.documents = 0
    started = time.perf_counter()
    result = method()
    return time.perf_counter() - started, REPLIES.documents, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--items-per-page", type=int, default=8000)
    args = parser.parse_args()
    size = args.items_per_page

    monitoring.register(REPLIES)
    with MongoHook() as hook:
        collection = hook.get_collection(COLLECTION, DATABASE).with_options(codec_options=CODEC_OPTIONS)
        seed_users(collection, args.documents, 1234)
        documents = collection.estimated_document_count()
        server = timed(lambda: len(plan_pages(collection, size)))
        python = timed(lambda: every_id_in_python(collection, size))
        per_step = skip_walk(collection, size, WALKED_PAGES)
    assert server[2] == python[2], f"the two plans differ: {server[2]} against {python[2]} pages"
    pages = server[2]
    walk = per_step * pages

    rows = [
        ("the server numbers the _id index (plan_pages, the DAG's)", server[0], server[1]),
        ("every _id read into Python (before)", python[0], python[1]),
        (f"skip() walk, page to page (estimated from {WALKED_PAGES} steps)", walk, 2 * pages),
    ]
    result = {
        "documents": documents,
        "pages": pages,
        "methods": [{"method": name, "seconds": round(s, 2), "values_to_python": n} for name, s, n in rows],
        "measured": measured_on(),
        "machine": machine(),
    }
    markdown = "\n".join(
        [
            f"{documents:,} documents planned into {pages} pages of {size} on the local SecantusDB; "
            f"measured {result['measured']} on {result['machine']}",
            "",
            "| method | seconds | seconds per million documents | values into Python |",
            "| --- | ---: | ---: | ---: |",
            *(f"| {name} | {s:.1f} | {s * 1e6 / documents:.1f} | {n:,} |" for name, s, n in rows),
        ]
    )
    save_results("planning", result, markdown)


if __name__ == "__main__":
    main()
