#!/usr/bin/env bash
# The main job on the local stack: set up, start the services, run the DAG once
# with `airflow dags test`, and print what it migrated.
#   scripts/migrate-local.sh            100,000 users (a few minutes on the local server)
#   scripts/migrate-local.sh 1000000    the full million
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
USERS=${1:-100000}
cd "$ROOT"
bash scripts/setup.sh
eval "$(bash scripts/stack.sh start)"
bash scripts/airflow-init.sh

log=$ROOT/.stack/last-run.log
echo "Migrating $USERS users with airflow dags test (log: $log)"
started=$(date +%s)
if ! .venv/bin/airflow dags test mongo_to_postgres -c "{\"seed_users\": $USERS}" >"$log" 2>&1; then
  grep -E "ERROR|Error|error" "$log" | tail -20
  echo "The run failed; see $log" >&2
  exit 1
fi
# What the operators logged: the seed, the plan, every page and the verified counts.
sed -n 's/.*\[\(info\|warning\) *\] \(.*[^ ]\) *\[airflow\.task\.operators\.mongo_migration.*/\2/p' "$log"
echo "Run took $(($(date +%s) - started)) s"
