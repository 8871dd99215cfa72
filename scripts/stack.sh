#!/usr/bin/env bash
# The local services, as in production: a PostgreSQL for Airflow's metadata, the
# target PostgreSQL with a PgBouncer in front of it (transaction pooling) and a
# MongoDB wire-protocol server (SecantusDB), on non-default ports, with all
# their files under $STACK_DIR inside the project (git-ignored).
#
#   scripts/stack.sh start            start what is not running (installs what is missing)
#   scripts/stack.sh stop             stop them all
#   scripts/stack.sh stop-mongo       stop the MongoDB server alone (the fault tests use these two)
#   scripts/stack.sh restart-target   restart the target PostgreSQL
#   scripts/stack.sh env              print the environment that points Airflow at them
#
# STACK_DIR, PG_PORT, TARGET_PG_PORT, BOUNCER_PORT and MONGO_PORT choose another instance (the tests use one);
# MONGO_OPLOG_ENTRIES how much change history the MongoDB server keeps; SECANTUS_VENV where it is installed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
PG_PORT=${PG_PORT:-55432}
TARGET_PG_PORT=${TARGET_PG_PORT:-55442}
# 90 page tasks at once, one connection each, plus verify/publish and people reading.
TARGET_MAX_CONNECTIONS=120
# Airflow's metadata: under Celery each of the 90 worker processes keeps a connection to the
# result backend, besides the scheduler's, the API server's and the other components'
# (tests/test_pages_at_once.py counts them at 90 pages).
METADATA_MAX_CONNECTIONS=250
BOUNCER_PORT=${BOUNCER_PORT:-55452}
MONGO_PORT=${MONGO_PORT:-57017}
# The change history the server keeps, in operations (a real replica set's oplog
# is sized in bytes): a change-stream position older than that is gone.
MONGO_OPLOG_ENTRIES=${MONGO_OPLOG_ENTRIES:-100000}
PG_PASSWORD=${PG_PASSWORD:-migrator-local}
PG_BIN=/usr/lib/postgresql/15/bin
SECANTUS_VERSION=0.7.0b3
SECANTUS_VENV=${SECANTUS_VENV:-$STACK_DIR/secantus-venv}

log() { echo "stack: $*" >&2; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_postgres() {
  [ -x "$PG_BIN/pg_ctl" ] && return
  [ "$(id -u)" = 0 ] || { log "PostgreSQL 15 is missing: sudo apt-get install postgresql"; exit 1; }
  log "installing PostgreSQL 15 from the OS packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
}

# SecantusDB is GPL-2.0: it lives in its own virtual environment as a separate
# server process and is never imported by the project's code.
install_secantus() {
  [ -x "$SECANTUS_VENV/bin/secantusd-py" ] && return
  log "installing SecantusDB $SECANTUS_VERSION"
  python3 -m venv "$SECANTUS_VENV"
  "$SECANTUS_VENV/bin/pip" install -q --disable-pip-version-check "SecantusDB==$SECANTUS_VERSION" \
    2> >(grep -v "^WARNING: Location" >&2)
}

# PostgreSQL refuses to run as root, so it runs as the postgres user, which
# needs to traverse every folder above its data folder.
open_path_for_postgres() {
  [ "$(id -u)" = 0 ] || return 0
  local dir=$STACK_DIR
  while [ "$dir" != / ]; do
    runuser -u postgres -- test -x "$dir" 2>/dev/null || chmod o+x "$dir"
    dir=$(dirname "$dir")
  done
}

# start_postgres NAME PORT DATABASE MAX_CONNECTIONS: one cluster in $STACK_DIR/NAME.
start_postgres() {
  local name=$1 port=$2 database=$3 max_connections=$4
  local dir=$STACK_DIR/$name
  local data=$dir/data
  mkdir -p "$dir"
  open_path_for_postgres
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ ! -f "$data/PG_VERSION" ]; then
    echo "$PG_PASSWORD" >"$dir/pwfile"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir/pwfile"
    as_postgres "$PG_BIN/initdb" -D "$data" -U postgres --pwfile="$dir/pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$dir/pwfile"
  fi
  if as_postgres "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "PostgreSQL $name already running on port $port"
  else
    as_postgres "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=$max_connections \
          -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null
    log "PostgreSQL $name started on port $port"
  fi
  as_postgres "$PG_BIN/psql" -h "$dir" -p "$port" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1 ||
    as_postgres "$PG_BIN/createdb" -h "$dir" -p "$port" -U postgres "$database"
}

