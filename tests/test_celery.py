"""A real CeleryExecutor run on this machine, without Docker.

``AIRFLOW_EXECUTOR=CeleryExecutor scripts/airflow-local.sh start`` adds Debian's
Redis (on a port of its own) and a Celery worker to the API server, scheduler,
DAG processor and triggerer, with the configuration keys of docker-compose.yaml
and a worker concurrency sized for this machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook

from include import config
from tests.conftest import local_airflow
from tests.staging import drop_tables

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

CONF = {
    "mode": "full",  # pages on the Celery worker, whatever an earlier test session left
    "seed_users": 3000,
    "items_per_page": 1000,
    "mongo_database": "tests",
    "mongo_collection": "celery_users",
    "target_table": "celery_users",
}


@pytest.fixture(scope="module")
def celery_api(services):
    with local_airflow(AIRFLOW_EXECUTOR="CeleryExecutor", CELERY_WORKER_CONCURRENCY="4") as api:
        yield api
    with MongoHook() as hook:
        hook.get_collection("celery_users", "tests").drop()
    with PostgresHook().get_conn() as conn:
        drop_tables(conn, "celery_users")


def test_a_run_triggered_through_the_api_runs_on_celery_workers_and_publishes_every_document(celery_api):
    run = celery_api.wait(celery_api.trigger(CONF))

    assert run["state"] == "success"
    tasks = celery_api.task_instances(run["dag_run_id"])
    pages = [task for task in tasks if task["task_id"] == "migrate_page"]
    assert len(pages) == 3 and {task["pool"] for task in pages} == {config.PAGE_POOL}
    worker_log = (Path(os.environ["AIRFLOW_HOME"]) / "celery-worker-1.log").read_text()
    for task in tasks:  # each task instance went through the Celery worker
        assert task["id"] in worker_log, task["task_id"]
    with PostgresHook().get_conn() as conn:
        assert conn.execute("SELECT count(*) FROM public.celery_users").fetchone() == (3000,)
