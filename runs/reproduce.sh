#!/usr/bin/env bash
# The paper's experiments on the embedded dataset (benchmarks/reproduce.py, which first makes the
# dataset of its --config as python -m synthetic does), tables in outputs/reproduce/tables.md:
#   bash runs/reproduce.sh --quick          # Table 1, seed 0: about 1 h on two CPU cores
#   bash runs/reproduce.sh                  # Tables 1-5 and Fig. 3(c), seeds 0 1 2 (prints its estimate first)
#   bash runs/reproduce.sh --report         # the tables from the runs finished so far
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
"$PY" benchmarks/reproduce.py "$@"
