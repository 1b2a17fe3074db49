"""Train and run the public ActionFormer package (PyPI `actionformer` 1.5.0) on a job file, on the CPU.

Runs inside the ActionFormer virtual environment (its own torch), started by
benchmarks/bench_actionformer.py, which writes the job: the package's config (already mapped from
ours), the training and test videos with their ground truth in feature-grid units, the crop settings
and the seed. Imports nothing from this repository, so it measures the package alone.

The package's train.py calls torch.cuda.synchronize(), so this file drives the package's own parts
from a small loop instead: `load_config` (its defaults merged under ours), `make_meta_arch`
("LocPointTransformer", whose forward computes the losses from the gt lists in training mode and
decodes + Soft-NMS's in eval mode), `make_optimizer`, `make_scheduler`, `ModelEma`. What the loop
mirrors of the package's data side: its video dicts, its crop rule (`truncate_feats`: a window of
max_seq_len kept when some action has >= trunc_thresh of its length inside the window widened by
half a clip on each side, up to 200 tries) and its loader (trivial collate, shuffle, drop_last).
Crop positions and shuffle order are drawn exactly as in our common/data.py and common/engine.py,
so both detectors see the same windows in the same order whenever both crop rules accept the draw.

Writes to --out: log.jsonl (one line per epoch: losses, seconds, iters), predictions.json (EMA
weights, ActivityNet results format with our class names, seconds), predictions_raw.json (the
trained weights without EMA, for diagnosis) and timing.json.

  outputs/actionformer_venv/bin/python benchmarks/actionformer_driver.py --job JOB.json --out DIR
"""
import argparse
import json
import os
import random
import time

import numpy as np
import torch
import yaml

from actionformer import (ModelEma, __version__, load_config, make_meta_arch, make_optimizer,
                          make_scheduler)

CROP_TRIES = 200  # truncate_feats' max_num_trials


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", required=True, help="job JSON written by bench_actionformer.py")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (the package's NMS runs on the CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave)")
    return parser.parse_args(argv)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Videos(torch.utils.data.Dataset):
    """The package's video dicts: feats (C, T), segments (N, 2) and labels (N,) in grid units."""

    def __init__(self, items, feat_stride, num_frames, crop=None, seed=0):
        self.items, self.stride, self.frames = items, feat_stride, num_frames
        self.crop, self.seed, self.epoch = crop, seed, 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        item = self.items[i]
        feats = np.load(item["features"], mmap_mode="r")                        # (T, C)
        segments = np.asarray(item["segments"], dtype=np.float64).reshape(-1, 2)
        labels = np.asarray(item["labels"], dtype=np.int64)
        if self.crop is not None and len(feats) > self.crop["max_seq_len"]:
            rng = np.random.default_rng([self.seed, self.epoch, i])  # our VideoDataset's draw
            feats, segments, labels = truncate(feats, segments, labels, rng, self.crop,
                                               offset=0.5 * self.frames / self.stride)
        return {"video_id": item["video_id"],
                "feats": torch.from_numpy(np.ascontiguousarray(np.asarray(feats, np.float32).T)),
                "segments": torch.from_numpy(segments.astype(np.float32)),
                "labels": torch.from_numpy(labels),
                "fps": item["fps"], "duration": item["duration"],
                "feat_stride": self.stride, "feat_num_frames": self.frames}


def truncate(feats, segments, labels, rng, crop, offset):
    """The package's truncate_feats rule, with the window start drawn from `rng`."""
    size, thresh = crop["max_seq_len"], crop["trunc_thresh"]
    for _ in range(CROP_TRIES):
        start = int(rng.integers(0, len(feats) - size + 1))
        left = np.maximum(start - offset, segments[:, 0])
        right = np.minimum(start + size + offset, segments[:, 1])
        inside = np.clip(right - left, 0, None) / np.abs(segments[:, 1] - segments[:, 0])
        keep = inside >= thresh
        if keep.any() or len(segments) == 0:
            break
    kept = np.stack([left[keep], right[keep]], axis=1) - start
    return feats[start:start + size], kept, labels[keep]


