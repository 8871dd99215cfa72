"""Write-path benchmark: the real conversion and COPY code against COPY of pre-encoded rows.

No MongoDB server is involved: pages of raw BSON are built in memory first, so
the figures are about our side alone. Two mappings, each its own case: the
users (include/mappings/users.yaml: four typed columns and the document, for
the seeded users' shape with a nested address and a tags array) and the
example orders (include/mappings/orders.yaml: ten typed columns, Decimal128
amounts, a nested customer, dates, and the child table ``items``, 1 to 5 rows
an order). Both methods load one page per transaction into fresh staging
tables of the same definition: the real ``copy_page`` (conversion, COPY of the
rows, then of the child rows) against COPY of the same rows and child rows,
pre-encoded. The conversion alone is timed too.

    bash scripts/benchmark.sh write-path [--documents 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time
from collections.abc import Callable
from decimal import Decimal

import bson
from airflow.providers.postgres.hooks.postgres import PostgresHook
from bson.decimal128 import Decimal128
from psycopg import sql

from benchmarks.machine import machine, measured_on, save_results
from include import config
from mongo_migration import target
from mongo_migration.documents import Batch, Conversion
from mongo_migration.mapping import Mapping
from mongo_migration.page_copy import READ_BATCH_SIZE, copy_page
from mongo_migration.pages import Page
from mongo_migration.target import Tables
from mongo_migration.users import fake_users, user_id
from tests.staging import ORDERS, OUTSIDE_A_RUN, USERS, drop_tables, reset_staging

TABLE = "benchmark_write_path"
ORDERS_SEED = 1234
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")
CURRENCIES = ("EUR", "USD", "GBP", "CHF")
PLACES = (("Lyon", "FR"), ("Porto", "PT"), ("Leeds", "GB"), ("Graz", "AT"), ("Austin", "US"), ("Kyoto", "JP"))
FIRST_ORDER = dt.datetime(2024, 1, 1)  # naive, in UTC, as the documents decode
YEAR_MS = 365 * 86_400_000


def user_documents(count: int) -> list[dict]:
    """The first ``count`` seeded users, the same on every run."""
    return fake_users(0, count, config.FAKER_SEED)


def order_documents(count: int) -> list[dict]:
    """``count`` orders the orders mapping accepts, the same on every run.

    A customer whose e-mail or address is sometimes missing, notes on a fifth
    of them (some with a tab or a line break, which COPY text escapes), prices
    and totals as Decimal128 with cents, 1 to 5 items, a third with options.
    """
    draw = random.Random(ORDERS_SEED)
    orders = []
    for number in range(count):
        items = []
        for _ in range(draw.randint(1, 5)):
            item = {
                "sku": f"SKU-{draw.randrange(100_000):05d}",
                "quantity": draw.randint(1, 10),
                "unit_price": Decimal(draw.randint(99, 99_999)).scaleb(-2),
            }
            if draw.random() < 1 / 3:
                item["options"] = {"size": draw.choice("SMLX"), "gift_wrap": draw.random() < 0.5}
            items.append(item)
        city, country = draw.choice(PLACES)
        customer = {"name": f"Customer {draw.randrange(50_000)}"}
        if draw.random() < 0.9:
            customer["email"] = f"customer{draw.randrange(50_000)}@example.com"
        if draw.random() < 0.8:
            customer["address"] = {
                "street": f"{draw.randint(1, 200)} Market St",
                "city": city,
                "country": country,
            }
        order = {
            "_id": user_id(number),
            "number": f"ORD-{number:08d}",
            "status": draw.choice(STATUSES),
            "placed_at": FIRST_ORDER + dt.timedelta(milliseconds=draw.randrange(YEAR_MS)),
            "total": Decimal128(sum(item["quantity"] * item["unit_price"] for item in items)),
            "currency": draw.choice(CURRENCIES),
            "customer": customer,
            "items": [{**item, "unit_price": Decimal128(item["unit_price"])} for item in items],
        }
        if draw.random() < 0.2:
            order["notes"] = draw.choice(("Leave at the door", "Ring twice\tthen wait", "Gift:\nno invoice"))
        orders.append(order)
    return orders


def build_pages(
    documents: int, items_per_page: int, make_documents: Callable[[int], list[dict]]
) -> list[tuple[Page, list[bytes]]]:
    """Pages of raw BSON batches, as ``find_raw_batches`` would deliver them.

    Every page holds the same documents (``make_documents`` of a page), each with an ``_id`` of its own.
    """
    template = make_documents(min(items_per_page, documents))
    pages = []
    for number, first in enumerate(range(0, documents, items_per_page)):
        count = min(items_per_page, documents - first)
        page_documents = [
            {**document, "_id": user_id(first + i)} for i, document in enumerate(template[:count])
        ]
        batches = [
            b"".join(map(bson.encode, page_documents[start : start + READ_BATCH_SIZE]))
            for start in range(0, count, READ_BATCH_SIZE)
        ]
        page = Page(number, user_id(first), user_id(first + count - 1), True, count)
        pages.append((page, batches))
    return pages


def pre_encode(conversion: Conversion, page: int, raw_batches: list[bytes]) -> Batch:
    """A page's rows and child rows, converted before the clock starts; fails if a document is set aside."""
    converted = [conversion.rows(raw_batch, page) for raw_batch in raw_batches]
    rejects = [reject for batch in converted for reject in batch.rejects]
    if rejects:
        raise RuntimeError(
            f"the mapping {conversion.mapping.file.name} set aside {len(rejects)} documents of page {page}, "
            f"which the benchmark must not: {rejects[0].reason}"
        )
    return Batch(
        rows=b"".join(batch.rows for batch in converted),
        documents=sum(batch.documents for batch in converted),
        rejects=[],
        children={
            child.name: b"".join(batch.children[child.name] for batch in converted)
            for child in conversion.mapping.children
        },
    )


