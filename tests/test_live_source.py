"""Runs against a source that keeps changing: a writer process works on it through the whole run."""

import random
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from bson.timestamp import Timestamp

from mongo_migration.documents import CODEC_OPTIONS
from tests import writer
from tests.writer import old_object_id, published_and_expected, read_log, writing

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


def test_a_run_over_a_changing_source_publishes_it_exactly_as_of_the_recorded_point(
    dag, source, pg_conn, target_table, tmp_path
):
    initial = list(source.find())
    log = tmp_path / "writes.jsonl"

    with writing(source, log):
        run = dag.test(
            run_conf={
                "mongo_database": source.database.name,
                "mongo_collection": source.name,
                "target_table": target_table,
                "items_per_page": 1000,
                "seed_users": 0,
            }
        )
        publish_ended = max(ti.end_date for ti in run.get_task_instances() if ti.task_id == "publish")
    writes = read_log(log)

    assert run.state == "success"
    table, expected, point = published_and_expected(pg_conn, target_table, initial, log)
    assert table.keys() == expected.keys()
    assert [k for k in table if table[k] != expected[k]] == []
    kinds = {entry["kind"] for entry in writes}
    assert kinds >= {"insert beyond", "insert inside", "update", "replace", "delete", "insert again"}
    during_the_run = [
        e for e in writes if Timestamp(*e["t"]) <= point and e["wall"] > run.start_date.timestamp()
    ]
    assert len(during_the_run) > 50  # the catch-up had work
    assert writes[-1]["wall"] > publish_ended.timestamp()  # the writer ran through verify and publish
    assert len(writes) / (writes[-1]["wall"] - writes[0]["wall"]) >= 50


assert writer.WRITES_PER_SECOND >= 50
