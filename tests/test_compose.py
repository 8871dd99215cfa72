"""docker-compose.yaml, read and checked as a file: no Docker engine runs here, users run it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

from include import config

ROOT = Path(__file__).resolve().parents[1]
ONE_SHOT = {"airflow-init", "demo-seed"}  # run to completion; every other service keeps running
DEMO = {"mongo", "target-postgres", "demo-seed"}  # behind the profile "demo"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|_KEY|_CONN_|SQL_ALCHEMY_CONN|RESULT_BACKEND|BROKER_URL")
VARIABLE = re.compile(r"\$\{(\w+)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_it_has_the_official_celery_layout_with_the_source_and_the_target(compose, services):
    assert "x-airflow-common" in compose
    assert set(services) == {
        "postgres",
        "redis",
        "mongo",
        "target-postgres",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-init",
        "flower",
        "demo-seed",
    }
    assert services["flower"]["profiles"] == ["flower"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in compose["volumes"], (name, volume)


def test_every_long_running_service_has_a_healthcheck(services):
    missing = [
        name for name, service in services.items() if name not in ONE_SHOT and "healthcheck" not in service
    ]
    assert missing == []


def test_every_image_is_pinned_to_a_version(services):
    dockerfile = (ROOT / "Dockerfile").read_text()
    airflow_pin = re.search(r"^apache-airflow==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)[1]
    assert f"FROM apache/airflow:{airflow_pin}\n" in dockerfile
    for name, service in services.items():
        tag = service["image"].partition(":")[2]
        assert tag and tag != "latest" and re.match(r"\d", tag), (name, service["image"])


def test_no_secret_is_written_inline_and_env_example_lists_every_one(services):
    required = set()
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):  # a path to a secret is no secret
                assert "${" in str(value), (name, key)
                required |= set(VARIABLE.findall(str(value)))
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^(\w+)=", example, re.M))
    assert required <= listed, required - listed
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_slots_add_up_to_the_cluster_size(services):
    worker = services["airflow-worker"]
    environment = worker["environment"]
    concurrency = int(environment["AIRFLOW__CELERY__WORKER_CONCURRENCY"])
    assert concurrency * worker["deploy"]["replicas"] == config.CLUSTER_SIZE == 90
    assert int(environment["AIRFLOW__CORE__PARALLELISM"]) >= config.CLUSTER_SIZE
    init = "\n".join(services["airflow-init"]["command"])
    assert f"pools set {config.PAGE_POOL} {config.CLUSTER_SIZE} " in init
    target = services["target-postgres"]["command"]
    max_connections = int(target[target.index("-c") + 1].split("=")[1])
    # docs/sizing.md: "max_connections of at least the slots plus N" (verify, publish, readers).
    readme = " ".join((ROOT / "docs" / "sizing.md").read_text().split())
    headroom = int(re.search(r"`max_connections` of at least the slots plus (\d+)", readme)[1])
    assert max_connections >= config.CLUSTER_SIZE + headroom
    metadata = services["postgres"]["command"]
    metadata_connections = int(metadata[metadata.index("-c") + 1].split("=")[1])
    # "Airflow's metadata PostgreSQL ... max_connections of at least the slots plus N" (result backend)
    headroom = int(
        re.search(r"metadata PostgreSQL.*?`max_connections` of at least the slots plus (\d+)", readme)[1]
    )
    assert metadata_connections >= config.CLUSTER_SIZE + headroom


def test_the_project_is_mounted_and_workers_reach_the_api_with_the_shared_secret(services):
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-worker", "airflow-apiserver"):
        service = services[name]
        mounts = {volume.split(":")[1] for volume in service["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts, name
        environment = service["environment"]
        assert (
            environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
            == "http://airflow-apiserver:8080/execution/"
        )
        assert environment["AIRFLOW__API_AUTH__JWT_SECRET"] == "${AIRFLOW_JWT_SECRET:?set it in .env}"
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert environment["PYTHONPATH"] == "/opt/airflow"  # so `from include import config` works


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
    assert "airflow users create --role Admin" in "\n".join(services["airflow-init"]["command"])


def test_a_deployment_does_not_allow_seeding_the_source(compose):
    assert "MONGO_MIGRATION_ALLOW_SEEDING" not in compose["x-airflow-common"]["environment"]


def test_the_demo_databases_and_seed_sit_behind_a_profile_and_no_airflow_service_needs_them(services):
    assert {name for name, service in services.items() if service.get("profiles") == ["demo"]} == DEMO
    for name, service in services.items():
        if name not in DEMO:
            assert not set(service.get("depends_on", {})) & DEMO, name


def test_the_connections_come_from_env_with_the_demo_databases_as_defaults(compose):
    environment = compose["x-airflow-common"]["environment"]
    mongo, postgres = environment["AIRFLOW_CONN_MONGO_DEFAULT"], environment["AIRFLOW_CONN_POSTGRES_DEFAULT"]
    assert mongo.startswith("${AIRFLOW_CONN_MONGO_DEFAULT:-mongo://") and "@mongo:27017/" in mongo
    assert (
        postgres.startswith("${AIRFLOW_CONN_POSTGRES_DEFAULT:-postgresql://")
        and "@target-postgres:" in postgres
    )
    assert "replicaSet=rs0" in mongo  # the demo source's replica set
    listed = set(re.findall(r"^(\w+)=", (ROOT / ".env.example").read_text(), re.M))
    assert {
        "AIRFLOW_CONN_MONGO_DEFAULT",
        "AIRFLOW_CONN_POSTGRES_DEFAULT",
        "AIRFLOW_CONN_MONGO_MIGRATION_ALERTS",
    } <= listed


def test_the_demo_source_is_a_one_node_replica_set_with_a_keyfile_that_initiates_itself(services):
    mongo = services["mongo"]
    start = " ".join(mongo["entrypoint"])
    assert "mongod --replSet rs0 --keyFile /data/keyfile" in start and "chmod 400 /data/keyfile" in start
    assert "--oplogSizeMB" in start
    check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'mongo:27017'}]})" in check
    seed = services["demo-seed"]
    assert seed["command"] == ["python", "-m", "mongo_migration.demo", "users", "100000"]
    assert seed["environment"]["MONGO_MIGRATION_ALLOW_SEEDING"] == "true"  # for itself alone
    assert seed["depends_on"]["mongo"] == {"condition": "service_healthy"}
    assert "isWritablePrimary" in check  # healthy once it is the primary, not as soon as the set exists
