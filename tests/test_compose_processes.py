"""docker-compose.yaml run: its Airflow services as processes of this machine, as their containers would.

No container engine runs here, so the api-server, scheduler, dag-processor, triggerer and two Celery
workers run as processes, each in its own copy of what the Dockerfile puts in the image, with the
environment the compose file gives them from a ``.env`` made of ``.env.example`` (test secrets filled in,
four slots on two workers). A stack of their own stands in for the backing services; only host names
and ports differ. Its users DAG runs on the workers: the night's scheduled full copy when it is
unpaused, then an incremental run triggered through the REST API; a third run shows a running page's
log read from its worker (the shared ``[api] secret_key``) and a worker stopped mid-page finishing it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import requests
from cryptography.fernet import Fernet
from pymongo import MongoClient

from include import config
from mongo_migration.users import seed_users
from tests.airflow_api import DAG_ID, AirflowApi
from tests.compose import ROOT, OnThisMachine, read_env_file

# It runs the deployment's processes (Redis, PgBouncer, Celery workers) itself.
pytestmark = [pytest.mark.system, pytest.mark.services]

# The backing services' stand-ins, on ports of their own: scripts/stack.sh with these.
STACK = {
    "STACK_DIR": str(ROOT / ".stack-compose"),
    "PG_PORT": "55435",
    "TARGET_PG_PORT": "55445",
    "BOUNCER_PORT": "55455",
    "MONGO_PORT": "57020",
    "SECANTUS_VENV": str(ROOT / ".stack-test" / "secantus-venv"),  # the other tests' server, installed once
}
API_PORT, REDIS_PORT = 8128, 56391
SUPERUSER = "postgres:migrator-local"  # scripts/stack.sh's
USERS = 20_000
FAILPOINT = ROOT / ".stack-compose" / "failpoint" / "armed"


def stack(command: str) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack.sh"), command], env={**os.environ, **STACK}, check=True
    )


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """The ``.env``: .env.example with every secret given a value, four slots, and the stand-in source."""
    example = read_env_file(ROOT / ".env.example")
    secrets = {
        key: f"test-{key.lower().replace('_', '-')}"
        for key, value in example.items()
        if not value and not key.startswith("AIRFLOW_CONN_")  # empty connections: the demo's, or none
    }
    return {
        **example,
        **secrets,
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "MONGO_MIGRATION_CLUSTER_SIZE": "4",
        "AIRFLOW_WORKERS": "2",
        "AIRFLOW_BASE_URL": f"http://127.0.0.1:{API_PORT}",
        # A replica set of its own, in the JSON form (the demo's MongoDB would be mongo:27017, rs0).
        "AIRFLOW_CONN_MONGO_DEFAULT": json.dumps(
            {
                "conn_type": "mongo",
                "host": f"127.0.0.1:{STACK['MONGO_PORT']}",
                "extra": {"replicaSet": "secantus"},
            }
        ),
    }


@pytest.fixture(scope="module")
def backing_services(env, tmp_path_factory):
    """PostgreSQL (metadata, as user airflow), the target (its role made by deploy/roles, as the demo
    target's first start does), Redis with its password, and a MongoDB-compatible replica set."""
    stack("stop")  # new volumes, as a first `docker compose up` has
    shutil.rmtree(STACK["STACK_DIR"], ignore_errors=True)
    stack("start")
    metadata = f"postgresql://{SUPERUSER}@127.0.0.1:{STACK['PG_PORT']}/airflow"
    with psycopg.connect(metadata, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE airflow LOGIN PASSWORD '{env['AIRFLOW_DB_PASSWORD']}'")
        conn.execute("ALTER DATABASE airflow OWNER TO airflow; ALTER SCHEMA public OWNER TO airflow")
    initdb = (
        (ROOT / "deploy" / "roles" / "postgres-initdb.sh")
        .read_text()
        .replace("/roles/", f"{ROOT}/deploy/roles/")
    )
    subprocess.run(
        ["bash", "-c", initdb],
        env={
            **os.environ,
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": "target",
            "PGHOST": "127.0.0.1",
            "PGPORT": STACK["TARGET_PG_PORT"],
            "PGPASSWORD": SUPERUSER.split(":")[1],
            "TARGET_DB_PASSWORD": env["TARGET_DB_PASSWORD"],
        },
        check=True,
        capture_output=True,
    )
    redis = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            env["REDIS_PASSWORD"],
        ],
        stdout=subprocess.DEVNULL,
    )
    source = MongoClient(f"mongodb://127.0.0.1:{STACK['MONGO_PORT']}/?directConnection=true")
    seed_users(source.app.users, USERS, config.FAKER_SEED)
    yield source.app.users
    redis.terminate()
    redis.wait()
    stack("stop")


@pytest.fixture(scope="module")
def deployment(env, backing_services, tmp_path_factory):
    """airflow-init, then the api-server, scheduler, dag-processor, triggerer and two workers; the API."""
    FAILPOINT.parent.mkdir(parents=True, exist_ok=True)
    compose = OnThisMachine(
        tmp_path_factory.mktemp("compose"),
        env,
        hosts={
            "@postgres/": f"@127.0.0.1:{STACK['PG_PORT']}/",
            "@redis:6379/": f"@127.0.0.1:{REDIS_PORT}/",
            "http://airflow-apiserver:8080/": f"http://127.0.0.1:{API_PORT}/",
            "@target-postgres:5432/": f"@127.0.0.1:{STACK['TARGET_PG_PORT']}/",
        },
        extra_env={"MONGO_MIGRATION_FAILPOINT": str(FAILPOINT)},  # the tests' hold on a page
    )
    try:
        assert compose.start("airflow-init").wait(timeout=600) == 0, compose.log("airflow-init")
        compose.start("airflow-apiserver", arguments=("--port", str(API_PORT)))
        for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
            compose.start(name)
        compose.start("airflow-worker", "airflow-worker-1")
        # Another container would have its own network: on this one, its log server needs another port.
        compose.start("airflow-worker", "airflow-worker-2", AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="8795")
        url = f"http://127.0.0.1:{API_PORT}"
        deadline = time.monotonic() + 300
        while not _answers(f"{url}/api/v2/monitor/health"):
            assert time.monotonic() < deadline, compose.log("airflow-apiserver")[-3000:]
            time.sleep(1)
        yield compose, AirflowApi(url, env["AIRFLOW_ADMIN_PASSWORD"])
    finally:
        compose.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.ConnectionError:
        return False


