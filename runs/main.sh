#!/usr/bin/env bash
# The main job on the embedded default dataset (10% of the training videos labeled):
#   ACP pre-training -> supervised detector -> pseudo labels -> semi-supervised training
#   (ROUNDS times: 3 on the default dataset, rounds of 4 epochs (configs/default.yaml semi.epochs),
#   level or better than two of 11 on the presets of benchmarks/bench_presets.py, held-out ones
#   included; 1 with DATASET set: level on the ActivityNet-like data over three seeds, not measured
#   with BMN; 1 with RECIPE=paper) -> evaluation,
# printing the mAP of the supervised detector and after each round. The embedded dataset is made
# first (python -m synthetic; only a check when it exists); outputs land in outputs/main/ and a rerun
# reuses what is done. Each round's pseudo labels get a review page (OUT/roundN/review/index.html,
# with the changes since the round before), rewritten on every run so that it shows the file as it
# is, hand edits included.
#   [OUT=DIR] [ROUNDS=N] [RECIPE=paper|project] bash runs/main.sh [--set key=value ...]   e.g. ROUNDS=1 bash runs/main.sh
# RECIPE=paper runs APL as the paper describes it (common/config.py RECIPES: its selection, ICD,
# background, beta 2, hard targets, the detector's classes) for one round, outputs in outputs/main_paper
# (or OUT); RECIPE=project the project's own (the default of every embedded dataset's config).
# DATASET=anet runs the same stages on the embedded ActivityNet-like dataset with ActivityNet's recipe
# (configs/anet_synthetic.yaml; outputs in outputs/main_anet/) and prints mAP at 0.5 / 0.75 / 0.95 too;
# DATASET=anet_bmn the same with BMN as the detector (configs/anet_synthetic_bmn.yaml; outputs/main_anet_bmn/);
# DATASET=thumos_bmn BMN with sliding windows on the default dataset (configs/thumos_synthetic_bmn.yaml;
# outputs/main_thumos_bmn/).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
RECIPE_SETS=()
GIVEN_OUT=${OUT:-}
case "${RECIPE:-}" in
  "") ;;
  paper) ROUNDS=${ROUNDS:-1}; RECIPE_SETS=(--set recipe=paper) ;;
  project) RECIPE_SETS=(--set recipe=project) ;;
  *) echo "RECIPE=${RECIPE}: expected paper or project, or unset for the dataset config's own" >&2; exit 2 ;;
esac
case "${DATASET:-}" in
  "") CFG=configs/default.yaml; OUT=${OUT:-outputs/main}; ROUNDS=${ROUNDS:-3} ;;
  anet) CFG=configs/anet_synthetic.yaml; OUT=${OUT:-outputs/main_anet} ;;
  anet_bmn) CFG=configs/anet_synthetic_bmn.yaml; OUT=${OUT:-outputs/main_anet_bmn} ;;
  thumos_bmn) CFG=configs/thumos_synthetic_bmn.yaml; OUT=${OUT:-outputs/main_thumos_bmn} ;;
  *) echo "DATASET=${DATASET}: expected anet, anet_bmn or thumos_bmn, or unset for the default dataset" >&2; exit 2 ;;
esac
ROUNDS=${ROUNDS:-1}
[ -n "$GIVEN_OUT" ] || [ -z "${RECIPE:-}" ] || OUT="${OUT}_${RECIPE}"
run() { "$PY" "$@" --config "$CFG" --no-progress "${SETS[@]}"; }
SETS=("${RECIPE_SETS[@]}" "$@")

# the embedded dataset (data/synthetic_*), its splits and scores file: the stages only read them
"$PY" -m synthetic --config "$CFG" "${SETS[@]}"
run pretrain_acp.py --out "$OUT/acp" --resume
run train_supervised.py --init "$OUT/acp/last.pt" --out "$OUT/supervised" --resume
run evaluate.py --checkpoint "$OUT/supervised/last.pt" --out "$OUT/supervised/predictions.json" \
  --json "$OUT/supervised/metrics.json" --no-per-class
