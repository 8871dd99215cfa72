"""The operators on the real PostgreSQL and MongoDB wire-protocol server."""

import datetime as dt
import os

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
    PlanPagesOperator,
    PublishOperator,
    ResetTableOperator,
    SeedUsersOperator,
    VerifyMigrationOperator,
)
from mongo_migration.pages import Page, plan_pages
from mongo_migration.target import STAGING_SCHEMA as STAGING
from mongo_migration.users import fake_users


@pytest.fixture
def source(mongo_collection):
    """250 users in pages of 100: two full pages and a short last one."""
    mongo_collection.insert_many(fake_users(0, 250, 1234))
    return mongo_collection.with_options(codec_options=CODEC_OPTIONS)


@pytest.fixture
def table(target_table, context):
    ResetTableOperator(task_id="reset_table", target_table=target_table).execute(context)
    return target_table


def migrate(source, table, page, context):
    operator = MigratePageOperator(
        task_id="migrate_page",
        page=page.to_xcom(),
        mongo_database=source.database.name,
        mongo_collection=source.name,
        target_table=table,
    )
    return operator.execute(context)


def target_documents(pg_conn, table) -> dict:
    rows = pg_conn.execute(f"SELECT _id, document::text FROM {STAGING}.{table}").fetchall()
    return {key: json_util.loads(document) for key, document in rows}


def test_a_page_lands_exactly_its_documents_with_equal_fields(source, pg_conn, table, context):
    page = plan_pages(source, 100)[1]

    result = migrate(source, table, page, context)

    assert result["documents"] == 100
    originals = {str(doc["_id"]): doc for doc in source.find(page.mongo_filter())}
    rows = pg_conn.execute(f"SELECT _id, username, email, age, created_at FROM {STAGING}.{table}").fetchall()
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
    keys = [key for (key,) in pg_conn.execute(f"SELECT _id FROM {STAGING}.{table}")]
    assert sorted(keys) == sorted(str(doc["_id"]) for doc in source.find(page.mongo_filter()))


def test_a_rerun_page_replaces_its_own_range_and_leaves_other_pages_alone(source, pg_conn, table, context):
    first, second, _ = plan_pages(source, 100)
    migrate(source, table, first, context)
    migrate(source, table, second, context)
    pg_conn.execute(f"UPDATE {STAGING}.{table} SET username = 'stale'")

    migrate(source, table, first, context)

    stale = pg_conn.execute(f"SELECT count(*) FROM {STAGING}.{table} WHERE username = 'stale'").fetchone()[0]
    assert stale == second.planned_documents
    assert pg_conn.execute(f"SELECT count(*) FROM {STAGING}.{table}").fetchone()[0] == 200


def verifier(source, table, pages, page_results):
    return VerifyMigrationOperator(
        task_id="verify",
        pages=[page.to_xcom() for page in pages],
        page_results=page_results,
        mongo_database=source.database.name,
        mongo_collection=source.name,
        target_table=table,
    )


def test_verify_passes_when_source_target_and_pages_agree_and_times_the_run_from_its_start(
    source, table, context
):
    pages = plan_pages(source, 100)
    results = [migrate(source, table, page, context) for page in pages]

    called = dt.datetime.now(dt.UTC)
    summary = verifier(source, table, pages, results).execute(context)
    returned = dt.datetime.now(dt.UTC)

    counts = (summary["source"], summary["target"], summary["documents"], summary["pages"])
    assert counts == (250, 250, 250, 3)
    assert summary["beyond_the_plan"] == 0
    run_started = context["dag_run"].start_date
    assert (called - run_started).total_seconds() - 0.1 <= summary["wall_seconds"]
    assert summary["wall_seconds"] <= (returned - run_started).total_seconds() + 0.1


def test_verify_reports_documents_written_beyond_the_plan_for_the_next_run(source, table, context):
    pages = plan_pages(source, 100)
    results = [migrate(source, table, page, context) for page in pages]
    source.insert_many([{"_id": ObjectId()} for _ in range(3)])  # new ObjectIds: beyond the last page

    summary = verifier(source, table, pages, results).execute(context)

    assert (summary["source"], summary["target"], summary["beyond_the_plan"]) == (250, 250, 3)


def test_verify_fails_naming_the_page_whose_filter_matches_less_than_the_plan_saw(
    mongo_collection, table, context
):
    mongo_collection.insert_many([{"_id": value} for value in ("a", "b", Code("x"), Code("y"))])
    # The plan an earlier version made: strings and code in one page, a range that matches nothing.
    pages = [Page(0, "a", Code("y"), True, 4)]
    results = [migrate(mongo_collection, table, page, context) for page in pages]

    with pytest.raises(AirflowFailException) as failure:
        verifier(mongo_collection, table, pages, results).execute(context)

    message = str(failure.value)
    assert 'page 0: _id ["a", {"$code": "y"}] was planned 4 documents and read 0' in message
    assert "has 0 documents in the planned ranges where the plan saw 4" in message


