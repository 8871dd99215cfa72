"""An incremental run's proof: the changed documents and the counts, the full proof on its cadence, and a
difference the stream cannot explain making the next run copy in full."""

import collections
import time

import bson
import pytest
from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk.exceptions import AirflowFailException
from psycopg import errors
from pymongo import monitoring

from mongo_migration import changes, target
from mongo_migration.demo_orders import fill_orders
from mongo_migration.documents import Conversion, id_key
from mongo_migration.operators import CatchUpOperator, PublishOperator, VerifyMigrationOperator
from mongo_migration.positions import Position
from mongo_migration.verification import failure, proof_to_make, verify_against
from tests.plugins.test_changes import (
    EventsOfAlias,
    FindCommands,
    copy,
    next_run,
    operator,
    publish_run,
)
from tests.staging import ORDERS, USERS, staged, users

PUBLISHED = f'{target.STAGING_SCHEMA}."{target.PUBLISHED_TABLE}"'


def test_the_full_proof_is_made_on_full_copies_and_when_the_last_is_full_proof_days_old():
    now = 1_000 * 86_400.0
    assert proof_to_make("full", now, 7, now)[0] == "full"
    assert proof_to_make("incremental", None, 7, now) == (
        "full",
        "no full proof of the live table is recorded",
    )
    assert proof_to_make("incremental", now - 6.9 * 86_400, 7, now)[0] == "changes"
    assert proof_to_make("incremental", now - 7 * 86_400, 7, now) == (
        "full",
        "the last full proof is 7.0 days old, and full_proof_days is 7",
    )
    assert proof_to_make("incremental", now, 0, now)[0] == "full"


def test_an_incremental_run_proves_the_changed_documents_read_by_id_and_the_counts(
    mongo_collection, pg_conn, target_table, context, monkeypatch
):
    monkeypatch.setattr("mongo_migration.verification.QUERY_IDS", 2)
    mongo_collection.insert_many([{"_id": n, "v": 0} for n in range(200)])
    assert publish_run(mongo_collection, target_table, context)["proof"] == "full"
    mongo_collection.update_one({"_id": 1}, {"$set": {"v": 1}})
    mongo_collection.delete_one({"_id": 2})
    mongo_collection.insert_one({"_id": 200, "v": 0})
    finds = FindCommands(mongo_collection.name)
    monitoring.register(finds)  # for the clients made from now on
    finds.on = True
    try:
        verified = publish_run(mongo_collection, target_table, next_run(context), verify_options={})
    finally:
        finds.on = False

    assert (verified["mode"], verified["proof"], verified["source"], verified["target"]) == (
        "incremental",
        "changes",
        200,
        200,
    )
    assert "the proof of the changes" in verified["report"]
    read_again = [find["filter"] for find in finds.seen if find.get("filter")]
    # The changed documents alone, by _id, QUERY_IDS at a time, left to the planner (a hint made the
    # stand-in scan once per value).
    assert read_again == [{"_id": {"$in": [1, 2]}}, {"_id": {"$in": [200]}}]
    assert not [find for find in finds.seen if find.get("filter") and "hint" in find]
    assert not [find for find in finds.seen if not find.get("filter")]  # no read of every document
    live = dict(pg_conn.execute(f"SELECT _id, document->>'v' FROM {target_table}").fetchall())
    assert live == {id_key(n): ("1" if n == 1 else "0") for n in range(201) if n != 2}


def test_the_full_proof_runs_in_an_incremental_run_when_the_last_is_older_than_full_proof_days(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(50)])
    publish_run(mongo_collection, target_table, context)
    eight_days_ago = time.time() - 8 * 86_400
    pg_conn.execute(
        f"UPDATE {PUBLISHED} SET result = result || jsonb_build_object('full_proof_at', %s::float) "
        "WHERE target_table = %s",
        [eight_days_ago, target_table],
    )

    finds = FindCommands(mongo_collection.name)
    monitoring.register(finds)  # for the clients made from now on
    finds.on = True
    try:
        weekly = publish_run(mongo_collection, target_table, next_run(context))
    finally:
        finds.on = False
    after = publish_run(mongo_collection, target_table, next_run(context))
    every_run = publish_run(
        mongo_collection, target_table, next_run(context), verify_options={"full_proof_days": "0"}
    )

    assert (weekly["mode"], weekly["proof"]) == ("incremental", "full")
    every_id = [find for find in finds.seen if not find.get("filter")]
    assert every_id and all(find.get("hint") == {"_id": 1} for find in every_id)  # a walk of the _id index
    assert "the last full proof is 8.0 days old, and full_proof_days is 7" in weekly["report"]
    assert (after["mode"], after["proof"]) == ("incremental", "changes")  # the weekly proof was recorded
    assert (every_run["mode"], every_run["proof"]) == ("incremental", "full")


