"""The PostgreSQL side alone: staging tables, their owner, the load lock and publish, on the real server."""

import bson
import psycopg
import pytest
from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mongo_migration import target
from mongo_migration.documents import Conversion, id_key
from mongo_migration.mapping import STAGING_SCHEMA
from mongo_migration.page_copy import copy_page
from mongo_migration.pages import Page
from mongo_migration.run_options import RunOptions
from mongo_migration.target import Owner, Tables
from tests.staging import USERS, drop_tables, staged, users

GOOD = bson.encode({"_id": 1, "username": "fine"})
WITH_NUL = bson.encode({"_id": 2, "username": "nul\x00inside"})
PAGE = Page(number=4, lower=1, upper=2, upper_inclusive=True, planned_documents=2)
RUN = Owner("mongo_to_postgres", "scheduled__1")
OTHER_RUN = Owner("mongo_to_postgres_copy", "manual__2")


def nobody_running(owner):
    return False


ROWS = Conversion(USERS)


def load(conn, table, owner=RUN, batches=(GOOD + WITH_NUL,)):
    target.reset_table(conn, users(table), owner, nobody_running)
    return copy_page(batches, conn, users(table), ROWS, owner, PAGE)


def publish(conn, table, owner=RUN):
    """Publish as a run whose verify proved the staging table as it is (its rejects allowed)."""
    allowed = RunOptions(max_reject_percent=100)
    guards = target.Guards(verified=target.staged_state(conn, users(table)), options=allowed)
    return target.publish(conn, users(table), owner, guards, wait_seconds=0)


def test_a_page_writes_rows_and_rejects_together_and_a_rerun_replaces_both(pg_conn, target_table):
    load(pg_conn, target_table)
    stats = copy_page([GOOD + WITH_NUL], pg_conn, users(target_table), ROWS, RUN, PAGE)

    assert (stats.documents, stats.rejected) == (2, 1)
    assert target.count_rows(pg_conn, users(target_table)) == (1, 1)
    [(key, column, path, reason, raw, page_number)] = pg_conn.execute(
        f"SELECT _id, column_name, path, reason, document, page FROM {staged(target_table + '_rejects')}"
    ).fetchall()
    assert (key, column, path, bytes(raw), page_number) == (id_key(2), "username", ["username"], WITH_NUL, 4)
    assert "NUL" in reason


def staging(conn, table) -> tuple[dict, list, dict]:
    rows = dict(conn.execute(f"SELECT _id, username FROM {staged(table)}").fetchall())
    rejects = [key for (key,) in conn.execute(f"SELECT _id FROM {staged(table + '_rejects')}")]
    return rows, rejects, target.staging_position(conn, users(table))


def test_a_batch_of_changes_replaces_its_documents_and_moves_the_position_in_one_transaction(
    pg_conn, target_table
):
    load(pg_conn, target_table)  # user 1 a row, user 2 a reject
    target.save_position(pg_conn, users(target_table), {"at": "start"})
    now = ROWS.rows(bson.encode({"_id": 2, "username": "clean now"}), target.CAUGHT_UP_PAGE)
    keys = [id_key(1), id_key(2)]  # user 1 deleted, user 2 written as it is now
    broken = ROWS.rows(b"", 0)
    broken.rows = b"not a row\n"

    with pytest.raises(psycopg.errors.BadCopyFileFormat):
        target.apply_changes(pg_conn, users(target_table), RUN, keys, broken, {"at": "broken"})
    assert staging(pg_conn, target_table) == ({id_key(1): "fine"}, [id_key(2)], {"at": "start"})

    target.apply_changes(pg_conn, users(target_table), RUN, keys, now, {"at": "batch"})
    assert staging(pg_conn, target_table) == ({id_key(2): "clean now"}, [], {"at": "batch"})


def test_the_first_publish_moves_the_tables_in_and_the_next_load_leaves_them_alone(pg_conn, target_table):
    load(pg_conn, target_table)

    result = publish(pg_conn, target_table)

    assert result["method"] == "moved in (first publish)"
    assert target.staging_owner(pg_conn, users(target_table)) is None  # moved, not copied
    primary_key = pg_conn.execute(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
        [target_table],
    ).fetchone()
    assert primary_key == (f"{target_table}_pkey",)  # named as the live table's, not the staging one's
    load(pg_conn, target_table, batches=[bson.encode({"_id": 3, "username": "next run"})])
    assert pg_conn.execute(f"SELECT _id, username FROM {target_table}").fetchall() == [(id_key(1), "fine")]
    assert pg_conn.execute(f"SELECT count(*) FROM {target_table}_rejects").fetchone()[0] == 1


def test_a_run_still_loading_keeps_the_table_and_the_other_run_fails_at_once(pg_conn, target_table):
    load(pg_conn, target_table)
    with PostgresHook().get_conn() as page:  # a page of the loading run, mid-COPY, shares the lock
        page.execute(
            "SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0))", [users(target_table).lock_key]
        )

        with pytest.raises(AirflowFailException, match=r"being loaded by run 'scheduled__1' of DAG"):
            target.reset_table(pg_conn, users(target_table), OTHER_RUN, still_running=lambda owner: True)

    assert target.staging_owner(pg_conn, users(target_table)) == RUN
    assert target.count_rows(pg_conn, users(target_table)) == (1, 1)


