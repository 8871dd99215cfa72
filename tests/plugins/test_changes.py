"""The change stream and the catch-up, on the real MongoDB wire-protocol server and PostgreSQL."""

import collections
import concurrent.futures
import datetime as dt
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import bson
import pytest
from airflow.sdk.exceptions import AirflowFailException
from bson.objectid import ObjectId
from psycopg.types.json import Jsonb
from pymongo import monitoring
from pymongo.errors import OperationFailure

from mongo_migration import changes, positions, target, verification
from mongo_migration.demo_orders import fake_orders, fill_orders, order_id
from mongo_migration.documents import id_key
from mongo_migration.failpoint import FAILPOINT_VARIABLE
from mongo_migration.operators import (
    CatchUpOperator,
    MigratePageOperator,
    OpenChangeStreamOperator,
    PublishOperator,
    ResetTableOperator,
    VerifyMigrationOperator,
)
from mongo_migration.pages import plan_pages
from mongo_migration.positions import Position
from tests.conftest import ROOT, STACK_ENV, mongo_connection
from tests.staging import ORDERS, USERS, staged, users

STANDALONE_PORT = 57019


def operator(kind, collection, table, conn_id="mongo_default", mapping=USERS, **fields):
    return kind(
        task_id=kind.__name__,
        mongo_conn_id=conn_id,
        mongo_database=collection.database.name,
        mongo_collection=collection.name,
        target_table=table,
        mapping=mapping,
        **fields,
    )


def copy(collection, table, context, conn_id="mongo_default", mode="incremental", mapping=USERS) -> dict:
    """reset_table, open_change_stream and the pages of a run; what open_change_stream chose."""
    ResetTableOperator(task_id="reset_table", target_table=table, mapping=mapping).execute(context)
    opening = operator(OpenChangeStreamOperator, collection, table, conn_id, mapping, options={"mode": mode})
    start = opening.execute(context)
    if start["mode"] == "full":
        for page in plan_pages(collection, 40):
            page_fields = {"page": page.to_xcom(), "start": start}
            operator(MigratePageOperator, collection, table, conn_id, mapping, **page_fields).execute(context)
    return start


def publish_run(
    collection, table, context, mode="incremental", mapping=USERS, verify_options=None, publish_options=None
) -> dict:
    """A whole run, task by task; what verify returned."""
    start = copy(collection, table, context, mode=mode, mapping=mapping)
    operator(CatchUpOperator, collection, table, mapping=mapping).execute(context)
    fields = {"page_results": [], "start": start, "mapping": mapping, "options": verify_options or {}}
    verified = operator(VerifyMigrationOperator, collection, table, **fields).execute(context)
    # max_null_rise_percent: these tests' documents are often bare _ids, with none of the users' fields
    fields = {
        "verified": verified,
        "asset_alias": "tests_target",
        "mapping": mapping,
        "options": {"max_null_rise_percent": "100", **(publish_options or {})},
    }
    publish = operator(PublishOperator, collection, table, **fields)
    publish.execute({**context, "outlet_events": collections.defaultdict(EventsOfAlias)})
    return verified


class EventsOfAlias(list):
    def add(self, asset, extra):
        self.append((asset, extra))


def next_run(context) -> dict:
    return {**context, "dag_run": SimpleNamespace(**{**vars(context["dag_run"]), "run_id": uuid.uuid4().hex})}


def rows(pg_conn, table) -> dict:
    return dict(pg_conn.execute(f"SELECT _id, document::text FROM {staged(table)}").fetchall())


