#!/usr/bin/env bash
# Benchmarks on the local stack (not part of the tests):
#   scripts/benchmark.sh [--documents 100000] [--workers 4] [--skip-airflow]   every method side by side
#   scripts/benchmark.sh write-path [--documents 1000000]                     users and orders: conversion + COPY vs pre-encoded COPY
#   scripts/benchmark.sh publish [--rows 1000000]                              publish in place vs the old swap
#   scripts/benchmark.sh incremental [--documents 100000 --items-per-page 8000] 1 % changed: incremental vs full run
#   scripts/benchmark.sh bulk-load [--rows 1000000]                            pre-encoded COPY, 1-90 writers: (un)logged, indexes during/after
#   scripts/benchmark.sh planning [--documents 1000000]                        the pages' bounds found by the server vs in Python
#   scripts/benchmark.sh pages-at-once [--label L --setting NAME=VALUE ...]    90 page tasks at once under Celery (3 x 30)
#                                      [--pages 8 --at-once 4]                    the same, small: a quick try, not a result
# Results go to benchmarks/results/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh --dev
eval "$(bash scripts/stack.sh start)"
.venv/bin/airflow db migrate >/dev/null
case "${1:-}" in
  write-path | publish | incremental | bulk-load | planning | pages-at-once) script=benchmarks/${1//-/_}.py && shift ;;
  *) script=benchmarks/compare.py ;;
esac
exec .venv/bin/python "$script" "$@"