stop_postgres() {
  local data=$STACK_DIR/$1/data
  if [ -f "$data/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null && log "PostgreSQL $1 stopped"
  fi
}

install_pgbouncer() {
  [ -x /usr/sbin/pgbouncer ] && return
  [ "$(id -u)" = 0 ] || { log "PgBouncer is missing: sudo apt-get install pgbouncer"; exit 1; }
  log "installing PgBouncer from the OS packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
}

# PgBouncer in front of the target, in transaction pooling mode, as many
# production deployments run it: the DAG must work through it.
start_pgbouncer() {
  local dir=$STACK_DIR/pgbouncer
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ -f "$dir/pgbouncer.pid" ] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; then
    log "PgBouncer already running on port $BOUNCER_PORT"
    return
  fi
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
target = host=127.0.0.1 port=$TARGET_PG_PORT dbname=target

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir = $dir
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
max_client_conn = 500
default_pool_size = 100
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  echo "\"postgres\" \"$PG_PASSWORD\"" >"$dir/userlist.txt"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir/pgbouncer.ini" "$dir/userlist.txt"
  as_postgres /usr/sbin/pgbouncer -d "$dir/pgbouncer.ini"
  log "PgBouncer started on port $BOUNCER_PORT (transaction pooling)"
}

stop_pgbouncer() {
  local pidfile=$STACK_DIR/pgbouncer/pgbouncer.pid
  if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
    log "PgBouncer stopped"
  fi
}

start_mongo() {
  local pidfile=$STACK_DIR/mongo/secantusd.pid
  mkdir -p "$STACK_DIR/mongo"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "SecantusDB already running on port $MONGO_PORT"
    return
  fi
  nohup "$SECANTUS_VENV/bin/secantusd-py" --host 127.0.0.1 --port "$MONGO_PORT" \
    --storage-path "$STACK_DIR/mongo/data" --log-level WARNING --oplog-max-entries "$MONGO_OPLOG_ENTRIES" \
    >"$STACK_DIR/mongo/server.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if "$SECANTUS_VENV/bin/python" -c "
import socket, sys
socket.create_connection(('127.0.0.1', $MONGO_PORT), timeout=1).close()" 2>/dev/null; then
      log "SecantusDB started on port $MONGO_PORT"
      return
    fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.5
  done
  log "SecantusDB did not start; see $STACK_DIR/mongo/server.log"
  tail -20 "$STACK_DIR/mongo/server.log" >&2
  exit 1
}

stop_mongo() {
  local pidfile=$STACK_DIR/mongo/secantusd.pid
  if [ -f "$pidfile" ]; then
    local pid
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
      log "SecantusDB stopped"
    fi
    rm -f "$pidfile"
  fi
}

start_all() {
  install_postgres
  install_secantus
  install_pgbouncer
  start_postgres pg "$PG_PORT" airflow "$METADATA_MAX_CONNECTIONS"
  start_postgres pg-target "$TARGET_PG_PORT" target "$TARGET_MAX_CONNECTIONS"
  start_pgbouncer
  start_mongo
}

print_env() {
  cat <<EOF
# The local stack (scripts/stack.sh): Airflow's home and metadata database, the target
# PostgreSQL (directly and through PgBouncer) and the source MongoDB as Airflow connections
# (the source as a replica set, named secantus, in the JSON form a production replica set needs),
# and MONGO_MIGRATION_ALLOW_SEEDING=true, which lets a manually triggered run that asks for it
# (seed_users > 0) write fake users into the source: point these connections at your own
# databases and leave that variable out.
export AIRFLOW_HOME='$STACK_DIR/airflow'
export AIRFLOW__CORE__DAGS_FOLDER='$ROOT/dags'
export AIRFLOW__CORE__PLUGINS_FOLDER='$ROOT/plugins'
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN='postgresql+psycopg://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/airflow'
export AIRFLOW_CONN_POSTGRES_DEFAULT='postgresql://postgres:$PG_PASSWORD@127.0.0.1:$TARGET_PG_PORT/target'
export AIRFLOW_CONN_POSTGRES_PGBOUNCER='postgresql://postgres:$PG_PASSWORD@127.0.0.1:$BOUNCER_PORT/target'
export AIRFLOW_CONN_MONGO_DEFAULT='{"conn_type": "mongo", "host": "127.0.0.1:$MONGO_PORT", "extra": {"replicaSet": "secantus"}}'
export PYTHONPATH='$ROOT:$ROOT/plugins'
export MONGO_MIGRATION_ALLOW_SEEDING=true
EOF
}

case "${1:-}" in
  start) start_all; print_env ;;
  stop) stop_mongo; stop_pgbouncer; stop_postgres pg-target; stop_postgres pg ;;
  stop-mongo) stop_mongo ;;
  restart-target) stop_postgres pg-target; start_postgres pg-target "$TARGET_PG_PORT" target "$TARGET_MAX_CONNECTIONS" ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|stop-mongo|restart-target|env" >&2; exit 2 ;;
esac