def test_catching_up_from_the_same_point_twice_leaves_the_rows_of_the_source_now(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n, "v": 0} for n in range(100)])
    start = copy(mongo_collection, target_table, context)
    mongo_collection.update_one({"_id": 1}, {"$set": {"v": 1}})
    mongo_collection.replace_one({"_id": 2}, {"w": 2})
    mongo_collection.delete_one({"_id": 3})
    mongo_collection.insert_one({"_id": 3, "v": "again"})
    mongo_collection.delete_one({"_id": 4})
    mongo_collection.insert_one({"_id": 1000})
    mongo_collection.update_one({"_id": 1000}, {"$set": {"v": "new"}})
    catch_up = operator(CatchUpOperator, mongo_collection, target_table)

    first = catch_up.execute(context)
    after_first = rows(pg_conn, target_table)
    target.save_position(pg_conn, users(target_table), start["position"])  # back to the start
    second = catch_up.execute(context)

    assert (first["changes"], first["documents"]) == (7, 5)
    assert second == first
    assert rows(pg_conn, target_table) == after_first
    assert set(after_first) == {id_key(document["_id"]) for document in mongo_collection.find()}
    assert '"v": "new"' in after_first[id_key(1000)] and '"w": 2' in after_first[id_key(2)]
    assert id_key(4) not in after_first


def test_a_collection_dropped_during_the_run_fails_the_catch_up_naming_the_drop(
    mongo_collection, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(10)])
    copy(mongo_collection, target_table, context)
    mongo_collection.drop()

    with pytest.raises(
        AirflowFailException, match="cannot be caught up: the collection was changed by 'drop'"
    ):
        operator(CatchUpOperator, mongo_collection, target_table).execute(context)


def test_a_point_gone_from_the_sources_history_fails_the_catch_up_naming_it(
    mongo_collection, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(10)])
    copy(mongo_collection, target_table, context)
    push_out_of_the_history(mongo_collection)

    with pytest.raises(AirflowFailException, match=r"no longer holds the changes since cluster time"):
        operator(CatchUpOperator, mongo_collection, target_table).execute(context)


@pytest.fixture
def standalone(services, tmp_path, monkeypatch):
    """A server without change streams (like a standalone mongod), as connection ``mongo_standalone``."""
    server = subprocess.Popen(
        [
            str(ROOT / ".stack-test" / "secantus-venv" / "bin" / "secantusd-py"),
            *("--host", "127.0.0.1", "--port", str(STANDALONE_PORT), "--storage-path", str(tmp_path)),
            "--standalone",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", STANDALONE_PORT), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and server.poll() is None, (
                "the standalone server did not start"
            )
            time.sleep(0.2)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MONGO_STANDALONE", f"mongo://127.0.0.1:{STANDALONE_PORT}/?directConnection=true"
    )
    from airflow.providers.mongo.hooks.mongo import MongoHook

    with MongoHook("mongo_standalone") as hook:
        yield hook.get_collection("users", "tests")
    server.terminate()
    server.wait(timeout=30)


def test_a_source_without_change_streams_is_copied_and_its_report_says_there_is_no_consistent_point(
    standalone, target_table, context
):
    standalone.insert_many([{"_id": n} for n in range(100)])

    assert copy(standalone, target_table, context, "mongo_standalone")["position"] is None
    caught_up = operator(CatchUpOperator, standalone, target_table, "mongo_standalone").execute(context)
    verified = operator(
        VerifyMigrationOperator, standalone, target_table, "mongo_standalone", page_results=[]
    )
    result = verified.execute(context)

    assert (caught_up["changes"], caught_up["position"]) == (0, None)
    assert (result["target"], result["position"]) == (100, None)
    assert (
        "| Consistent with the source | not guaranteed: the source has no change stream" in result["report"]
    )


def test_an_incremental_run_applies_only_the_changes_since_the_published_point(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n, "v": 0} for n in range(100)])
    assert publish_run(mongo_collection, target_table, context)["mode"] == "full"  # nothing published yet
    mongo_collection.update_one({"_id": 1}, {"$set": {"v": 1}})
    mongo_collection.delete_one({"_id": 2})
    mongo_collection.insert_one({"_id": 100, "v": 0})

    verified = publish_run(mongo_collection, target_table, next_run(context))

    assert (verified["mode"], verified["run"]["pages"], verified["target"]) == ("incremental", 0, 100)
    live = dict(pg_conn.execute(f"SELECT _id, document->>'v' FROM {target_table}").fetchall())
    assert live == {id_key(n): ("1" if n == 1 else "0") for n in range(101) if n != 2}


