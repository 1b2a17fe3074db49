"""Benchmark of the semi-supervised pipeline on the embedded default dataset (not a test).

At one labeled ratio (default 10%), trains and evaluates, as in the paper's Table 2:
  supervised     the detector on the labeled videos only (plain ActionFormer, alqa none)
  baseline       + one semi-supervised round with pseudo labels kept by class score >= 0.3
  +ALQA          ALQA detector (tIoU + tND heads), adaptive thresholds (Eq. 6), no ICD
  +ICD           + ICD's EAP and MPP (Eq. 10), tau_pos per video
prints the mAP table, and the pseudo-label quality of Fig. 3(c) measured on the ALQA detector's
predictions. Every stage runs as its own process; finished steps under --out are reused.

  python benchmarks/bench_semi.py                    # about 30 min on two CPU cores
  python benchmarks/bench_semi.py --ratio 40 --set semi.epochs=5
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common.config import load_config  # noqa: E402
from harness import common_args, print_table, semi, supervised  # noqa: E402
from synthetic.make import make_data  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--data", default="data/synthetic_small", help="the dataset folder (for its splits)")
    parser.add_argument("--ratio", type=int, default=10, help="labeled percentage (10, 20, 40, 60)")
    parser.add_argument("--out", default=None, help="default outputs/bench_semi_<ratio>")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", action="append", default=[], help="config override for every run")
    args = parser.parse_args(argv)
    args.out = args.out or f"outputs/bench_semi_{args.ratio}"
    start = time.time()
    make_data(load_config(args.config, args.set))  # the embedded dataset and its splits, made before any stage
    common = common_args(args)

    rows = {}
    common += ["--set", "acp.mode=none"]  # Table 2's rows before +ACP (benchmarks/bench_acp.py adds it)
    plain, rows["supervised only (ActF*)"] = supervised("supervised_plain", ["model.alqa=none"], common, args)
    rows["baseline: fixed threshold 0.3"] = semi(
        "baseline", plain, ["pseudo.selection=fixed", "pseudo.icd=none"], common, args)
    alqa, rows["supervised only, ALQA heads"] = supervised("supervised_alqa", ["model.alqa=tiou_tnd"], common, args)
    rows["+ALQA (adaptive, Eq. 6)"] = semi("alqa", alqa, ["pseudo.selection=adaptive", "pseudo.icd=none"],
                                           common, args)
    rows["+ICD (EAP + MPP)"] = semi("alqa_icd", alqa, ["pseudo.selection=adaptive", "pseudo.icd=both"], common, args)

    print_table(rows, f"Semi-supervised, {args.ratio}% labeled, {args.config}, device {args.device}")
    report = os.path.join(args.out, "alqa_icd", "pseudo_label_report.txt")
    if os.path.exists(report):
        print("\nPseudo-label quality on the unlabeled videos (Fig. 3c), ALQA detector:")
        print("\n".join(l for l in open(report).read().splitlines() if l.startswith("|")))
    print(f"(wall time {time.time() - start:.0f} s; finished steps reused from {args.out})")


if __name__ == "__main__":
    main()
