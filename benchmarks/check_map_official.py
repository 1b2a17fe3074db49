"""Check common.metrics.compute_map against the official ActivityNet evaluator, and time it.

Reads: the folder of the official Evaluation/ code (eval_detection.py and utils.py of
activitynet/ActivityNet), which the project itself never needs. Generates random ground truth and
predictions (no tied scores: the official sort of ties is arbitrary), writes them as JSON in the official
formats, scores them with the official ANETdetection and with compute_map at the ActivityNet thresholds
np.linspace(0.5, 0.95, 10) and the THUMOS14 ones [0.3:0.1:0.7], and prints both mAPs and their largest
absolute difference. Exits 1 if that exceeds 1e-6. Then times compute_map alone on a larger set.

The official code is Python 2; a temporary, mechanically rewritten copy is imported (print statements,
iteritems, urllib2, xrange, np.float). It needs pandas, which is not a project requirement.

Example:
    python benchmarks/check_map_official.py --official /tmp/ActivityNet/Evaluation --seed 0
"""
import argparse
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # from anywhere
from common.metrics import compute_map  # noqa: E402
from harness import exit_on_mismatch, rewrite_official, timed  # noqa: E402

THRESHOLDS = {"ActivityNet": np.linspace(0.5, 0.95, 10), "THUMOS14": np.array([0.3, 0.4, 0.5, 0.6, 0.7])}
TOLERANCE = 1e-6

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True, type=Path,
                        help="folder holding the official eval_detection.py and utils.py")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random data")
    parser.add_argument("--videos", type=int, default=100,
                        help="videos with ground truth in the comparison; 10%% more without. The official "
                             "loop is slow: the defaults (6,600 predictions) take it ~3 s per threshold set")
    parser.add_argument("--per-video", type=int, default=60, help="predictions per video in the comparison")
    parser.add_argument("--bench-videos", type=int, default=200, help="videos in the timing of compute_map")
    parser.add_argument("--bench-per-video", type=int, default=2000,
                        help="predictions per video in the timing")
    parser.add_argument("--classes", type=int, default=20, help="number of classes")
    return parser.parse_args(argv)


def load_official(folder, tmp):
    """Import ANETdetection from a Python-3 rewrite of the official files, written into tmp."""
    rewrite_official(folder, tmp, ("eval_detection.py", "utils.py"))
    # joblib would run each class in a worker process that cannot import the temporary copy; a serial
    # Parallel computes the same numbers.
    joblib = types.ModuleType("joblib")
    joblib.Parallel = lambda n_jobs=None, **_: (lambda calls: [f(*a, **k) for f, a, k in calls])
    joblib.delayed = lambda f: (lambda *a, **k: (f, a, k))
    sys.modules["joblib"] = joblib
    sys.path.insert(0, str(tmp))
    import eval_detection
    return eval_detection.ANETdetection