def test_the_nights_scheduled_run_copies_in_full_on_the_workers_and_a_triggered_one_applies_the_changes(
    deployment, backing_services
):
    compose, api = deployment
    source = backing_services
    api.wait_for_dag()  # unpaused: the scheduler starts the run of the last night's 02:00 at once

    [scheduled] = _runs_when_there(api, 1)
    full = api.wait(scheduled["dag_run_id"])
    source.update_many({"age": {"$lt": 30}}, {"$inc": {"age": 100}})
    source.delete_one({"username": source.find_one({}, sort=[("_id", -1)])["username"]})
    incremental = api.wait(api.trigger({}))

    assert (scheduled["run_type"], full["state"], incremental["state"]) == ("scheduled", "success", "success")
    assert [dag["dag_id"] for dag in api.get("dags")["dags"]] == [DAG_ID]  # the example orders is not shipped
    first = {(ti["task_id"], ti["state"]) for ti in api.task_instances(full["dag_run_id"])}
    second = {(ti["task_id"], ti["state"]) for ti in api.task_instances(incremental["dag_run_id"])}
    assert ("migrate_page", "success") in first and ("migrate_page", "skipped") in second
    workers = compose.log("airflow-worker-1") + compose.log("airflow-worker-2")
    for ti in api.task_instances(full["dag_run_id"]):  # every task ran on a Celery worker
        assert ti["id"] in workers, ti["task_id"]
    target = env_target(compose)
    with psycopg.connect(target) as conn:
        rows = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE age >= 100) FROM public.users"
        ).fetchone()
    assert rows == (USERS - 1, source.count_documents({"age": {"$gte": 100}}))


def test_a_running_pages_log_is_read_from_its_worker_and_a_stopped_worker_finishes_its_pages(
    deployment, backing_services
):
    compose, api = deployment
    api.wait_for_dag()
    for run in _runs_when_there(api, 1):  # the scheduled run the unpause started, and any other
        api.wait(run["dag_run_id"])
    for leftover in FAILPOINT.parent.glob("*"):
        leftover.unlink()
    FAILPOINT.write_text("page_batch_copied * 1")  # every page holds after its first batch
    run_id = api.trigger({"mode": "full", "items_per_page": 2000})
    deadline = time.monotonic() + 300
    while len(held := [path for path in FAILPOINT.parent.glob("armed.held.*") if path.suffix != ".tmp"]) < 4:
        assert time.monotonic() < deadline, f"{len(held)} pages held"
        time.sleep(0.5)
    FAILPOINT.unlink()

    running = [
        ti
        for ti in api.task_instances(run_id)
        if ti["task_id"] == "migrate_page" and ti["state"] == "running"
    ]
    sources = [_log_sources(api, run_id, ti) for ti in running]
    worker = compose.processes["airflow-worker-2"]
    worker.send_signal(signal.SIGTERM)  # what docker compose stop sends first
    deadline = time.monotonic() + 60
    while "Warm shutdown" not in compose.log("airflow-worker-2"):
        assert time.monotonic() < deadline, compose.log("airflow-worker-2")[-3000:]
        time.sleep(0.5)
    still_running = worker.poll() is None  # waiting for its pages, not killing them
    Path(f"{FAILPOINT}.resume").touch()
    run = api.wait(run_id)
    worker.wait(timeout=120)

    assert len(running) == 4
    assert not [source for source in sources if any("secret_key" in line for line in source)]
    served = [source for source in sources if any(":8793/log/" in line for line in source)]
    assert served, sources  # the pages on the worker with the compose file's log port, read from it
    assert still_running
    assert run["state"] == "success"
    pages = [ti for ti in api.task_instances(run_id) if ti["task_id"] == "migrate_page"]
    assert len(pages) == 10 and {ti["try_number"] for ti in pages} == {1}  # none killed, none retried
    with psycopg.connect(env_target(compose)) as conn:
        assert conn.execute("SELECT count(*) FROM public.users").fetchone() == (USERS - 1,)


def _runs_when_there(api: AirflowApi, count: int, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(runs := api.get(f"dags/{DAG_ID}/dagRuns")["dag_runs"]) < count:
        assert time.monotonic() < deadline, f"{len(runs)} runs, not {count}"
        time.sleep(1)
    return runs


def _log_sources(api: AirflowApi, run_id: str, ti: dict) -> list[str]:
    """Where the API server read a task instance's log from: the lines of its source details."""
    log = api.get(
        f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/migrate_page/logs/{ti['try_number']}",
        map_index=ti["map_index"],
        full_content="true",
    )
    events = [str(line.get("event", "")) if isinstance(line, dict) else str(line) for line in log["content"]]
    return events[: events.index("::endgroup::")] if "::endgroup::" in events else events


def env_target(compose: OnThisMachine) -> str:
    """The target as the DAG reaches it: the compose file's connection, on this machine."""
    connection = compose.environment("airflow-worker", Path("/nowhere"))["AIRFLOW_CONN_POSTGRES_DEFAULT"]
    return connection
