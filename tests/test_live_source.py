"""Runs against a source that keeps changing: a writer process works on it through the whole run."""

import random
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from bson.timestamp import Timestamp

from mongo_migration.documents import CODEC_OPTIONS
from tests.conftest import SPARSE_USERS
from tests.dag_runs import label, result
from tests.writer import old_object_id, published_and_expected, read_log, writing

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = 6000


@pytest.fixture(scope="module")
def dag():
    return DagBag(dag_folder=ROOT / "dags").dags["mongo_to_postgres"]


@pytest.fixture
def source(mongo_collection):
    """Documents whose ObjectIds were made in 2020 to 2024, so a writer can insert inside their range."""
    rng = random.Random(1)
    mongo_collection.insert_many(
        [{"_id": old_object_id(rng), "username": f"user {n}", "age": n % 90} for n in range(DOCUMENTS)]
    )
    return mongo_collection.with_options(codec_options=CODEC_OPTIONS)


def run(dag, source, table, **conf):
    return dag.test(
        run_conf={
            "mongo_database": source.database.name,
            "mongo_collection": source.name,
            "target_table": table,
            "items_per_page": 1000,
            "seed_users": 0,
            **SPARSE_USERS,
            **conf,
        }
    )


def test_a_run_over_a_changing_source_publishes_it_exactly_as_of_the_recorded_point(
    dag, source, pg_conn, target_table, tmp_path
):
    initial = list(source.find())
    log = tmp_path / "writes.jsonl"

    with writing(source, log):
        full = run(dag, source, target_table)
        [publish] = [ti for ti in full.get_task_instances() if ti.task_id == "publish"]
    writes = read_log(log)

    assert full.state == "success"
    assert result(full, "verify")["mode"] == "full"
    assert label(full, "open_change_stream") == (
        f"full: public.{target_table} has no published point to start from (no publish of this DAG with a "
        "change stream)"
    )
    table, expected, point = published_and_expected(pg_conn, target_table, initial, log)
    assert table.keys() == expected.keys()
    assert [k for k in table if table[k] != expected[k]] == []
    kinds = {entry["kind"] for entry in writes}
    assert kinds >= {"insert beyond", "insert inside", "update", "replace", "delete", "insert again"}
    started = full.start_date.timestamp()
    during_the_run = [e for e in writes if Timestamp(*e["t"]) <= point and e["wall"] > started]
    assert len(during_the_run) > 50  # the catch-up had work
    assert writes[-1]["wall"] > publish.end_date.timestamp()  # the writer ran through verify and publish
    assert len(writes) / (writes[-1]["wall"] - writes[0]["wall"]) >= 50


def test_an_incremental_run_over_a_changing_source_publishes_it_exactly_as_of_its_point(
    dag, source, pg_conn, target_table, tmp_path
):
    initial = list(source.find())
    log = tmp_path / "writes.jsonl"

    with writing(source, log):
        assert run(dag, source, target_table).state == "success"
        incremental = run(dag, source, target_table)

    assert incremental.state == "success"
    verified = result(incremental, "verify")
    assert (verified["mode"], verified["run"]["pages"]) == ("incremental", 0)
    assert label(incremental, "open_change_stream").startswith("incremental: the changes since cluster time")
    planned = {ti.task_id: ti.state for ti in incremental.get_task_instances()}
    assert (planned["plan_pages"], planned["migrate_page"]) == ("skipped", "skipped")
    table, expected, _ = published_and_expected(pg_conn, target_table, initial, log)
    assert table.keys() == expected.keys()
    assert [k for k in table if table[k] != expected[k]] == []
