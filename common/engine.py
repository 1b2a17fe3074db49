"""Machinery every training stage shares: seeding, device, optimiser and schedule, EMA, the epoch loop.

`train_one_epoch` knows nothing about what is being learned: each stage passes its own
`compute_loss(model, batch) -> dict` with a `loss` entry.
"""
import copy
import functools
import json
import math
import os
import random
import time

import numpy as np
import torch
from tqdm import tqdm

from common.config import check_choice
from common.data import collate
from common.distributed import ShardSampler, average_stats, is_main, per_process_batch, world_size


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name):
    """'cpu', 'cuda', 'cuda:1' or 'auto' (CUDA when present)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda asked for, but PyTorch sees no CUDA device")
    return torch.device(name)


def build_optimizer(model, tcfg):
    """AdamW; no weight decay on biases, norms and scales (1-D parameters), as ActionFormer."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(".scale") or "norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": tcfg["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tcfg["lr"])


def build_scheduler(optimizer, tcfg, iters_per_epoch):
    """Linear warmup for `warmup_epochs`, then cosine decay to zero over `epochs`, per iteration."""
    warmup = tcfg["warmup_epochs"] * iters_per_epoch
    total = tcfg["epochs"] * iters_per_epoch

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, total) / max(total, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class ModelEma:
    """Exponential moving average of the weights, used for evaluation and pseudo labels.

    The decay ramps up as min(decay, (1 + step) / (10 + step)): with the published 0.999 and the few
    hundred iterations of a small labeled split, a plain EMA would still be mostly the random
    initialisation at the end of training.
    """

    def __init__(self, model, decay):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model, step):
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(m.detach(), alpha=1.0 - d)
            else:
                e.copy_(m)


def move_batch(batch, device):
    """Tensors of a (possibly nested) batch dict to `device`; lists of per-video tensors stay."""
    return {k: (v.to(device) if torch.is_tensor(v) else move_batch(v, device) if isinstance(v, dict) else v)
            for k, v in batch.items()}


def make_loader(dataset, cfg, epoch, pad_multiple):
    """A loader whose shuffle and crops depend only on (seed, epoch): resumable, deterministic, and
    under torchrun this process's share of the same global batches (common/distributed.py)."""
    dataset.set_epoch(epoch)
    seed = cfg["seed"] * 100003 + epoch
    return torch.utils.data.DataLoader(
        dataset, batch_size=per_process_batch(cfg["train"]["batch_size"]), sampler=ShardSampler(len(dataset), seed),
        num_workers=cfg["train"]["num_workers"], generator=torch.Generator().manual_seed(seed),
        collate_fn=functools.partial(collate, pad_multiple=pad_multiple))


def iters_per_epoch(num_videos, batch_size):
    """Optimiser steps in one pass over `num_videos`, as make_loader deals them."""
    per_process = -(-num_videos // world_size())  # ShardSampler pads to equal shares
    return -(-per_process // per_process_batch(batch_size))


def autocast(device, precision):
    """bf16 autocast on GPUs (train.precision auto or bf16); fp32 otherwise."""
    check_choice("train.precision", precision)
    enabled = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def clip_gradients(model, max_norm):
    """Clip the gradient norm of the detector and of the ICD discriminator each on its own (ActionFormer
    clips its detector's alone). Clipped together, the ICD's gradient, which never reaches the
    detector, shrank the detector's steps whenever the sum was clipped: ours trained below the
    ActionFormer package in each of six seeds on `hard` at 10% (by 0.2 to 1.7 points), and level with
    it once clipped apart (docs/results.md, "Side by side with ActionFormer")."""
    groups = {}
    for name, p in model.named_parameters():  # the plain model: DDP wraps only the loss (distribute_loss)
        if p.grad is not None:
            groups.setdefault(name.startswith("icd."), []).append(p)
    for params in groups.values():
        torch.nn.utils.clip_grad_norm_(params, max_norm)


def train_one_epoch(model, loader, optimizer, scheduler, compute_loss, ema, device, epoch,
                    step, clip_grad=1.0, progress=True, precision="auto"):
    """One pass over `loader`; returns (mean of each loss entry, the new global step).

    `compute_loss` comes from common.distributed.distribute_loss: under torchrun it runs through
    DistributedDataParallel, whose backward averages the gradients of the processes."""
    model.train()
    sums, count = {}, 0
    start = time.time()
    bar = tqdm(loader, desc=f"epoch {epoch}", unit="it", disable=not (progress and is_main()), leave=False)
    for batch in bar:
        with autocast(device, precision):
            parts = compute_loss(model, move_batch(batch, device))
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        if clip_grad > 0:
            clip_gradients(model, clip_grad)
        optimizer.step()
        scheduler.step()
        step += 1
        if ema is not None:
            ema.update(model, step)
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + (v.item() if torch.is_tensor(v) else float(v))
        count += 1
        bar.set_postfix(loss=f"{sums['loss'] / count:.3f}")
        if not math.isfinite(parts["loss"].item()):
            raise SystemExit(f"error: the loss became {parts['loss'].item()} at epoch {epoch}, step {step}")
    stats = average_stats({k: v / max(count, 1) for k, v in sums.items()}, device)
    stats.update(lr=optimizer.param_groups[0]["lr"], seconds=time.time() - start, iters=count)
    return stats, step


def loss_line(stats):
    """An epoch's losses for the console, the total first: "loss 0.4100  cls 0.2000  reg 0.1000 ...",
    whichever parts the detector's loss gives (common/stage.py, detector_parts)."""
    parts = [f"{k.removesuffix('_loss')} {v:.4f}" for k, v in stats.items() if k.endswith("_loss")]
    return "  ".join([f"loss {stats['loss']:.4f}"] + parts)


def log_epoch(out, epoch, total, step, stats, losses=None):
    """An epoch's figures appended to out/log.jsonl and its console line: the losses (`losses`, or
    loss_line's), the learning rate and the seconds it took."""
    append_jsonl(os.path.join(out, "log.jsonl"), {"epoch": epoch, "step": step, **stats})
    print(f"epoch {epoch + 1}/{total}  {losses or loss_line(stats)}  lr {stats['lr']:.2e}  {stats['seconds']:.1f}s",
          flush=True)


def append_jsonl(path, record):
    """One JSON line per epoch; appending keeps earlier lines intact across --resume. Main process only."""
    if not is_main():
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