def test_planning_fails_naming_the_page_when_its_ranges_do_not_match_what_its_scan_saw(
    mongo_collection, monkeypatch
):
    mongo_collection.insert_many([{"_id": value} for value in (float("nan"), float("-inf"), 1, 2, 3)])
    monkeypatch.setattr(  # a plan that saw 5 documents but whose range leaves NaN and -inf out, on purpose
        "mongo_migration.operators.plan_pages", lambda collection, size: [Page(0, -1e308, 3, True, 5)]
    )

    with pytest.raises(AirflowException) as failure:
        planner(mongo_collection).execute({})

    assert "its scan saw 5 documents and its _id ranges now match 3" in str(failure.value)
    assert "page 0: _id [-1e+308, 3] was planned 5 and matches 3" in str(failure.value)


def test_planning_fails_when_a_quiet_collection_holds_more_than_the_scan_saw(mongo_collection, monkeypatch):
    mongo_collection.insert_many([{"_id": value} for value in range(1, 6)])
    monkeypatch.setattr(  # a scan that missed the document 5, on purpose
        "mongo_migration.operators.plan_pages", lambda collection, size: [Page(0, 1, 4, True, 4)]
    )

    with pytest.raises(AirflowException, match="held 5 documents before and after the plan's scan, which"):
        planner(mongo_collection).execute({})


def test_planning_declares_the_source_collection_as_its_inlet_in_the_mongo_provider_form(mongo_collection):
    mongo_collection.insert_one({"_id": 1})
    operator = planner(mongo_collection)

    operator.execute({})

    port = os.environ["AIRFLOW_CONN_MONGO_DEFAULT"].split(":")[2].split("/")[0]
    assert operator.inlets == [Asset(f"mongodb://127.0.0.1:{port}/tests/{mongo_collection.name}")]


def planner(collection):
    return PlanPagesOperator(
        task_id="plan_pages", items_per_page=100, mongo_database="tests", mongo_collection=collection.name
    )


def test_verify_fails_naming_the_difference_when_a_page_is_missing(source, table, context):
    pages = plan_pages(source, 100)
    results = [migrate(source, table, page, context) for page in pages[:2]]

    with pytest.raises(
        AirflowFailException,
        match=r"has 250 documents in the planned ranges where the plan saw 250, the pages read 200 .* holds "
        r"200 rows and 0 rejects \(target - source = -50\); "
        r"page 2: .* was planned 50 documents and read nothing",
    ):
        verifier(source, table, pages, results).execute(context)


def test_reset_refuses_a_table_name_that_is_not_a_plain_identifier(pg_conn, context):
    with pytest.raises(ValueError, match="target table 'users; DROP TABLE users' is not a plain"):
        ResetTableOperator(task_id="reset_table", target_table="users; DROP TABLE users").execute(context)


def test_verify_catches_a_swapped_id_that_leaves_every_count_equal(source, pg_conn, table, context):
    pages = plan_pages(source, 100)
    results = [migrate(source, table, page, context) for page in pages]
    swapped = pg_conn.execute(f"SELECT _id FROM {STAGING}.{table} WHERE page = 1 LIMIT 1").fetchone()[0]
    pg_conn.execute(f"UPDATE {STAGING}.{table} SET _id = 'not-a-source-id' WHERE _id = %s", [swapped])

    with pytest.raises(AirflowFailException) as failure:
        verifier(source, table, pages, results).execute(context)

    message = str(failure.value)
    assert "page 1 read 100 documents and wrote 100" in message
    assert f"_id missing in the target: ['{swapped}']" in message
    assert "_id not in the source: ['not-a-source-id']" in message
    assert "page 0" not in message and "page 2" not in message


def test_verify_catches_a_row_written_under_another_page(source, pg_conn, table, context):
    pages = plan_pages(source, 100)
    results = [migrate(source, table, page, context) for page in pages]
    staging = f"{STAGING}.{table}"
    pg_conn.execute(
        f"UPDATE {staging} SET page = 0 WHERE _id = (SELECT min(_id) FROM {staging} WHERE page = 2)"
    )

    with pytest.raises(
        AirflowFailException, match=r"page 0 read 100 documents and wrote 101.*page 2 read 50"
    ):
        verifier(source, table, pages, results).execute(context)


def test_planning_a_collection_that_does_not_exist_fails_naming_it(mongo_collection):
    with pytest.raises(
        AirflowFailException, match=f"Collection '{mongo_collection.name}' does not exist in MongoDB"
    ):
        planner(mongo_collection).execute({})


def seeder(collection, users: int) -> SeedUsersOperator:
    return SeedUsersOperator(
        task_id="seed_users",
        users=str(users),  # as a Param reaches it, rendered into a template
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
    )

    with pytest.raises(AirflowFailException, match=r"returned no result .* Set the Param publish_unverified"):
        operator.execute({**context, "outlet_events": {}})

    assert pg_conn.execute("SELECT to_regclass(%s)", [table]).fetchone() == (None,)
