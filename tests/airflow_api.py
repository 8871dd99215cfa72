"""Airflow's REST API as a person or a script uses it: log in, unpause, trigger, wait, read results."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

DAG_ID = "mongo_to_postgres"
AIRFLOW_LOCAL = Path(__file__).resolve().parents[1] / "scripts" / "airflow-local.sh"


def admin_password(home: Path) -> str:
    """The admin's password that the simple auth manager of the API server whose home is ``home`` keeps."""
    return json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]


class AirflowApi:
    """A session with the API server at ``url``, logged in as admin with ``password``."""

    def __init__(self, url: str, password: str):
        self.url = url
        token = requests.post(
            f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=30
        )
        token.raise_for_status()
        self.session = requests.Session()
        self.slow_answers = 0
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def get(self, path: str, **params) -> dict:
        response = self.session.get(f"{self.url}/api/v2/{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def wait_for_dag(self, dag_id: str = DAG_ID, timeout: float = 180) -> None:
        """Wait until the DAG processor has parsed the DAG, then unpause it."""
        deadline = time.monotonic() + timeout
        while self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=30).status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} did not appear in {timeout} s")
            time.sleep(1)
        response = self.session.patch(
            f"{self.url}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=30
        )
        response.raise_for_status()

    def trigger(self, conf: dict, dag_id: str = DAG_ID) -> str:
        """Start a run with ``conf`` now; its run id."""
        response = self.session.post(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}, timeout=30
        )
        response.raise_for_status()
        return response.json()["dag_run_id"]

    def wait(self, run_id: str, dag_id: str = DAG_ID, timeout: float = 600) -> dict:
        """The run once it has ended (success or failed); ``slow_answers`` counts the polls the API
        server left unanswered for 30 s (a busy one), which are asked again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                run = self.get(f"dags/{dag_id}/dagRuns/{run_id}")
            except requests.ReadTimeout:
                self.slow_answers += 1
                run = {"state": "unanswered"}
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['state']} after {timeout} s")
            time.sleep(1)

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict]:
        """Every task instance of the run, page by page (the API gives 100 at most at a time)."""
        instances: list[dict] = []
        while True:
            page = self.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100, offset=len(instances))
            instances += page["task_instances"]
            if not page["task_instances"] or len(instances) >= page["total_entries"]:
                return instances

    def result(self, run_id: str, task_id: str, dag_id: str = DAG_ID):
        """What a task returned (its ``return_value`` XCom)."""
        value = self.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value")
        return json.loads(value["value"]) if isinstance(value["value"], str) else value["value"]


@contextmanager
def running_airflow(env: dict[str, str]) -> Iterator[AirflowApi]:
    """``scripts/airflow-local.sh`` started with ``env`` (stack, port, settings); stopped after."""
    subprocess.run(["bash", str(AIRFLOW_LOCAL), "start"], env=env, check=True, capture_output=True)
    try:
        api = AirflowApi(f"http://127.0.0.1:{env['AIRFLOW_PORT']}", admin_password(Path(env["AIRFLOW_HOME"])))
        api.wait_for_dag()
        yield api
    finally:
        subprocess.run(["bash", str(AIRFLOW_LOCAL), "stop"], env=env, check=True, capture_output=True)
