"""docker-compose.yaml, read and checked as a file (tests/test_compose_processes.py runs it)."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from include import config
from tests.compose import interpolate, load, read_env_file

ROOT = Path(__file__).resolve().parents[1]
ONE_SHOT = {"airflow-init", "demo-seed", "airflow-cli"}  # they run to completion; the others keep running
DEMO = {"mongo", "target-postgres", "demo-seed"}  # behind the profile "demo"
AIRFLOW = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
    "airflow-maintenance",
    "airflow-cli",
    "flower",
    "demo-seed",
}
SECRET_NAME = re.compile(
    r"PASSWORD|SECRET|FERNET|_KEY|_CONN_|SQL_ALCHEMY_CONN|RESULT_BACKEND|BROKER_URL|BASIC_AUTH"
)
VARIABLE = re.compile(r"\$\{(\w+)")
EXAMPLE = read_env_file(ROOT / ".env.example")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def shipped() -> dict:
    """The file as compose reads it with .env.example, its secrets given values."""
    secrets = {
        key: f"test-{key.lower()}" for key, value in EXAMPLE.items() if not value and "_CONN_" not in key
    }
    return load({**EXAMPLE, **secrets})


def test_it_has_the_official_celery_layout_with_maintenance_metrics_and_the_demo(compose, services):
    assert "x-airflow-common" in compose
    assert set(services) == AIRFLOW | {"postgres", "redis", "mongo", "target-postgres", "statsd-exporter"}
    assert services["flower"]["profiles"] == ["flower"]
    assert services["statsd-exporter"]["profiles"] == ["metrics"]
    assert services["airflow-cli"]["profiles"] == ["cli"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists() if source.startswith("./") else source in compose["volumes"]


def test_every_long_running_service_has_a_healthcheck_and_rotated_logs(services):
    missing = [
        name for name, service in services.items() if name not in ONE_SHOT and "healthcheck" not in service
    ]
    assert missing == []
    for name, service in services.items():
        assert service["logging"]["options"]["max-size"], name


def test_every_image_is_pinned_and_the_projects_is_the_release_named_by_version(services):
    dockerfile = (ROOT / "Dockerfile").read_text()
    airflow_pin = re.search(r"^apache-airflow==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)[1]
    assert f"FROM apache/airflow:{airflow_pin}\n" in dockerfile
    release = f"mongo-to-postgres-airflow:{(ROOT / 'VERSION').read_text().strip()}"
    assert EXAMPLE["MONGO_MIGRATION_IMAGE"] == release
    for name, service in services.items():
        image = interpolate(service["image"], {})
        if name in AIRFLOW:
            assert image == release, name
        else:
            tag = image.partition(":")[2]
            assert re.match(r"v?\d+\.\d+", tag), (name, image)  # a minor or patch release, never "latest"
    assert re.search(r"pinned on \d{4}-\d\d-\d\d", (ROOT / "docker-compose.yaml").read_text())


def test_the_image_carries_the_code_and_only_development_mounts_it(services):
    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in ("dags", "plugins", "include"):
        assert f"COPY --chown=airflow:0 {folder}/ /opt/airflow/{folder}/" in dockerfile
        for name in AIRFLOW:
            mounts = [volume.split(":")[0] for volume in services[name].get("volumes", [])]
            assert f"./{folder}" not in mounts, name
    assert "include/mappings/orders.yaml" in (ROOT / ".dockerignore").read_text().split()  # the example
    development = yaml.safe_load((ROOT / "docker-compose.dev.yaml").read_text())["services"]
    assert set(development) == AIRFLOW
    assert "./dags:/opt/airflow/dags" in development["airflow-worker"]["volumes"]


def test_no_secret_is_written_inline_and_env_example_lists_every_one(services):
    required = set()
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if SECRET_NAME.search(key):
                assert "${" in str(value), (name, key)
                required |= set(VARIABLE.findall(str(value)))
    assert required <= set(EXAMPLE), required - set(EXAMPLE)
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_one_variable_sizes_the_parallelism_the_workers_slots_the_pool_and_the_dag(shipped):
    services = shipped["services"]
    cluster_size, workers = int(EXAMPLE["MONGO_MIGRATION_CLUSTER_SIZE"]), int(EXAMPLE["AIRFLOW_WORKERS"])
    assert cluster_size == config.CLUSTER_SIZE == 90  # the DAG's, where the variable is unset
    worker = services["airflow-worker"]
    environment = worker["environment"]
    assert int(environment[config.CLUSTER_SIZE_VARIABLE]) == int(environment["AIRFLOW__CORE__PARALLELISM"])
    assert int(worker["deploy"]["replicas"]) == workers
    concurrency = re.search(r'--concurrency "\$\(\( (.+) \)\)"', worker["command"][-1])[1]
    # bash's arithmetic: integers, division rounding down
    slots = eval(re.sub(r"[A-Z_]+", lambda name: environment[name[0]], concurrency).replace("/", "//"))
    assert slots * workers == cluster_size
    init = services["airflow-init"]["command"][-1]
    assert f'pools set {config.PAGE_POOL} "${{{config.CLUSTER_SIZE_VARIABLE}}}"' in init
    sizing = " ".join((ROOT / "docs" / "sizing.md").read_text().split())
    target = services["target-postgres"]["command"]
    headroom = int(re.search(r"`max_connections` of at least the slots plus (\d+)", sizing)[1])
    assert int(target[target.index("-c") + 1].split("=")[1]) >= cluster_size + headroom
    metadata = services["postgres"]["command"]
    headroom = int(
        re.search(r"metadata PostgreSQL.*?`max_connections` of at least the slots plus (\d+)", sizing)[1]
    )
    assert int(metadata[metadata.index("-c") + 1].split("=")[1]) >= cluster_size + headroom


def test_every_component_shares_the_secrets_that_sign_tokens_and_log_requests(compose):
    environment = compose["x-airflow-common"]["environment"]
    assert environment["AIRFLOW__API_AUTH__JWT_SECRET"] == "${AIRFLOW_JWT_SECRET:?set it in .env}"
    assert environment["AIRFLOW__API__SECRET_KEY"] == "${AIRFLOW_API_SECRET_KEY:?set it in .env}"
    assert (
        environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    )
    assert environment["PYTHONPATH"] == "/opt/airflow:/opt/airflow/plugins"  # include/ and python -m


def test_a_stopped_worker_finishes_its_pages_before_docker_kills_it(services):
    worker = services["airflow-worker"]
    minutes = int(re.fullmatch(r"(\d+)m", worker["stop_grace_period"])[1])
    assert minutes * 60 >= 300  # a page of 8000 takes seconds on MongoDB; its task's timeout is 30 minutes
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"  # SIGTERM to Celery alone: a warm shutdown


def test_every_published_port_listens_on_localhost_and_flower_asks_for_a_password(shipped):
    for name, service in shipped["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    assert shipped["services"]["flower"]["environment"]["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"].startswith(
        "admin:test-"
    )


def test_production_uses_the_fab_auth_manager_and_no_task_holds_an_admin_password(compose, services):
    environment = compose["x-airflow-common"]["environment"]
    manager = environment["AIRFLOW__CORE__AUTH_MANAGER"]
    assert manager == "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    module, _, name = manager.rpartition(".")
    assert getattr(importlib.import_module(module), name)  # the pinned provider has it
    assert re.search(r"^apache-airflow-providers-fab==", (ROOT / "requirements.txt").read_text(), re.M)
    assert not [
        key for key in environment if "SIMPLE_AUTH_MANAGER" in key or key.startswith("AIRFLOW_CONN_AIRFLOW")
    ]
    assert "airflow users create --role Admin" in services["airflow-init"]["command"][-1]


def test_a_deployment_does_not_allow_seeding_the_source(compose):
    assert "MONGO_MIGRATION_ALLOW_SEEDING" not in compose["x-airflow-common"]["environment"]


def test_the_demo_databases_and_seed_sit_behind_a_profile_and_no_airflow_service_needs_them(services):
    assert {name for name, service in services.items() if service.get("profiles") == ["demo"]} == DEMO
    for name, service in services.items():
        if name not in DEMO:
            assert not set(service.get("depends_on", {})) & DEMO, name


def test_the_dags_reach_the_demo_databases_as_the_least_privileged_roles_of_deploy_roles(compose, services):
    environment = compose["x-airflow-common"]["environment"]
    mongo, postgres = environment["AIRFLOW_CONN_MONGO_DEFAULT"], environment["AIRFLOW_CONN_POSTGRES_DEFAULT"]
    assert mongo.startswith("${AIRFLOW_CONN_MONGO_DEFAULT:-mongo://migrator:") and "@mongo:27017/" in mongo
    assert postgres.startswith("${AIRFLOW_CONN_POSTGRES_DEFAULT:-postgresql://mongo_migration:")
    assert "replicaSet=rs0" in mongo  # the demo source's replica set
    assert "./deploy/roles/mongo.js:/docker-entrypoint-initdb.d/mongo.js:ro" in services["mongo"]["volumes"]
    assert 'user: "migrator"' in (ROOT / "deploy" / "roles" / "mongo.js").read_text()
    target = services["target-postgres"]
    assert target["environment"]["POSTGRES_USER"] == "postgres"  # the admin, which only the init script uses
    assert "-v role=mongo_migration" in (ROOT / "deploy" / "roles" / "postgres-initdb.sh").read_text()


def test_the_demo_seed_writes_only_into_the_demo_source_whatever_env_says(services):
    seed = services["demo-seed"]
    assert seed["command"] == ["python", "-m", "mongo_migration.demo", "users", "100000"]
    assert seed["environment"]["MONGO_MIGRATION_ALLOW_SEEDING"] == "true"  # for itself alone
    connection = seed["environment"]["AIRFLOW_CONN_MONGO_DEFAULT"]
    assert "${AIRFLOW_CONN_MONGO_DEFAULT" not in connection and "@mongo:27017/" in connection
    assert seed["depends_on"]["mongo"] == {"condition": "service_healthy"}


def test_the_demo_source_is_a_one_node_replica_set_with_a_keyfile_that_initiates_itself(services):
    mongo = services["mongo"]
    start = " ".join(mongo["entrypoint"])
    assert "mongod --replSet rs0 --keyFile /data/keyfile" in start and "chmod 400 /data/keyfile" in start
    assert "--oplogSizeMB" in start
    check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'mongo:27017'}]})" in check
    assert "isWritablePrimary" in check  # healthy once it is the primary, not as soon as the set exists


def test_logs_and_metadata_are_cleaned_daily_and_metrics_and_the_heartbeat_can_be_turned_on(
    compose, services
):
    maintenance = services["airflow-maintenance"]
    assert maintenance["command"] == ["bash", "/opt/airflow/scripts/maintenance.sh"]
    assert (
        "COPY --chown=airflow:0 scripts/maintenance.sh /opt/airflow/scripts/maintenance.sh"
        in (ROOT / "Dockerfile").read_text()
    )
    environment = compose["x-airflow-common"]["environment"]
    assert environment["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter"
    assert "AIRFLOW_CONN_MONGO_MIGRATION_HEARTBEAT" in environment


@pytest.mark.parametrize("size", ["ninety", "0"])
def test_a_cluster_size_that_is_no_number_of_tasks_is_refused_naming_the_variable(size):
    imported = subprocess.run(
        [sys.executable, "-c", "import include.config"],
        cwd=ROOT,
        env={**os.environ, config.CLUSTER_SIZE_VARIABLE: size},
        capture_output=True,
        text=True,
    )
    assert (
        f"MONGO_MIGRATION_CLUSTER_SIZE is '{size}': it must be a whole number of page tasks"
        in imported.stderr
    )
