"""Checkpoints are plain data: tensors and builtins, written atomically, loaded with weights_only=True.

A checkpoint is {"model", "ema", "optimizer", "scheduler", "epoch", "step", "config", "stage",
"parents", ...}: the unwrapped model's state, the EMA weights used for evaluation, and the resolved
config, so any later stage can rebuild the exact detector.
"""
import os

import torch

from common.config import atomic_write


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the detector."""


def save_checkpoint(path, state):
    """torch.save to a temporary file beside `path`, then rename: never a half-written checkpoint."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path):
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which one, in one line
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None


def eval_weights(ckpt):
    """The weights to evaluate with: the EMA when the checkpoint has one."""
    return ckpt.get("ema") or ckpt["model"]


def load_pretrained(model, state, path, fresh_prefixes=()):
    """Load `state` into `model` where a partial load is by design (pre-trained parts -> detector).

    Every key of `state` must exist in `model` with the same shape; the model's keys missing from
    `state` must all start with one of `fresh_prefixes` (the parts that start fresh, e.g. the heads).
    Returns the list of fresh keys so the caller can print it.
    """
    own = model.state_dict()
    unexpected = sorted(k for k in state if k not in own)
    if unexpected:
        raise CheckpointError(f"{path}: keys the detector does not have: {', '.join(unexpected[:5])}")
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{path}: {k}: shape {tuple(v.shape)} != model's {tuple(own[k].shape)}")
    missing = sorted(k for k in own if k not in state)
    wrong = [k for k in missing if not k.startswith(tuple(fresh_prefixes))]
    if wrong:
        raise CheckpointError(f"{path}: missing weights outside the fresh parts: {', '.join(wrong[:5])}")
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys and sorted(result.missing_keys) == missing
    return missing


def training_state(model, ema, optimizer, scheduler, epoch, step, cfg, stage, parents, classes, loss_norms):
    """Everything a run needs to continue exactly where it stopped."""
    return {"model": model.state_dict(), "ema": ema.module.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": epoch, "step": step, "config": cfg, "stage": stage, "parents": parents,
            "classes": classes, "loss_norms": [n.value for n in loss_norms], "rng": torch.get_rng_state()}


def restore_training_state(path, model, ema, optimizer, scheduler, loss_norms, fresh_prefixes=None):
    """--resume: load a training_state() checkpoint in place -> (next epoch, step).
    fresh_prefixes: the checkpoint holds only part of the model (pre-training), the rest is unused."""
    ckpt = load_checkpoint(path)
    if fresh_prefixes is None:
        model.load_state_dict(ckpt["model"])
        ema.module.load_state_dict(ckpt["ema"])
    else:
        load_pretrained(model, ckpt["model"], path, fresh_prefixes)
        load_pretrained(ema.module, ckpt["ema"], path, fresh_prefixes)
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    for norm, value in zip(loss_norms, ckpt["loss_norms"]):
        norm.value = value
    torch.set_rng_state(ckpt["rng"])
    print(f"resumed {path} at epoch {ckpt['epoch'] + 1}")
    return ckpt["epoch"] + 1, ckpt["step"]
