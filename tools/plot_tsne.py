"""Draw the t-SNE pictures of APL's Fig. 4 for one or more checkpoints, on the evaluation videos.

For each checkpoint the detector's pyramid representation (every level upsampled to the input
length and concatenated, the representation ACP contrasts) is taken at frames sampled from the
evaluation videos, embedded in 2-D with t-SNE, and drawn twice: (a) action vs background frames,
(b) action frames coloured by class. Also printed: the 5-nearest-neighbour accuracy of those two
labelings in the representation itself, a number to compare checkpoints by.

Example (before / after ACP):
  python tools/plot_tsne.py --config configs/default.yaml --out outputs/tsne \\
      --checkpoint outputs/main/supervised_noacp/last.pt --checkpoint outputs/main/acp/last.pt
`--checkpoint random` stands for the randomly initialised detector.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.acp import gather_frames, pyramid_representation, sample_frames, truth_labels  # noqa: E402
from common.checkpoint import eval_weights, load_checkpoint, load_pretrained  # noqa: E402
from common.data import VideoDataset, collate  # noqa: E402
from common.model import HEAD_PREFIXES  # noqa: E402
from common.stage import build_detector, config_from_args, eval_ids, load_data, run_main  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--checkpoint", action="append", required=True, help="repeatable; 'random' for no training")
    parser.add_argument("--out", required=True, help="folder for the PNG files")
    parser.add_argument("--videos", type=int, default=30, help="evaluation videos to sample from")
    parser.add_argument("--frames", type=int, default=64, help="frames sampled per video")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


@torch.no_grad()
def representation(model, dataset, frames):
    """(M, C) pyramid features of sampled frames, their coarse (action=1) / fine (class) labels,
    and the index of the video each comes from."""
    feats, coarse, fine, video = [], [], [], []
    gen = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    for i in range(len(dataset)):
        batch = collate([dataset[i]], model.pad_multiple)
        levels, _ = model.pyramid(batch["feats"].to(device), batch["mask"].to(device))
        idx = sample_frames(batch["mask"], frames, gen).to(device)
        rep = pyramid_representation(levels, batch["mask"].shape[1])
        c, f = truth_labels(batch["segments"], batch["labels"], idx)
        feats.append(gather_frames(rep, idx)[0].cpu())
        coarse.append(c[0].cpu())
        fine.append(f[0].cpu())
        video.append(torch.full((frames,), i))
    return tuple(torch.cat(x).numpy() for x in (feats, coarse, fine, video))


def knn_accuracy(x, y, video, k=5):
    """k-NN accuracy with cosine similarity, neighbours taken from other videos only: frames of one
    video look alike whatever their class, so same-video neighbours would flatter any feature."""
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    sim[video[:, None] == video[None, :]] = -np.inf
    nn_idx = np.argsort(-sim, axis=1)[:, :k]
    votes = np.array([np.bincount(y[row], minlength=y.max() + 1).argmax() for row in nn_idx])
    return float((votes == y).mean())


def scatter(path, xy, labels, names, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 6))
    cmap = plt.get_cmap("tab20")
    for i, name in enumerate(names):
        sel = labels == i
        if sel.any():
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=cmap(i % 20), label=name)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=3, fontsize=6, loc="best", ncol=2 if len(names) > 10 else 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_model(cfg, classes, spec, device):
    model = build_detector(cfg, classes, device).eval()
    if spec != "random":
        ckpt = load_checkpoint(spec)
        load_pretrained(model, eval_weights(ckpt), spec, HEAD_PREFIXES)  # heads play no part here
    return model


def main(argv=None):
    from sklearn.manifold import TSNE
    args = parse_args(argv)
    cfg = config_from_args(args)
    videos, classes = load_data(cfg)
    ids = eval_ids(cfg, videos)[: args.videos]
    dataset = VideoDataset(cfg["dataset"], videos, ids, training=False)
    os.makedirs(args.out, exist_ok=True)
    for spec in args.checkpoint:
        torch.manual_seed(cfg["seed"])
        model = load_model(cfg, classes, spec, torch.device(args.device))
        x, coarse, fine, video = representation(model, dataset, args.frames)
        name = "random" if spec == "random" else os.path.basename(os.path.dirname(os.path.abspath(spec)))
        xy = TSNE(n_components=2, init="pca", random_state=0, perplexity=30).fit_transform(x)
        scatter(os.path.join(args.out, f"{name}_action_background.png"), xy, coarse,
                ["background", "action"], f"{name}: action vs background")
        act = fine >= 0
        scatter(os.path.join(args.out, f"{name}_classes.png"), xy[act], fine[act], classes, f"{name}: action classes")
        print(f"{name}: {len(x)} frames; 5-NN accuracy (neighbours from other videos) action/background "
              f"{knn_accuracy(x, coarse, video):.3f}, class of action frames "
              f"{knn_accuracy(x[act], fine[act], video[act]):.3f}; PNGs in {args.out}")


if __name__ == "__main__":
    run_main(main)
