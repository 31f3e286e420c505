#!/usr/bin/env bash
# README command (b): set up the environment (reused when present) and run the test suite.
# Slow tests are skipped here; run them with: .venv/bin/python -m pytest -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONUNBUFFERED=1 RAY_DEDUP_LOGS=0
exec .venv/bin/python -m pytest -m "not slow" -q --durations=25 "$@"
