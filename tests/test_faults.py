"""Faults during real runs: the scheduler, LocalExecutor task processes and the real servers.

Each run moves the same 12,000 documents in three pages of 4,000 (two read
batches each). A fault strikes one page while its failpoint
(``mongo_migration/failpoint.py``) holds it after a chosen number of documents
inside its COPY. Every
run must end with ``verify`` green and each document exactly once in the live
table, or fail without touching the live table.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook
from bson.objectid import ObjectId

from mongo_migration.documents import CODEC_OPTIONS, id_key
from mongo_migration.users import fake_users, seed_users
from tests.conftest import FAILPOINT_FILE, SPARSE_USERS, STACK_ENV, stack
from tests.staging import drop_tables, staged
from tests.writer import old_object_id, published_and_expected, writing

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

TABLE = "fault_users"
CONF = {
    "mode": "full",  # every run copies page by page, where the faults strike
    "seed_users": 0,
    "items_per_page": 4000,
    "mongo_database": "tests",
    "mongo_collection": "fault_users",
    "target_table": TABLE,
    **SPARSE_USERS,
}
PASSWORD = "migrator-local"  # the test stack's PostgreSQL password, see scripts/stack.sh


@pytest.fixture(scope="module")
def source_ids(airflow_services):
    """The source collection, seeded once; the ``_id`` keys every run must land exactly once."""
    with MongoHook() as hook:
        collection = hook.get_collection(CONF["mongo_collection"], CONF["mongo_database"])
        collection.drop()
        seed_users(collection, 12_000, 1234)
        ids = {id_key(document["_id"]) for document in collection.find({}, {"_id": 1})}
    yield ids
    with MongoHook() as hook:
        hook.get_collection(CONF["mongo_collection"], CONF["mongo_database"]).drop()


@pytest.fixture(scope="module")
def first_run(airflow_services, source_ids) -> str:
    """A first clean run, which publishes the table; its run id."""
    run = airflow_services.wait(airflow_services.trigger(CONF))
    assert run["state"] == "success"
    return run["dag_run_id"]


@pytest.fixture(scope="module")
def api(airflow_services, first_run):
    """The API, once the first run has published the table."""
    yield airflow_services
    with PostgresHook().get_conn() as conn:
        drop_tables(conn, TABLE)


def query(statement: str) -> list[tuple]:
    with PostgresHook().get_conn() as conn:
        return conn.execute(statement).fetchall()


def live_ids() -> list[str]:
    return [key for (key,) in query(f"SELECT _id FROM {TABLE}")]


def assert_exactly_once(source_ids: set[str]) -> None:
    keys = live_ids()
    assert len(keys) == len(source_ids) and set(keys) == source_ids
    assert query(f"SELECT count(*) FROM {TABLE}_rejects") == [(0,)]


def test_a_finished_run_shows_its_report_its_page_labels_and_its_asset_with_source_and_summary(
    api, first_run
):
    verified = api.result(first_run, "verify")
    asset = f"postgres://127.0.0.1:{STACK_ENV['TARGET_PG_PORT']}/target/public/{TABLE}"

    assert "| Documents read | 12,000 |" in verified["report"]
    assert "| Rows written | 12,000 |" in verified["report"]
    labels = sorted(
        ti["rendered_map_index"] for ti in api.task_instances(first_run) if ti["task_id"] == "migrate_page"
    )
    assert [label.split(":")[0] for label in labels] == ["page 0", "page 1", "page 2"]
    assert all(": _id [" in label for label in labels)
    [mode] = [ti for ti in api.task_instances(first_run) if ti["task_id"] == "open_change_stream"]
    assert mode["rendered_map_index"].startswith("full: ")  # the copy's mode and why, in the run's list
    events = api.get("assets/events", source_dag_id="mongo_to_postgres", source_run_id=first_run)
    assert [event["uri"] for event in events["asset_events"]] == [asset]
    extra = events["asset_events"][0]["extra"]
    source = f"mongodb://127.0.0.1:{STACK_ENV['MONGO_PORT']}/tests/fault_users"
    assert (extra["source"], extra["summary"], extra["rows"]) == (source, verified["summary"], 12_000)


class Held:
    """A run triggered with one task held by its failpoint once ``documents`` are copied; ``resume()``.

    By default a page (``page``: its map index); else ``point`` names the failpoint, ``task_id`` its task.
    """

    def __init__(
        self,
        api,
        page: int,
        documents: int,
        point: str = "page_batch_copied",
        task_id: str = "migrate_page",
        conf: dict = CONF,
    ):
        for leftover in (FAILPOINT_FILE, *self._signals()):
            leftover.unlink(missing_ok=True)
        FAILPOINT_FILE.write_text(f"{point} {page} {documents}")
        self.api, self.page, self.task_id = api, page, task_id
        self.run_id = api.trigger(conf)
        held = Path(f"{FAILPOINT_FILE}.held")
        wait_for(held.exists, f"{task_id} never reached its failpoint {point}")
        self.pid = int(held.read_text())

    @staticmethod
    def _signals() -> tuple[Path, ...]:
        return tuple(Path(f"{FAILPOINT_FILE}.{suffix}") for suffix in ("taken", "held", "resume"))

    def resume(self) -> None:
        Path(f"{FAILPOINT_FILE}.resume").touch()

    def finish(self) -> dict:
        run = self.api.wait(self.run_id)
        for signal_file in self._signals():
            signal_file.unlink(missing_ok=True)
        return run

    def task_instance(self) -> dict:
        map_index = self.page if self.task_id == "migrate_page" else -1
        [instance] = [
            ti
            for ti in self.api.task_instances(self.run_id)
            if ti["task_id"] == self.task_id and ti["map_index"] == map_index
        ]
        return instance

    def tries(self) -> int:
        return self.task_instance()["try_number"]

    def log(self, attempt: int) -> str:
        run = Path(os.environ["AIRFLOW_HOME"], "logs", "dag_id=mongo_to_postgres", f"run_id={self.run_id}")
        page = run / "task_id=migrate_page" / f"map_index={self.page}"
        return (page / f"attempt={attempt}.log").read_text()


def wait_for(condition, failure: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.2)


def test_a_page_killed_mid_copy_is_retried_and_every_document_lands_once(api, source_ids):
    before = live_ids()
    held = Held(api, page=1, documents=2000)

    # Mid-COPY: readers still see the whole previous table, and nothing of the page is committed.
    assert sorted(live_ids()) == sorted(before)
    assert query(f"SELECT count(*) FROM {staged(TABLE)} WHERE page = 1") == [(0,)]
    # One target connection per running page at most (pages that finished have closed theirs).
    [(connections,)] = query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mongo_migration:migrate_page'"
    )
    running = [ti for ti in api.task_instances(held.run_id) if ti["task_id"] == "migrate_page"]
    assert 1 <= connections <= len([ti for ti in running if ti["state"] == "running"])
    os.kill(held.pid, signal.SIGKILL)
    run = held.finish()

    assert run["state"] == "success"
    assert held.tries() == 2
    assert_exactly_once(source_ids)


def test_a_target_restart_mid_run_ends_with_every_document_once(api, source_ids):
    held = Held(api, page=0, documents=2000)

    stack("restart-target")
    held.resume()
    run = held.finish()

    assert run["state"] == "success"
    assert held.tries() >= 2  # its connection died with the server; the retry copied the page
    assert_exactly_once(source_ids)


def test_a_source_gone_mid_page_fails_the_try_naming_the_connection_and_the_retry_lands_every_document_once(
    api, source_ids
):
    held = Held(api, page=2, documents=2000)  # half of the page read, its cursor open

    stack("stop-mongo")
    try:
        held.resume()
        failed_once = lambda: held.task_instance()["state"] == "up_for_retry"  # noqa: E731
        wait_for(failed_once, "the page did not fail its first try")
    finally:
        stack("start")  # for the tests after this one, whatever happened
    run = held.finish()

    assert run["state"] == "success"
    assert held.tries() == 2
    first_try = held.log(attempt=1)
    assert "UnreachableError" in first_try and "MongoDB connection 'mongo_default' (127.0.0.1:" in first_try
    assert_exactly_once(source_ids)


def test_verify_stops_a_wrong_load_before_publish_and_the_live_table_stays(api, source_ids):
    before = sorted(live_ids())
    held = Held(api, page=0, documents=0)  # held after its first batch, the earliest failpoint
    with PostgresHook().get_conn() as conn:  # a stray row in the staging table, committed
        conn.execute(f"INSERT INTO {staged(TABLE)} (_id, document, page) VALUES ('stray', '{{}}', 99)")

    held.resume()
    run = held.finish()

    assert run["state"] == "failed"
    states = {ti["task_id"]: ti["state"] for ti in api.task_instances(held.run_id)}
    assert (states["verify"], states["publish"]) == ("failed", "upstream_failed")
    assert sorted(live_ids()) == before


def test_a_second_run_aimed_at_a_table_being_loaded_fails_without_touching_it(api, source_ids):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=Path(__file__).resolve().parents[1] / "dags").dags["mongo_to_postgres"]
    held = Held(api, page=0, documents=2000)
    api.session.patch(f"{api.url}/api/v2/dags/mongo_to_postgres", json={"is_paused": True}).raise_for_status()
    try:
        # A run the scheduler does not manage, like another DAG (or a developer) aiming at the same table.
        intruder = dag.test(run_conf={**CONF, "seed_users": 0})
    finally:
        api.session.patch(f"{api.url}/api/v2/dags/mongo_to_postgres", json={"is_paused": False})

    states = {ti.task_id: ti.state for ti in intruder.get_task_instances()}
    assert (states["reset_table"], states["publish"]) == ("failed", "upstream_failed")
    held.resume()
    assert held.finish()["state"] == "success"
    assert_exactly_once(source_ids)


def test_documents_changed_while_a_run_copies_them_are_in_its_copy(api, source_ids):
    held = Held(api, page=2, documents=0)  # held after its first batch, the earliest failpoint
    with MongoHook() as hook:
        collection = hook.get_collection(CONF["mongo_collection"], CONF["mongo_database"])
        late = collection.insert_many([{"_id": ObjectId(), "username": f"late {n}"} for n in range(5)])
        collection.update_one({"_id": late.inserted_ids[0]}, {"$set": {"username": "renamed"}})
        five, seven = (ObjectId(n.to_bytes(12, "big")) for n in (5, 7))  # users 5 and 7, inside page 0
        collection.delete_one({"_id": five})
        collection.insert_one({"_id": five, "username": "five again"})
        collection.delete_one({"_id": seven})
        try:
            held.resume()
            assert held.finish()["state"] == "success"
            now = {id_key(document["_id"]) for document in collection.find({}, {"_id": 1})}
            assert_exactly_once(now)
            assert now == source_ids - {id_key(seven)} | {id_key(key) for key in late.inserted_ids}
            names = dict(query(f"SELECT _id, username FROM {TABLE}"))
            assert (names[id_key(late.inserted_ids[0])], names[id_key(five)]) == ("renamed", "five again")
        finally:  # the source as the other tests know it
            collection.delete_many({"_id": {"$in": late.inserted_ids}})
            collection.replace_one({"_id": five}, fake_users(0, 6, 1234)[5])
            seed_users(collection, 12_000, 1234)  # user 7 again


LIVE_CONF = {**CONF, "mongo_collection": "fault_live", "target_table": "fault_live", "items_per_page": 1000}


def test_a_catch_up_killed_mid_batch_is_retried_and_publishes_the_source_exactly_as_of_its_point(
    api, tmp_path
):
    log = tmp_path / "writes.jsonl"
    with MongoHook() as hook:
        collection = hook.get_collection(LIVE_CONF["mongo_collection"], "tests")
        collection.drop()
        rng = random.Random(2)
        collection.insert_many([{"_id": old_object_id(rng), "username": f"user {n}"} for n in range(3000)])
        initial = list(collection.with_options(codec_options=CODEC_OPTIONS).find())
        try:
            with writing(collection, log):
                held = Held(api, 0, 1, point="catch_up_batch_applied", task_id="catch_up", conf=LIVE_CONF)
                os.kill(held.pid, signal.SIGKILL)  # mid-transaction: its batch and position roll back
                run = held.finish()
                assert run["state"] == "success"
                assert held.tries() == 2
            with PostgresHook().get_conn() as conn:
                table, expected, _ = published_and_expected(conn, "fault_live", initial, log)
            assert table.keys() == expected.keys()
            assert [k for k in table if table[k] != expected[k]] == []
        finally:
            collection.drop()
            with PostgresHook().get_conn() as conn:
                drop_tables(conn, "fault_live")


def test_every_connection_is_closed_after_the_runs(api):
    assert query("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'mongo_migration:%'") == [
        (0,)
    ]
    with MongoHook() as hook:
        # This client's own: one pooled connection and pymongo's two monitors. The server
        # notices a killed task's connections go when it next reads from them.
        def only_mine() -> bool:
            return hook.get_conn().admin.command("serverStatus")["connections"]["current"] <= 3

        wait_for(only_mine, "MongoDB connections were left open", timeout=60)


def test_no_password_reaches_a_task_log_a_result_or_a_rendered_field(api):
    home = Path(os.environ["AIRFLOW_HOME"])
    admin = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    passwords = (PASSWORD, admin)  # the target's, and the API's
    texts = [
        path.read_text(errors="replace")
        for path in (home / "logs" / "dag_id=mongo_to_postgres").rglob("*.log")
    ]
    assert len(texts) > 20 and any("UnreachableError" in text or "OperationalError" in text for text in texts)
    assert not [text for text in texts if any(password in text for password in passwords)]
    for run in api.get("dags/mongo_to_postgres/dagRuns", limit=100)["dag_runs"]:
        task_instances = api.task_instances(run["dag_run_id"])
        for ti in task_instances:
            assert not any(password in str(ti["rendered_fields"]) for password in passwords)
        verified = [ti for ti in task_instances if ti["task_id"] == "verify" and ti["state"] == "success"]
        if verified:  # a run that skipped verify (a dry run) has no result
            assert not any(password in str(api.result(run["dag_run_id"], "verify")) for password in passwords)