def test_an_incremental_run_rewrites_only_the_changed_documents_and_the_next_run_starts_from_its_publish(
    mongo_collection, pg_conn, target_table, context
):
    fill_orders(mongo_collection, 200)
    mongo_collection.update_one({"_id": order_id(5)}, {"$set": {"total": "unchanged reject"}})
    assert publish_run(mongo_collection, target_table, context, mapping=ORDERS)["mode"] == "full"
    items = f"{target_table}_items"

    def versions() -> dict:  # the transaction that last wrote each row (the table's and the items')
        rows = f"SELECT _id, xmin::text FROM {target_table} UNION ALL SELECT _id, xmin::text FROM {items}"
        return collections.Counter(pg_conn.execute(rows).fetchall())

    before = versions()
    mongo_collection.update_one({"_id": order_id(1)}, {"$set": {"items.0.quantity": 99}})
    mongo_collection.update_one({"_id": order_id(2)}, {"$set": {"total": "not a number"}})  # a reject
    mongo_collection.delete_one({"_id": order_id(3)})
    mongo_collection.insert_many(fake_orders(200, 1))
    changed = {id_key(order_id(n)) for n in (1, 2, 3, 200)}

    verified = publish_run(mongo_collection, target_table, next_run(context), mapping=ORDERS)
    after = versions()
    again = publish_run(mongo_collection, target_table, next_run(context), mapping=ORDERS)

    assert (verified["mode"], verified["target"], verified["rejected"]) == ("incremental", 198, 2)
    assert {row for row in after if row[0] not in changed} == {row for row in before if row[0] not in changed}
    assert {key for key, _ in after.keys() - before.keys()} == {id_key(order_id(n)) for n in (1, 200)}
    live = pg_conn.execute(
        f"SELECT quantity FROM {items} WHERE _id = %s AND _index = 0", [id_key(order_id(1))]
    )
    assert live.fetchone() == (99,)
    rejects = pg_conn.execute(f"SELECT _id, column_name FROM {target_table}_rejects ORDER BY _id").fetchall()
    assert rejects == [(id_key(order_id(2)), "total"), (id_key(order_id(5)), "total")]
    assert (again["mode"], again["reason"]) == ("incremental", None)  # publish left the fingerprint right


def test_an_incremental_run_copies_in_full_naming_why_when_it_cannot_start_from_the_published_point(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(10)])
    publish_run(mongo_collection, target_table, context)

    def why(**fields) -> str:
        start = copy(mongo_collection, target_table, next_run(context), **fields)
        assert start["mode"] == "full"
        return start["reason"]

    assert why(mode="full") == "the Param mode asks for one"
    pg_conn.execute(f"UPDATE {target_table} SET username = 'edited by hand' WHERE _id = %s", [id_key(3)])
    assert "its rejects or its child tables were changed by someone else since its publish" in why()
    publish_run(mongo_collection, target_table, next_run(context), mode="full")  # the point is good again
    pg_conn.execute(
        f"INSERT INTO {target_table}_rejects (_id, reason, document, page) VALUES ('x', 'by hand', '', 0)"
    )
    assert "its rejects or its child tables were changed by someone else since its publish" in why()
    publish_run(mongo_collection, target_table, next_run(context), mode="full")
    for written_by, reason in [("mapping", "the mapping changed"), ("conversion", "the conversion changed")]:
        published = pg_conn.execute(
            f'SELECT result FROM {target.STAGING_SCHEMA}."Published" WHERE target_table = %s', [target_table]
        ).fetchone()[0]
        earlier = {**published, "versions": {**published["versions"], written_by: "an earlier one"}}
        pg_conn.execute(
            f'UPDATE {target.STAGING_SCHEMA}."Published" SET result = %s WHERE target_table = %s',
            [Jsonb(earlier), target_table],
        )
        assert why().startswith(f"{reason} since the last publish (version an earlier one, now ")
        publish_run(mongo_collection, target_table, next_run(context), mode="full")
    pg_conn.execute(f"ALTER TABLE {target_table} DROP COLUMN age CASCADE")  # by hand, and its watch
    assert "its rejects or its child tables were changed by someone else since its publish" in why()
    publish_run(mongo_collection, target_table, next_run(context), mode="full")
    pg_conn.execute(  # as an earlier version recorded it: md5, not the sha256 a FIPS server allows
        f'UPDATE {target.STAGING_SCHEMA}."Published" SET fingerprint = %s WHERE target_table = %s',
        ["10:9219338231373641217/0:0", target_table],
    )
    assert "was published by an earlier version of this project, which did not watch its tables" in why()
    publish_run(mongo_collection, target_table, next_run(context), mode="full")
    mongo_collection.drop()
    mongo_collection.insert_many([{"_id": n} for n in range(10)])
    assert "the collection is not the one that point was taken on" in why()
    publish_run(mongo_collection, target_table, next_run(context), mode="full")
    push_out_of_the_history(mongo_collection)
    assert why().startswith("the source no longer holds the changes since cluster time")


