#!/usr/bin/env bash
# What airflow-init does in docker-compose.yaml, for the local stack: migrate Airflow's
# metadata database and create the page tasks' pool. Run with the stack's environment set.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/.venv/bin/airflow" db migrate >/dev/null
read -r pool slots < <(cd "$ROOT" && .venv/bin/python -c "from include import config; print(config.PAGE_POOL, config.CLUSTER_SIZE)")
"$ROOT/.venv/bin/airflow" pools set "$pool" "$slots" "migrate_page tasks of mongo_to_postgres" >/dev/null
