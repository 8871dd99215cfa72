#!/usr/bin/env bash
# Create .venv and install the pinned requirements into it (again only when they change).
#   scripts/setup.sh        the product's requirements
#   scripts/setup.sh --dev  plus the test and lint tools, and Debian's Chromium for the browser test
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
requirements=$ROOT/requirements.txt
[ "${1:-}" = --dev ] && requirements=$ROOT/requirements-dev.txt
stamp=$ROOT/.venv/.installed-$(basename "$requirements")

[ -x "$ROOT/.venv/bin/python" ] || python3 -m venv "$ROOT/.venv"
wanted=$(cat "$ROOT"/requirements*.txt | sha256sum)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing $(basename "$requirements") into .venv" >&2
  "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" 2> >(grep -v "^WARNING: Location" >&2)
  echo "$wanted" >"$stamp"
fi
# Playwright's own browser download cannot work offline: the browser test drives Debian's Chromium.
if [ "${1:-}" = --dev ] && ! [ -x /usr/bin/chromium ]; then
  [ "$(id -u)" = 0 ] || { echo "setup: Chromium is missing: sudo apt-get install chromium" >&2; exit 1; }
  echo "setup: installing Chromium from the OS packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
