#!/usr/bin/env bash
# The main job on the embedded default dataset: set up, generate the data on first use, train the
# detector on the 10% labeled split, evaluate it on the test videos and print the mAP table.
# Outputs land in outputs/main/ (a rerun resumes and reuses what is done).
#   bash runs/main.sh [--set key=value ...]      e.g. --set train.epochs=10
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
CFG=configs/default.yaml
OUT=outputs/main
"$PY" train_supervised.py --config "$CFG" --out "$OUT/supervised" --resume --no-progress "$@"
"$PY" evaluate.py --config "$CFG" --checkpoint "$OUT/supervised/last.pt" \
  --out "$OUT/supervised/predictions.json" --json "$OUT/supervised/metrics.json" --no-progress "$@"
