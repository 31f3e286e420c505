#!/usr/bin/env bash
# Create .venv with the pinned stack (constraints.txt) and raymm installed in editable mode.
# Re-running reuses the environment; it reinstalls only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.raymm-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "setup: installing the pinned stack into .venv (a few minutes from cold, 6.5 GB)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
  touch "$stamp"
fi
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch, dgl, ray, mlflow; print(f"torch {torch.__version__}, dgl {dgl.__version__}, ray {ray.__version__}, mlflow {mlflow.__version__}")' 2>/dev/null))"
