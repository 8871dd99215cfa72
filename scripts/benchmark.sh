#!/usr/bin/env bash
# Benchmarks on the local stack (not part of the tests):
#   scripts/benchmark.sh [--documents 100000] [--workers 4] [--skip-airflow]   every method side by side
#   scripts/benchmark.sh write-path [--documents 1000000]                     conversion + COPY vs pre-encoded COPY
#   scripts/benchmark.sh publish [--rows 1000000]                              publish in place vs the old swap
#   scripts/benchmark.sh incremental [--documents 100000]                      1 % changed: incremental vs full run
# Results go to benchmarks/results/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh --dev
eval "$(bash scripts/stack.sh start)"
.venv/bin/airflow db migrate >/dev/null
if [ "${1:-}" = write-path ]; then
  shift
  exec .venv/bin/python benchmarks/write_path.py "$@"
fi
if [ "${1:-}" = incremental ]; then
  shift
  exec .venv/bin/python benchmarks/incremental.py "$@"
fi
if [ "${1:-}" = publish ]; then
  shift
  exec .venv/bin/python benchmarks/publish.py "$@"
fi
exec .venv/bin/python benchmarks/compare.py "$@"
