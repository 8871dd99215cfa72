#!/usr/bin/env bash
# What keeps a long-lived deployment small (docker-compose.yaml's airflow-maintenance service): once a
# day, delete task logs older than AIRFLOW_LOG_RETENTION_DAYS (15) and Airflow's metadata (runs, task
# instances, XComs, ...) older than AIRFLOW_METADATA_RETENTION_DAYS (30) with `airflow db clean`, then
# touch $MAINTENANCE_DONE, whose age the service's healthcheck reads. The published point each table's
# next run starts from is in the target database, not in Airflow's: cleaning never costs a full copy.
#   scripts/maintenance.sh          every day, until stopped
#   scripts/maintenance.sh --once   one pass
set -euo pipefail
logs=${AIRFLOW__LOGGING__BASE_LOG_FOLDER:-${AIRFLOW_HOME:-/opt/airflow}/logs}
log_days=${AIRFLOW_LOG_RETENTION_DAYS:-15}
metadata_days=${AIRFLOW_METADATA_RETENTION_DAYS:-30}
done_file=${MAINTENANCE_DONE:-/tmp/maintenance-done}
while true; do
  echo "maintenance: task logs older than $log_days days, metadata older than $metadata_days days"
  find "$logs" -type f -mtime +"$log_days" -print -delete | wc -l | xargs echo "maintenance: log files deleted:"
  find "$logs" -mindepth 1 -type d -empty -delete
  # A failed pass is logged and tried again tomorrow; its healthcheck turns unhealthy meanwhile.
  if airflow db clean --clean-before-timestamp "$(date -u -d "-$metadata_days days" +%Y-%m-%dT%H:%M:%S+00:00)" \
    --skip-archive --yes --error-on-cleanup-failure; then
    touch "$done_file"
    passed=true
  else
    echo "maintenance: airflow db clean failed (above); the next pass is in a day" >&2
    passed=false
  fi
  [ "${1:-}" = --once ] && { "$passed"; exit; }
  sleep 86400
done
