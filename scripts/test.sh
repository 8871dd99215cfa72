#!/usr/bin/env bash
# The test command: lint, format check, the documentation site, then every test against real services
# (the tests start and stop their own PostgreSQL and MongoDB-compatible server).
#
#   scripts/test.sh [pytest arguments]   everything (what CI runs)
#   scripts/test.sh --quick              the loop after each change, under 3 minutes on 2 cores: every
#                                        test but the system and slow ones (pytest.ini's markers), and
#                                        one small run of the DAG end to end (smoke)
#   scripts/test.sh --unit               the tests that need no service at all (-m "not services")
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mkdocs build --strict --quiet   # the documentation site: a dead link or a page left out fails
case "${1:-}" in
  --quick) shift; set -- -m "smoke or not (system or slow)" "$@" ;;
  --unit) shift; set -- -m "not services" "$@" ;;
esac
.venv/bin/pytest "$@"
