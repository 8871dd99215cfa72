#!/usr/bin/env bash
# The test command: lint, format check, the documentation site, then every test against real services
# (the tests start and stop their own PostgreSQL and MongoDB-compatible server).
#
#   scripts/test.sh [pytest arguments]   everything (what CI runs)
#   scripts/test.sh --quick              the loop after each change, under 3 minutes on 2 cores: the
#                                        unit and property tests of plugins/ and dags/ (but the type
#                                        survey's, which read a collection for a minute) and one small
#                                        run of the DAG end to end
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mkdocs build --strict --quiet   # the documentation site: a dead link or a page left out fails
if [ "${1:-}" = "--quick" ]; then
  shift
  set -- tests/plugins tests/dags tests/test_compose.py tests/test_docs.py --ignore=tests/plugins/test_propose.py \
    "tests/test_end_to_end.py::test_every_document_arrives_exactly_once_with_equal_fields" "$@"
fi
.venv/bin/pytest "$@"
