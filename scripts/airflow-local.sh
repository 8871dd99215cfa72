#!/usr/bin/env bash
# A local Airflow on the local stack: API server (with the UI), scheduler, DAG
# processor and triggerer, metadata in the stack's PostgreSQL. LocalExecutor by
# default; with AIRFLOW_EXECUTOR=CeleryExecutor also a Redis broker and Celery
# workers, with the configuration keys of docker-compose.yaml.
#
#   scripts/airflow-local.sh start   start the services (and the stack), print the URL and the admin login
#   scripts/airflow-local.sh stop    stop each component by its process id
#   scripts/airflow-local.sh env     print the environment the components run with
#
# AIRFLOW_PORT (8088), AIRFLOW_PARALLELISM (4), AIRFLOW_EXECUTOR (LocalExecutor),
# API_SERVER_WORKERS (2), CELERY_WORKERS (1), CELERY_WORKER_CONCURRENCY (4), CELERY_WORKER_NICE (10)
# and REDIS_PORT (56379 + AIRFLOW_PORT - 8088) change the defaults; the compose file's shape is CELERY_WORKERS=3
# CELERY_WORKER_CONCURRENCY=30 AIRFLOW_PARALLELISM=90.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AIRFLOW_PORT=${AIRFLOW_PORT:-8088}
AIRFLOW_PARALLELISM=${AIRFLOW_PARALLELISM:-4}
AIRFLOW_EXECUTOR=${AIRFLOW_EXECUTOR:-LocalExecutor}
# Every task talks to Airflow through the API server, and task processes yield the CPU to it and
# the scheduler: 90 pages started faster so on 2 cores (docs/performance.md).
API_SERVER_WORKERS=${API_SERVER_WORKERS:-2}
CELERY_WORKERS=${CELERY_WORKERS:-1}
CELERY_WORKER_CONCURRENCY=${CELERY_WORKER_CONCURRENCY:-4}
CELERY_WORKER_NICE=${CELERY_WORKER_NICE:-10}
REDIS_PORT=${REDIS_PORT:-$((56379 + AIRFLOW_PORT - 8088))}
case "$AIRFLOW_EXECUTOR" in
  LocalExecutor) COMPONENTS="api-server scheduler dag-processor triggerer" ;;
  CeleryExecutor) COMPONENTS="redis api-server scheduler dag-processor triggerer $(seq -f 'celery-worker-%g' -s ' ' "$CELERY_WORKERS")" ;;
  *) echo "airflow-local: AIRFLOW_EXECUTOR is LocalExecutor or CeleryExecutor" >&2; exit 2 ;;
esac

stack_env() { bash "$ROOT/scripts/stack.sh" env; }

admin_password() {
  python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['admin'])" \
    "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
}

airflow_env() {
  eval "$(stack_env)"
  local secret_file=$AIRFLOW_HOME/jwt_secret
  local passwords_file=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
  mkdir -p "$AIRFLOW_HOME"
  [ -s "$secret_file" ] || python3 -c "import secrets; print(secrets.token_urlsafe(32))" >"$secret_file"
  # The admin's password, written before the API server would invent one, so the
  # start can print it (the simple auth manager is for local development only).
  [ -s "$passwords_file" ] ||
    python3 -c "import json, secrets; print(json.dumps({'admin': secrets.token_urlsafe(12)}))" >"$passwords_file"
  stack_env
  cat <<EOF2
export AIRFLOW__CORE__EXECUTOR=$AIRFLOW_EXECUTOR
export AIRFLOW__CORE__PARALLELISM=$AIRFLOW_PARALLELISM
export AIRFLOW__API__WORKERS=$API_SERVER_WORKERS
export AIRFLOW__API__BASE_URL='http://127.0.0.1:$AIRFLOW_PORT'
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL='http://127.0.0.1:$AIRFLOW_PORT/execution/'
export AIRFLOW__API_AUTH__JWT_SECRET='$(cat "$secret_file")'
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$((AIRFLOW_PORT + 10705))
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=$((AIRFLOW_PORT + 10706))
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AIRFLOW__CELERY__BROKER_URL='redis://127.0.0.1:$REDIS_PORT/0'
export AIRFLOW__CELERY__RESULT_BACKEND='db+${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN/+psycopg/}'
export AIRFLOW__CELERY__WORKER_CONCURRENCY=$CELERY_WORKER_CONCURRENCY
# Runs start only when someone triggers them: no nightly run with the defaults on a laptop.
export AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False
EOF2
}

