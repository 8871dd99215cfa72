"""The whole DAG, run with ``dag.test()`` against the real services."""

import datetime as dt
import json
import os
from pathlib import Path

import psycopg
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import ParamValidationError
from bson import json_util
from bson.code import Code
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument

from mongo_migration import target
from mongo_migration.documents import CODEC_OPTIONS, CONVERSION_VERSION, id_key
from tests.bson_equality import canonical_bson
from tests.conftest import SPARSE_USERS
from tests.staging import USERS, users

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

ROOT = Path(__file__).resolve().parents[1]
EXTENDED_JSON = json_util.JSONOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
RAW = CodecOptions(document_class=RawBSONDocument)


@pytest.fixture(scope="module")
def dag():
    return DagBag(dag_folder=ROOT / "dags").dags["mongo_to_postgres"]


def run(dag, **conf):
    return dag.test(run_conf={"mongo_database": "tests", **SPARSE_USERS, **conf})


def task_states(dag_run) -> dict:
    return {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances()}


@pytest.mark.smoke  # the quick loop's one run of the DAG
def test_every_document_arrives_exactly_once_with_equal_fields(dag, mongo_collection, pg_conn, target_table):
    dag_run = run(
        dag,
        seed_users=20_000,
        items_per_page=8000,
        mongo_collection=mongo_collection.name,
        target_table=target_table,
    )

    assert dag_run.state == "success", task_states(dag_run)
    pages = [ti for ti in dag_run.get_task_instances() if ti.task_id == "migrate_page"]
    assert len(pages) == 3  # 8000, 8000 and a short last page of 4000
    source = {
        str(doc["_id"]): doc for doc in mongo_collection.with_options(codec_options=CODEC_OPTIONS).find()
    }
    rows = pg_conn.execute(
        f"SELECT _id, username, email, age, created_at, document::text FROM {target_table}"
    ).fetchall()
    assert len(source) == 20_000
    assert len(rows) == len({row[0] for row in rows}) == 20_000
    for key, username, email, age, created_at, document in rows:
        original = source.pop(key)
        assert (username, email, age, created_at) == (
            original["username"],
            original["email"],
            original["age"],
            original["created_at"].replace(tzinfo=dt.UTC),
        )
        assert json_util.loads(document) == original
    assert source == {}


def test_an_existing_collection_is_migrated_without_seeding(dag, mongo_collection, pg_conn, target_table):
    mongo_collection.insert_many([{"name": f"n{n}", "nested": {"n": n}} for n in range(30)])

    dag_run = run(
        dag, seed_users=0, items_per_page=8, mongo_collection=mongo_collection.name, target_table=target_table
    )

    assert dag_run.state == "success", task_states(dag_run)
    assert mongo_collection.count_documents({}) == 30
    names = [name for (name,) in pg_conn.execute(f"SELECT document->>'name' FROM {target_table}")]
    assert sorted(names) == sorted(f"n{n}" for n in range(30))


def test_a_collection_mixing_every_id_type_migrates_each_document_exactly_once(
    dag, mongo_collection, pg_conn, target_table, mixed_ids
):
    mongo_collection.insert_many([{"_id": value, "n": n} for n, value in enumerate(mixed_ids)])

    dag_run = run(
        dag, seed_users=0, items_per_page=3, mongo_collection=mongo_collection.name, target_table=target_table
    )

    assert dag_run.state == "success", task_states(dag_run)
    rows = pg_conn.execute(f"SELECT _id, document::text FROM {target_table}").fetchall()
    assert sorted(json_util.loads(document)["n"] for _, document in rows) == list(range(len(mixed_ids)))
    assert {key for key, _ in rows} == {id_key(value) for value in mixed_ids}


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param(["a", "b", Code("x"), Code("y")], id="strings and code"),
        pytest.param([float("nan"), float("-inf"), 1, 2, 3], id="NaN and numbers"),
    ],
)
def test_ids_that_one_range_cannot_cover_arrive_whole(dag, mongo_collection, pg_conn, target_table, ids):
    mongo_collection.insert_many([{"_id": value, "n": n} for n, value in enumerate(ids)])

    dag_run = run(dag, seed_users=0, mongo_collection=mongo_collection.name, target_table=target_table)

    assert dag_run.state == "success", task_states(dag_run)
    rows = pg_conn.execute(f"SELECT _id, document::text FROM {target_table}").fetchall()
    assert sorted(json_util.loads(document)["n"] for _, document in rows) == list(range(len(ids)))
    assert {key for key, _ in rows} == {id_key(value) for value in ids}


