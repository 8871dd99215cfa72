"""The operators on the real PostgreSQL and MongoDB wire-protocol server."""

import datetime as dt

import pytest
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.utils.types import DagRunType
from bson import json_util
from bson.code import Code
from bson.objectid import ObjectId

from mongo_migration.documents import CODEC_OPTIONS
from mongo_migration.operators import (
    MigratePageOperator,
    OpenChangeStreamOperator,
    PlanPagesOperator,
    PublishOperator,
    ResetTableOperator,
    SeedUsersOperator,
    VerifyMigrationOperator,
)
from mongo_migration.pages import Page, plan_pages
from mongo_migration.users import fake_users
from tests.staging import USERS, staged


@pytest.fixture
def source(mongo_collection):
    """250 users in pages of 100: two full pages and a short last one."""
    mongo_collection.insert_many(fake_users(0, 250, 1234))
    return mongo_collection.with_options(codec_options=CODEC_OPTIONS)


@pytest.fixture
def table(target_table, context):
    ResetTableOperator(task_id="reset_table", target_table=target_table, mapping=USERS).execute(context)
    return target_table


def migrate(source, table, page, context, mapping=USERS):
    operator = MigratePageOperator(
        task_id="migrate_page",
        page=page.to_xcom(),
        mongo_database=source.database.name,
        mongo_collection=source.name,
        target_table=table,
        mapping=mapping,
    )
    return operator.execute(context)


def target_documents(pg_conn, table) -> dict:
    rows = pg_conn.execute(f"SELECT _id, document::text FROM {staged(table)}").fetchall()
    return {key: json_util.loads(document) for key, document in rows}


def test_a_page_lands_exactly_its_documents_with_equal_fields(source, pg_conn, table, context):
    page = plan_pages(source, 100)[1]

    result = migrate(source, table, page, context)

    assert result["documents"] == 100
    originals = {str(doc["_id"]): doc for doc in source.find(page.mongo_filter())}
    rows = pg_conn.execute(f"SELECT _id, username, email, age, created_at FROM {staged(table)}").fetchall()
    assert {row[0]: row[1:] for row in rows} == {
        key: (doc["username"], doc["email"], doc["age"], doc["created_at"].replace(tzinfo=dt.UTC))
        for key, doc in originals.items()
    }
    assert target_documents(pg_conn, table) == originals


def test_running_a_page_twice_leaves_exactly_one_copy(source, pg_conn, table, context):
    page = plan_pages(source, 100)[2]

    migrate(source, table, page, context)
    result = migrate(source, table, page, context)

    assert result["documents"] == 50
    keys = [key for (key,) in pg_conn.execute(f"SELECT _id FROM {staged(table)}")]
    assert sorted(keys) == sorted(str(doc["_id"]) for doc in source.find(page.mongo_filter()))


def test_a_rerun_page_replaces_its_own_range_and_leaves_other_pages_alone(source, pg_conn, table, context):
    first, second, _ = plan_pages(source, 100)
    migrate(source, table, first, context)
    migrate(source, table, second, context)
    pg_conn.execute(f"UPDATE {staged(table)} SET username = 'stale'")

    migrate(source, table, first, context)

    stale = pg_conn.execute(f"SELECT count(*) FROM {staged(table)} WHERE username = 'stale'").fetchone()[0]
    assert stale == second.planned_documents
    assert pg_conn.execute(f"SELECT count(*) FROM {staged(table)}").fetchone()[0] == 200


def verifier(source, table, page_results):
    return VerifyMigrationOperator(
        task_id="verify",
        page_results=page_results,
        mongo_database=source.database.name,
        mongo_collection=source.name,
        target_table=table,
        mapping=USERS,
    )


def open_stream(source, table, context):
    return OpenChangeStreamOperator(
        task_id="open_change_stream",
        mongo_database=source.database.name,
        mongo_collection=source.name,
        target_table=table,
        mapping=USERS,
    ).execute(context)


def test_verify_passes_when_source_and_target_agree_and_times_the_run_from_its_start(source, table, context):
    results = [migrate(source, table, page, context) for page in plan_pages(source, 100)]

    called = dt.datetime.now(dt.UTC)
    proof = verifier(source, table, results).execute(context)
    returned = dt.datetime.now(dt.UTC)

    counts = (proof["source"], proof["target"], proof["run"]["documents"], proof["run"]["pages"])
    assert counts == (250, 250, 250, 3)
    run_started = context["dag_run"].start_date
    assert (called - run_started).total_seconds() - 0.1 <= proof["run"]["wall_seconds"]
    assert proof["run"]["wall_seconds"] <= (returned - run_started).total_seconds() + 0.1