def test_a_run_that_ended_is_taken_over_and_can_no_longer_write_or_publish(pg_conn, target_table):
    load(pg_conn, target_table)

    previous = target.reset_table(pg_conn, users(target_table), OTHER_RUN, nobody_running)

    assert previous == RUN
    with pytest.raises(AirflowFailException, match=r"run 'manual__2' of DAG 'mongo_to_postgres_copy' owns"):
        copy_page([GOOD], pg_conn, users(target_table), ROWS, RUN, PAGE)
    with pytest.raises(AirflowFailException, match=r"owns them now"):
        publish(pg_conn, target_table)
    assert target.count_rows(pg_conn, users(target_table)) == (0, 0)
    assert pg_conn.execute("SELECT to_regclass(%s)", [target_table]).fetchone()[0] is None


def test_a_session_holding_the_load_lock_keeps_every_run_off_the_table(pg_conn, target_table, monkeypatch):
    load(pg_conn, target_table)
    monkeypatch.setattr("mongo_migration.connections.POSTGRES_LOCK_TIMEOUT_MS", 200)
    monkeypatch.setattr("mongo_migration.target.publishing.PUBLISH_LOCK_TIMEOUT", "200ms")
    with PostgresHook().get_conn() as person:
        person.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [users(target_table).lock_key])

        for attempt in (
            lambda: target.reset_table(pg_conn, users(target_table), RUN, nobody_running),
            lambda: copy_page([GOOD], pg_conn, users(target_table), ROWS, RUN, PAGE),
            lambda: publish(pg_conn, target_table),
        ):
            with pytest.raises(
                AirflowException, match=rf"load lock of table public.{target_table} .* is held"
            ):
                attempt()

    assert target.count_rows(pg_conn, users(target_table)) == (1, 1)  # the first load, untouched


def test_a_schema_that_does_not_exist_fails_reset_naming_it(pg_conn, target_table):
    with pytest.raises(AirflowFailException, match="target schema 'nowhere' does not exist"):
        target.reset_table(pg_conn, users(target_table, "nowhere"), RUN, nobody_running)


def test_targets_of_the_same_name_in_two_schemas_keep_their_own_staging_tables_lock_and_state(
    pg_conn, target_table
):
    pg_conn.execute("CREATE SCHEMA IF NOT EXISTS crm")
    public, crm = users(target_table), users(target_table, "crm")
    try:
        target.reset_table(pg_conn, public, RUN, nobody_running)
        target.reset_table(pg_conn, crm, OTHER_RUN, nobody_running)  # another run, at the same time
        copy_page([GOOD], pg_conn, public, ROWS, RUN, PAGE)
        copy_page([GOOD + WITH_NUL], pg_conn, crm, ROWS, OTHER_RUN, PAGE)
        target.save_position(pg_conn, crm, {"at": "crm"})

        assert (target.staging_owner(pg_conn, public), target.staging_owner(pg_conn, crm)) == (RUN, OTHER_RUN)
        assert (target.count_rows(pg_conn, public), target.count_rows(pg_conn, crm)) == ((1, 0), (1, 1))
        assert target.staging_position(pg_conn, public) is None
        assert public.lock_key != crm.lock_key
        publish(pg_conn, target_table)
        assert target.staging_owner(pg_conn, crm) == OTHER_RUN  # untouched by the other's publish
    finally:
        drop_tables(pg_conn, target_table, "crm")


def test_a_run_that_resets_its_tables_takes_no_lock_on_the_state_another_targets_publish_reads(
    pg_conn, target_table, monkeypatch
):
    load(pg_conn, target_table)
    publish(pg_conn, target_table)
    monkeypatch.setattr("mongo_migration.connections.POSTGRES_LOCK_TIMEOUT_MS", 500)
    with PostgresHook().get_conn() as publishing:  # another target's publish, mid-transaction
        publishing.execute(f'SELECT count(*) FROM {STAGING_SCHEMA}."Published"')  # holds ACCESS SHARE
        publishing.execute(f'SELECT count(*) FROM {STAGING_SCHEMA}."Positions"')

        load(pg_conn, target_table, OTHER_RUN)  # would wait and fail on an ALTER TABLE of the state

    assert target.staging_owner(pg_conn, users(target_table)) == OTHER_RUN


def test_a_run_whose_mapping_changed_after_its_reset_writes_nothing_more(pg_conn, target_table):
    load(pg_conn, target_table)
    deployed = USERS.model_copy(update={"keep_document": False})  # the file changed while the run went on
    tables = Tables("public", target_table, deployed)

    with pytest.raises(
        AirflowFailException, match=r"the mapping of public.\w+ changed while run 'scheduled__1'"
    ):
        copy_page([GOOD], pg_conn, tables, Conversion(deployed), RUN, PAGE)

    assert target.count_rows(pg_conn, users(target_table)) == (1, 1)