def test_a_collection_of_more_pages_than_airflow_maps_migrates_in_merged_pages(
    dag, mongo_collection, pg_conn, target_table, monkeypatch
):
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "8")  # 1024 by default: tests/plugins/test_pages.py
    ids = [*range(30), "a", "b", "c"]  # 15 pages of 2 numbers, 2 of strings: 17 > 8
    mongo_collection.insert_many([{"_id": value, "n": n} for n, value in enumerate(ids)])

    dag_run = run(
        dag, seed_users=0, items_per_page=2, mongo_collection=mongo_collection.name, target_table=target_table
    )

    assert dag_run.state == "success", task_states(dag_run)
    pages = [ti for ti in dag_run.get_task_instances() if ti.task_id == "migrate_page"]
    assert len(pages) == 6  # merged 3 at a time: 5 of numbers, 1 of strings
    rows = pg_conn.execute(f"SELECT document::text FROM {target_table}").fetchall()
    assert sorted(json_util.loads(document)["n"] for (document,) in rows) == list(range(len(ids)))


def test_an_empty_collection_migrates_to_an_empty_table(dag, mongo_collection, pg_conn, target_table):
    mongo_collection.database.create_collection(mongo_collection.name)

    dag_run = run(dag, seed_users=0, mongo_collection=mongo_collection.name, target_table=target_table)

    assert dag_run.state == "success", task_states(dag_run)
    assert pg_conn.execute(f"SELECT count(*) FROM {target_table}").fetchone()[0] == 0


INJECTION = "users; DROP TABLE users; --"


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("seed_users", INJECTION),
        ("seed_users", -1),
        ("items_per_page", INJECTION),
        ("items_per_page", 0),
        ("items_per_page", -8000),
        ("items_per_page", 100_001),
        ("mongo_database", "app'); db.dropDatabase(); //"),
        ("mongo_database", "a/b"),
        ("mongo_collection", '{"$where": "sleep(1000)"}'),
        ("mongo_collection", ""),
        ("target_schema", "public; DROP SCHEMA public CASCADE"),
        ("target_schema", 'public"."pg_catalog'),
        ("target_table", INJECTION),
        ("target_table", 'users" (x int); DROP TABLE "users'),
        ("target_table", "Users"),
        ("target_table", "users_rejects"),  # the rejects table of target "users"
        ("target_table", "users\n"),
        ("mongo_database", "app\n"),
        ("target_schema", "mongo_migration_staging"),  # where the staging tables live
        ("max_shrink_percent", 101),
    ],
)
def test_bad_params_are_refused_naming_the_param_before_any_data_is_touched(
    dag, mongo_collection, pg_conn, target_table, param, value
):
    pg_conn.execute(f"CREATE TABLE {target_table} (untouched int)")
    valid = {"seed_users": 5, "mongo_collection": mongo_collection.name, "target_table": target_table}

    with pytest.raises(ParamValidationError, match=f"Invalid input for param {param}"):
        run(dag, **{**valid, param: value})

    columns = pg_conn.execute(f"SELECT * FROM {target_table}").description
    assert [column.name for column in columns] == ["untouched"]
    assert target.staging_owner(pg_conn, users(target_table)) is None  # reset_table never ran
    assert mongo_collection.count_documents({}) == 0  # seed_users never ran


