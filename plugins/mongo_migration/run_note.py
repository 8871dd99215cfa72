"""The DAG run's note, set through Airflow's REST API: a task has no other way to write it.

Optional: without an ``airflow_api`` connection (``http://user:password@host:port``
of the API server) the note is left alone. The note is a convenience for people
reading the UI, so an API server that does not answer is logged, not fatal:
the data is published by then.
"""

from __future__ import annotations

from logging import Logger
from urllib.parse import quote

import requests
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

AIRFLOW_API_CONN_ID = "airflow_api"


def set_run_note(
    dag_id: str, run_id: str, note: str, log: Logger, conn_id: str = AIRFLOW_API_CONN_ID
) -> bool:
    """Write ``note`` on the run; whether it was written."""
    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.info("No %r connection: the run's note is left alone", conn_id)
        return False
    scheme = "https" if connection.conn_type == "https" else "http"
    base_url = f"{scheme}://{connection.host}:{connection.port or 8080}"
    try:
        token = requests.post(
            f"{base_url}/auth/token",
            json={"username": connection.login, "password": connection.password},
            timeout=30,
        )
        token.raise_for_status()
        response = requests.patch(
            f"{base_url}/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}",
            json={"note": note},
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )
        response.raise_for_status()
    except requests.RequestException as error:
        status = getattr(error.response, "status_code", None) or type(error).__name__
        log.warning("Could not set the run's note through %r (%s): %s", conn_id, base_url, status)
        return False
    return True