def push_out_of_the_history(collection) -> None:
    """Write more than the server keeps of its history, in another collection."""
    filler = collection.database[f"{collection.name}_filler"]
    for _ in range(int(STACK_ENV["MONGO_OPLOG_ENTRIES"]) // 10_000 + 1):
        filler.insert_many([{} for _ in range(10_000)])
    filler.drop()


def test_a_page_whose_cursor_the_server_killed_while_it_waited_reads_on_after_its_last_id(
    mongo_collection, pg_conn, target_table, context, tmp_path, monkeypatch
):
    mongo_collection.insert_many([{"_id": n} for n in range(5000)])
    ResetTableOperator(task_id="reset_table", target_table=target_table, mapping=USERS).execute(context)
    [page] = plan_pages(mongo_collection, 5000)
    armed = tmp_path / "armed"
    armed.write_text("page_batch_copied 0 0")  # hold after the first batch of 2000
    monkeypatch.setenv(FAILPOINT_VARIABLE, str(armed))
    migrate = operator(MigratePageOperator, mongo_collection, target_table, page=page.to_xcom())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        copied = pool.submit(migrate.execute, context)
        try:
            wait_for(Path(f"{armed}.held").exists)
            # What the server does to a cursor left idle for ten minutes.
            [cursor] = idle_cursors(mongo_collection)
            mongo_collection.database.command("killCursors", mongo_collection.name, cursors=[cursor])
        finally:
            Path(f"{armed}.resume").touch()
        result = copied.result(timeout=60)

    assert result["documents"] == 5000
    keys = {key for (key,) in pg_conn.execute(f"SELECT _id FROM {staged(target_table)}")}
    assert keys == {id_key(n) for n in range(5000)}


def idle_cursors(collection) -> list[int]:
    """The ids of the cursors open on ``collection`` that no operation is using."""
    operations = collection.database.client.admin.command("currentOp", idleCursors=True)["inprog"]
    namespace = f"{collection.database.name}.{collection.name}"
    return [
        operation.get("cursorId") or operation["cursor"]["cursorId"]  # SecantusDB, MongoDB
        for operation in operations
        if operation.get("type") == "idleCursor" and operation.get("ns") == namespace
    ]


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


class FindCommands(monitoring.CommandListener):
    """The find commands clients send to one collection while ``on`` (pymongo's own monitoring)."""

    def __init__(self, collection: str):
        self.collection, self.on, self.seen = collection, False, []

    def started(self, event):
        command = event.command
        ours = event.command_name == "find" and command["find"] == self.collection
        if self.on and ours and command.get("comment") != positions.MAJORITY_TIME:  # the time, not data
            self.seen.append(command)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def test_pages_and_verify_read_majority_as_of_the_runs_point_so_a_secondary_would_wait_for_it(
    mongo_collection, target_table, context, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_MONGO_DEFAULT", mongo_connection(readPreference="secondaryPreferred"))
    finds = FindCommands(mongo_collection.name)
    monitoring.register(finds)  # for the clients made from now on
    mongo_collection.insert_many([{"_id": n} for n in range(100)])
    finds.on = True
    try:
        start = copy(mongo_collection, target_table, context)
        operator(CatchUpOperator, mongo_collection, target_table).execute(context)
        verify = operator(
            VerifyMigrationOperator, mongo_collection, target_table, page_results=[], start=start
        )
        verify.execute(context)
    finally:
        finds.on = False

    point = Position.from_json(start["position"]).cluster_time
    assert len(finds.seen) >= 4  # three pages and verify's read of every _id
    assert all(find["readConcern"]["afterClusterTime"] >= point for find in finds.seen)
    assert all(find["readConcern"]["level"] == "majority" for find in finds.seen)  # what the stream shows


def test_open_change_stream_tried_again_leaves_the_staging_tables_as_one_try_would(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(10)])
    publish_run(mongo_collection, target_table, context)
    run = next_run(context)
    ResetTableOperator(task_id="reset_table", target_table=target_table, mapping=USERS).execute(run)
    opener = operator(OpenChangeStreamOperator, mongo_collection, target_table)

    tries = [opener.execute(run), opener.execute(run)]  # the second as a retry of the first

    assert [started["mode"] for started in tries] == ["incremental", "incremental"]
    assert rows(pg_conn, target_table) == {}  # an incremental run's staging: the changes alone
    assert target.count_rows(pg_conn, users(target_table)) == (10, 0)  # with the live rows


def test_verify_with_content_names_a_row_whose_document_differs_and_catches_up_one_that_changed(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n, "v": n} for n in range(100)])
    start = copy(mongo_collection, target_table, context)
    operator(CatchUpOperator, mongo_collection, target_table).execute(context)
    pg_conn.execute(
        f"""UPDATE {staged(target_table)} SET document = '{{"_id": 5, "v": -1}}' WHERE _id = %s""",
        [id_key(5)],
    )
    mongo_collection.update_one({"_id": 7}, {"$set": {"v": "changed after the catch-up"}})

    def verify(content: bool) -> dict:
        fields = {"page_results": [], "start": start, "options": {"verify_content": content}}
        return operator(VerifyMigrationOperator, mongo_collection, target_table, **fields).execute(context)

    assert verify(False)["target"] == 100  # the _id values alone agree
    with pytest.raises(AirflowFailException) as failure:
        verify(True)

    assert f"1 _id of another content: ['{id_key(5)}']" in str(failure.value)  # 7 was caught up
    assert "no change of the source since it was read explains them" in str(failure.value)
    assert '"changed after the catch-up"' in rows(pg_conn, target_table)[id_key(7)]