def test_a_failed_run_leaves_the_published_table_whole_and_the_next_run_starts_clean(
    dag, mongo_collection, pg_conn, target_table
):
    published = run(dag, seed_users=300, mongo_collection=mongo_collection.name, target_table=target_table)
    assert published.state == "success", task_states(published)
    before = pg_conn.execute(f"SELECT _id, document FROM {target_table} ORDER BY _id").fetchall()

    small = mongo_collection.database[f"{mongo_collection.name}_small"]
    small.insert_many([{"_id": n} for n in range(10)])  # a copy publish refuses: 97 % fewer rows
    failed = run(dag, seed_users=0, mongo_collection=small.name, target_table=target_table)
    small.drop()

    assert failed.state == "failed"
    assert task_states(failed)[("publish", -1)] == "failed"
    assert pg_conn.execute(f"SELECT _id, document FROM {target_table} ORDER BY _id").fetchall() == before
    assert target.staging_owner(pg_conn, users(target_table)).run_id == failed.run_id  # left for the next run
    again = run(dag, seed_users=400, mongo_collection=mongo_collection.name, target_table=target_table)
    assert again.state == "success", task_states(again)
    assert pg_conn.execute(f"SELECT count(*) FROM {target_table}").fetchone()[0] == 400


def test_nasty_documents_and_every_id_type_arrive_whole_or_are_set_aside_with_their_reason(
    dag, mongo_collection, pg_conn, target_table, nasty_documents, mixed_ids
):
    documents = [{"_id": case, **document} for case, document in nasty_documents.items()]
    mongo_collection.insert_many(documents + [{"_id": value, "n": n} for n, value in enumerate(mixed_ids)])

    dag_run = run(
        dag,
        seed_users=0,
        items_per_page=4,
        mongo_collection=mongo_collection.name,
        target_table=target_table,
        max_reject_percent=100,  # this collection is mostly what must be set aside
    )

    assert dag_run.state == "success", task_states(dag_run)
    rows = dict(pg_conn.execute(f"SELECT _id, document::text FROM {target_table}").fetchall())
    rejects = {
        key: (reason, raw)
        for key, reason, raw in pg_conn.execute(f"SELECT _id, reason, document FROM {target_table}_rejects")
    }
    for case in nasty_documents:
        key = id_key(case)
        if "NUL" in case or "$" in case or "as text" in case:
            assert key in rejects and key not in rows, case
            reason, raw = rejects[key]
            expected = "NUL" if "NUL" in case else ("$" if "$" in case else "has the BSON type string")
            assert expected in reason, (case, reason)
            original = mongo_collection.with_options(codec_options=RAW).find_one({"_id": case})
            assert bytes(raw) == original.raw, case  # kept as the server sent it
        else:
            assert key in rows and key not in rejects, case
            back = json_util.loads(rows[key], json_options=EXTENDED_JSON)
            original = mongo_collection.with_options(codec_options=CODEC_OPTIONS).find_one({"_id": case})
            assert canonical_bson(back) == canonical_bson(original), case
    for value in mixed_ids:
        assert id_key(value) in rows, value


def test_a_collection_that_does_not_exist_fails_the_run_naming_it(dag, mongo_collection, target_table):
    dag_run = run(dag, seed_users=0, mongo_collection=mongo_collection.name, target_table=target_table)

    assert dag_run.state == "failed"
    assert task_states(dag_run)[("preflight", -1)] == "failed"  # before anything is written


@pytest.mark.parametrize("name", ["2024", "None", "True", "[1]"])
def test_a_database_and_collection_named_like_another_type_stay_text(dag, pg_conn, target_table, name):
    from airflow.providers.mongo.hooks.mongo import MongoHook

    with MongoHook() as hook:
        collection = hook.get_collection(name, name)
        collection.insert_many([{"_id": n} for n in range(3)])
        try:
            dag_run = dag.test(
                run_conf={"mongo_database": name, "mongo_collection": name, "target_table": target_table}
                | {"seed_users": 0, **SPARSE_USERS}
            )
            assert dag_run.state == "success", task_states(dag_run)
        finally:
            hook.get_conn().drop_database(name)
    assert pg_conn.execute(f"SELECT count(*) FROM {target_table}").fetchone() == (3,)


