#!/usr/bin/env bash
# The test command: lint, format check, then every test against real services
# (the tests start and stop their own PostgreSQL and MongoDB-compatible server).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest "$@"
