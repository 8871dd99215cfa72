"""Write-path benchmark: the real conversion and COPY code against COPY of pre-encoded rows.

No MongoDB server is involved: pages of raw BSON (the seeded users' shape,
with a nested address and a tags array) are built in memory first, so the
figures are about our side alone. Both methods load one page per transaction
into a fresh table of the same definition.

    eval "$(bash scripts/stack.sh start)"
    .venv/bin/python benchmarks/write_path.py [--documents 1000000]
"""

from __future__ import annotations

import argparse
import time

import bson
from airflow.providers.postgres.hooks.postgres import PostgresHook

from benchmarks.machine import machine, measured_on, save_results
from mongo_migration import target
from mongo_migration.documents import copy_rows
from mongo_migration.page_copy import READ_BATCH_SIZE, copy_page
from mongo_migration.pages import Page
from mongo_migration.users import fake_users, user_id
from tests.staging import OUTSIDE_A_RUN, drop_tables, reset_staging

TABLE = "benchmark_write_path"


def build_pages(documents: int, items_per_page: int) -> list[tuple[Page, list[bytes]]]:
    """Pages of raw BSON batches, as ``find_raw_batches`` would deliver them."""
    template = fake_users(0, min(items_per_page, documents), 1234)
    pages = []
    for number, first in enumerate(range(0, documents, items_per_page)):
        count = min(items_per_page, documents - first)
        users = [{**user, "_id": user_id(first + i)} for i, user in enumerate(template[:count])]
        batches = [
            b"".join(map(bson.encode, users[start : start + READ_BATCH_SIZE]))
            for start in range(0, count, READ_BATCH_SIZE)
        ]
        page = Page(number, user_id(first), user_id(first + count - 1), True, count)
        pages.append((page, batches))
    return pages


def load_pre_encoded(conn, pre_encoded: list[bytes]) -> float:
    reset_staging(conn, TABLE)
    started = time.perf_counter()
    for rows in pre_encoded:
        with (
            conn.transaction(),
            conn.cursor() as cursor,
            cursor.copy(target.statement("copy_page", TABLE)) as copy,
        ):
            copy.write(rows)
    return time.perf_counter() - started


def convert_only(pages) -> float:
    """Our conversion alone, no PostgreSQL: what a page spends that COPY of pre-encoded rows does not."""
    started = time.perf_counter()
    for page, batches in pages:
        for batch in batches:
            copy_rows(batch, page.number)
    return time.perf_counter() - started


def load_with_conversion(conn, pages) -> float:
    reset_staging(conn, TABLE)
    started = time.perf_counter()
    for page, batches in pages:
        copy_page(batches, conn, TABLE, OUTSIDE_A_RUN, page)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--items-per-page", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each method; the best counts")
    args = parser.parse_args()

    pages = build_pages(args.documents, args.items_per_page)
    pre_encoded = [
        b"".join(copy_rows(batch, page.number).rows for batch in batches) for page, batches in pages
    ]
    with PostgresHook().get_conn() as conn:
        conn.autocommit = True
        floor = ours = conversion = float("inf")
        for _ in range(args.repeat):
            floor = min(floor, load_pre_encoded(conn, pre_encoded))
            ours = min(ours, load_with_conversion(conn, pages))
            conversion = min(conversion, convert_only(pages))
        drop_tables(conn, TABLE)

    result = {
        "documents": args.documents,
        "pages": len(pages),
        "pre_encoded_copy_seconds": round(floor, 2),
        "conversion_and_copy_seconds": round(ours, 2),
        "conversion_alone_seconds": round(conversion, 2),
        "ratio": round(ours / floor, 2),
        "measured": measured_on(),
        "machine": machine(),
    }
    markdown = "\n".join(
        [
            f"{args.documents:,} documents in {len(pages)} pages of {args.items_per_page}, best of "
            f"{args.repeat}; measured {result['measured']} on {result['machine']}",
            "",
            "| method | seconds | documents/s |",
            "| --- | ---: | ---: |",
            f"| COPY of pre-encoded rows (floor) | {floor:.2f} | {args.documents / floor:,.0f} |",
            f"| raw BSON → our conversion → COPY | {ours:.2f} | {args.documents / ours:,.0f} |",
            f"| our conversion alone, no PostgreSQL | {conversion:.2f} | "
            f"{args.documents / conversion:,.0f} |",
            f"| ratio | {ours / floor:.2f}x | |",
        ]
    )
    save_results("write_path", result, markdown)


if __name__ == "__main__":
    main()