def test_verify_with_content_names_a_document_whose_child_rows_differ(
    mongo_collection, pg_conn, target_table, context
):
    fill_orders(mongo_collection, 30)
    start = copy(mongo_collection, target_table, context, mapping=ORDERS)
    operator(CatchUpOperator, mongo_collection, target_table, mapping=ORDERS).execute(context)
    fields = {"page_results": [], "start": start, "options": {"verify_content": True}}
    verify = operator(VerifyMigrationOperator, mongo_collection, target_table, mapping=ORDERS, **fields)
    assert verify.execute(context)["target"] == 30  # the copy as it is agrees
    pg_conn.execute(
        f"UPDATE {staged(target_table + '_items')} SET quantity = quantity + 1 WHERE _id = %s AND _index = 0",
        [id_key(order_id(4))],
    )

    with pytest.raises(AirflowFailException, match=rf"1 _id of another content: \['{id_key(order_id(4))}'\]"):
        verify.execute(context)


SESSION_SETTINGS = {"TimeZone": "America/New_York", "DateStyle": "SQL, DMY", "bytea_output": "escape"}


def test_session_settings_changed_for_the_role_between_two_runs_leave_the_next_run_incremental(
    mongo_collection, pg_conn, target_table, context
):
    created = dt.datetime(2024, 2, 29, 13, 5, 7, 123000)
    mongo_collection.insert_many([{"_id": n, "created_at": created, "age": n} for n in range(300)])
    mongo_collection.insert_one({"_id": 300, "username": "nul\x00inside"})  # a reject: its document is bytea
    assert publish_run(mongo_collection, target_table, context)["mode"] == "full"
    (role,) = pg_conn.execute("SELECT current_user").fetchone()
    try:
        for name, value in SESSION_SETTINGS.items():  # what a DBA may set between two nights
            pg_conn.execute(f"ALTER ROLE {role} IN DATABASE target SET {name} = '{value}'")

        start = copy(mongo_collection, target_table, next_run(context))
    finally:
        for name in SESSION_SETTINGS:
            pg_conn.execute(f"ALTER ROLE {role} IN DATABASE target RESET {name}")

    assert (start["mode"], start["reason"]) == ("incremental", None)


