#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set up (notebook, test and bench extras), then run every test.
# Arguments go to pytest (e.g. -m newcomer, -k readme).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
mkdir -p test-artifacts
exec .venv/bin/python -m pytest "$@"
