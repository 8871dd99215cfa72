"""preflight: every problem at once before anything is written, and a dry run that writes nothing."""

import json
import re
import uuid

import pytest
from airflow.models.connection import Connection
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from psycopg import errors
from pymongo.errors import ServerSelectionTimeoutError

from mongo_migration import copy_mode, preflight
from mongo_migration.operators import PreflightOperator
from mongo_migration.preflight import history_findings, oplog_window
from tests.plugins.test_changes import next_run, operator, publish_run
from tests.staging import USERS, users


def test_preflight_fails_naming_every_problem_at_once_before_anything_is_written(
    mongo_collection, pg_conn, target_table, context
):
    check = PreflightOperator(
        task_id="preflight",
        mongo_database="tests",
        mongo_collection=mongo_collection.name,  # not made yet
        target_schema="nowhere",
        target_table=target_table,
        mapping=USERS,
    )
    with pytest.raises(AirflowFailException) as failure:
        check.execute(context)

    assert "found 2 problems, nothing was written" in str(failure.value)
    assert f"collection tests.{mongo_collection.name} does not exist in the source" in str(failure.value)
    assert "target schema 'nowhere' does not exist in the target database" in str(failure.value)
    staging = pg_conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE %s", [f"%{target_table}%"])
    assert staging.fetchone() == (0,)


def test_a_dry_run_reports_what_the_run_would_do_and_writes_nothing(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(100)])
    publish_run(mongo_collection, target_table, context)
    mongo_collection.insert_one({"_id": 100})

    def state() -> list:  # the tables, and what the runs record of them
        tables = pg_conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace IN (SELECT oid FROM "
            "pg_namespace WHERE nspname IN ('public', 'mongo_migration_staging')) ORDER BY 1"
        ).fetchall()
        published = pg_conn.execute('SELECT * FROM mongo_migration_staging."Published" ORDER BY 1, 2')
        positions = pg_conn.execute('SELECT * FROM mongo_migration_staging."Positions" ORDER BY 1')
        live = pg_conn.execute(f"SELECT count(*), max(xmin::text) FROM {target_table}")
        return [tables, published.fetchall(), positions.fetchall(), live.fetchall()]

    before = state()
    reports = []
    for mode in ("incremental", "full"):
        options = {"mode": mode, "dry_run": True}
        dry = operator(PreflightOperator, mongo_collection, target_table, options=options)
        with pytest.raises(AirflowSkipException, match="a dry run: nothing was written") as skipped:
            dry.execute(next_run(context))
        reports.append(str(skipped.value))

    assert state() == before  # no table made, no row written
    assert "- copy: incremental: the changes since the published point" in reports[0]
    assert "- copy: full: the Param mode asks for one" in reports[1]
    assert "- pages: 1 of up to 8000 documents, 101 in all" in reports[1]
    assert f"- publish: public.{target_table} holds 100 rows" in reports[1]
    assert re.search(
        r"- note: the source's oplog holds [0-9:]+ of history; the published point is ", reports[0]
    )
    assert re.search(r"- note: the source's oplog holds [0-9:]+ of history\n", reports[1] + "\n")  # no point


def test_preflight_and_the_dry_run_name_what_changed_in_the_mapping_column_by_column(
    mongo_collection, target_table, context
):
    mongo_collection.insert_many([{"_id": n, "email": f"u{n}@example.com"} for n in range(10)])
    before = USERS.model_copy(update={"columns": USERS.columns[:2]})
    publish_run(mongo_collection, target_table, context, mapping=before)
    email = before.columns[1].model_copy(update={"path": ("emial",)})
    after = before.model_copy(update={"columns": (before.columns[0], email)})
    changed = f"the mapping changed since the last publish (column {email.name}: path [email] → [emial])"

    options = {"dry_run": "True"}  # as the Param reaches it, rendered into a template
    dry = operator(PreflightOperator, mongo_collection, target_table, mapping=after, options=options)
    with pytest.raises(AirflowSkipException) as skipped:
        dry.execute(next_run(context))
    checked = operator(PreflightOperator, mongo_collection, target_table, mapping=after).execute(
        next_run(context)
    )

    assert f"- copy: full: {changed}: a full copy writes every row again in its new shape" in str(
        skipped.value
    )
    assert "- note: the mapping changed" not in str(skipped.value)  # said once, in the copy line
    assert f"{changed}: a full copy writes every row again in its new shape" in checked["notes"]  # logged