prev="$OUT/supervised/last.pt"
earlier=()
for r in $(seq 1 "$ROUNDS"); do
  select=(--checkpoint "$prev" --out "$OUT/round$r/pseudo_labels.json")
  review=("$OUT/round$r/pseudo_labels.json" --config "$CFG" --out "$OUT/round$r/review")
  if [ "$r" -gt 1 ]; then  # the round before's file: pseudo.carry_over, and the review's comparison
    select+=(--previous "$OUT/round$((r - 1))/pseudo_labels.json")
    review+=(--previous "$OUT/round$((r - 1))/pseudo_labels.json")
  fi
  [ -f "$OUT/round$r/pseudo_labels.json" ] || run pseudo_label.py "${select[@]}"
  "$PY" tools/review_pseudo_labels.py "${review[@]}" "${SETS[@]}"
  echo "review the pseudo labels: file://$(cd "$OUT/round$r/review" && pwd)/index.html"
  run train_semi.py --init "$prev" --pseudo-labels "$OUT/round$r/pseudo_labels.json" --out "$OUT/round$r" --resume
  prev="$OUT/round$r/last.pt"
  if [ "$r" -lt "$ROUNDS" ]; then  # what each round before the last added (the last one's is the final table)
    run evaluate.py --checkpoint "$prev" --out "$OUT/round$r/predictions.json" --json "$OUT/round$r/metrics.json" \
      --no-per-class > "$OUT/round$r/evaluate.log"
    earlier+=("$OUT/round$r/metrics.json")
  fi
done
run evaluate.py --checkpoint "$prev" --out "$OUT/final_predictions.json" --json "$OUT/final_metrics.json"
"$PY" - "$OUT/supervised/metrics.json" "$OUT/final_metrics.json" "$ROUNDS" "${DATASET:-}" "${earlier[@]}" <<'PYEOF'
import json, sys
sup, semi = (json.load(open(p)) for p in sys.argv[1:3])
if sys.argv[5:]:
    rounds = [json.load(open(p)) for p in sys.argv[5:]] + [semi]
    print("\naverage mAP after each round: " + ", ".join(f"round {i} {100 * m['average']:.2f}"
                                                      for i, m in enumerate(rounds, 1)))
if sys.argv[4].startswith("anet"):  # ActivityNet's columns: mAP at 0.5, 0.75, 0.95 and the average over 0.5:0.05:0.95
    at = lambda m, t: 100 * m["mAP"][min(range(len(m["thresholds"])), key=lambda i: abs(m["thresholds"][i] - t))]
    print(f"\n{'mAP (%) on the validation videos':<32}{'@0.5':>7} {'@0.75':>7} {'@0.95':>7} {'avg':>7}")
    for name, m in (("supervised (10% labeled)", sup), (f"APL after {sys.argv[3]} round(s)", semi)):
        print(f"{name:<32}{at(m, 0.5):7.2f} {at(m, 0.75):7.2f} {at(m, 0.95):7.2f} {100 * m['average']:7.2f}")
    print(f"\naverage mAP on the validation videos: supervised (10% labeled) {100 * sup['average']:.2f}  ->  "
          f"APL after {sys.argv[3]} round(s) {100 * semi['average']:.2f}")
else:
    print(f"\naverage mAP on the test videos: supervised (10% labeled) {100 * sup['average']:.2f}  ->  "
          f"APL after {sys.argv[3]} round(s) {100 * semi['average']:.2f}")
if "proposals" in sup and "proposals" in semi:  # a class-agnostic detector's proposals (BMN)
    print(f"AR@100: supervised {100 * sup['proposals']['AR@100']:.2f}  ->  APL {100 * semi['proposals']['AR@100']:.2f}")
PYEOF