def test_verify_catches_up_documents_written_after_the_pages_and_passes(source, table, context):
    open_stream(source, table, context)
    results = [migrate(source, table, page, context) for page in plan_pages(source, 100)]
    late = source.insert_many([{"_id": ObjectId()} for _ in range(3)]).inserted_ids
    source.delete_one({"_id": late[0]})

    summary = verifier(source, table, results).execute(context)

    assert (summary["source"], summary["target"], summary["catch_up_rounds"]) == (252, 252, 1)
    assert summary["position"]["cluster_time"]  # the point the copy is consistent with


def test_without_a_change_stream_verify_fails_naming_what_was_written_after_the_pages(source, table, context):
    results = [migrate(source, table, page, context) for page in plan_pages(source, 100)]
    late = source.insert_one({"_id": "late"}).inserted_id

    with pytest.raises(AirflowFailException) as failure:
        verifier(source, table, results).execute(context)

    assert f"1 _id missing in the target: ['\"{late}\"']" in str(failure.value)
    assert "the source has no change stream that could explain them" in str(failure.value)


def test_verify_fails_naming_the_documents_a_wrong_plan_left_out_though_the_stream_is_open(
    mongo_collection, table, context
):
    mongo_collection.insert_many([{"_id": value} for value in ("a", "b", Code("x"), Code("y"))])
    open_stream(mongo_collection, table, context)
    # The plan an earlier version made: strings and code in one page, a range that matches nothing.
    results = [migrate(mongo_collection, table, Page(0, "a", Code("y"), True, 4), context)]

    with pytest.raises(AirflowFailException) as failure:
        verifier(mongo_collection, table, results).execute(context)

    message = str(failure.value)
    keys = ['"a"', '"b"', '{"$code": "x"}', '{"$code": "y"}']
    assert f"4 _id missing in the target: {keys}" in message
    assert "no change of the source since it was read explains them (catch-up round 1)" in message


def test_planning_fails_naming_the_page_when_its_ranges_do_not_match_what_its_scan_saw(
    mongo_collection, table, context, monkeypatch
):
    mongo_collection.insert_many([{"_id": value} for value in (float("nan"), float("-inf"), 1, 2, 3)])
    start = open_stream(mongo_collection, table, context)
    monkeypatch.setattr(  # a plan that saw 5 documents but whose range leaves NaN and -inf out, on purpose
        "mongo_migration.pages.plan_pages",
        lambda collection, size, session: [Page(0, -1e308, 3, True, 5)],
    )

    with pytest.raises(AirflowException) as failure:
        planner(mongo_collection, start).execute({})

    assert (
        "which did not change meanwhile: 5 documents before the plan's scan and 5 after it, which saw 5; "
        "its _id ranges now match 3" in str(failure.value)
    )
    assert "page 0: _id [-1e+308, 3] was planned 5 and matches 3" in str(failure.value)


def test_planning_fails_when_a_quiet_collection_holds_more_than_the_scan_saw(mongo_collection, monkeypatch):
    mongo_collection.insert_many([{"_id": value} for value in range(1, 6)])
    monkeypatch.setattr(  # a scan that missed the document 5, on purpose
        "mongo_migration.pages.plan_pages", lambda collection, size, session: [Page(0, 1, 4, True, 4)]
    )

    with pytest.raises(
        AirflowException, match="5 documents before the plan's scan and 5 after it, which saw 4"
    ):
        planner(mongo_collection).execute({})


def test_planning_leaves_a_collection_that_changed_since_the_stream_opened_to_the_catch_up(
    mongo_collection, table, context, monkeypatch
):
    mongo_collection.insert_many([{"_id": value} for value in range(1, 6)])
    start = open_stream(mongo_collection, table, context)
    mongo_collection.insert_one({"_id": 6})  # after the stream opened, before the scan
    monkeypatch.setattr(  # a scan that missed the document 6, as a busy source makes it
        "mongo_migration.pages.plan_pages", lambda collection, size, session: [Page(0, 1, 5, True, 5)]
    )

    assert len(planner(mongo_collection, start).execute({})) == 1


def test_planning_declares_the_source_collection_as_its_inlet_in_the_mongo_provider_form(mongo_collection):
    mongo_collection.insert_one({"_id": 1})
    operator = planner(mongo_collection)

    operator.execute({})

    host, port = mongo_collection.database.client.address
    assert operator.inlets == [Asset(f"mongodb://{host}:{port}/tests/{mongo_collection.name}")]


def planner(collection, start=None):
    return PlanPagesOperator(
        task_id="plan_pages",
        options={"items_per_page": "100"},  # as the Param reaches it, rendered into a template
        start=start,
        mongo_database="tests",
        mongo_collection=collection.name,
    )


def test_verify_fails_naming_the_difference_when_a_page_is_missing(source, table, context):
    results = [migrate(source, table, page, context) for page in plan_pages(source, 100)[:2]]

    with pytest.raises(AirflowFailException, match=r"differ: 50 _id missing in the target: \['"):
        verifier(source, table, results).execute(context)


