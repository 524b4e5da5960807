#!/usr/bin/env bash
# Creates tests/sdk-python/.venv on first use (needs PyPI once), then runs the suite
# against $KEYFOLD_BIN (default ../../target/debug/keyfold, relative to this folder).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import dfns_sdk, pytest, aiosmtpd' 2>/dev/null; then
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements.txt
fi
exec .venv/bin/python -m pytest -p no:cacheprovider -q "$@"