def train(model, dataset, cfg, job, out_dir):
    """The package's train_one_epoch, less its CUDA calls and printing; returns per-epoch stats."""
    opt = cfg["opt"]
    loader_args = dict(batch_size=cfg["loader"]["batch_size"], shuffle=True, drop_last=True,
                       num_workers=0, collate_fn=lambda batch: batch)
    iters = len(dataset) // cfg["loader"]["batch_size"]
    optimizer = make_optimizer(model, opt)
    scheduler = make_scheduler(optimizer, opt, iters)
    ema = ModelEma(model, decay=job["ema_decay"])
    clip = cfg["train_cfg"]["clip_grad_l2norm"]
    log = []
    for epoch in range(opt["warmup_epochs"] + opt["epochs"]):
        dataset.epoch = epoch
        gen = torch.Generator().manual_seed(job["seed"] * 100003 + epoch)  # as common/engine.make_loader
        loader = torch.utils.data.DataLoader(dataset, generator=gen, **loader_args)
        model.train()
        sums, count, start = {}, 0, time.time()
        for video_list in loader:
            optimizer.zero_grad(set_to_none=True)
            losses = model(video_list)
            losses["final_loss"].backward()
            if clip > 0.0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            scheduler.step()
            ema.update(model)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            count += 1
        stats = {k: v / max(count, 1) for k, v in sums.items()}
        stats.update(epoch=epoch, seconds=time.time() - start, iters=count,
                     lr=optimizer.param_groups[0]["lr"])
        log.append(stats)
        with open(os.path.join(out_dir, "log.jsonl"), "a") as f:
            f.write(json.dumps(stats, sort_keys=True) + "\n")
        print(f"epoch {epoch + 1}/{opt['warmup_epochs'] + opt['epochs']}  loss {stats['final_loss']:.4f}  "
              f"cls {stats['cls_loss']:.4f}  reg {stats['reg_loss']:.4f}  lr {stats['lr']:.2e}  "
              f"{stats['seconds']:.1f}s", flush=True)
    return ema, log


@torch.no_grad()
def predict(model, dataset, classes):
    """Whole test videos one at a time (the package's inference takes batch size 1) -> results JSON."""
    model.eval()
    results = {}
    for i in range(len(dataset)):
        item = dataset[i]
        out = model([item])[0]  # segments in seconds, clamped to [0, duration], after Soft-NMS
        results[item["video_id"]] = [
            {"label": classes[int(lab)], "score": round(float(s), 6),
             "segment": [round(float(a), 3), round(float(b), 3)]}
            for (a, b), s, lab in zip(out["segments"].tolist(), out["scores"].tolist(), out["labels"].tolist())]
    return {"version": "VERSION 1.3", "results": dict(sorted(results.items())), "external_data": {"used": False}}


def write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.job) as f:
        job = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "log.jsonl")
    if os.path.exists(log_path):
        os.remove(log_path)  # a run is never resumed: start its log afresh

    # 1. The package's config: its defaults under the mapped values (its own load_config).
    cfg_path = os.path.join(args.out, "af_config.yaml")
    with open(cfg_path, "w") as f:
        yaml.safe_dump(job["af_config"], f, sort_keys=False)
    cfg = load_config(cfg_path)

    # 2. Seed, data and model, in our stages' order (seed first).
    seed_everything(job["seed"])
    stride, frames = cfg["dataset"]["feat_stride"], cfg["dataset"]["num_frames"]
    train_set = Videos(job["train"], stride, frames, job["crop"], job["seed"])
    test_set = Videos(job["test"], stride, frames)
    model = make_meta_arch(cfg["model_name"], **cfg["model"]).to(args.device)
    model.loss_normalizer_momentum = job["loss_norm_momentum"]  # a constant in the package (0.9)
    print(f"actionformer {__version__}: {len(train_set)} training videos, {len(test_set)} test videos, "
          f"{sum(p.numel() for p in model.parameters())} parameters, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)

    # 3. Train (timed per epoch, evaluation excluded), then predict with the EMA and the raw weights.
    ema, log = train(model, train_set, cfg, job, args.out)
    start = time.time()
    write_json(os.path.join(args.out, "predictions_raw.json"), predict(model, test_set, job["classes"]))
    write_json(os.path.join(args.out, "predictions.json"), predict(ema.module, test_set, job["classes"]))
    seconds, iters = sum(e["seconds"] for e in log), sum(e["iters"] for e in log)
    timing = {"train_seconds": seconds, "iters": iters, "epochs": len(log),
              "seconds_per_iter": seconds / max(iters, 1), "eval_seconds_two_runs": time.time() - start,
              "threads": torch.get_num_threads(), "version": __version__}
    write_json(os.path.join(args.out, "timing.json"), timing)
    print(f"wrote {args.out}/predictions.json: {seconds / max(iters, 1):.3f} s/iter over {iters} iterations")


if __name__ == "__main__":
    main()