def test_the_oplog_window_is_compared_with_the_age_of_the_published_point_and_the_last_full_copy():
    oldest, now = 1_000_000, 1_001_000  # an oplog of 1,000 s

    def said(point_time, full_copy_seconds=None, filled=True):
        found = history_findings(oldest, filled, point_time, now, full_copy_seconds)
        return found.notes, found.facts

    assert said(oldest + 900) == (
        [],
        ["the source's oplog holds 0:16:40 of history; the published point is 0:01:40 old"],
    )
    assert said(oldest + 100) == (
        [
            "the published point is 0:15:00 old and the source's oplog holds 0:16:40 of history: should "
            "this run not publish, a run that starts more than 0:01:40 from now copies in full; size the "
            "oplog for twice the time between runs"
        ],
        [],
    )
    assert said(oldest - 1)[0] == [
        "the published point (0:16:41 old) has left the source's oplog, which holds 0:16:40 of history: "
        "this run copies in full; size the oplog for twice the time between runs (docs/connecting.md)"
    ]
    assert said(oldest + 900, full_copy_seconds=499)[0] == []
    assert said(oldest + 900, full_copy_seconds=501)[0] == [
        "the last full copy needed the source's oplog to keep its start for 0:08:21 and the oplog holds "
        "0:16:40 of history: a full copy (a first run, a changed mapping, a lost point) that outlasts the "
        "oplog fails in catch_up; size the oplog for twice the longest run"
    ]
    # An oplog still filling (a young replica set) keeps more than its oldest entry's age.
    assert said(oldest + 100, full_copy_seconds=501, filled=False) == (
        [],
        [
            "the source's oplog holds 0:16:40 of history so far (it is still filling); the published point "
            "is 0:15:00 old"
        ],
    )


def test_preflight_reads_the_oplogs_oldest_entry_and_whether_it_is_full(mongo_collection):
    oplog = mongo_collection.database.client.local["oplog.rs"]
    [stats] = oplog.aggregate([{"$collStats": {"storageStats": {}}}])
    room = stats["storageStats"]["max"] - stats["storageStats"]["count"]  # the stand-in caps it by entries
    if room > 0:
        mongo_collection.insert_many([{"_id": n} for n in range(room)])  # fill it
    oldest = oplog.find_one(sort=[("$natural", 1)])["ts"].time

    hello = mongo_collection.database.client.admin.command("hello")
    found = oplog_window(mongo_collection, hello, None, oldest + 3600)

    assert found.facts == ["the source's oplog holds 1:00:00 of history"]


def test_publish_records_the_stream_its_full_copy_read_and_an_incremental_publish_keeps_it(
    mongo_collection, pg_conn, target_table, context
):
    mongo_collection.insert_many([{"_id": n} for n in range(10)])
    full = publish_run(mongo_collection, target_table, context)
    mongo_collection.insert_one({"_id": 10})
    incremental = publish_run(mongo_collection, target_table, next_run(context))

    assert (full["mode"], incremental["mode"]) == ("full", "incremental")
    # Nothing changed while it copied, yet its start had to stay in the oplog until verify read on from it.
    assert full["stream_seconds"] > 0
    history = copy_mode.published_history(
        pg_conn, users(target_table), "incremental", copy_mode.versions_of(USERS)
    )
    assert history[1] == full["stream_seconds"]