def test_reset_refuses_a_table_name_that_is_not_a_plain_identifier(pg_conn, context):
    reset = ResetTableOperator(task_id="reset_table", target_table="users; DROP TABLE users", mapping=USERS)
    with pytest.raises(AirflowFailException, match="'users; DROP TABLE users' is not a plain lowercase"):
        reset.execute(context)


def test_verify_catches_a_swapped_id_that_leaves_every_count_equal(source, pg_conn, table, context):
    results = [migrate(source, table, page, context) for page in plan_pages(source, 100)]
    swapped = pg_conn.execute(f"SELECT _id FROM {staged(table)} WHERE page = 1 LIMIT 1").fetchone()[0]
    pg_conn.execute(f"UPDATE {staged(table)} SET _id = 'not-a-source-id' WHERE _id = %s", [swapped])

    with pytest.raises(AirflowFailException) as failure:
        verifier(source, table, results).execute(context)

    message = str(failure.value)
    assert f"1 _id missing in the target: ['{swapped}']" in message
    assert "1 _id not in the source: ['not-a-source-id']" in message


def test_verify_catches_a_document_held_twice(source, pg_conn, table, context):
    results = [migrate(source, table, page, context) for page in plan_pages(source, 100)]
    twice = pg_conn.execute(f"SELECT _id FROM {staged(table)} LIMIT 1").fetchone()[0]
    pg_conn.execute(
        f"INSERT INTO {staged(table + '_rejects')} (_id, reason, document, page) VALUES (%s, 'x', '', 0)",
        [twice],
    )

    with pytest.raises(
        AirflowFailException, match=rf"held more than once by the target: \[\('{twice}', 2\)\]"
    ):
        verifier(source, table, results).execute(context)


def test_planning_a_collection_that_does_not_exist_fails_naming_it(mongo_collection):
    with pytest.raises(
        AirflowFailException, match=f"Collection '{mongo_collection.name}' does not exist in MongoDB"
    ):
        planner(mongo_collection).execute({})


def seeder(collection, users: int) -> SeedUsersOperator:
    return SeedUsersOperator(
        task_id="seed_users",
        options={"seed_users": str(users)},  # as the Param reaches it, rendered into a template
        faker_seed=1234,
        mongo_database="tests",
        mongo_collection=collection.name,
    )


@pytest.mark.parametrize(
    "run_type", [DagRunType.SCHEDULED, DagRunType.BACKFILL_JOB, DagRunType.ASSET_TRIGGERED]
)
def test_only_a_run_a_person_triggered_writes_to_the_source(mongo_collection, context, run_type):
    context["dag_run"].run_type = run_type

    assert seeder(mongo_collection, 100).execute(context) == 0

    assert mongo_collection.count_documents({}) == 0


def test_seeding_is_refused_where_the_deployment_does_not_allow_it(mongo_collection, context, monkeypatch):
    monkeypatch.delenv("MONGO_MIGRATION_ALLOW_SEEDING")

    with pytest.raises(
        AirflowFailException, match=r"does not allow writing fake users .* nothing was written"
    ):
        seeder(mongo_collection, 100).execute(context)

    assert mongo_collection.count_documents({}) == 0


def test_publish_refuses_when_verify_returned_no_proof_naming_the_param(source, pg_conn, table, context):
    pages = plan_pages(source, 100)
    for page in pages:
        migrate(source, table, page, context)
    operator = PublishOperator(
        task_id="publish",
        verified=None,  # what verify's result is when a person marked it successful by hand
        mongo_database=source.database.name,
        mongo_collection=source.name,
        target_table=table,
        mapping=USERS,
        asset_alias="tests_target",
    )

    with pytest.raises(AirflowFailException, match=r"returned no result .* Set the Param publish_unverified"):
        operator.execute({**context, "outlet_events": {}})

    assert pg_conn.execute("SELECT to_regclass(%s)", [table]).fetchone() == (None,)


def test_a_page_whose_document_breaks_a_column_that_says_fail_fails_the_run_not_to_be_retried(
    mongo_collection, pg_conn, target_table, context
):
    strict = USERS.model_copy(
        update={"columns": (USERS.columns[2].model_copy(update={"on_violation": "fail"}),)}
    )
    mongo_collection.insert_many([{"_id": 1, "age": 30}, {"_id": 2, "age": "thirty"}])
    ResetTableOperator(task_id="reset_table", target_table=target_table, mapping=strict).execute(context)
    [page] = plan_pages(mongo_collection, 10)

    with pytest.raises(
        AirflowFailException, match=r'document _id \{"\$numberInt": "2"\} violates the mapping'
    ):
        migrate(mongo_collection, target_table, page, context, strict)

    assert pg_conn.execute(f"SELECT count(*) FROM {staged(target_table)}").fetchone() == (0,)  # rolled back
