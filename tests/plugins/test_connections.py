"""Timeouts on every connection, and errors that name the connection when a server is unreachable."""

import os

import psycopg
import pytest

from mongo_migration.connections import UnreachableError, mongo_hook, postgres_connection, transaction
from mongo_migration.operators import MigratePageOperator, ResetTableOperator
from mongo_migration.pages import Page
from tests.staging import USERS

NOTHING_LISTENS = "127.0.0.1:9"


def test_source_client_has_timeouts_unless_the_connection_sets_its_own(services, monkeypatch):
    with mongo_hook("mongo_default") as hook:
        options = hook.get_conn().options
        assert (options.server_selection_timeout, options.pool_options.socket_timeout) == (10, 600)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MONGO_SHORT", f"{hook.connection.get_uri()}&serverSelectionTimeoutMS=500"
    )
    with mongo_hook("mongo_short") as hook:
        assert hook.get_conn().options.server_selection_timeout == 0.5


def test_target_transactions_have_statement_and_lock_timeouts_and_name_their_task(services):
    with postgres_connection("postgres_default", application_name="mongo_migration:verify") as conn:
        with transaction(conn):
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1h"
            assert conn.execute("SHOW lock_timeout").fetchone()[0] == "1min"
            assert conn.execute("SHOW application_name").fetchone()[0] == "mongo_migration:verify"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"  # set in the transaction alone


def test_an_unreachable_source_fails_the_page_naming_the_connection_and_host(
    target_table, context, monkeypatch
):
    ResetTableOperator(task_id="reset_table", target_table=target_table, mapping=USERS).execute(context)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MONGO_DOWN",
        f"mongo://{NOTHING_LISTENS}/?directConnection=true&serverSelectionTimeoutMS=300",
    )
    page = Page(0, 1, 2, True, 2)
    operator = MigratePageOperator(
        task_id="migrate_page",
        page=page.to_xcom(),
        mongo_conn_id="mongo_down",
        mongo_database="tests",
        mongo_collection="users",
        target_table=target_table,
        mapping=USERS,
    )

    with pytest.raises(
        UnreachableError, match=rf"MongoDB connection 'mongo_down' \({NOTHING_LISTENS}\) failed"
    ):
        operator.execute(context)


def test_an_unreachable_target_fails_naming_the_connection_and_host_but_not_the_password(
    context, monkeypatch
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTGRES_DOWN", f"postgresql://someone:s3cret-pw@{NOTHING_LISTENS}/target"
    )
    operator = ResetTableOperator(
        task_id="reset_table", target_table="users", postgres_conn_id="postgres_down", mapping=USERS
    )

    with pytest.raises(UnreachableError) as failure:
        operator.execute(context)

    assert f"PostgreSQL connection 'postgres_down' ({NOTHING_LISTENS}) failed" in str(failure.value)
    assert "s3cret-pw" not in str(failure.value)


def test_a_lock_timeout_keeps_its_own_message_and_is_not_called_unreachable(pg_conn, target_table):
    pg_conn.execute(f"CREATE TABLE {target_table} (x int)")
    with postgres_connection("postgres_default", application_name="tests") as holder:
        holder.execute(f"LOCK TABLE {target_table} IN ACCESS EXCLUSIVE MODE")  # held until the end

        with (
            pytest.raises(psycopg.errors.LockNotAvailable, match="lock timeout"),
            postgres_connection("postgres_default", application_name="tests") as conn,
            transaction(conn),
        ):
            conn.execute("SET LOCAL lock_timeout = '100ms'")
            conn.execute(f"SELECT * FROM {target_table}")


def test_through_pgbouncer_each_transaction_has_its_timeouts_and_the_connection_its_task(services):
    with (
        postgres_connection("postgres_pgbouncer", application_name="mongo_migration:publish") as conn,
        transaction(conn),
    ):
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1h"
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "1min"
        assert conn.execute("SHOW application_name").fetchone()[0] == "mongo_migration:publish"
    assert "PGAPPNAME" not in os.environ  # set for the connect alone
