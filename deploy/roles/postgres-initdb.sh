#!/usr/bin/env bash
# The compose file's demo target, on its first start: the DAG's role of postgres.sql (mongo_migration).
set -euo pipefail
psql --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v password="$TARGET_DB_PASSWORD" \
  -v role=mongo_migration -v schema=public -f /roles/postgres.sql
