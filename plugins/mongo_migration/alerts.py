"""Telling people: a run that failed, missed its deadline or (when asked for) published, to a webhook.

Off until the deployment creates the Airflow connection ``ALERTS_CONN_ID``; then
each alert is one JSON POST to its URL (the connection's ``url`` extra, else
the connection itself read as a URL: ``https://host/path``), shaped for chat
webhooks (Slack, Mattermost, Teams' incoming webhooks read ``text``) with the
details beside it for anything else. The connection's extra
``{"on_success": true}`` also sends the publish of each run. The notifier is
Airflow's (``BaseNotifier``): the DAG's failure callback (once per failed run,
naming the task that failed last), the publish task's success callback, and
the DAG's ``DeadlineAlert`` callback. An alert carries no error text, which may
hold data or other sessions' SQL: its ``log_url`` leads to the task's log.

A second connection, ``HEARTBEAT_CONN_ID``, gets every publish: the URL of an
external dead man's switch (healthchecks.io, Cronitor, Dead Man's Snitch), which
pages someone when a night passes without one, as when the scheduler is down and
no run, and so no failure alert, happens at all. ``{dag_id}`` in a URL becomes
the DAG's id, so that each DAG pings a check of its own (healthchecks.io's
``https://hc-ping.com/<ping key>/{dag_id}``): one DAG's publish then never hides
another that stopped.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.exceptions import AirflowNotFoundException

ALERTS_CONN_ID = "mongo_migration_alerts"
HEARTBEAT_CONN_ID = "mongo_migration_heartbeat"
TIMEOUT_SECONDS = 10


class RunAlert(BaseNotifier):
    """POST what happened to a run (``outcome``: "failed", "published" or "missed its deadline")."""

    def __init__(self, outcome: str, conn_id: str = ALERTS_CONN_ID, deadline: str | None = None):
        super().__init__()
        self.outcome = outcome
        self.conn_id = conn_id
        self.deadline = deadline  # the deadline, for people: "4:00:00 after the run was queued"
        # The heartbeat's connection exists for publishes; the alerts' sends them when it asks for them.
        self.every_publish = conn_id == HEARTBEAT_CONN_ID

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render (no templated fields); Airflow's would ask the DAG of a DAG callback's
        context for its template environment, which the DAG ``dag.test()`` passes has not."""

    def notify(self, context: Any) -> None:
        try:
            connection = BaseHook.get_connection(self.conn_id)
        except AirflowNotFoundException:
            self.log.info("Alerts are off: no connection %r", self.conn_id)
            return
        extra = connection.extra_dejson
        asked = self.every_publish or str(extra.get("on_success", "")).lower() in ("true", "1")
        if self.outcome == "published" and not asked:
            return
        if self.deadline and _field(context.get("dag_run"), "state") == "failed":
            self.log.info("No deadline alert: the run failed before its deadline, and its failure was sent")
            return
        alert = self.alert(context)
        url = (extra.get("url") or _url(connection)).replace("{dag_id}", alert["dag_id"] or "")
        request = urllib.request.Request(
            url, json.dumps(alert).encode(), {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
            self.log.info(
                "Sent the alert %r to connection %r: HTTP %s", alert["text"], self.conn_id, answer.status
            )

    def alert(self, context: Any) -> dict:
        """The alert: a line for people (``text``) and the details it is made of."""
        run = context.get("dag_run")
        dag_id, run_id = _field(run, "dag_id"), _field(run, "run_id") or _field(run, "dag_run_id")
        ti = context.get("ti")
        details = {"dag_id": dag_id, "run_id": run_id, "outcome": self.outcome}
        if ti is not None:
            details |= {
                "task_id": ti.task_id,
                "try_number": ti.try_number,
                "log_url": getattr(ti, "log_url", None),
            }
            verified = ti.xcom_pull(task_ids="verify") if self.outcome == "published" else None
            details["summary"] = (verified or {}).get("summary")
        if context.get("reason") and self.outcome == "failed":
            details["reason"] = context["reason"]  # Airflow's: task_failure, timed_out, ...
        if self.deadline:
            details["deadline"] = self.deadline
        words = [f"{dag_id} run {run_id} {self.outcome}"]
        if details.get("task_id") and self.outcome == "failed":
            words.append(f"in task {details['task_id']} (try {details['try_number']})")
        if self.deadline:
            words.append(f"({self.deadline}): the table is not published yet")
        if details.get("log_url") and self.outcome == "failed":
            words.append(f"- its log: {details['log_url']}")
        text = " ".join(words) + (f": {details['summary']}" if details.get("summary") else "")
        return {"text": text, **details}


def _url(connection: Any) -> str:
    """A connection written as a URL (``AIRFLOW_CONN_X='https://host/path'``) read back as that URL."""
    scheme = connection.conn_type if connection.conn_type in ("http", "https") else "https"
    port = f":{connection.port}" if connection.port else ""
    return f"{scheme}://{connection.host}{port}/{(connection.schema or '').lstrip('/')}"


def _field(run: Any, name: str) -> Any:
    """A field of the run: an object in a task's context, a dict in a deadline's."""
    return run.get(name) if isinstance(run, dict) else getattr(run, name, None)