def test_verify_reads_differing_documents_again_in_queries_under_the_message_limit(
    mongo_collection, target_table, context, monkeypatch
):
    monkeypatch.setattr("mongo_migration.verification.QUERY_ID_BYTES", 1000)  # 16 MB on a server
    mongo_collection.insert_many([{"_id": n} for n in range(100)])
    start = copy(mongo_collection, target_table, context)
    operator(CatchUpOperator, mongo_collection, target_table).execute(context)
    added = [ObjectId() for _ in range(300)]
    mongo_collection.insert_many([{"_id": value} for value in added])  # after the catch-up: verify's
    finds = FindCommands(mongo_collection.name)
    monitoring.register(finds)  # for the clients made from now on
    finds.on = True
    try:
        verified = operator(
            VerifyMigrationOperator, mongo_collection, target_table, page_results=[], start=start
        ).execute(context)
    finally:
        finds.on = False

    rechecks = [find["filter"]["_id"]["$in"] for find in finds.seen if "$in" in str(find.get("filter"))]
    assert len(rechecks) >= 5
    assert all(len(bson.encode({"in": values})) <= 1000 + 100 for values in rechecks)
    assert sorted(value for values in rechecks for value in values) == sorted(added)
    assert (verified["target"], verified["catch_up_rounds"]) == (400, 1)


class ConstructedStream:
    """A change stream built from ``events`` (or raising ``error``) for what the local server cannot
    produce: a rename that keeps the collection's UUID, a resume token it no longer finds, an event over
    16 MB."""

    def __init__(self, token: dict, events=(), error=None):
        self.resume_token, self.events, self.error = token, list(events), error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def try_next(self):
        if self.error:
            raise self.error
        return self.events.pop(0) if self.events else None