def test_a_whole_run_works_through_pgbouncer_in_transaction_pooling_mode(
    dag, mongo_collection, pg_conn, target_table, monkeypatch
):
    bouncer = os.environ["AIRFLOW_CONN_POSTGRES_PGBOUNCER"]
    with psycopg.connect(bouncer.replace("/target", "/pgbouncer"), autocommit=True) as admin:
        settings = {row[0]: row[1] for row in psycopg.ClientCursor(admin).execute("SHOW CONFIG")}
    assert settings["pool_mode"] == "transaction"
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", bouncer)

    dag_run = run(
        dag,
        seed_users=3000,
        items_per_page=1000,
        mongo_collection=mongo_collection.name,
        target_table=target_table,
    )
    assert dag_run.state == "success", task_states(dag_run)
    # A second run publishes in place, through the bouncer too.
    mongo_collection.delete_one({})
    again = run(
        dag,
        seed_users=0,
        items_per_page=1000,
        mongo_collection=mongo_collection.name,
        target_table=target_table,
    )
    assert again.state == "success", task_states(again)

    assert pg_conn.execute(f"SELECT count(*) FROM {target_table}").fetchone() == (2999,)


def test_a_table_published_before_the_mappings_is_copied_in_full_once_in_place_and_its_rejects_get_columns(
    dag, mongo_collection, pg_conn, target_table
):
    mongo_collection.insert_many([{"_id": n, "username": f"user {n}"} for n in range(20)])
    with pg_conn.transaction():
        target.ensure_state_tables(pg_conn)
    # What the version before the mappings left: the live tables of its shape, and its record of the
    # publish, with a point but no versions.
    pg_conn.execute(
        f"""CREATE TABLE {target_table} (_id text COLLATE "C" PRIMARY KEY, username text, email text,
                age integer, created_at timestamptz, document jsonb NOT NULL, page integer NOT NULL);
            CREATE TABLE {target_table}_rejects (_id text, reason text NOT NULL, document bytea NOT NULL,
                page integer NOT NULL);
            INSERT INTO {target_table} (_id, username, document, page)
                VALUES ('{id_key(0)}', 'before', '{{}}', 0), ('gone', 'gone', '{{}}', 0);
            INSERT INTO {target_table}_rejects VALUES ('x', 'an old reason', '\\x00', 0)"""
    )
    point = {"resume_token": {"_data": "00"}, "cluster_time": {"t": 1, "i": 1}, "wall_time": "2026-01-01"}
    pg_conn.execute(
        f'INSERT INTO {target.STAGING_SCHEMA}."Published" VALUES '
        "('public', %s, 'mongo_to_postgres', 'scheduled__before', now(), '{}', %s, 'its fingerprint')",
        [target_table, json.dumps(point)],
    )
    oid = pg_conn.execute("SELECT %s::regclass::oid", [target_table]).fetchone()[0]

    dag_run = run(dag, seed_users=0, mongo_collection=mongo_collection.name, target_table=target_table)

    assert dag_run.state == "success", task_states(dag_run)
    assert [ti.state for ti in dag_run.get_task_instances() if ti.task_id == "migrate_page"] == ["success"]
    assert pg_conn.execute("SELECT %s::regclass::oid", [target_table]).fetchone()[0] == oid  # in place
    rows = pg_conn.execute(f"SELECT _id, username FROM {target_table}").fetchall()
    assert sorted(rows) == sorted((id_key(n), f"user {n}") for n in range(20))
    rejects = pg_conn.execute(f"SELECT * FROM {target_table}_rejects LIMIT 0").description
    assert [column.name for column in rejects] == [
        "_id",
        "reason",
        "document",
        "page",
        "column_name",
        "path",
        "expected",
        "actual",
    ]
    (versions,) = pg_conn.execute(
        f"SELECT result->'versions' FROM {target.STAGING_SCHEMA}.\"Published\" WHERE target_table = %s",
        [target_table],
    ).fetchone()
    assert versions == {"mapping": USERS.version, "conversion": CONVERSION_VERSION, "shape": USERS.shape()}


def test_a_dry_run_skips_every_task_after_preflight_and_writes_nothing(
    dag, mongo_collection, pg_conn, target_table
):
    mongo_collection.insert_many([{"_id": n} for n in range(10)])

    dag_run = run(
        dag, seed_users=0, mongo_collection=mongo_collection.name, target_table=target_table, dry_run=True
    )

    assert dag_run.state == "success"
    assert set(task_states(dag_run).values()) == {"skipped"}  # preflight reported, then skipped itself
    made = pg_conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE %s", [f"%{target_table}%"])
    assert made.fetchone() == (0,)
