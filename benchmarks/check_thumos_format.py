"""Check that the stage scripts run unchanged on the real THUMOS14 annotation file (not a test).

No THUMOS14 features can be downloaded here, so this writes random features of the right shape,
(T, 2048) float per video with T given by the video's duration, fps and the I3D grid (stride 4,
16 frames), writes a seeded 10% split of the Validation videos, then runs train_supervised.py
(one epoch, the published configs/thumos_i3d.yaml) and evaluate.py over the 212 Test videos.
The mAP is meaningless (random features); what is checked is that every step runs, and how long.

  python benchmarks/check_thumos_format.py --annotations ../shared/data/thumos14/thumos14.json
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from synthetic.thumos_like import num_features  # noqa: E402


def write_features(annotations, feature_dir, subsets, dim=2048):
    """float16 random features (half the disk); the reader converts them to float32."""
    os.makedirs(feature_dir, exist_ok=True)
    db = json.load(open(annotations))["database"]
    rng = np.random.default_rng(0)
    for vid, info in db.items():
        path = os.path.join(feature_dir, f"{vid}.npy")
        if info["subset"] in subsets and not os.path.exists(path):
            t = num_features(info["duration"], info["fps"], 4, 16)
            np.save(path, rng.standard_normal((t, dim), dtype=np.float32).astype(np.float16))


def run(cmd):
    start = time.time()
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run([sys.executable] + cmd, cwd=ROOT, check=True)
    return time.time() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", required=True, help="THUMOS14 annotation file (ActionFormer format)")
    parser.add_argument("--work", default="outputs/thumos_format_check")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    feats, splits = os.path.join(args.work, "features"), os.path.join(args.work, "splits")
    start = time.time()
    write_features(args.annotations, feats, {"Validation", "Test"})
    print(f"features written in {time.time() - start:.0f} s")
    sets = ["--set", f"dataset.annotation_file={args.annotations}", "--set", f"dataset.feature_dir={feats}"]
    run(["-m", "common.data", "--config", "configs/thumos_i3d.yaml", "--ratio", "0.1",
         "--out-dir", splits] + sets)
    sets += ["--set", f"dataset.labeled_split={splits}/labeled_10pct.txt"]
    out = os.path.join(args.work, "supervised")
    train_s = run(["train_supervised.py", "--config", "configs/thumos_i3d.yaml", "--out", out, "--resume",
                   "--device", args.device, "--no-progress", "--set", "train.epochs=1",
                   "--set", "train.warmup_epochs=0"] + sets)
    eval_s = run(["evaluate.py", "--config", "configs/thumos_i3d.yaml", "--checkpoint", f"{out}/last.pt",
                  "--out", f"{out}/predictions.json", "--device", args.device, "--no-progress",
                  "--no-per-class"] + sets)
    print(f"THUMOS14 format check passed: train 1 epoch on 20 videos {train_s:.0f} s, "
          f"evaluate 212 videos {eval_s:.0f} s (device {args.device})")


if __name__ == "__main__":
    main()
