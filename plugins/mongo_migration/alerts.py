"""Telling people: a run that failed, missed its deadline or (when asked for) published, to a webhook.

Off until the deployment creates the Airflow connection ``ALERTS_CONN_ID``; then
each alert is one JSON POST to its URL (the connection's ``url`` extra, else
its own URI), shaped for chat webhooks (Slack, Mattermost, Teams' incoming
webhooks read ``text``) with the details beside it for anything else. The
connection's extra ``{"on_success": true}`` also sends the publish of each run.
The notifier is Airflow's (``BaseNotifier``): a task's failure callback, the
publish task's success callback, and the DAG's ``DeadlineAlert`` callback.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.exceptions import AirflowNotFoundException

ALERTS_CONN_ID = "mongo_migration_alerts"
TIMEOUT_SECONDS = 10


class RunAlert(BaseNotifier):
    """POST what happened to a run (``outcome``: "failed", "published" or "missed its deadline")."""

    def __init__(self, outcome: str, conn_id: str = ALERTS_CONN_ID, deadline: str | None = None):
        super().__init__()
        self.outcome = outcome
        self.conn_id = conn_id
        self.deadline = deadline  # the deadline, for people: "4:00:00 after the run was queued"

    def notify(self, context: Any) -> None:
        try:
            connection = BaseHook.get_connection(self.conn_id)
        except AirflowNotFoundException:
            self.log.info("Alerts are off: no connection %r", self.conn_id)
            return
        extra = connection.extra_dejson
        if self.outcome == "published" and not extra.get("on_success"):
            return
        alert = self.alert(context)
        url = extra.get("url") or connection.get_uri()
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
        if context.get("exception") is not None:
            details["error"] = " ".join(str(context["exception"]).split())[:2000]
        if self.deadline:
            details["deadline"] = self.deadline
        words = [f"{dag_id} run {run_id} {self.outcome}"]
        if details.get("task_id") and self.outcome == "failed":
            words.append(f"in task {details['task_id']} (try {details['try_number']})")
        if self.deadline:
            words.append(f"({self.deadline}): the table is not published yet")
        text = " ".join(words) + "".join(
            f": {details[key]}" for key in ("error", "summary") if details.get(key)
        )
        return {"text": text, **details}


def _field(run: Any, name: str) -> Any:
    """A field of the run: an object in a task's context, a dict in a deadline's."""
    return run.get(name) if isinstance(run, dict) else getattr(run, name, None)