def test_a_difference_the_stream_cannot_explain_fails_the_incremental_run_and_the_next_night_copies_in_full(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(30)])
    publish_run(mongo_collection, target_table, context)  # proven in full: the next proof is the changes'
    run = next_run(context)
    start = copy(mongo_collection, target_table, run)
    operator(CatchUpOperator, mongo_collection, target_table).execute(run)
    mongo_collection.insert_one({"_id": 30})  # as a restore would: a document no change of the stream shows
    with pg_conn.transaction():
        later = changes.open_position(mongo_collection).to_json()
        target.save_position(pg_conn, users(target_table), later)

    fields = {"page_results": [], "start": start}
    with pytest.raises(AirflowFailException) as first_night:
        operator(VerifyMigrationOperator, mongo_collection, target_table, **fields).execute(run)
    second_night = publish_run(mongo_collection, target_table, next_run(context))

    assert str(first_night.value).endswith(f"The next run copies public.{target_table} in full.")
    assert "the source holds 31 documents, and the live table with this run's changes would hold 30" in str(
        first_night.value
    )
    assert (second_night["mode"], second_night["proof"], second_night["target"]) == ("full", "full", 31)
    assert second_night["reason"].startswith(
        f"an earlier run could not start from public.{target_table}'s published point: verify found"
    )


def test_a_row_the_watch_could_not_see_fails_the_incremental_publish_and_the_next_night_copies_in_full(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(30)])
    publish_run(mongo_collection, target_table, context)
    with pg_conn.transaction():  # a write the watch cannot see: a session that says it is publish
        pg_conn.execute("SET LOCAL mongo_migration.publishing = 'on'")
        pg_conn.execute(f"INSERT INTO {target_table} (_id, page, document) VALUES ('stray', 0, '{{}}')")

    with pytest.raises(AirflowFailException, match="holds 31 rows after publishing 30") as first_night:
        publish_run(mongo_collection, target_table, next_run(context))
    second_night = publish_run(mongo_collection, target_table, next_run(context))

    assert str(first_night.value).endswith(f"The next run copies public.{target_table} in full.")
    assert second_night["mode"] == "full"
    assert pg_conn.execute(f"SELECT count(*) FROM {target_table} WHERE _id = 'stray'").fetchone() == (0,)


def test_a_copy_published_without_proof_is_proven_in_full_by_the_next_run(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(30)])
    publish_run(mongo_collection, target_table, context)  # proven in full: the next proof is the changes'
    # A full run whose staging table gains a row no document has, published without verify's proof (the
    # Param publish_unverified), as a person might after a verify that failed.
    unverified = next_run(context)
    copy(mongo_collection, target_table, unverified, mode="full")
    operator(CatchUpOperator, mongo_collection, target_table).execute(unverified)
    pg_conn.execute(f"INSERT INTO {staged(target_table)} (_id, page, document) VALUES ('stray', 0, '{{}}')")
    fields = {"verified": None, "asset_alias": "tests_target", "options": {"publish_unverified": "true"}}
    publish = operator(PublishOperator, mongo_collection, target_table, **fields)
    publish.execute({**unverified, "outlet_events": collections.defaultdict(EventsOfAlias)})

    with pytest.raises(AirflowFailException, match=r"1 _id not in the source: \['stray'\]") as next_night:
        publish_run(mongo_collection, target_table, next_run(context))
    assert "the full proof (no full proof of the live table is recorded)" not in str(next_night.value)
    assert publish_run(mongo_collection, target_table, next_run(context))["mode"] == "full"


