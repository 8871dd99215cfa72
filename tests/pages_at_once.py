"""A run whose every page holds at its failpoint until enough of them run at once, measured there.

The hold stands in for a page's work: it keeps each page task's process alive
inside its COPY, with its PostgreSQL connection and MongoDB client open, so
the peak is what the executor, the workers and the pool allow, not how long a
page of the local MongoDB server takes. Shared by tests/test_pages_at_once.py
(which asserts) and benchmarks/pages_at_once.py (which reports).
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook

from include import config

# docker-compose.yaml's shape: 3 workers x 30 slots, 90 task slots in all.
COMPOSE_SHAPE = {
    "AIRFLOW_EXECUTOR": "CeleryExecutor",
    "CELERY_WORKERS": "3",
    "CELERY_WORKER_CONCURRENCY": str(config.CLUSTER_SIZE // 3),
    "AIRFLOW_PARALLELISM": str(config.CLUSTER_SIZE),
}
CONNECTIONS = """
SELECT count(*) FILTER (WHERE application_name = 'mongo_migration:migrate_page'),
       count(*) FILTER (WHERE backend_type = 'client backend')
FROM pg_stat_activity
"""


@dataclass
class Peak:
    """The moment the wanted number of pages were held at once."""

    seconds_from_trigger: float
    pages_held: int
    pages_running: int  # migrate_page task instances the API shows running
    page_connections: int  # the target's connections named mongo_migration:migrate_page
    target_connections: int  # every client connection of the target
    metadata_connections: int  # every client connection of Airflow's metadata database
    mongo_connections: int  # the MongoDB server's current connections
    task_pss_mb: list[float]  # proportional memory of each held page's task process
    supervisor_pss_mb: list[float]  # of each one's parent, the worker's process that supervises it
    memory_in_use_gb: float  # the machine's, MemTotal - MemAvailable


def memory_in_use_gb() -> float:
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return (int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])) / 2**20


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no Pss in /proc/{pid}/smaps_rollup")


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def hold_every_page(api, failpoint_file: Path, conf: dict, pages_at_once: int, timeout: float = 900):
    """Trigger ``conf`` with every page held after its first batch; the run id and its peak, pages resumed."""
    for leftover in failpoint_file.parent.glob(f"{failpoint_file.name}*"):
        leftover.unlink()
    failpoint_file.write_text("page_batch_copied * 1")
    try:
        triggered = time.monotonic()
        run_id = api.trigger(conf)
        deadline = triggered + timeout
        while len(held := _held(failpoint_file)) < pages_at_once:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(held)} pages held at once after {timeout} s, never {pages_at_once}")
            time.sleep(0.2)
    finally:
        failpoint_file.unlink()  # no later page holds
    seconds = time.monotonic() - triggered
    held = _held(failpoint_file)
    pids = [int(path.read_text()) for path in held]
    running = [
        ti
        for ti in api.task_instances(run_id)
        if ti["task_id"] == "migrate_page" and ti["state"] == "running"
    ]
    with PostgresHook().get_conn() as conn:
        page_connections, target_connections = conn.execute(CONNECTIONS).fetchone()
    with psycopg.connect(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg", "")) as conn:
        _, metadata_connections = conn.execute(CONNECTIONS).fetchone()
    with MongoHook() as hook:
        mongo_connections = hook.get_conn().admin.command("serverStatus")["connections"]["current"]
    peak = Peak(
        seconds_from_trigger=round(seconds, 1),
        pages_held=len(held),
        pages_running=len(running),
        page_connections=page_connections,
        target_connections=target_connections,
        metadata_connections=metadata_connections,
        mongo_connections=mongo_connections,
        task_pss_mb=[round(pss_mb(pid), 1) for pid in pids],
        supervisor_pss_mb=[round(pss_mb(parent(pid)), 1) for pid in pids],
        memory_in_use_gb=round(memory_in_use_gb(), 2),
    )
    Path(f"{failpoint_file}.resume").touch()
    return run_id, peak


def _held(failpoint_file: Path) -> list[Path]:
    return [
        path for path in failpoint_file.parent.glob(f"{failpoint_file.name}.held.*") if path.suffix != ".tmp"
    ]


def page_timings(task_instances: list[dict]) -> dict:
    """Queue-to-start latencies, start rate and failures of the pages, from their task instances."""
    pages = [ti for ti in task_instances if ti["task_id"] == "migrate_page"]
    queued = [_moment(ti["queued_when"]) for ti in pages]
    starts = [_moment(ti["start_date"]) for ti in pages]
    latencies = sorted(start - queue for start, queue in zip(starts, queued, strict=True))
    return {
        "pages": len(pages),
        "failed": sum(ti["state"] != "success" for ti in pages),
        "queued_to_start_median_s": round(statistics.median(latencies), 2),
        "queued_to_start_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
        "starts_per_second": round((len(starts) - 1) / (max(starts) - min(starts)), 2),
    }


def _moment(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
