"""Speed and memory of every part of the pipeline, and how each grows when the input doubles.

Prints one table:
  train supervised / semi   seconds per iteration and iterations per second on a batch of two
                            videos of L steps (random features and actions), at L and 2L, and the
                            epoch over N and 2N videos of the embedded dataset; peak memory
  pseudo-label / evaluate   videos per second of the detector + decoding + Soft-NMS over whole
                            videos of the embedded dataset, at N and 2N videos and at twice their length
  Soft-NMS                  milliseconds on 10,000 and 20,000 random segments (20 classes)
  mAP                       seconds for 200 and 400 videos x 2,000 predictions, and 200 x 4,000
The "x2" column is the ratio of the doubled measurement to the plain one: 2.0 is linear.
Every measurement runs in its own process, so its peak memory (ru_maxrss on the CPU, the CUDA
allocator's peak on a GPU) is its own. The detector is the default config's, freshly initialised:
its scores are all near the prior, so Soft-NMS gets many candidates (a worst case for decoding).

  python benchmarks/bench_perf.py                  # about 5 min on two CPU cores
  python benchmarks/bench_perf.py --device cuda --threads 8
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common.config import load_config  # noqa: E402
from common.data import VideoDataset  # noqa: E402
from common.detect import predict  # noqa: E402
from common.engine import build_optimizer, make_loader, move_batch, train_one_epoch  # noqa: E402
from common.icd import InstanceBank, feature_source  # noqa: E402
from common.losses import LossNormalizer, labeled_loss, pseudo_labeled_loss  # noqa: E402
from common.metrics import compute_map  # noqa: E402
from common.nms import batched_nms  # noqa: E402
from common.stage import build_detector, load_data, subset_ids  # noqa: E402
from synthetic.make import make_data  # noqa: E402


# ---------------------------------------------------------------- one measurement (in its own process)

def _setup(args, overrides=()):
    cfg = load_config(args.config, ["acp.mode=none"] + list(overrides))
    videos, classes = load_data(cfg)
    torch.manual_seed(0)
    return cfg, videos, classes, build_detector(cfg, classes, torch.device(args.device))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _random_batch(cfg, num_classes, length, rng):
    """Two videos of `length` steps with random features and 3-6 random actions each."""
    feats = torch.from_numpy(rng.standard_normal((2, cfg["dataset"]["feature_dim"], length)).astype(np.float32))
    segments, labels = [], []
    for _ in range(2):
        n = int(rng.integers(3, 7))
        start = rng.uniform(0, length * 0.9, n)
        segments.append(torch.tensor(np.stack([start, np.minimum(start + rng.uniform(4, 60, n), length)], 1),
                                     dtype=torch.float32))
        labels.append(torch.from_numpy(rng.integers(0, num_classes, n)))
    return {"feats": feats, "mask": torch.ones(2, length, dtype=torch.bool), "segments": segments, "labels": labels,
            "video_id": ["a", "b"]}


def measure_iteration(args, semi):
    """Seconds per training iteration on random batches of two videos of --length steps."""
    device = torch.device(args.device)
    cfg, videos, classes, model = _setup(args, [f"dataset.max_seq_len={args.length}"])
    train_ids = subset_ids(videos, cfg["dataset"]["train_subset"], cfg["dataset"]["annotation_file"])
    bank = InstanceBank(cfg["dataset"], videos, train_ids).build(
        feature_source(cfg["dataset"], device))
    norms = [LossNormalizer() for _ in range(2)]
    optimizer = build_optimizer(model, cfg["train"])
    rng = np.random.default_rng(0)
    batches = [_random_batch(cfg, len(classes), args.length, rng) for _ in range(4)]
    model.train()

    def step(i):
        batch = move_batch(batches[i % len(batches)], device)
        loss = labeled_loss(model, batch, cfg, norms[0], bank)["loss"]
        if semi:  # Eq. (12): a pseudo-labeled batch beside every labeled one
            other = move_batch(batches[(i + 1) % len(batches)], device)
            loss = loss + cfg["semi"]["beta"] * pseudo_labeled_loss(model, other, cfg, norms[1])["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(2):
        step(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(args.iters):
        step(i)
    _sync(device)
    return {"seconds": (time.perf_counter() - start) / args.iters}


def measure_epoch(args):
    """Seconds of one supervised epoch over the first --videos training videos (the real loop)."""
    device = torch.device(args.device)
    cfg, videos, classes, model = _setup(args)
    ids = subset_ids(videos, cfg["dataset"]["train_subset"], cfg["dataset"]["annotation_file"])[:args.videos]
    dataset = VideoDataset(cfg["dataset"], videos, ids, training=True, seed=0)
    bank = InstanceBank(cfg["dataset"], videos, ids).build(feature_source(cfg["dataset"], device))
    optimizer = build_optimizer(model, cfg["train"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    loss = lambda m, b: labeled_loss(m, b, cfg, LossNormalizer(), bank)  # noqa: E731
    start = time.perf_counter()
    stats, _ = train_one_epoch(model, make_loader(dataset, cfg, 0, model.pad_multiple), optimizer, scheduler,
                               loss, None, device, 0, 0, progress=False)
    _sync(device)
    return {"seconds": time.perf_counter() - start, "iters": stats["iters"]}


class _Tiled(VideoDataset):
    """Whole videos repeated `times` times end to end: the same content at `times` the length."""

    def __init__(self, *a, times=1, **kw):
        super().__init__(*a, **kw)
        self.times = times

    def __getitem__(self, i):
        item = super().__getitem__(i)
        item["feats"] = item["feats"].repeat(1, self.times)
        item["duration"] = item["duration"] * self.times
        return item


def measure_predict(args):
    """Videos per second of inference + decoding + Soft-NMS (what evaluate.py and pseudo_label.py run)."""
    device = torch.device(args.device)
    cfg, videos, classes, model = _setup(args)
    ids = subset_ids(videos, cfg["dataset"]["eval_subset"], cfg["dataset"]["annotation_file"])
    ids = (ids * 4)[:args.videos]
    dataset = _Tiled(cfg["dataset"], videos, ids, training=False, times=args.times)
    predict(model, _Tiled(cfg["dataset"], videos, ids[:2], training=False), cfg, device, False)  # warm up
    start = time.perf_counter()
    results = predict(model, dataset, cfg, device, False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "videos_per_s": len(ids) / seconds,
            "segments": int(sum(len(r["scores"]) for r in results.values()))}


def measure_nms(args):
    rng = np.random.default_rng(0)
    n = args.segments
    start = rng.uniform(0, 1000, n)
    segs = torch.tensor(np.stack([start, start + rng.uniform(1, 50, n)], 1), dtype=torch.float32)
    scores = torch.tensor(rng.uniform(0.001, 1, n), dtype=torch.float32)
    labels = torch.from_numpy(rng.integers(0, 20, n))
    cfg = {"sigma": 0.5, "min_score": 0.001, "max_segments": 200, "class_agnostic": False, "voting": False,
           "voting_iou": 0.75}
    batched_nms(segs, scores, labels, cfg)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        batched_nms(segs, scores, labels, cfg)
        times.append(time.perf_counter() - t)
    return {"seconds": min(times)}


def measure_map(args):
    rng = np.random.default_rng(0)
    classes = [f"c{i}" for i in range(20)]
    gt, pred = {}, {}
    for v in range(args.videos):
        n = int(rng.integers(3, 15))
        s = rng.uniform(0, 200, n)
        gt[f"v{v}"] = [{"label": classes[c], "segment": [a, a + d]}
                       for a, d, c in zip(s, rng.uniform(1, 20, n), rng.integers(0, 20, n))]
        s = rng.uniform(0, 200, args.preds)
        pred[f"v{v}"] = [{"label": classes[c], "segment": [a, a + d], "score": p}
                         for a, d, c, p in zip(s, rng.uniform(1, 20, args.preds), rng.integers(0, 20, args.preds),
                                               rng.uniform(0, 1, args.preds))]
    t = time.perf_counter()
    compute_map(gt, pred, [0.3, 0.4, 0.5, 0.6, 0.7], classes)
    return {"seconds": time.perf_counter() - t}


MEASURES = {"train": lambda a: measure_iteration(a, False), "semi": lambda a: measure_iteration(a, True),
            "epoch": measure_epoch, "predict": measure_predict, "nms": measure_nms, "map": measure_map}


def run_one(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    result = MEASURES[args.measure](args)
    if args.device.startswith("cuda"):
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


# ---------------------------------------------------------------- the table

def spawn(args, measure, **kw):
    cmd = [sys.executable, os.path.abspath(__file__), "--measure", measure, "--config", args.config,
           "--device", args.device, "--iters", str(args.iters)] + (["--threads", str(args.threads)] if args.threads else [])
    for k, v in kw.items():
        cmd += [f"--{k}", str(v)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
        raise SystemExit(f"error: measurement {measure} {kw} failed")
    return json.loads([l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1][7:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    parser.add_argument("--iters", type=int, default=10, help="timed training iterations")
    parser.add_argument("--json", help="also write the figures here")
    # one measurement, used by the table's own subprocesses
    parser.add_argument("--measure", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    for name, default in (("length", 512), ("videos", 40), ("times", 1), ("segments", 10000), ("preds", 2000)):
        parser.add_argument(f"--{name}", type=int, default=default, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        return run_one(args)
    make_data(load_config(args.config))  # what every measurement's process reads

    rows = []
    t0 = time.time()

    def row(name, unit, base, doubled, what, value=lambda r: r["seconds"]):
        a, b = spawn(args, **base), spawn(args, **doubled)
        rows.append({"name": name, "unit": unit, "value": value(a), "doubled": value(b), "what": what,
                     "ratio": b["seconds"] / a["seconds"], "peak_mb": max(a["peak_mb"], b["peak_mb"])})
        print(f"  measured {name} ({time.time() - t0:.0f} s)", flush=True)

    row("train supervised, s/iter", "s", dict(measure="train", length=512), dict(measure="train", length=1024),
        "video length 512 -> 1024 steps")
    row("train semi (labeled + pseudo-labeled batch), s/iter", "s", dict(measure="semi", length=512),
        dict(measure="semi", length=1024), "video length 512 -> 1024 steps")
    row("supervised epoch, s", "s", dict(measure="epoch", videos=40), dict(measure="epoch", videos=80),
        "videos 40 -> 80")
    row("pseudo-label / evaluate, videos/s", "videos/s", dict(measure="predict", videos=80),
        dict(measure="predict", videos=160), "videos 80 -> 160", lambda r: r["videos_per_s"])
    row("pseudo-label / evaluate (long videos), videos/s", "videos/s", dict(measure="predict", videos=80),
        dict(measure="predict", videos=80, times=2), "video length x2", lambda r: r["videos_per_s"])
    row("Soft-NMS, ms", "ms", dict(measure="nms", segments=10000), dict(measure="nms", segments=20000),
        "segments 10k -> 20k", lambda r: 1000 * r["seconds"])
    row("mAP, s", "s", dict(measure="map", videos=200), dict(measure="map", videos=400),
        "videos 200 -> 400 (x 2000 predictions)")
    row("mAP, s", "s", dict(measure="map", videos=200), dict(measure="map", videos=200, preds=4000),
        "predictions per video 2000 -> 4000")

    print(f"\nPerformance, {args.config}, device {args.device}, torch threads "
          f"{args.threads or torch.get_num_threads()}")
    print("| measure | value | doubled input | value there | time x | peak MB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['value']:.3g} | {r['what']} | {r['doubled']:.3g} | {r['ratio']:.2f} | "
              f"{r['peak_mb']:.0f} |")
    print("(time x: seconds of the doubled input over the plain one; 2.00 is linear)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