def random_data(rng, n_videos, per_video, n_classes):
    """ActivityNet-like data: a few classes per video, overlapping instances, predictions jittered around
    the ground truth or placed at random, and some videos absent from the ground truth."""
    classes = [f"class_{c:02d}" for c in range(n_classes)]
    gt, preds = {}, {}
    for v in range(n_videos):
        duration = rng.uniform(30, 300)
        labels = rng.choice(classes, size=rng.integers(1, 4))
        starts = rng.uniform(0, 0.9 * duration, size=rng.integers(1, 9))
        ends = np.minimum(starts + rng.uniform(0.02, 0.5, size=len(starts)) * duration, duration)
        gt[f"vid_{v:05d}"] = [{"label": str(rng.choice(labels)), "segment": [float(s), float(e)]}
                              for s, e in zip(starts, ends)]
    n_unknown = max(1, n_videos // 10)
    for v in range(n_videos + n_unknown):
        anchors = gt.get(f"vid_{v:05d}", [])
        items = []
        for _ in range(per_video):
            if anchors and rng.random() < 0.5:
                g = anchors[rng.integers(len(anchors))]
                s, e = np.array(g["segment"]) + rng.normal(0, 0.15, 2) * (g["segment"][1] - g["segment"][0])
                label = g["label"] if rng.random() < 0.8 else str(rng.choice(classes))
            else:
                s = rng.uniform(0, 250)
                e, label = s + rng.uniform(1, 100), str(rng.choice(classes))
            items.append({"label": label, "score": 0.0, "segment": [float(s), float(max(e, s + 0.1))]})
        preds[f"vid_{v:05d}"] = items
    # Distinct scores, so the official (unstable) ranking is unambiguous.
    every = [p for items in preds.values() for p in items]
    for p, score in zip(every, (rng.permutation(len(every)) + rng.random(len(every))) / len(every)):
        p["score"] = float(score)
    used = {g["label"] for items in gt.values() for g in items}
    # The official code crashes on predicted labels absent from the ground truth; keep only known ones.
    return gt, {v: [p for p in items if p["label"] in used] for v, items in preds.items()}


def official_map(ANETdetection, gt, preds, thresholds, tmp):
    gt_file, pred_file = tmp / "gt.json", tmp / "pred.json"
    database = {v: {"subset": "validation", "annotations": items} for v, items in gt.items()}
    gt_file.write_text(json.dumps({"version": "check", "taxonomy": [], "database": database}))
    pred_file.write_text(json.dumps({"version": "check", "results": preds, "external_data": {}}))
    detection = ANETdetection(str(gt_file), str(pred_file), tiou_thresholds=thresholds,
                              subset="validation", check_status=False)  # check_status asks a dead server
    detection.evaluate()
    return np.asarray(detection.mAP)


def compare(ANETdetection, gt, preds, tmp):
    """Print official and our mAP per threshold set; return the largest absolute difference."""
    worst = 0.0
    for name, thresholds in THRESHOLDS.items():
        t0 = time.perf_counter()
        theirs = official_map(ANETdetection, gt, preds, thresholds, tmp)
        t1 = time.perf_counter()
        ours = np.asarray(compute_map(gt, preds, thresholds)["mAP"])
        t2 = time.perf_counter()
        diff = np.abs(theirs - ours)
        worst = max(worst, float(diff.max()))
        print(f"\n{name} (official {t1 - t0:.1f} s, ours {t2 - t1:.3f} s)")
        print("tIoU   official(%)    ours(%)     |diff|")
        for t, a, b, d in zip(thresholds, theirs, ours, diff):
            print(f"{t:.2f}  {100 * a:11.6f} {100 * b:11.6f} {d:10.2e}")
        print(f"max |diff| {diff.max():.2e}")
    return worst


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)

    # 1. Official vs ours on data small enough for the official loop.
    gt, preds = random_data(rng, args.videos, args.per_video, args.classes)
    n_preds = sum(len(items) for items in preds.values())
    print(f"seed {args.seed}: {len(gt)} videos with ground truth, {n_preds} predictions")
    with tempfile.TemporaryDirectory(prefix="anet_eval_") as tmp:
        ANETdetection = load_official(args.official, Path(tmp))
        worst = compare(ANETdetection, gt, preds, Path(tmp))

    # 2. Speed of compute_map alone on a larger set (CPU time too: wall time suffers on a busy machine).
    gt, preds = random_data(rng, args.bench_videos, args.bench_per_video, args.classes)
    n_preds = sum(len(items) for items in preds.values())
    wall, cpu = timed(compute_map, gt, preds, THRESHOLDS["ActivityNet"])
    print(f"\ncompute_map: {args.bench_videos} videos, {n_preds} predictions, {args.classes} classes, "
          f"10 thresholds: {wall:.2f} s wall, {cpu:.2f} s CPU")

    exit_on_mismatch(worst, TOLERANCE, "official (both threshold sets)")


if __name__ == "__main__":
    main()
