"""Alerts: a failed run (and, when asked for, a publish) posts to the alerts connection's webhook."""

import http.server
import json
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.models.connection import Connection

from mongo_migration.alerts import ALERTS_CONN_ID, HEARTBEAT_CONN_ID, RunAlert, _url
from tests.conftest import SPARSE_USERS

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

ROOT = Path(__file__).resolve().parents[1]


class Webhook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []
    url: ClassVar[str] = ""

    def do_POST(self):
        alert = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append({**alert, "path": self.path})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(monkeypatch):
    """A webhook on a local port, as the alerts connection; what it received."""
    server = http.server.HTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hooks/T0/night"
    Webhook.received, Webhook.url = [], url
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{ALERTS_CONN_ID.upper()}", json.dumps({"conn_type": "http", "extra": {"url": url}})
    )
    yield Webhook.received
    server.shutdown()


@pytest.fixture(scope="module")
def dag():
    return DagBag(dag_folder=ROOT / "dags").dags["mongo_to_postgres"]


def test_a_failed_run_posts_once_naming_its_dag_run_and_failed_task_to_the_alerts_webhook(
    dag, webhook, mongo_collection, target_table
):
    conf = {
        "mongo_database": "tests",
        "mongo_collection": mongo_collection.name,
        "target_table": target_table,
    }
    dag_run = dag.test(run_conf=conf)  # the collection does not exist

    assert dag_run.state == "failed"
    [alert] = webhook  # one per run, however many tasks failed
    assert (alert["dag_id"], alert["run_id"], alert["outcome"]) == (
        "mongo_to_postgres",
        dag_run.run_id,
        "failed",
    )
    assert (alert["task_id"], alert["path"]) == ("preflight", "/hooks/T0/night")
    assert alert["text"].startswith(f"mongo_to_postgres run {dag_run.run_id} failed in task preflight (try ")
    assert "error" not in alert  # no error text, which may hold data: the task's log has it


def test_alerts_are_off_without_the_connection_and_a_publish_is_sent_only_when_asked_for(
    webhook, monkeypatch
):
    run = {"dag_run": {"dag_id": "mongo_to_postgres", "dag_run_id": "scheduled__2026-12-05T02:00:00+00:00"}}
    RunAlert("published").notify(run)  # the connection does not ask for it
    deadline = RunAlert("missed its deadline", deadline="4:00:00 after it was queued")
    deadline.notify({"dag_run": {**run["dag_run"], "state": "failed"}})  # its failure was sent already
    deadline.notify({"dag_run": {**run["dag_run"], "state": "running"}})
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{ALERTS_CONN_ID.upper()}", Webhook.url + "?on_success=false"
    )  # as a URL
    RunAlert("published").notify(run)  # "false", not asked for
    monkeypatch.delenv(f"AIRFLOW_CONN_{ALERTS_CONN_ID.upper()}")
    RunAlert("failed").notify(run)  # no connection: off

    [deadline] = webhook
    assert deadline["text"] == (
        "mongo_to_postgres run scheduled__2026-12-05T02:00:00+00:00 missed its deadline "
        "(4:00:00 after it was queued): the table is not published yet"
    )


def test_a_connection_written_as_a_url_is_posted_to_as_that_url():
    url = "https://hooks.example.com:8443/services/T0/B0/XYZ"
    assert _url(Connection(conn_id="alerts", uri=url)) == url  # not percent-encoded, no extras


def test_every_publish_pings_the_heartbeat_so_a_night_without_one_is_noticed(
    dag, webhook, mongo_collection, target_table, monkeypatch
):
    heartbeat = Webhook.url.replace("/hooks/T0/night", "/ping/{dag_id}")  # a check for each DAG
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{HEARTBEAT_CONN_ID.upper()}",
        json.dumps({"conn_type": "http", "extra": {"url": heartbeat}}),
    )
    mongo_collection.insert_many([{"username": f"u{n}"} for n in range(30)])
    dag_run = dag.test(
        run_conf={
            "mongo_database": "tests",
            "mongo_collection": mongo_collection.name,
            "target_table": target_table,
            **SPARSE_USERS,
        }
    )

    assert dag_run.state == "success"
    [ping] = webhook  # the alerts connection does not ask for publishes
    assert (ping["path"], ping["outcome"]) == ("/ping/mongo_to_postgres", "published")
    assert ping["run_id"] == dag_run.run_id
