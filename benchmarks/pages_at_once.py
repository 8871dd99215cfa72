"""Pages-at-once benchmark: the compose file's Celery shape (3 workers x 30 slots) on this machine.

Airflow runs on the local stack with ``scripts/airflow-local.sh`` in that
shape; a collection of 180 pages runs with every page held inside its COPY
until 90 are held at once (``tests/pages_at_once.py``), then the pages go on
and the run ends. Reported: how long the 90 took to start, what the machine
and the servers held at that peak, and from the task instances the start
rate, the time from queued to running, the most pages running at once and
failures. ``--setting NAME=VALUE`` (repeatable) adds Airflow settings, to
compare a tuning against the defaults.

    bash scripts/benchmark.sh pages-at-once [--setting AIRFLOW__API__WORKERS=2 ...]
    bash scripts/benchmark.sh pages-at-once --pages 8 --at-once 4 --label try   # a quick try, not a result
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import asdict
from pathlib import Path

from airflow.providers.mongo.hooks.mongo import MongoHook

from benchmarks.machine import RESULTS, machine, measured_on, save_results
from include import config
from mongo_migration.failpoint import FAILPOINT_VARIABLE
from tests.airflow_api import running_airflow
from tests.pages_at_once import COMPOSE_SHAPE, hold_every_page, memory_in_use_gb, page_timings

DATABASE, COLLECTION = "benchmark", "pages_at_once_users"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=180)
    parser.add_argument(
        "--at-once",
        type=int,
        default=config.CLUSTER_SIZE,
        help="pages held at once before they all go on; fewer only to try the benchmark out quickly",
    )
    parser.add_argument("--setting", action="append", default=[], help="NAME=VALUE for Airflow's environment")
    parser.add_argument(
        "--label", default="defaults", help="what this run's settings are called in the results"
    )
    args = parser.parse_args()
    settings = dict(setting.split("=", 1) for setting in args.setting)
    failpoint_file = Path(os.environ["AIRFLOW_HOME"]) / "failpoint" / "armed"
    failpoint_file.parent.mkdir(parents=True, exist_ok=True)
    conf = {
        "mode": "full",
        "seed_users": args.pages * 10,
        "items_per_page": 10,
        "mongo_database": DATABASE,
        "mongo_collection": COLLECTION,
        "target_table": COLLECTION,
    }

    before_airflow = memory_in_use_gb()
    env = {
        **os.environ,
        **COMPOSE_SHAPE,
        "AIRFLOW_PORT": "8088",
        FAILPOINT_VARIABLE: str(failpoint_file),
        **settings,
    }
    with running_airflow(env) as api:
        idle = memory_in_use_gb()
        run_id, peak = hold_every_page(api, failpoint_file, conf, pages_at_once=args.at_once)
        run = api.wait(run_id, timeout=1800)
        timings = page_timings(api.task_instances(run_id))
    with MongoHook() as hook:
        hook.get_collection(COLLECTION, DATABASE).drop()

    figures = {
        "label": args.label,
        "settings": settings,
        "run": run["state"],
        "api_polls_unanswered_for_30_s": api.slow_answers,
        "seconds_to_90_held": peak.seconds_from_trigger,
        **timings,
        "page_connections_at_peak": peak.page_connections,
        "target_connections_at_peak": peak.target_connections,
        "metadata_connections_at_peak": peak.metadata_connections,
        "mongo_connections_at_peak": peak.mongo_connections,
        "task_process_pss_mb_median": statistics.median(peak.task_pss_mb),
        "supervisor_pss_mb_median": statistics.median(peak.supervisor_pss_mb),
        "memory_gb_before_airflow": round(before_airflow, 2),
        "memory_gb_airflow_idle": round(idle, 2),
        "memory_gb_at_peak": peak.memory_in_use_gb,
        "peak": asdict(peak),
        "measured": measured_on(),
        "machine": machine(),
    }
    path = RESULTS / "pages_at_once.json"
    runs = json.loads(path.read_text()) if path.exists() else {}  # one column per labelled run
    runs[args.label] = figures
    save_results("pages_at_once", runs, markdown(runs))


def markdown(runs: dict) -> str:
    """One column per labelled run."""
    rows = [
        ("settings", lambda r: ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "the defaults"),
        ("run", lambda r: r["run"]),
        (
            "the benchmark's polls of the run left unanswered for 30 s",
            lambda r: r["api_polls_unanswered_for_30_s"],
        ),
        ("pages (failed)", lambda r: f"{r['pages']} ({r['failed']})"),
        (
            "pages held at once (running, says the API)",
            lambda r: f"{r['peak']['pages_held']} ({r['peak']['pages_running']})",
        ),
        ("seconds from trigger until that many pages were held", lambda r: r["seconds_to_90_held"]),
        ("page tasks started per second", lambda r: r["starts_per_second"]),
        (
            "queued → running, median / 95th percentile (s)",
            lambda r: f"{r['queued_to_start_median_s']} / {r['queued_to_start_p95_s']}",
        ),
        (
            "target connections at the peak (of pages)",
            lambda r: f"{r['target_connections_at_peak']} ({r['page_connections_at_peak']})",
        ),
        ("metadata connections at the peak", lambda r: r["metadata_connections_at_peak"]),
        ("MongoDB connections at the peak", lambda r: r["mongo_connections_at_peak"]),
        ("task process, median PSS (MB)", lambda r: r["task_process_pss_mb_median"]),
        ("its supervising worker process, median PSS (MB)", lambda r: r["supervisor_pss_mb_median"]),
        (
            "machine memory in use: no Airflow / idle / at the peak (GB)",
            lambda r: (
                f"{r['memory_gb_before_airflow']} / {r['memory_gb_airflow_idle']} / {r['memory_gb_at_peak']}"
            ),
        ),
    ]
    first = next(iter(runs.values()))
    lines = [
        f"Celery, 3 workers x 30 slots, pool of 90, on one machine; measured {first['measured']} "
        f"on {first['machine']}",
        "",
        "| | " + " | ".join(runs) + " |",
        "| --- |" + " ---: |" * len(runs),
    ]
    lines += [
        f"| {name} | " + " | ".join(str(value(run)) for run in runs.values()) + " |" for name, value in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
