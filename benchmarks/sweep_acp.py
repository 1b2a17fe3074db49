"""Choose ACP's N, B and temperature by measurement (not a test).

For each setting, pre-trains with pretrain_acp.py for a few epochs on the embedded default's
training videos (no labels), then measures how well the learned pyramid representation separates
what ACP is meant to separate, on the test videos: the 5-NN accuracy (neighbours from other videos
only) of action vs background frames and of the action class of action frames. One knob moves at
a time from the defaults in configs/default.yaml.

  python benchmarks/sweep_acp.py --epochs 5
"""
import argparse
import os
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common.config import load_config  # noqa: E402
from common.data import VideoDataset  # noqa: E402
from common.stage import eval_ids, load_data  # noqa: E402
from synthetic.make import make_data  # noqa: E402
from tools.plot_tsne import knn_accuracy, load_model, representation  # noqa: E402

GRID = [[], ["acp.temperature=0.05"], ["acp.temperature=0.5"], ["acp.segments=16"], ["acp.segments=64"],
        ["acp.clusters=2"], ["acp.clusters=8"], ["model.acp_proj_dim=0"]]


def measure(cfg, spec, videos=40):
    torch.manual_seed(0)
    all_videos, classes = load_data(cfg)
    ids = eval_ids(cfg, all_videos)[:videos]
    model = load_model(cfg, classes, spec, torch.device("cpu"))
    x, coarse, fine, video = representation(model, VideoDataset(cfg["dataset"], all_videos, ids, False), 64)
    act = fine >= 0
    return knn_accuracy(x, coarse, video), knn_accuracy(x[act], fine[act], video[act])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default="outputs/sweep_acp")
    args = parser.parse_args(argv)
    make_data(load_config(args.config))
    rows = [("no pre-training (random)", measure(load_config(args.config), "random"))]
    for sets in GRID:
        sets = sets + [f"acp.epochs={args.epochs}", "acp.warmup_epochs=1"]
        out = os.path.join(args.out, "_".join(s.replace("=", "") for s in sets))
        cmd = [sys.executable, "pretrain_acp.py", "--config", args.config, "--out", out, "--resume",
               "--no-progress"] + sum((["--set", s] for s in sets), [])
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        cfg = load_config(args.config, sets)
        rows.append((" ".join(sets[:-2]) or "defaults", measure(cfg, os.path.join(out, "last.pt"))))
        print(f"{rows[-1][0]}: action/background {rows[-1][1][0]:.3f}, class {rows[-1][1][1]:.3f}", flush=True)
    print(f"\n| ACP setting ({args.epochs} epochs) | 5-NN action/background | 5-NN class |\n|---|---|---|")
    for name, (ab, cl) in rows:
        print(f"| {name} | {ab:.3f} | {cl:.3f} |")


if __name__ == "__main__":
    main()
