"""Airflow's REST API as a person or a script uses it: log in, unpause, trigger, wait, read results."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

DAG_ID = "mongo_to_postgres"


class AirflowApi:
    """A logged-in session with the API server at ``url`` whose home folder is ``home``."""

    def __init__(self, url: str, home: Path):
        self.url = url
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        token = requests.post(
            f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=30
        )
        token.raise_for_status()
        self.session = requests.Session()
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
        """The run once it has ended (success or failed)."""
        deadline = time.monotonic() + timeout
        while (run := self.get(f"dags/{dag_id}/dagRuns/{run_id}"))["state"] not in ("success", "failed"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['state']} after {timeout} s")
            time.sleep(1)
        return run

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict]:
        return self.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]

    def result(self, run_id: str, task_id: str, dag_id: str = DAG_ID):
        """What a task returned (its ``return_value`` XCom)."""
        value = self.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value")
        return json.loads(value["value"]) if isinstance(value["value"], str) else value["value"]
