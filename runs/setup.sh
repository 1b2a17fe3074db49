#!/usr/bin/env bash
# Set up the Python environment: sourced by the other runs/*.sh scripts.
# Uses the active virtualenv or conda env when there is one (a GPU user keeps their own torch);
# otherwise creates .venv beside the project. Installs torch==2.13.0 (CPU build) only when no
# torch is importable, then requirements.txt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ]; then
  PY=python
else
  [ -x .venv/bin/python ] || python3 -m venv .venv
  PY=.venv/bin/python
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q torch==2.13.0
fi
"$PY" -m pip install -q -r requirements.txt
export PY
