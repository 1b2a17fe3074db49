"""What every stage script repeats: its common arguments, its config, its data, its detector.

Each stage keeps its own idea in its own file; this module only saves them from pasting the same
set-up five times.
"""
import argparse
import os
import sys
from dataclasses import dataclass
from typing import Callable

import torch

from common import bmn_detector, detect, losses, model
from common.checkpoint import CheckpointError, eval_weights, load_pretrained
from common.config import ConfigError, check_values, from_dict, load_config
from common.data import DataError, VideoDataset, check_features, load_annotations, read_split
from common.distributed import cleanup, setup
from common.engine import resolve_device, seed_everything
from common.video_scores import load_video_scores
from common.windows import WindowDataset


def add_common_args(parser):
    parser.add_argument("--config", required=True, help="YAML config (configs/default.yaml: the embedded dataset)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set train.lr=5e-4 (repeatable)")
    parser.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default: CUDA when present)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (log files, CI)")
    return parser


def make_parser(doc):
    return argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="\n\n".join(doc.split("\n\n")[1:]))


def run_main(main_fn, argv=None):
    """Run a stage; bad input ends in one line on stderr and exit code 2, never a traceback."""
    try:
        return main_fn(argv)
    except (ConfigError, DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        cleanup()


def device_of(args):
    """--device, and under torchrun this process's GPU in the joined process group."""
    return setup(resolve_device(args.device))


def prepare_run(args, cfg):
    """Seed and device of a training stage, and its OUT/last.pt, never overwritten without --resume."""
    seed_everything(cfg["seed"])
    device = device_of(args)
    last = os.path.join(args.out, "last.pt")
    if os.path.exists(last) and not args.resume:
        raise SystemExit(f"error: {last} exists; pass --resume to continue it or choose another --out")
    return device, last


def config_from_args(args):
    try:
        return load_config(args.config, args.set)
    except UnicodeDecodeError:  # yaml reads the file lazily, past load_config's checks
        raise ConfigError(f"{args.config}: not a text file") from None


def config_with_model_of(cfg, ckpt, path="the checkpoint"):
    """The config of this run, with the detector's architecture taken from the checkpoint."""
    check_weights(ckpt, path)
    stored = ckpt.get("config")
    if not isinstance(stored, dict) or not isinstance(stored.get("model"), dict):
        raise CheckpointError(f"{path}: config.model: missing (not a checkpoint of a training stage)")
    check_arch(ckpt, cfg, path)
    cfg = dict(cfg)
    try:
        cfg["model"] = from_dict({"model": stored["model"]})["model"]
    except ConfigError as e:
        raise CheckpointError(f"{path}: config: {e}") from None
    stored_data = stored.get("dataset") if isinstance(stored.get("dataset"), dict) else {}
    trained = stored_data.get("class_agnostic", False) is True
    if trained != cfg["dataset"]["class_agnostic"]:
        raise CheckpointError(f"{path}: config.dataset.class_agnostic: the detector was trained with "
                              f"{str(trained).lower()}, this config says {str(not trained).lower()}")
    try:  # the checkpoint's detector with this run's data: BMN's T against dataset.resize_to
        check_values(cfg)
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return cfg


def check_arch(ckpt, cfg, path):
    """A checkpoint of another detector (its config.model.arch) is named in one line, not by the
    hundred keys it lacks; checkpoints before model.arch existed hold ActionFormer, the default."""
    stored = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    model_cfg = stored.get("model") if isinstance(stored.get("model"), dict) else {}
    arch = model_cfg.get("arch", "actionformer")
    if arch != cfg["model"]["arch"]:
        raise CheckpointError(f"{path}: config.model.arch: the checkpoint holds a {arch} detector, "
                              f"this config builds {cfg['model']['arch']}")


def check_weights(ckpt, path):
    """A torch file that holds no detector weights fails here, in one line, not in a KeyError."""
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got {type(ckpt).__name__}")
    for key in ("ema", "model"):
        state = ckpt.get(key)
        if state is not None and not (isinstance(state, dict) and all(map(torch.is_tensor, state.values()))):
            raise CheckpointError(f"{path}: {key}: expected a state dict of tensors")
    if not ckpt.get("ema") and not ckpt.get("model"):
        raise CheckpointError(f"{path}: model: missing (the checkpoint holds no weights)")


def load_weights(model, ckpt, path):
    """The checkpoint's evaluation weights into the detector, strictly; a mismatch names file and key."""
    load_pretrained(model, eval_weights(ckpt), path)


def start_from(model, ckpt, path, cfg):
    """--init of a training stage: a whole detector's checkpoint, or pretrain_acp.py's pre-trained
    parts with the heads (and the ICD) fresh, which it lists; any other gap names file and key."""
    check_weights(ckpt, path)
    check_arch(ckpt, cfg, path)  # another detector is named here, not by the keys it lacks
    fresh = load_pretrained(model, eval_weights(ckpt), path, detector_parts(cfg).head_prefixes)
    if fresh:
        parts = ", ".join(sorted({k.split(".")[0] for k in fresh}))
        print(f"init from {path}: {len(fresh)} tensors start fresh ({parts})")
    else:
        print(f"init from {path}: all weights loaded")
    return fresh


def load_data(cfg, scores=True):
    """Read and check the annotations, and in class-agnostic mode the whole video-level scores file
    (unless `scores` is false: a stage that labels no proposals, such as scoring a results file),
    before any stage does real work. The stages never write data: the embedded dataset
    (dataset.synthetic_size) is made beforehand by `python -m synthetic` (synthetic/make.py)."""
    dcfg = cfg["dataset"]
    if dcfg["synthetic_size"]:
        check_made(dcfg)
    videos, classes = load_annotations(dcfg["annotation_file"], dcfg["classes"], dcfg["default_fps"])
    if dcfg["class_agnostic"] and scores:
        load_video_scores(dcfg["video_scores"], classes)
    return videos, classes


def class_namer(cfg, classes, ids=None):
    """The one seam of the class-agnostic kind: who names the classes of the predictions on the
    videos `ids`. The detector's own (common/detect.py DetectorClasses), or with dataset.class_agnostic
    the video-level classifier's scores of those videos (VideoClassifierClasses), read strictly here,
    before any inference: a video without scores is a one-line error naming the file, the video and the field.
    ids None: the kind alone, no scores read (scoring a results file labels nothing)."""
    dcfg = cfg["dataset"]
    if not dcfg["class_agnostic"]:
        return detect.DetectorClasses()
    probs = None if ids is None else load_video_scores(dcfg["video_scores"], classes, ids)
    return detect.VideoClassifierClasses(dcfg["video_scores"], probs, cfg["test"]["video_topk"])


def check_made(dcfg):
    """Each file of the embedded dataset that the config names exists; a missing one is one line that
    names it and the command that makes it."""
    paths = [dcfg["annotation_file"], dcfg["labeled_split"], dcfg["unlabeled_split"]]
    for path in paths + ([dcfg["video_scores"]] if dcfg["class_agnostic"] else []):
        if path and not os.path.exists(path):
            raise DataError(f"{path}: no such file; make the embedded dataset (dataset.synthetic_size: "
                            f"{dcfg['synthetic_size']}) first: python -m synthetic --config CONFIG [--set ...], "
                            "with this stage's --config and --set")


def subset_ids(videos, subset, path):
    ids = sorted(v for v, info in videos.items() if info.subset == subset)
    if not ids:
        subsets = sorted({info.subset for info in videos.values()})
        raise DataError(f"{path}: no video of subset {subset!r} (the file has {subsets})")
    return ids


def labeled_ids(cfg, videos):
    """The labeled training videos: the split file when given, else the whole training subset."""
    dcfg = cfg["dataset"]
    if dcfg["labeled_split"]:
        ids = read_split(dcfg["labeled_split"], videos)
    else:
        ids = subset_ids(videos, dcfg["train_subset"], dcfg["annotation_file"])
    source = dcfg["labeled_split"] or dcfg["annotation_file"]
    if not ids:
        raise DataError(f"{source}: the labeled split lists no video")
    if not any(len(videos[v].labels) for v in ids):
        # nothing to learn from, and no instance for the ICD's bank (Eq. 7)
        raise DataError(f"{source}: none of its {len(ids)} labeled videos holds an action in "
                        f"{dcfg['annotation_file']}")
    check_features(dcfg, ids)
    return ids


def unlabeled_ids(cfg, videos):
    """The unlabeled training videos: the split file when given, else the training subset minus the labeled."""
    dcfg = cfg["dataset"]
    labeled = set(labeled_ids(cfg, videos))
    if dcfg["unlabeled_split"]:
        ids = read_split(dcfg["unlabeled_split"], videos)
    else:
        ids = [v for v in subset_ids(videos, dcfg["train_subset"], dcfg["annotation_file"]) if v not in labeled]
    if not ids:  # nothing to pseudo-label, and a pseudo-label file without videos trains nothing
        raise DataError(f"{dcfg['unlabeled_split'] or dcfg['annotation_file']}: lists no unlabeled video")
    overlap = sorted(set(ids) & labeled)
    if overlap:
        raise DataError(f"{dcfg['unlabeled_split']}: video {overlap[0]}: is in the labeled split too")
    check_features(dcfg, ids)
    return ids


def training_dataset(cfg, videos, ids, seed, select=True):
    """What a training stage iterates over: the videos `ids` (cropped to dataset.max_seq_len, seeded),
    or with dataset.window the windows of them that hold an action (common/windows.py; select=False:
    every window, reading no annotation, for ACP's pre-training)."""
    dcfg = cfg["dataset"]
    if dcfg["window"]["size"]:
        return WindowDataset(dcfg, videos, ids, select=select)
    return VideoDataset(dcfg, videos, ids, training=True, seed=seed)


def eval_ids(cfg, videos):
    ids = subset_ids(videos, cfg["dataset"]["eval_subset"], cfg["dataset"]["annotation_file"])
    check_features(cfg["dataset"], ids)
    return ids


@dataclass(frozen=True)
class DetectorParts:
    """What the stages use of a detector (model.arch), the same kinds of things for each: raw outputs
    from `build(cfg, num_classes)`'s model, pure losses, and predictions in seconds with the fields
    evaluate.py and pseudo_label.py read (common/detect.py's predict)."""
    build: Callable               # (cfg, num_classes) -> nn.Module with forward(feats, mask), pad_multiple, icd
    labeled_loss: Callable        # (model, batch, cfg, normalizer, bank) -> {"loss", parts}
    pseudo_labeled_loss: Callable  # (model, batch, cfg, normalizer) -> {"loss", parts}
    predict: Callable             # (model, dataset, cfg, device, progress) -> {video_id: predictions}
    pretrained_prefixes: tuple    # what ACP pre-trains (pretrain_acp.py keeps only these)
    head_prefixes: tuple          # what starts fresh on a pre-trained detector (--init)


DETECTORS = {
    "actionformer": DetectorParts(model.build_model, losses.labeled_loss, losses.pseudo_labeled_loss, detect.predict,
                                  model.PRETRAINED_PREFIXES, model.HEAD_PREFIXES),
    "bmn": DetectorParts(bmn_detector.build_model, bmn_detector.labeled_loss, bmn_detector.pseudo_labeled_loss,
                         bmn_detector.predict, bmn_detector.PRETRAINED_PREFIXES, bmn_detector.HEAD_PREFIXES),
}


def detector_parts(cfg):
    """The parts of the detector model.arch names (checked by the config)."""
    return DETECTORS[cfg["model"]["arch"]]


def predict(model, dataset, cfg, device, progress=True):
    """The detector's predictions on every video of `dataset`, after its own post-processing:
    {video_id: {segments (seconds), scores, labels, cls_score, tiou, tnd, topk_probs, topk_labels}}."""
    return detector_parts(cfg).predict(model, dataset, cfg, device, progress)


def build_detector(cfg, classes, device):
    """The detector for the dataset's classes, or for one class ("action") with dataset.class_agnostic."""
    return detector_parts(cfg).build(cfg, 1 if cfg["dataset"]["class_agnostic"] else len(classes)).to(device)
