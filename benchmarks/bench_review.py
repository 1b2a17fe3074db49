"""Size and build time of the review page (tools/review_pseudo_labels.py) for a large pseudo-label file.

Synthesises two rounds of a pseudo-label file in memory, VIDEOS videos x PREDICTIONS predictions each
(a quarter accepted, the rest rejected, as pseudo_label.py writes them: 20 classes, durations of
30 s to 10 min), writes them to a temporary folder and prints, for the page alone, the page with
--previous and --diff: the seconds of main() in this process (the file's strict reading included)
and of the whole command (Python and torch start-up included), and the page's size in MB.

  python benchmarks/bench_review.py                      # 200 videos x 200 predictions, about a minute
  python benchmarks/bench_review.py --videos 50 --predictions 100
"""
import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common import pseudo_file  # noqa: E402
from tools import review_pseudo_labels as review  # noqa: E402

CLASSES = [f"Action{i:02d}" for i in range(20)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--predictions", type=int, default=200, help="per video, accepted and rejected together")
    return parser.parse_args(argv)


def entry(rng, duration, key, value):
    start = float(rng.uniform(0, duration - 1))
    end = min(start + rng.uniform(0.5, 20), duration)
    label = int(rng.integers(len(CLASSES)))
    scores = np.round(rng.uniform(0, 1, 5), 4).tolist()
    return {"label": CLASSES[label], "segment": [round(start, 3), round(end, 3)],
            "label_id": label, **dict(zip(review.SCORE_KEYS, scores)), key: value}


def synthetic_round(rng, videos, predictions):
    """A pseudo-label file as pseudo_label.py writes it, with random predictions."""
    database, n_acc = {}, predictions // 4
    for v in range(videos):
        duration = round(float(rng.uniform(30, 600)), 2)
        acc = [entry(rng, duration, "origin", rng.choice(["positive", "mined"])) for _ in range(n_acc)]
        rej = [entry(rng, duration, "reason", rng.choice(["candidate", "eap", "duplicate"]))
               for _ in range(predictions - n_acc)]
        order = lambda e: (e["segment"][0], e["segment"][1], e["label_id"])  # noqa: E731
        database[f"video_{v:05d}"] = {"subset": "train", "duration": duration, "fps": 30.0,
                                      "annotations": sorted(acc, key=order), "rejected": sorted(rej, key=order)}
    tau = {vid: round(float(rng.uniform(0.15, 0.5)), 4) for vid in database}
    return pseudo_file.file_dict({"selection": "adaptive", "tau_pos": tau}, database)


def next_round(rng, data):
    """The next round: each pseudo label kept, moved a little, relabelled or dropped; a few added."""
    data = json.loads(json.dumps(data))
    for v in data["database"].values():
        keep = []
        for a in v["annotations"]:
            fate = rng.choice(["keep", "move", "relabel", "drop"], p=[0.6, 0.2, 0.1, 0.1])
            if fate == "move":
                a["segment"][1] = round(max(a["segment"][0] + 0.1, a["segment"][1] - 0.2), 3)
            if fate == "relabel":
                a["label_id"] = (a["label_id"] + 1) % len(CLASSES)
                a["label"] = CLASSES[a["label_id"]]
            if fate != "drop":
                keep.append(a)
        v["annotations"] = keep + [entry(rng, v["duration"], "origin", "mined") for _ in range(len(keep) // 10)]
    return data


def timed(argv):
    """Seconds of review.main(argv) in this process and of the same command in a fresh one."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        review.main(argv)
    inside = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "review_pseudo_labels.py")] + argv, check=True,
                   capture_output=True)
    return inside, time.perf_counter() - start


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(0)
    first = synthetic_round(rng, args.videos, args.predictions)
    second = next_round(rng, first)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, name) for name in ("round1.json", "round2.json")]
        for path, data in zip(paths, (first, second)):
            with open(path, "w") as f:
                json.dump(data, f, indent=2)
        print(f"{args.videos} videos x {args.predictions} predictions; pseudo-label file "
              f"{os.path.getsize(paths[1]) / 1e6:.1f} MB")
        print(f"{'command':<24} {'main() s':>9} {'command s':>10} {'page MB':>8}")
        for name, argv_ in (("page", [paths[1], "--out", os.path.join(tmp, "page")]),
                            ("page --previous", [paths[1], "--previous", paths[0], "--out", os.path.join(tmp, "prev")]),
                            ("--diff", ["--diff", paths[0], paths[1]])):
            inside, whole = timed(argv_)
            out = os.path.join(argv_[-1], "index.html") if "--out" in argv_ else None
            size = f"{os.path.getsize(out) / 1e6:.2f}" if out else "-"
            print(f"{name:<24} {inside:>9.2f} {whole:>10.2f} {size:>8}")


if __name__ == "__main__":
    main()
