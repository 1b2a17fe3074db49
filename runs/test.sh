#!/usr/bin/env bash
# Set up, then run the test suite on the CPU (a few minutes on two cores).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
"$PY" -m pytest -q tests "$@"
