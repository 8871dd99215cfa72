"""deploy/helm/values.yaml deploys what docker-compose.yaml deploys, on the official Helm chart.

No cluster and no helm here, so the test reads the files. Two files describe one deployment and
nothing else keeps them saying the same: the 90 page slots (workers x concurrency = parallelism =
MONGO_MIGRATION_CLUSTER_SIZE = the pool), the pool's name, the connections' and settings' names,
the time a worker has to finish its pages, the image. And Helm deploys a misspelt top-level key
without a word (the chart's schema rejects unknown keys only in some sections), so every key set
is checked against the chart version's key paths, deploy/helm/chart-keys.txt.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from include import config

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

ROOT = Path(__file__).resolve().parents[1]
HELM = ROOT / "deploy" / "helm"
SHARED = re.compile(r"^(AIRFLOW_CONN_|MONGO_MIGRATION_)")


@pytest.fixture(scope="module")
def values():
    return yaml.safe_load((HELM / "values.yaml").read_text())


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def _env(values) -> dict[str, str]:
    return {item["name"]: item["value"] for item in values["env"]}


def _pool(values) -> tuple[str, int]:
    """The pool the migration job sets after every install and upgrade: (name, slots)."""
    name, slots = re.search(r"pools set (\S+) (\d+)", " ".join(values["migrateDatabaseJob"]["args"])).groups()
    return name, int(slots)


def _default(value) -> str:
    """A compose value with its ``${VAR:-default}`` interpolations read as their defaults."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", str(value))


def _seconds(duration) -> float:
    """A compose duration ("10m", "600s", "1m30s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "": 1}
    return sum(float(n) * units[unit] for n, unit in re.findall(r"([\d.]+)(ms|h|m|s|)", str(duration)))


def test_the_90_page_slots_agree_everywhere(values):
    workers = values["workers"]["celery"]["replicas"] * values["config"]["celery"]["worker_concurrency"]
    cluster_size = int(_env(values)["MONGO_MIGRATION_CLUSTER_SIZE"])
    assert workers == cluster_size == values["config"]["core"]["parallelism"] == _pool(values)[1]


def test_the_pool_is_the_one_the_page_tasks_use(values):
    assert _pool(values)[0] == config.PAGE_POOL


def test_every_connection_and_setting_compose_gives_airflow_is_given_here(values, compose):
    named = {key for key in compose["x-airflow-common"]["environment"] if SHARED.match(key)}
    secret = values["secret"]
    assert all(item["secretKey"] == item["envName"] for item in secret)  # the Secret's keys are the names
    assert {item["secretName"] for item in secret} == {"mongo-migration-connections"}
    assert named - set(_env(values)) - {item["envName"] for item in secret} == set()


def test_the_settings_compose_gives_have_the_same_values_here(values, compose):
    environment = compose["x-airflow-common"]["environment"]
    for name, value in _env(values).items():
        if name.startswith("MONGO_MIGRATION_") and name in environment:
            assert value == _default(environment[name]), name


def test_a_worker_has_at_least_as_long_as_in_compose_to_finish_its_pages(values, compose):
    grace = values["workers"]["celery"]["terminationGracePeriodSeconds"]
    assert grace == 600
    stop = compose["services"]["airflow-worker"].get("stop_grace_period")
    if stop is not None:
        assert grace >= _seconds(stop)


def test_the_image_is_the_one_compose_builds(values, compose):
    image = _default(compose["x-airflow-common"]["image"]).split("@")[0]
    name = re.sub(r":[^:/]+$", "", image)  # drop the tag, not a registry's port
    repository = values["images"]["airflow"]["repository"]
    assert repository.rsplit("/", 1)[-1] == name.rsplit("/", 1)[-1]  # a registry prefix may differ


def test_every_key_set_is_one_the_chart_version_knows(values):
    lines = (HELM / "chart-keys.txt").read_text().splitlines()
    known = {line for line in lines if line and not line.startswith("#")}

    def paths(mapping, prefix=""):
        """Dotted key paths, down to where the chart's own keys stop (free-form maps such as config)."""
        for key, value in mapping.items():
            path = prefix + key
            yield path
            if isinstance(value, dict) and any(k.startswith(path + ".") for k in known):
                yield from paths(value, path + ".")

    assert sorted(set(paths(values)) - known) == []