def test_a_role_that_may_not_use_the_schemas_is_a_problem_named_with_its_grant_not_a_crash(
    mongo_collection, pg_conn, target_table, context, monkeypatch
):
    mongo_collection.insert_one({"_id": 1})
    publish_run(mongo_collection, target_table, context)  # the staging schema and its state tables exist
    role = f"probe_{uuid.uuid4().hex[:8]}"
    pg_conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'probe'; CREATE SCHEMA {role}")  # none of it granted
    ours = Connection.get_connection_from_secrets("postgres_default")
    theirs = {"conn_type": "postgres", "host": ours.host, "port": ours.port, "schema": ours.schema}
    monkeypatch.setenv(
        "AIRFLOW_CONN_PREFLIGHT_PROBE", json.dumps({**theirs, "login": role, "password": "probe"})
    )
    check = operator(
        PreflightOperator,
        mongo_collection,
        target_table,
        postgres_conn_id="preflight_probe",
        target_schema=role,
    )
    try:
        with pytest.raises(AirflowFailException) as failure:
            check.execute(next_run(context))
    finally:
        pg_conn.execute(f"DROP SCHEMA {role}; DROP OWNED BY {role}; DROP ROLE {role}")

    message = str(failure.value)
    assert "found 2 problems, nothing was written" in message
    assert f"role {role} may not use schema {role} (GRANT USAGE ON SCHEMA {role} TO {role})" in message
    staging = "mongo_migration_staging"
    assert f"may not use and create tables in schema {staging}, where the staging tables go" in message


def test_preflight_sorts_what_a_retry_can_mend_from_what_it_cannot_and_names_every_one():
    def no_answer():
        raise ServerSelectionTimeoutError("127.0.0.1:9: [Errno 111] Connection refused")

    def no_privilege():
        raise errors.InsufficientPrivilege("permission denied for schema public")

    found, opened = preflight.check(
        no_answer, no_privilege, ("mongo_default", "postgres_default"), users("users"), True, "full", {}, True
    )

    assert found.unreachable == [
        "MongoDB connection 'mongo_default': 127.0.0.1:9: [Errno 111] Connection refused"
    ]
    assert found.problems == ["PostgreSQL connection 'postgres_default': permission denied for schema public"]
    assert (opened.source, opened.conn) == (None, None)
    assert preflight.refusal(found, "app.users", users("users")) == (
        "preflight of app.users → public.users found 2 problems, nothing was written: "
        f"{found.unreachable[0]}; {found.problems[0]}"
    )
    assert preflight.refusal(preflight.Findings(notes=["a note"]), "app.users", users("users")) is None


def test_through_mongos_a_collection_sharded_on_a_key_that_does_not_start_with_id_is_refused_naming_the_fix(
    mongo_collection,
):
    mongo_collection.insert_one({"_id": 1})
    shards = mongo_collection.database.client["config"]["collections"]  # as mongos records them
    mongos = {"msg": "isdbgrid"}
    name = mongo_collection.full_name
    try:
        for key, refused in [
            ({"region": 1, "_id": 1}, True),
            ({"_id": "hashed"}, False),
            ({"_id": 1, "region": 1}, False),
        ]:
            shards.replace_one({"_id": name}, {"_id": name, "key": key}, upsert=True)
            found = preflight.source_problems(mongo_collection, name, mongos)
            assert bool(found.problems) == refused, key
        shards.replace_one({"_id": name}, {"_id": name, "key": {"region": 1}}, upsert=True)
        [problem] = preflight.source_problems(mongo_collection, name, mongos).problems
        assert problem.startswith(f"{name} is sharded on {{region}}: _id is unique only within each shard")
        assert f"reshardCollection: '{name}', key: {{_id: 1}}" in problem
        assert not preflight.source_problems(mongo_collection, name, {"setName": "rs0"}).problems  # no mongos
    finally:
        shards.delete_one({"_id": name})
