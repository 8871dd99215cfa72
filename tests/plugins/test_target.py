"""The PostgreSQL side alone: staging tables, their owner, the load lock and publish, on the real server."""

import bson
import psycopg
import pytest
from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mongo_migration import target
from mongo_migration.documents import id_checksum, id_key
from mongo_migration.page_copy import copy_page
from mongo_migration.pages import Page
from mongo_migration.target import STAGING_SCHEMA as STAGING
from mongo_migration.target import Owner

GOOD = bson.encode({"_id": 1, "username": "fine"})
WITH_NUL = bson.encode({"_id": 2, "username": "nul\x00inside"})
PAGE = Page(number=4, lower=1, upper=2, upper_inclusive=True, planned_documents=2)
RUN = Owner("mongo_to_postgres", "scheduled__1")
OTHER_RUN = Owner("mongo_to_postgres_copy", "manual__2")


def nobody_running(owner):
    return False


def load(conn, table, owner=RUN, batches=(GOOD + WITH_NUL,)):
    target.reset_table(conn, table, "public", owner, nobody_running)
    return copy_page(batches, conn, table, owner, PAGE)


def test_a_page_writes_rows_and_rejects_together_and_a_rerun_replaces_both(pg_conn, target_table):
    load(pg_conn, target_table)
    stats = copy_page([GOOD + WITH_NUL], pg_conn, target_table, RUN, PAGE)

    assert (stats.documents, stats.rejected) == (2, 1)
    assert target.count_rows(pg_conn, target_table) == (1, 1)
    [(key, reason, raw, page_number)] = pg_conn.execute(
        f"SELECT _id, reason, document, page FROM {STAGING}.{target_table}_rejects"
    ).fetchall()
    assert (key, bytes(raw), page_number) == (id_key(2), WITH_NUL, 4)
    assert "NUL" in reason


def test_postgresql_computes_the_same_id_checksum_as_the_page(pg_conn, target_table):
    stats = load(pg_conn, target_table)

    assert stats.id_checksum == id_checksum([id_key(1), id_key(2)])
    assert target.page_checksums(pg_conn, target_table) == {4: (2, stats.id_checksum)}


def test_loading_leaves_the_live_table_alone_and_publish_swaps_it_keeping_its_grants(pg_conn, target_table):
    pg_conn.execute(f"CREATE TABLE {target_table} (old int)")
    pg_conn.execute(f"CREATE TABLE {target_table}_rejects (old int)")
    pg_conn.execute("DROP ROLE IF EXISTS migration_reader; CREATE ROLE migration_reader")
    pg_conn.execute(f"GRANT SELECT ON {target_table}, {target_table}_rejects TO migration_reader")
    pg_conn.execute(f"GRANT SELECT ON {target_table} TO PUBLIC")

    load(pg_conn, target_table)

    assert [c.name for c in pg_conn.execute(f"SELECT * FROM {target_table}").description] == ["old"]
    target.publish(pg_conn, target_table, "public", RUN, "published by a test")

    live = pg_conn.execute(f"SELECT _id, username FROM public.{target_table}").fetchall()
    assert live == [(id_key(1), "fine")]
    assert pg_conn.execute(f"SELECT count(*) FROM public.{target_table}_rejects").fetchone()[0] == 1
    assert target.staging_owner(pg_conn, target_table) is None  # moved, not copied
    grants = pg_conn.execute(
        "SELECT table_name, grantee, privilege_type FROM information_schema.role_table_grants "
        "WHERE table_schema = 'public' AND table_name LIKE %s AND grantee <> current_user",
        [f"{target_table}%"],
    ).fetchall()
    assert sorted(grants) == [
        (target_table, "PUBLIC", "SELECT"),
        (target_table, "migration_reader", "SELECT"),
        (f"{target_table}_rejects", "migration_reader", "SELECT"),
    ]
    note = pg_conn.execute("SELECT obj_description(%s::regclass)", [target_table]).fetchone()[0]
    assert note == "published by a test"
    primary_key = pg_conn.execute(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
        [target_table],
    ).fetchone()
    assert primary_key == (f"{target_table}_pkey",)


def test_a_run_still_loading_keeps_the_table_and_the_other_run_fails_at_once(pg_conn, target_table):
    load(pg_conn, target_table)
    with PostgresHook().get_conn() as page:  # a page of the loading run, mid-COPY, shares the lock
        page.execute(
            "SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0))", [f"{STAGING}.{target_table}"]
        )

        with pytest.raises(AirflowFailException, match=r"being loaded by run 'scheduled__1' of DAG"):
            target.reset_table(pg_conn, target_table, "public", OTHER_RUN, still_running=lambda owner: True)

    assert target.staging_owner(pg_conn, target_table) == RUN
    assert target.count_rows(pg_conn, target_table) == (1, 1)


def test_a_run_that_ended_is_taken_over_and_can_no_longer_write_or_publish(pg_conn, target_table):
    load(pg_conn, target_table)

    previous = target.reset_table(pg_conn, target_table, "public", OTHER_RUN, nobody_running)

    assert previous == RUN
    with pytest.raises(AirflowFailException, match=r"run 'manual__2' of DAG 'mongo_to_postgres_copy' owns"):
        copy_page([GOOD], pg_conn, target_table, RUN, PAGE)
    with pytest.raises(AirflowFailException, match=r"owns them now"):
        target.publish(pg_conn, target_table, "public", RUN, "never")
    assert target.count_rows(pg_conn, target_table) == (0, 0)
    assert pg_conn.execute("SELECT to_regclass(%s)", [target_table]).fetchone()[0] is None


def test_a_session_holding_the_load_lock_keeps_every_run_off_the_table(pg_conn, target_table):
    load(pg_conn, target_table)
    with PostgresHook().get_conn() as person:
        person.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [f"{STAGING}.{target_table}"])
        pg_conn.execute("SET lock_timeout = '200ms'")

        for attempt in (
            lambda: target.reset_table(pg_conn, target_table, "public", RUN, nobody_running),
            lambda: copy_page([GOOD], pg_conn, target_table, RUN, PAGE),
            lambda: target.publish(pg_conn, target_table, "public", RUN, "never"),
        ):
            with pytest.raises(AirflowException, match=rf"load lock of table {target_table} .* is held"):
                attempt()

    assert target.count_rows(pg_conn, target_table) == (1, 1)  # the first load, untouched


def test_publish_refuses_to_drop_a_live_table_others_depend_on_and_leaves_it_whole(pg_conn, target_table):
    pg_conn.execute(f"CREATE TABLE {target_table} (old int)")
    pg_conn.execute(f"INSERT INTO {target_table} VALUES (1)")
    pg_conn.execute(f"CREATE VIEW {target_table}_view AS SELECT * FROM {target_table}")
    load(pg_conn, target_table)

    try:
        with pytest.raises(psycopg.errors.DependentObjectsStillExist, match=f"{target_table}_view"):
            target.publish(pg_conn, target_table, "public", RUN, "never")

        assert pg_conn.execute(f"SELECT * FROM {target_table}_view").fetchall() == [(1,)]
        assert target.staging_owner(pg_conn, target_table) == RUN  # the run can publish after a fix
    finally:
        pg_conn.execute(f"DROP VIEW {target_table}_view")


def test_a_schema_that_does_not_exist_fails_reset_naming_it(pg_conn, target_table):
    with pytest.raises(AirflowFailException, match="target schema 'nowhere' does not exist"):
        target.reset_table(pg_conn, target_table, "nowhere", RUN, nobody_running)