class HeldBack:
    """The real stream as mongos shows it while a shard has not advanced: its first ``empty`` answers
    are empty, their post-batch resume token (in MongoDB's form) still where it started, though changes
    wait behind it."""

    def __init__(self, stream, empty: int):
        start = positions.token_time(stream.resume_token)
        self.stream, self.empty, self.released = stream, empty, False
        self.start = {"_data": f"82{start.time:08X}{start.inc:08X}2B0229296E04"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()

    def try_next(self):
        if self.empty:
            self.empty -= 1
            return None
        self.released = True
        return self.stream.try_next()

    @property
    def resume_token(self):
        return self.stream.resume_token if self.released else self.start


def test_an_incremental_run_copies_in_full_when_its_stream_cannot_resume_and_the_next_is_incremental(
    mongo_collection, target_table, context, monkeypatch
):
    mongo_collection.insert_many([{"_id": n} for n in range(10)])
    publish_run(mongo_collection, target_table, context)
    real_watch = changes._watch

    def stream_that(**ends):
        calls = []

        def watch(collection, since, lean=False, pipeline=()):
            calls.append(since)
            if len(calls) == 1:  # open_change_stream's read of the changes since the published point
                return ConstructedStream(since.resume_token, **ends)
            return real_watch(collection, since, lean, pipeline)

        return watch

    renamed = {"operationType": "rename", "clusterTime": bson.Timestamp(2**31, 1)}  # away and back: same UUID
    not_found = OperationFailure("cannot resume stream; the resume token was not found", 280)
    reasons = []
    for ends in [{"events": [renamed]}, {"error": not_found}]:
        monkeypatch.setattr(changes, "_watch", stream_that(**ends))
        reasons.append(publish_run(mongo_collection, target_table, next_run(context))["reason"])
        monkeypatch.setattr(changes, "_watch", real_watch)
        assert publish_run(mongo_collection, target_table, next_run(context))["mode"] == "incremental"

    def ended_in_the_catch_up(collection, since, lean=False, pipeline=()):
        return ConstructedStream(since.resume_token, events=[renamed])

    run = next_run(context)
    copy(mongo_collection, target_table, run)
    monkeypatch.setattr(changes, "_watch", ended_in_the_catch_up)
    with pytest.raises(AirflowFailException, match="the next run copies the collection in full"):
        operator(CatchUpOperator, mongo_collection, target_table).execute(run)
    monkeypatch.setattr(changes, "_watch", real_watch)
    reasons.append(publish_run(mongo_collection, target_table, next_run(context))["reason"])

    assert reasons[0].startswith("the collection was changed by 'rename' at cluster time")
    assert "ChangeStreamFatalError (the resume token was not found), error 280" in reasons[1]
    assert reasons[2].startswith("an earlier run could not start from public.")
    assert "the collection was changed by 'rename'" in reasons[2]


def test_a_change_too_large_for_its_event_is_read_by_id_instead(
    mongo_collection, pg_conn, target_table, context, monkeypatch
):
    mongo_collection.insert_many([{"_id": n, "v": 0} for n in range(10)])
    copy(mongo_collection, target_table, context)
    mongo_collection.update_one({"_id": 1}, {"$set": {"v": "large"}})
    mongo_collection.delete_one({"_id": 2})
    mongo_collection.insert_one({"_id": 10, "v": "new"})
    real_watch = changes._watch
    too_large = OperationFailure("BSONObjectTooLarge: event over 16 MB", 10334)

    def watch(collection, since, lean=False, pipeline=()):
        if not lean:  # the event with its document looked up is what passes 16 MB
            return ConstructedStream(since.resume_token, error=too_large)
        return real_watch(collection, since, lean, pipeline)

    monkeypatch.setattr(changes, "_watch", watch)
    caught = operator(CatchUpOperator, mongo_collection, target_table).execute(context)

    assert (caught["changes"], caught["documents"], caught["quiet"]) == (3, 3, True)
    copied = rows(pg_conn, target_table)
    assert set(copied) == {id_key(n) for n in range(11) if n != 2}
    assert '"v": "large"' in copied[id_key(1)] and '"v": "new"' in copied[id_key(10)]


def test_a_catch_up_reads_on_until_the_stream_reaches_the_sources_majority_time_not_an_empty_answer(
    mongo_collection, pg_conn, target_table, context, monkeypatch
):
    mongo_collection.insert_many([{"_id": n} for n in range(10)])
    copy(mongo_collection, target_table, context)
    mongo_collection.insert_one({"_id": 10})  # held back by an idle shard
    real_watch = changes._watch
    monkeypatch.setattr(
        changes, "_watch", lambda *args, **kwargs: HeldBack(real_watch(*args, **kwargs), empty=5)
    )

    caught = operator(CatchUpOperator, mongo_collection, target_table).execute(context)

    assert (caught["changes"], caught["quiet"]) == (1, True)
    assert id_key(10) in rows(pg_conn, target_table)


def test_a_stream_that_stays_behind_the_sources_majority_time_leaves_a_point_that_says_it_is_not_exact(
    mongo_collection, target_table, context, monkeypatch
):
    mongo_collection.insert_many([{"_id": n} for n in range(10)])
    copy(mongo_collection, target_table, context)
    mongo_collection.insert_one({"_id": 10})
    real_watch = changes._watch
    monkeypatch.setattr(
        changes, "_watch", lambda *args, **kwargs: HeldBack(real_watch(*args, **kwargs), 10**9)
    )
    monkeypatch.setattr(changes, "LAG_WAIT_SECONDS", 0.5)

    caught = operator(CatchUpOperator, mongo_collection, target_table).execute(context)

    assert (caught["changes"], caught["quiet"]) == (0, False)
    behind = "not exactly: the change stream stayed behind the source's majority-committed time"
    assert behind in positions.consistency(caught["position"])  # what the report and the comment say


def test_verify_with_content_ends_while_a_document_changes_faster_than_it_reads_and_says_so(
    mongo_collection, target_table, context, monkeypatch
):
    mongo_collection.insert_many([{"_id": n, "v": 0} for n in range(100)])
    start = copy(mongo_collection, target_table, context)
    operator(CatchUpOperator, mongo_collection, target_table).execute(context)
    stop = threading.Event()

    def write_about_100_times_a_second():
        while not stop.wait(0.01):
            mongo_collection.update_one({"_id": 7}, {"$inc": {"v": 1}})

    real_recheck = verification._recheck

    def recheck(comparison, keys):  # and at least one write between each catch-up and its re-read
        mongo_collection.update_one({"_id": 7}, {"$inc": {"v": 1}})
        return real_recheck(comparison, keys)

    monkeypatch.setattr(verification, "_recheck", recheck)
    mongo_collection.update_one({"_id": 7}, {"$inc": {"v": 1}})  # it differs from its first read on
    fields = {"page_results": [], "start": start, "options": {"verify_content": True}}
    with concurrent.futures.ThreadPoolExecutor(1) as writer:
        writing = writer.submit(write_about_100_times_a_second)
        try:
            verified = operator(VerifyMigrationOperator, mongo_collection, target_table, **fields).execute(
                context
            )
        finally:
            stop.set()
        writing.result()

    assert (verified["target"], verified["catch_up_rounds"]) == (100, verification.ROUNDS)
    assert verified["still_changing"] == [id_key(7)]
    assert "but 1 documents changing in every round, as the stream showed them" in verified["report"]
    assert "| Consistent with the source | " in verified["report"]


def test_the_cluster_time_of_a_resume_token_is_read_from_mongodbs_form_and_the_local_servers():
    mongodb = (
        "82612E8513000000012B022C0100296E5A1004A5093ABB38FE4B9EA67F01BB1A96D812463C5F6964003C5F5F5F78000004"
    )
    assert positions.token_time({"_data": mongodb}) == bson.Timestamp(1630438675, 1)
    local = bson.encode({"t": bson.Timestamp(1796468841, 6), "padding": "x" * 100}).hex()  # 130 bytes: 0x82
    assert positions.token_time({"_data": local}) == bson.Timestamp(1796468841, 6)
    assert positions.token_time({"_data": "not hex"}) is None and positions.token_time({}) is None


def test_a_mapping_that_keeps_no_document_sets_documents_aside_without_them(
    mongo_collection, pg_conn, target_table, context
):
    private = USERS.model_copy(update={"keep_document": False})
    mongo_collection.insert_many([{"_id": 1, "age": "old", "ssn": "123"}, {"_id": 2, "age": 30}])
    allow = {"max_reject_percent": "100", "max_shrink_percent": "100"}
    publish_run(mongo_collection, target_table, context, mapping=private, publish_options=allow)  # a page
    mongo_collection.update_one({"_id": 2}, {"$set": {"age": "older", "ssn": "456"}})
    publish_run(mongo_collection, target_table, next_run(context), mapping=private, publish_options=allow)

    rejects = pg_conn.execute(
        f"SELECT _id, column_name, path, expected, actual, reason IS NOT NULL, document "
        f"FROM {target_table}_rejects ORDER BY _id"
    ).fetchall()
    assert rejects == [
        (id_key(1), "age", ["age"], "int", "string", True, None),
        (id_key(2), "age", ["age"], "int", "string", True, None),
    ]


def test_changed_since_reads_on_past_empty_answers_until_the_stream_reaches_the_sources_majority_time(
    mongo_collection, monkeypatch
):
    mongo_collection.insert_one({"_id": 1})
    start = changes.open_position(mongo_collection)
    real_watch = changes._watch
    assert not changes.changed_since(mongo_collection, start)
    mongo_collection.insert_one({"_id": 2})  # held back by an idle shard for five answers
    monkeypatch.setattr(
        changes, "_watch", lambda *args, **kwargs: HeldBack(real_watch(*args, **kwargs), empty=5)
    )

    assert changes.changed_since(mongo_collection, start)
