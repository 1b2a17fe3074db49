"""Benchmark of ACP on the embedded default dataset (not a test): the paper's Table 5.

At one labeled ratio (default 10%), for acp.mode none, coarse, fine and both: pre-trains with
pretrain_acp.py (except none), trains the supervised detector from it (with L_acp while
fine-tuning), one semi-supervised round with ALQA + ICD pseudo labels, and evaluates both.
Prints supervised and semi-supervised mAP per mode and the pre-training seconds per epoch.
Finished steps under --out are reused.

  python benchmarks/bench_acp.py                      # about 50 min on two CPU cores
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common.config import load_config  # noqa: E402
from harness import common_args, print_table, semi, stage, supervised  # noqa: E402
from synthetic.make import make_data  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--data", default="data/synthetic_small")
    parser.add_argument("--ratio", type=int, default=10)
    parser.add_argument("--modes", nargs="+", default=["none", "coarse", "fine", "both"])
    parser.add_argument("--out", default=None, help="default outputs/bench_acp_<ratio>")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)
    args.out = args.out or f"outputs/bench_acp_{args.ratio}"
    start = time.time()
    make_data(load_config(args.config, args.set))  # the embedded dataset and its splits, made before any stage
    common = common_args(args)
    sup_rows, semi_rows, pre_seconds = {}, {}, {}
    for mode in args.modes:
        sets = ["model.alqa=tiou_tnd", f"acp.mode={mode}"]
        mode_common = common + sum((["--set", s] for s in sets), [])
        init = None
        if mode != "none":
            out = os.path.join(args.out, f"acp_{mode}")
            stage("pretrain_acp.py", mode_common + ["--out", out, "--resume"], os.path.join(out, "done"))
            open(os.path.join(out, "done"), "w").close()
            init = os.path.join(out, "last.pt")
            log = [json.loads(l) for l in open(os.path.join(out, "log.jsonl"))]
            pre_seconds[mode] = sum(l["seconds"] for l in log) / len(log)
        ckpt, sup_rows[f"supervised, ACP {mode}"] = supervised(f"supervised_{mode}", sets, common, args, init)
        semi_rows[f"APL (ALQA + ICD), ACP {mode}"] = semi(
            f"semi_{mode}", ckpt, ["pseudo.selection=adaptive", "pseudo.icd=both"], mode_common, args)
    print_table({**sup_rows, **semi_rows}, f"ACP (Table 5), {args.ratio}% labeled, {args.config}, device {args.device}")
    for mode, sec in pre_seconds.items():
        print(f"pre-training ({mode}): {sec:.1f} s per epoch")
    print(f"(wall time {time.time() - start:.0f} s; finished steps reused from {args.out})")


if __name__ == "__main__":
    main()