def test_the_live_tables_watch_records_others_writes_so_the_next_run_copies_in_full_and_is_set_up_again(
    mongo_collection, pg_conn, target_table, context
):
    fill_orders(mongo_collection, 20)
    publish_run(mongo_collection, target_table, context, mapping=ORDERS)
    items = f"{target_table}_items"

    def next_copy() -> dict:
        return copy(mongo_collection, target_table, next_run(context), mapping=ORDERS)

    def full_again() -> None:
        publish_run(mongo_collection, target_table, next_run(context), mode="full", mapping=ORDERS)

    for write in [
        f"UPDATE {items} SET quantity = quantity + 1 WHERE _index = 0",  # a child table
        f"TRUNCATE {target_table}_rejects",
        f"DELETE FROM {target_table} WHERE false",  # a statement that changes no row still counts
    ]:
        pg_conn.execute(write)
        reason = next_copy()["reason"]
        assert "were changed by someone else since its publish (the first write: " in reason, write
        assert f"by role {pg_conn.info.user} at " in reason
        full_again()
        assert next_copy()["mode"] == "incremental"

    pg_conn.execute(f"ALTER TABLE {target_table} ADD COLUMN score integer")  # a person's own column
    pg_conn.execute(f"UPDATE {target_table} SET score = 1")  # theirs to write: no full copy
    assert next_copy()["mode"] == "incremental"

    pg_conn.execute(f"ALTER TABLE {items} DISABLE TRIGGER mongo_migration_watch")
    pg_conn.execute(f"UPDATE {items} SET quantity = 0")  # unseen: the watch is off
    assert f"the watch that records writes to public.{items} is disabled or gone" in next_copy()["reason"]
    full_again()  # and publish sets the watch up again
    pg_conn.execute(f"UPDATE {items} SET quantity = 0")
    assert "(the first write: UPDATE on public." in next_copy()["reason"]
    full_again()

    rejects = f"{target_table}_rejects"
    with pg_conn.transaction():  # restored from a backup as pg_restore does: rows, then the trigger
        pg_conn.execute(f"CREATE TABLE restored (LIKE {rejects} INCLUDING ALL)")
        pg_conn.execute(f"INSERT INTO restored SELECT * FROM {rejects}")
        pg_conn.execute(f"DROP TABLE {rejects}")
        pg_conn.execute(f"ALTER TABLE restored RENAME TO {rejects}")
        watch = f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {rejects} FOR EACH STATEMENT"
        note = f'EXECUTE FUNCTION {target.STAGING_SCHEMA}."NoteWrite"(%s)'
        pg_conn.execute(
            f"CREATE TRIGGER mongo_migration_watch {watch} {note}".replace("%s", f"'{target_table}'")
        )
    assert f"public.{rejects} was dropped and made again (a restore?)" in next_copy()["reason"]
    full_again()

    with pytest.raises(errors.FeatureNotSupported, match="used in a trigger definition"):  # the watch
        pg_conn.execute(f"ALTER TABLE {target_table} ALTER COLUMN total TYPE text")  # by hand: no row written
    with pg_conn.transaction():  # unless the watch goes first and is made again as it was
        definition = pg_conn.execute(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'mongo_migration_watch' "
            "AND tgrelid = %s::regclass",
            [target_table],
        ).fetchone()[0]
        pg_conn.execute(f"DROP TRIGGER mongo_migration_watch ON {target_table}")
        pg_conn.execute(f"ALTER TABLE {target_table} ALTER COLUMN total TYPE text")
        pg_conn.execute(definition)
    assert (
        f"column total of public.{target_table} was numeric at the publish and is text"
        in (next_copy()["reason"])
    )
    full_again()  # and publish, whose mapping says numeric, changes it back
    assert next_copy()["mode"] == "incremental"


def test_a_write_by_someone_else_during_an_incremental_run_fails_its_publish_and_the_next_run_copies_in_full(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(20)])
    publish_run(mongo_collection, target_table, context)
    mongo_collection.delete_one({"_id": 3})
    run = next_run(context)
    start = copy(mongo_collection, target_table, run)
    operator(CatchUpOperator, mongo_collection, target_table).execute(run)
    fields = {"page_results": [], "start": start}
    verified = operator(VerifyMigrationOperator, mongo_collection, target_table, **fields).execute(run)
    pg_conn.execute(f"DELETE FROM {target_table} WHERE _id = %s", [id_key(7)])  # meanwhile, by hand

    fields = {"verified": verified, "asset_alias": "tests_target"}
    publish = operator(PublishOperator, mongo_collection, target_table, **fields)
    with pytest.raises(AirflowFailException, match=r"someone else wrote to public.*DELETE on public"):
        publish.execute({**run, "outlet_events": collections.defaultdict(EventsOfAlias)})
    after = publish_run(mongo_collection, target_table, next_run(context))

    assert after["mode"] == "full"
    assert pg_conn.execute(f"SELECT count(*) FROM {target_table}").fetchone() == (19,)


