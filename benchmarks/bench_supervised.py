"""Benchmark of the supervised detector on the embedded default dataset (not a test).

Trains train_supervised.py at each labeled ratio (default 10% and 100%), evaluates each with
evaluate.py, and prints one Markdown table: mAP per tIoU and average, training seconds per epoch,
peak resident memory of training and of evaluation, and evaluation time. Each stage runs in its
own process so its peak memory is its own; runs already finished under --out are reused.

  python benchmarks/bench_supervised.py                       # ~15 min on two CPU cores
  python benchmarks/bench_supervised.py --ratios 10 --set train.epochs=10
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common.config import load_config  # noqa: E402
from synthetic.make import make_data  # noqa: E402

# Runs a stage script's main() and reports its peak RSS: resource is per process, so run it alone.
MEASURE = ("import json, resource, runpy, sys, time; sys.argv = sys.argv[1:]; t = time.time()\n"
           "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
           "finally:\n    print('BENCH ' + json.dumps({'peak_mb': resource.getrusage(resource.RUSAGE_SELF)"
           ".ru_maxrss / 1024, 'seconds': time.time() - t}))")


def run_stage(script, args):
    cmd = [sys.executable, "-c", MEASURE, os.path.join(ROOT, script)] + args
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
        raise SystemExit(f"{script} failed (exit {proc.returncode})")
    line = [l for l in proc.stdout.splitlines() if l.startswith("BENCH ")][-1]
    return json.loads(line[len("BENCH "):])


def bench_ratio(ratio, args):
    out = os.path.join(args.out, f"sup{ratio}")
    split = "null" if ratio == 100 else f"{args.data}/splits/labeled_{ratio}pct.txt"
    common = ["--config", args.config, "--device", args.device, "--no-progress",
              "--set", f"dataset.labeled_split={split}"] + sum((["--set", s] for s in args.set), [])
    record_path = os.path.join(out, "bench.json")
    if os.path.exists(record_path):
        return json.load(open(record_path))
    train = run_stage("train_supervised.py", common + ["--out", out, "--resume"])
    log = [json.loads(l) for l in open(os.path.join(out, "log.jsonl"))]
    metrics_path = os.path.join(out, "metrics.json")
    evaluation = run_stage("evaluate.py", common + ["--checkpoint", os.path.join(out, "last.pt"),
                                                    "--out", os.path.join(out, "predictions.json"),
                                                    "--json", metrics_path])
    metrics = json.load(open(metrics_path))
    record = {"ratio": ratio, "mAP": metrics["mAP"], "average": metrics["average"],
              "thresholds": metrics["thresholds"],
              "epoch_seconds": sum(l["seconds"] for l in log) / len(log), "epochs": len(log),
              "iters_per_epoch": log[-1]["iters"], "train_peak_mb": train["peak_mb"],
              "eval_seconds": evaluation["seconds"], "eval_peak_mb": evaluation["peak_mb"]}
    with open(record_path, "w") as f:
        json.dump(record, f, indent=2)
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--data", default="data/synthetic_small", help="the dataset folder (for its splits)")
    parser.add_argument("--ratios", type=int, nargs="+", default=[10, 100], help="labeled percentages")
    parser.add_argument("--out", default="outputs/bench_supervised")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", action="append", default=[], help="config override for every run")
    args = parser.parse_args(argv)
    start = time.time()
    make_data(load_config(args.config, args.set))  # the embedded dataset and its splits, made before any stage
    records = [bench_ratio(r, args) for r in args.ratios]
    thr = records[0]["thresholds"]
    print(f"\nSupervised detector (alqa tiou_tnd), {args.config}, device {args.device}")
    print("| labeled | " + " | ".join(f"mAP@{t:g}" for t in thr) + " | avg | s/epoch (iters) | "
          "train peak MB | eval s | eval peak MB |")
    print("|---" * (len(thr) + 6) + "|")
    for r in records:
        print(f"| {r['ratio']}% | " + " | ".join(f"{100 * m:.2f}" for m in r["mAP"])
              + f" | {100 * r['average']:.2f} | {r['epoch_seconds']:.1f} ({r['iters_per_epoch']}) | "
              f"{r['train_peak_mb']:.0f} | {r['eval_seconds']:.1f} | {r['eval_peak_mb']:.0f} |")
    print(f"(benchmark wall time {time.time() - start:.0f} s; runs reused from {args.out} when present)")


if __name__ == "__main__":
    main()
