"""scripts/maintenance.sh, the compose file's airflow-maintenance service, on one pass."""

import os
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400


def test_one_pass_deletes_logs_past_their_retention_cleans_the_metadata_and_says_it_ran(services, tmp_path):
    logs = tmp_path / "logs"
    old = logs / "dag_id=mongo_to_postgres" / "run_id=scheduled__old" / "task_id=verify" / "attempt=1.log"
    recent = logs / "dag_id=mongo_to_postgres" / "run_id=scheduled__new" / "task_id=verify" / "attempt=1.log"
    for log in (old, recent):
        log.parent.mkdir(parents=True)
        log.write_text("a task's log\n")
    os.utime(old, (time.time() - 16 * DAY,) * 2)
    done = tmp_path / "done"
    metadata = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg", "")
    with psycopg.connect(metadata) as conn:  # an audit log line of 40 days ago, and one of now
        conn.execute(
            "INSERT INTO log (dttm, event) VALUES (now() - interval '40 days', 'maintenance-old'), "
            "(now(), 'maintenance-new')"
        )

    subprocess.run(
        ["bash", str(ROOT / "scripts" / "maintenance.sh"), "--once"],
        env={
            **os.environ,
            "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs),
            "AIRFLOW_LOG_RETENTION_DAYS": "15",
            "MAINTENANCE_DONE": str(done),
        },
        check=True,  # airflow db clean ran, and failed on no table (--error-on-cleanup-failure)
        capture_output=True,
    )

    assert not old.parent.parent.exists()  # the log and its folders
    assert recent.exists()
    assert done.exists()  # the healthcheck's proof of a pass
    with psycopg.connect(metadata) as conn:  # airflow db clean, past AIRFLOW_METADATA_RETENTION_DAYS (30)
        events = conn.execute("SELECT event FROM log WHERE event LIKE 'maintenance-%'").fetchall()
    assert events == [("maintenance-new",)]