def test_an_incremental_run_reads_the_changes_since_its_point_once(
    mongo_collection, pg_conn, target_table, context, monkeypatch
):
    mongo_collection.insert_many([{"_id": n} for n in range(20)])
    publish_run(mongo_collection, target_table, context)
    point = pg_conn.execute(f"SELECT position FROM {PUBLISHED} WHERE target_table = %s", [target_table])
    point = Position.from_json(point.fetchone()[0])
    mongo_collection.insert_one({"_id": 20})
    real_watch, reads_from = changes._watch, []

    def watch(collection, since, lean=False, pipeline=()):
        reads_from.append(since.cluster_time)
        return real_watch(collection, since, lean, pipeline)

    monkeypatch.setattr(changes, "_watch", watch)
    verified = publish_run(mongo_collection, target_table, next_run(context))

    assert (verified["mode"], verified["run"]["changes"]) == ("incremental", 1)
    assert reads_from.count(point.cluster_time) == 1  # later reads start where the last one ended
    assert all(since > point.cluster_time for since in reads_from[1:])


class TwoShards:
    """The source as mongos shows a collection sharded on a key that does not start with _id: one more
    document, with the ``_id`` of another, held by another shard."""

    def __init__(self, collection, twice):
        self.collection, self.twice = collection, twice

    def find_raw_batches(self, *args, **kwargs):
        yield from self.collection.find_raw_batches(*args, **kwargs)
        yield bson.encode({"_id": self.twice})

    def __getattr__(self, name):
        return getattr(self.collection, name)


def test_verify_fails_on_an_id_the_source_holds_twice_which_a_copy_keyed_by_id_cannot_hold(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(10)])
    copy(mongo_collection, target_table, context, mode="full")
    operator(CatchUpOperator, mongo_collection, target_table).execute(context)

    def no_change(tables, keys):
        return changes.CatchUp(position=None)

    _, check = verify_against(
        TwoShards(mongo_collection, 3), pg_conn, users(target_table), Conversion(USERS), False, no_change
    )
    differ = failure(check, "the source", users(target_table))

    assert check.source_duplicates == [(id_key(3), 2)]
    assert differ.startswith("Source the source holds documents that share an _id")
    assert "Is the collection sharded on a key that does not start with _id?" in differ


class Watched:
    """The source, read in batches; between two, ``between()`` runs (the batch before is written)."""

    def __init__(self, collection, between):
        self.collection, self.between = collection, between

    def find_raw_batches(self, *args, **kwargs):
        for batch in self.collection.find_raw_batches(*args, **kwargs):
            yield batch
            self.between()

    def __getattr__(self, name):
        return getattr(self.collection, name)


def test_verify_holds_no_transaction_open_while_it_reads_the_source(
    mongo_collection, pg_conn, target_table, context, monkeypatch
):
    monkeypatch.setattr("mongo_migration.verification.KEYS_PER_READ", 10)
    mongo_collection.insert_many([{"_id": n} for n in range(50)])
    copy(mongo_collection, target_table, context, mode="full")
    operator(CatchUpOperator, mongo_collection, target_table).execute(context)
    seen = []

    def between():  # what the verify's connection holds while the next batch is read
        with PostgresHook().get_conn() as other:
            activity = "SELECT state, backend_xid, backend_xmin FROM pg_stat_activity WHERE pid = %s"
            seen.append(other.execute(activity, [pg_conn.info.backend_pid]).fetchone())

    def no_change(tables, keys):
        return changes.CatchUp(position=None)

    source = Watched(mongo_collection, between)
    _, check = verify_against(source, pg_conn, users(target_table), Conversion(USERS), False, no_change)

    assert (check.source, check.differences) == (50, {})
    assert len(seen) >= 5
    assert set(seen) == {("idle", None, None)}  # no xid, no snapshot: vacuum goes on meanwhile