def load_pre_encoded(conn, tables: Tables, pre_encoded: list[Batch]) -> float:
    reset_staging(conn, tables)
    started = time.perf_counter()
    for batch in pre_encoded:
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(target.statement("copy_into_staging", tables)) as copy:
                copy.write(batch.rows)
            target.copy_children(conn, tables, batch.children)
    return time.perf_counter() - started


def load_with_conversion(conn, tables: Tables, conversion: Conversion, pages) -> float:
    reset_staging(conn, tables)
    started = time.perf_counter()
    for page, batches in pages:
        copy_page(batches, conn, tables, conversion, OUTSIDE_A_RUN, page)
    return time.perf_counter() - started


def convert_only(conversion: Conversion, pages) -> float:
    """Our conversion alone, no PostgreSQL: what a page spends that COPY of pre-encoded rows does not."""
    started = time.perf_counter()
    for page, batches in pages:
        for batch in batches:
            conversion.rows(batch, page.number)
    return time.perf_counter() - started


def check_loaded(conn, tables: Tables, expected: dict[str, int]) -> None:
    """Fail unless the staging tables hold the rows expected (by relation; none in the rejects table)."""
    loaded = {
        relation: conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(tables.staging(relation))
        ).fetchone()[0]
        for relation in tables.relations
    }
    if loaded != expected:
        raise RuntimeError(f"the staging tables of {tables} hold {loaded} rows, not {expected}")


def measure(
    conn, name: str, mapping: Mapping, make_documents: Callable[[int], list[dict]], args: argparse.Namespace
) -> dict:
    """One mapping's case: its figures, best of ``args.repeat`` runs of each method."""
    tables = Tables("public", f"{TABLE}_{name}", mapping)
    conversion = Conversion(mapping)
    pages = build_pages(args.documents, args.items_per_page, make_documents)
    pre_encoded = [pre_encode(conversion, page.number, batches) for page, batches in pages]
    child_rows = {
        child.name: sum(batch.children[child.name].count(b"\n") for batch in pre_encoded)
        for child in mapping.children
    }
    expected = {tables.table: args.documents, tables.rejects: 0}
    expected |= dict(zip(tables.children, child_rows.values(), strict=True))
    floor = ours = conversion_alone = float("inf")
    for _ in range(args.repeat):
        floor = min(floor, load_pre_encoded(conn, tables, pre_encoded))
        check_loaded(conn, tables, expected)
        ours = min(ours, load_with_conversion(conn, tables, conversion, pages))
        check_loaded(conn, tables, expected)
        conversion_alone = min(conversion_alone, convert_only(conversion, pages))
    drop_tables(conn, tables.table)
    print(f"{name}: {ours:.2f} s against {floor:.2f} s ({ours / floor:.2f}x)", flush=True)
    return {
        "mapping": f"include/mappings/{mapping.file.name}",
        "documents": args.documents,
        "child_rows": child_rows,
        "pages": len(pages),
        "pre_encoded_copy_seconds": round(floor, 2),
        "conversion_and_copy_seconds": round(ours, 2),
        "conversion_alone_seconds": round(conversion_alone, 2),
        "ratio": round(ours / floor, 2),
    }


def markdown(result: dict, args: argparse.Namespace) -> str:
    users, orders = result, result["orders"]
    cases = (users, orders)
    items = orders["child_rows"]["items"]

    def row(label: str, key: str) -> str:
        cells = (f"{case[key]:.2f} | {case['documents'] / case[key]:,.0f}" for case in cases)
        return f"| {label} | " + " | ".join(cells) + " |"

    return "\n".join(
        [
            f"{args.documents:,} documents a case in {users['pages']} pages of {args.items_per_page}, one "
            f"transaction each, best of {args.repeat}; measured {result['measured']} on {result['machine']}",
            "",
            "- users: include/mappings/users.yaml, 4 typed columns and the document (the seeded users, "
            "with a nested address and tags)",
            "- orders: include/mappings/orders.yaml, 10 typed columns (Decimal128 total, nested customer, "
            f"a date) and the document, and the child table items: {items:,} rows "
            f"({items / args.documents:.1f} an order)",
            "",
            "| method | users: seconds | documents/s | orders: seconds | documents/s |",
            "| --- | ---: | ---: | ---: | ---: |",
            row("COPY of pre-encoded rows and child rows (floor)", "pre_encoded_copy_seconds"),
            row("raw BSON → our conversion → COPY (copy_page)", "conversion_and_copy_seconds"),
            row("our conversion alone, no PostgreSQL", "conversion_alone_seconds"),
            f"| ratio | {users['ratio']:.2f}x | | {orders['ratio']:.2f}x | |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=1_000_000, help="of each case")
    parser.add_argument("--items-per-page", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each method; the best counts")
    args = parser.parse_args()

    with PostgresHook().get_conn() as conn:
        conn.autocommit = True
        users = measure(conn, "users", USERS, user_documents, args)
        orders = measure(conn, "orders", ORDERS, order_documents, args)
    result = {**users, "orders": orders, "measured": measured_on(), "machine": machine()}
    save_results("write_path", result, markdown(result, args))


if __name__ == "__main__":
    main()