pid_file() { echo "$AIRFLOW_HOME/$1.pid"; }

running() { [ -f "$(pid_file "$1")" ] && kill -0 "$(cat "$(pid_file "$1")")" 2>/dev/null; }

command_of() {
  case "$1" in
    redis) echo redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$AIRFLOW_HOME" ;;
    api-server) echo "$ROOT/.venv/bin/airflow" api-server --port "$AIRFLOW_PORT" ;;
    # One host, several workers: each its own Celery name; the first serves the task logs (all
    # of them write into the same AIRFLOW_HOME, where the API server reads them).
    celery-worker-1) echo nice -n "$CELERY_WORKER_NICE" "$ROOT/.venv/bin/airflow" celery worker --celery-hostname "worker-1@%h" ;;
    celery-worker-*) echo nice -n "$CELERY_WORKER_NICE" "$ROOT/.venv/bin/airflow" celery worker --celery-hostname "worker-${1#celery-worker-}@%h" --skip-serve-logs ;;
    *) echo "$ROOT/.venv/bin/airflow" "$1" ;;
  esac
}

install_redis() {
  command -v redis-server >/dev/null && return
  [ "$(id -u)" = 0 ] || { echo "airflow-local: Redis is missing: sudo apt-get install redis-server" >&2; exit 1; }
  echo "airflow-local: installing Redis from the OS packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
}

start() {
  bash "$ROOT/scripts/setup.sh"
  bash "$ROOT/scripts/stack.sh" start >/dev/null
  [ "$AIRFLOW_EXECUTOR" = CeleryExecutor ] && install_redis
  eval "$(airflow_env)"
  bash "$ROOT/scripts/airflow-init.sh"
  for component in $COMPONENTS; do
    if running "$component"; then
      echo "airflow-local: $component already running" >&2
      continue
    fi
    # setsid: each component leads its own session, so stop can end everything it started (task
    # processes put themselves in process groups of their own, but stay in the session)
    # shellcheck disable=SC2046
    setsid $(command_of "$component") >"$AIRFLOW_HOME/$component.log" 2>&1 &
    echo $! >"$(pid_file "$component")"
  done
  for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null; then
      echo "Airflow ($AIRFLOW_EXECUTOR) is up: http://127.0.0.1:$AIRFLOW_PORT  (user admin, password $(admin_password))"
      return
    fi
    sleep 1
  done
  echo "airflow-local: the API server did not answer; see $AIRFLOW_HOME/api-server.log" >&2
  exit 1
}

stop() {
  eval "$(stack_env)"
  local sessions=() stopped=() file
  for file in "$AIRFLOW_HOME"/{redis,api-server,scheduler,dag-processor,triggerer,celery-worker-*}.pid; do
    [ -f "$file" ] || continue
    sessions+=("$(cat "$file")")
    stopped+=("$(basename "$file" .pid)")
    rm -f "$file"
  done
  for sid in "${sessions[@]}"; do pkill -TERM -s "$sid" || true; done
  for sid in "${sessions[@]}"; do
    for _ in $(seq 1 30); do pgrep -s "$sid" >/dev/null || break; sleep 1; done
    pkill -KILL -s "$sid" || true
  done
  echo "airflow-local: stopped ${stopped[*]:-nothing}" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) airflow_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
