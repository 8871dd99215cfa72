"""90 page tasks at once, for real: the compose file's Celery shape (3 workers x 30 slots) on this machine.

A collection of 180 pages runs with every page held inside its COPY until 90
are held at once (``tests/pages_at_once.py``); then they go on and the run
must publish every document. ``bash scripts/benchmark.sh pages-at-once``
reports the same run's figures (memory, latencies, start rate).
"""

from __future__ import annotations

import pytest
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook

from include import config
from tests.conftest import FAILPOINT_FILE, local_airflow
from tests.pages_at_once import COMPOSE_SHAPE, hold_every_page, page_timings
from tests.staging import drop_tables

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

TABLE = "ninety_users"
CONF = {
    "mode": "full",
    "seed_users": 1800,
    "items_per_page": 10,  # 180 pages: two pools' worth
    "mongo_database": "tests",
    "mongo_collection": TABLE,
    "target_table": TABLE,
}


@pytest.fixture(scope="module")
def compose_shaped_api(services):
    with local_airflow(**COMPOSE_SHAPE) as api:
        yield api
    with MongoHook() as hook:
        hook.get_collection(TABLE, "tests").drop()
    with PostgresHook().get_conn() as conn:
        drop_tables(conn, TABLE)


def test_ninety_pages_run_at_once_within_the_connection_budget_and_publish_everything(compose_shaped_api):
    api = compose_shaped_api

    run_id, peak = hold_every_page(api, FAILPOINT_FILE, CONF, pages_at_once=config.CLUSTER_SIZE)
    run = api.wait(run_id, timeout=900)

    assert peak.pages_held == peak.pages_running == config.CLUSTER_SIZE  # the pool's 90, no more
    # docs/connecting.md, "Connections and security": one target connection per running page, about 95 in all
    # with 90 pages; three MongoDB sockets per page (and this test's own three).
    assert peak.page_connections == config.CLUSTER_SIZE
    assert peak.target_connections <= 95
    assert peak.mongo_connections <= 3 * config.CLUSTER_SIZE + 3
    assert (
        peak.metadata_connections <= config.CLUSTER_SIZE + 60
    )  # docs/sizing.md: "at least the slots plus 60"
    assert run["state"] == "success"
    timings = page_timings(api.task_instances(run_id))
    assert timings["pages"] == 180 and timings["failed"] == 0
    with PostgresHook().get_conn() as conn:
        assert conn.execute(f"SELECT count(*) FROM public.{TABLE}").fetchone() == (1800,)
