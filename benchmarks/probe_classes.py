"""How well the raw input features name an action's class: a nearest-prototype probe.

Each action's feature is the mean over its grid steps of (features - its video's median feature),
the same pooling as pseudo.relabel's prototypes (common/relabel.py); each class's prototype is the
mean of its labeled actions' (labeled split); every action of the unlabeled split is named by the
nearest prototype in cosine, among every class that has one. The accuracy says how much a rule
built on the input features' geometry can rest on them: 81% on `small`, 44% on a held-out benchmark
with THUMOS14's layout, 24% on that benchmark's features through a fixed ReLU encoder (issue 26).
It reads the unlabeled videos' annotations, so it is a property of the data, not a method. Where
the config's pseudo.prototype_parts is above 1, it also pools each action in that many pieces, side
by side, as the rule then does.

With --checkpoint (a detector's or pretrain_acp.py's, trained with this config), the same probe on
the detector's own embedding as well: every level of its feature pyramid (backbone and neck, what
the heads and ACP's projection read) read at every grid step by linear interpolation and laid side by
side, not centred: would prototypes there name classes better than the raw features'? (On three of
the four ReLU presets they did not: docs/results.md, "Prototypes on the detector's own embedding".)

    python benchmarks/probe_classes.py --config configs/default.yaml [--checkpoint CKPT] [--set key=value ...]
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common.checkpoint import load_checkpoint  # noqa: E402
from common.config import load_config  # noqa: E402
from common.stage import build_detector, load_data, run_main, start_from  # noqa: E402
from harness import probe_accuracy, probe_by_parts  # noqa: E402  (bench_presets.py measures it on every preset)
from synthetic.make import make_data  # noqa: E402


def pyramid_embedding(model):
    """(T, D) grid features -> (T, C x levels): the model's pyramid, each level read at every grid
    step by linear interpolation between its points (point k of a level of stride s sits at grid
    position k s, as common/model.py make_points places it)."""
    @torch.no_grad()
    def transform(feats):
        x = torch.tensor(np.asarray(feats), dtype=torch.float32).T[None]                # (1, D, T)
        t, pad = x.shape[2], -x.shape[2] % model.pad_multiple
        mask = torch.zeros(1, t + pad, dtype=torch.bool)
        mask[:, :t] = True
        levels, _ = model.pyramid(F.pad(x, (0, pad)), mask)
        out = []
        for level, stride in zip(levels, model.strides):
            pos = torch.arange(t, dtype=torch.float64) / stride
            lo = pos.floor().long()
            hi, w = (lo + 1).clamp(max=level.shape[2] - 1), (pos - lo)[:, None]
            y = level[0].T.double()                                                     # (T_l, C)
            out.append((1 - w) * y[lo] + w * y[hi])
        return torch.cat(out, dim=1).numpy()
    return transform


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--checkpoint", help="a detector's (or pretrain_acp.py's) last.pt: probe its pyramid too")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.set)
    ckpt = load_checkpoint(args.checkpoint) if args.checkpoint else None  # a bad file stops it before the probe
    make_data(cfg)
    probes = probe_by_parts(cfg)
    result = probes.pop(1)
    print(f"nearest-prototype probe: {100 * result['accuracy']:.1f}% of {result['actions']} unlabeled actions "
          f"named right ({result['labeled_actions']} labeled actions, {result['classes_with_prototype']} "
          "classes with a prototype)")
    for parts, got in probes.items():  # as pseudo.relabel pools them: each action in parts pieces, side by side
        result["parts_accuracy"] = got["accuracy"]
        print(f"the same with each action pooled in {parts} parts (pseudo.prototype_parts): "
              f"{100 * got['accuracy']:.1f}%")
    if ckpt is not None:
        model = build_detector(cfg, load_data(cfg, scores=False)[1], "cpu")
        start_from(model, ckpt, args.checkpoint, cfg)
        result["embedding_accuracy"] = probe_accuracy(cfg, pyramid_embedding(model.eval()))["accuracy"]
        print(f"the same on {args.checkpoint}'s feature pyramid: {100 * result['embedding_accuracy']:.1f}%")
    return result


if __name__ == "__main__":
    run_main(main)
