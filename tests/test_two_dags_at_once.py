"""Two mappings' DAGs at the same time into one database, through the real scheduler and task processes.

The users DAG copies users into ``public.at_once``; the orders DAG copies
orders (a nested customer, Decimal128 amounts, dates, an array of items as a
child table, one order with a mistyped total and one without its number) into
``crm.at_once``: a target of the same name in another schema, which must keep
its own staging tables, load lock and published state. Then the orders change
and an incremental run with the content check replaces the changed orders'
items together with them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook
from bson.decimal128 import Decimal128

from mongo_migration.demo_orders import fill_orders, order_id
from mongo_migration.documents import CODEC_OPTIONS, id_key
from mongo_migration.mapping import STAGING_SCHEMA
from mongo_migration.users import seed_users
from tests.staging import drop_tables

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

ORDERS_DAG = "mongo_orders_to_postgres"
USERS = {
    "mode": "full",
    "seed_users": 0,
    "mongo_database": "tests",
    "mongo_collection": "at_once_users",
    "target_table": "at_once",
    "items_per_page": 1000,
}
ORDERS = {
    "mongo_database": "tests",
    "mongo_collection": "at_once_orders",
    "target_schema": "crm",
    "target_table": "at_once",
    "items_per_page": 500,
}


@pytest.fixture(scope="module")
def sources(airflow_services):
    with MongoHook() as hook:
        users = hook.get_collection(USERS["mongo_collection"], "tests")
        orders = hook.get_collection(ORDERS["mongo_collection"], "tests").with_options(
            codec_options=CODEC_OPTIONS
        )
        users.drop()
        orders.drop()
        seed_users(users, 3000, 1234)
        fill_orders(orders, 2000)
        mistyped, unnumbered = order_id(5000), order_id(5001)
        orders.insert_one({**orders.find_one({"_id": order_id(7)}), "_id": mistyped, "total": "12.30"})
        unnumbered_order = orders.find_one({"_id": order_id(8)})
        del unnumbered_order["number"]
        orders.insert_one({**unnumbered_order, "_id": unnumbered})
        yield users, orders
        users.drop()
        orders.drop()
    with PostgresHook().get_conn() as conn:
        drop_tables(conn, "at_once")
        drop_tables(conn, "at_once", "crm")


def query(statement: str, *parameters) -> list[tuple]:
    with PostgresHook().get_conn() as conn:
        return conn.execute(statement, parameters or None).fetchall()


def source_items(orders, only: set | None = None) -> list[tuple]:
    """The items of the source's orders as the child table must hold them."""
    return sorted(
        (id_key(order["_id"]), index, item["sku"], item["quantity"], item["unit_price"].to_decimal())
        for order in orders.find({} if only is None else {"_id": {"$in": list(only)}})
        if isinstance(order.get("total"), Decimal128) and "number" in order
        for index, item in enumerate(order["items"])
    )


def test_two_mappings_run_at_the_same_time_into_one_database_each_exactly(airflow_services, sources):
    users, orders = sources
    api = airflow_services
    api.wait_for_dag(ORDERS_DAG)
    with PostgresHook().get_conn() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS crm")

    runs = {"users": api.trigger(USERS), "orders": api.trigger(ORDERS, dag_id=ORDERS_DAG)}
    users_run = api.wait(runs["users"])
    orders_run = api.wait(runs["orders"], dag_id=ORDERS_DAG)

    assert (users_run["state"], orders_run["state"]) == ("success", "success")
    started = [dt.datetime.fromisoformat(run["start_date"]) for run in (users_run, orders_run)]
    ended = [dt.datetime.fromisoformat(run["end_date"]) for run in (users_run, orders_run)]
    assert started[0] < ended[1] and started[1] < ended[0], "the two runs did not overlap"
    assert query("SELECT count(*), count(DISTINCT _id) FROM public.at_once") == [(3000, 3000)]
    expected_users = {
        id_key(user["_id"]): (user["username"], user["email"], user["age"]) for user in users.find()
    }
    assert {
        key: tuple(rest) for key, *rest in query("SELECT _id, username, email, age FROM public.at_once")
    } == (expected_users)
    landed = query("SELECT _id, number, total, placed_at, city FROM crm.at_once")
    assert len(landed) == 2000
    for order in orders.find({"_id": {"$in": [order_id(n) for n in (0, 999, 1999)]}}):
        row = next(row for row in landed if row[0] == id_key(order["_id"]))
        assert row[1:] == (
            order["number"],
            order["total"].to_decimal(),
            order["placed_at"].replace(tzinfo=dt.UTC),
            order["customer"]["address"]["city"],
        )
    assert query("SELECT _id, _index, sku, quantity, unit_price FROM crm.at_once_items ORDER BY 1, 2") == (
        source_items(orders)
    )
    rejects = query(
        "SELECT _id, column_name, path, expected, actual, reason FROM crm.at_once_rejects ORDER BY 2"
    )
    assert [row[:5] for row in rejects] == [
        (id_key(order_id(5001)), "number", ["number"], "string", "missing"),
        (id_key(order_id(5000)), "total", ["total"], "decimal, int, long", "string"),
    ]
    assert "is missing and the column is not nullable" in rejects[0][5]
    verified = api.result(runs["orders"], "verify", dag_id=ORDERS_DAG)
    assert verified["rejects_by_column"] == {"number": 1, "total": 1}
    assert "| Rejects in the target, by column | number: 1, total: 1 |" in verified["report"]
    published = query(
        f'SELECT target_schema, target_table, dag_id FROM {STAGING_SCHEMA}."Published" '
        "WHERE target_table = 'at_once' ORDER BY 1"
    )
    assert published == [("crm", "at_once", ORDERS_DAG), ("public", "at_once", "mongo_to_postgres")]


def test_an_incremental_run_replaces_a_changed_orders_items_with_it_and_proves_the_content(
    airflow_services, sources
):
    _, orders = sources
    api = airflow_services
    first = api.trigger(ORDERS, dag_id=ORDERS_DAG)
    assert api.wait(first, dag_id=ORDERS_DAG)["state"] == "success"
    fewer, repriced, gone, new = order_id(10), order_id(11), order_id(12), order_id(6000)
    orders.update_one(
        {"_id": fewer}, {"$set": {"items": [{"sku": "ONE", "quantity": 1, "unit_price": Decimal128("1.00")}]}}
    )
    orders.update_one({"_id": repriced}, {"$set": {"items.0.unit_price": Decimal128("99999.99")}})
    orders.delete_one({"_id": gone})
    orders.insert_one({**orders.find_one({"_id": order_id(13)}), "_id": new})

    run = api.trigger({**ORDERS, "verify_content": True}, dag_id=ORDERS_DAG)

    assert api.wait(run, dag_id=ORDERS_DAG)["state"] == "success"
    verified = api.result(run, "verify", dag_id=ORDERS_DAG)
    assert verified["mode"] == "incremental" and verified["run"]["pages"] == 0
    assert query("SELECT _id, _index, sku, quantity, unit_price FROM crm.at_once_items ORDER BY 1, 2") == (
        source_items(orders)
    )
    assert query("SELECT count(*) FROM crm.at_once_items WHERE _id = %s", id_key(gone)) == [(0,)]
    assert query(
        "SELECT unit_price FROM crm.at_once_items WHERE _id = %s AND _index = 0", id_key(repriced)
    ) == [(Decimal("99999.99"),)]
