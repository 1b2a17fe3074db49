"""Configuration: defaults in one place, a YAML file and `--set key=value` overrides merged strictly.

A config is a plain nested dict. `load_config(path, overrides)` starts from a deep copy of DEFAULTS,
merges the YAML file over it, then the overrides; an unknown key or a value of the wrong type is an
error that names the key, so a typo never passes silently. The resolved config is written beside
every output (`save_config`) and stored in every checkpoint.
"""
import copy
import os
import tempfile

import yaml

from common.distributed import is_main

# ---------------------------------------------------------------- the keys, their defaults and the recipes

DEFAULTS = {
    "seed": 0,
    "recipe": "project",                      # project: these defaults | paper: APL as published (RECIPES)
    "dataset": {
        "name": "synthetic",                  # free text, shown in logs
        "annotation_file": "data/synthetic_small/annotations.json",
        "feature_dir": "data/synthetic_small/features",
        "feature_dim": 64,                    # D of every <feature_dir>/<video_id>.npy (T, D)
        "feat_stride": 8,                     # frames between two consecutive features
        "num_frames": 16,                     # frames seen by one feature (the clip window)
        "default_fps": None,                  # used when a video has no "fps" field
        "train_subset": "train",
        "eval_subset": "test",
        "classes": None,                      # None: the annotation file's labels ordered by label_id
        "tiou_thresholds": [0.3, 0.4, 0.5, 0.6, 0.7],
        "labeled_split": None,                # file of labeled video ids; None: every training video
        "unlabeled_split": None,
        "max_seq_len": 512,                   # training crop length, in grid steps
        "trunc_thresh": 0.5,                  # an action stays in a crop when this fraction is inside
        "synthetic_size": None,               # embedded data `python -m synthetic` makes (SYNTHETIC_SIZES); stages only read
        "synthetic_seed": 0,
        "resize_to": None,                    # N: every video's features resized to N steps (ActivityNet)
        # BMN's sliding windows over each video's grid (common/windows.py); size null: none
        "window": {"size": None, "stride": None, "min_inside": 0.9},
        "class_agnostic": False,              # one-class detector, proposals classed by dataset.video_scores
        "video_scores": None,                 # the video-level classifier's scores file (CUHK's format)
    },
    "model": {
        "arch": "actionformer",               # actionformer (common/model.py) | bmn (common/bmn_detector.py)
        "embd_dim": 128,                      # width after the convolutional embedding
        "embd_kernel_size": 3,
        "embd_layers": 2,
        "n_head": 4,
        "attn_window": 19,                    # local self-attention window (odd)
        "stem_layers": 2,                     # transformer blocks at full resolution
        "branch_layers": 5,                   # blocks that halve the length: levels = branch_layers + 1
        "head_dim": 128,
        "head_layers": 3,                     # convs in each head, the output layer included
        "head_kernel_size": 3,
        "regression_range": [[0, 4], [4, 8], [8, 16], [16, 32], [32, 64], [64, 10000]],
        "center_radius": 1.5,                 # centre sampling radius, in strides of the level
        "prior_prob": 0.01,                   # initial classification probability (bias prior)
        "dropout": 0.0,
        "path_drop": 0.1,
        "alqa": "tiou_tnd",                   # quality heads (Sec. 3.1, Table 3): none | tiou | diou | tiou_tnd
        "icd_hidden": 256,                    # width of the ICD discriminator's MLP (Eq. 9)
        "acp_proj_dim": 128,                  # ACP projection head output; 0: contrast the pyramid itself
        # BMN's shape (model.arch: bmn); the published ActivityNet values (BMN's public code)
        "bmn": {
            "temporal_scale": 100,            # T: = dataset.resize_to or dataset.window.size
            "max_duration": 100,              # D: longest proposal, in steps (<= T)
            "num_samples": 32,                # N: sample points per proposal in the BM layer
            "num_samples_per_bin": 3,         # sub-points averaged into one sample point
            "boundary_ratio": 0.5,            # share of a proposal's length sampled beyond each end
            "hidden_1d": 256,                 # base module and TEM width
            "hidden_3d": 512,                 # the 3-D conv over each proposal's N points
            "hidden_2d": 128,                 # PEM 1-D / 2-D convs
        },
    },
    "loss": {
        "focal_alpha": 0.25,
        "focal_gamma": 2.0,
        "reg_weight": 1.0,                    # lambda_reg of Eq. (12), ActionFormer's default
        "locq_weight": 0.1,                   # lambda_locq of Eq. (12)
        "quality_eps": 0.01,                  # epsilon of Eq. (4) and of the soft label (Eq. 5)
        "init_loss_norm": 100.0,              # start of the moving average of #positives
        "loss_norm_momentum": 0.9,
        "icd_weight": 1.0,                    # L_icd of Eq. (12); its gradients reach only the ICD
        "icd_same": 4,                        # same-class partners per labeled instance (Eq. 7)
        "icd_diff": 4,                        # different-class partners per labeled instance
        "bmn": {"tem_weight": 1.0, "reg_weight": 10.0, "cls_weight": 1.0},  # BMN's L_TEM / L_R / L_C weights
    },
    "train": {
        "epochs": 30,                         # after warmup
        "warmup_epochs": 5,
        "batch_size": 2,
        "lr": 1e-4,
        "weight_decay": 0.05,
        "clip_grad": 1.0,
        "ema_decay": 0.999,                   # per iteration, with a warm-up (see common/engine.py)
        "num_workers": 0,
        "precision": "auto",                  # auto: bf16 autocast on GPUs, fp32 on the CPU | bf16 | fp32
    },
    "acp": {                                  # action-aware contrastive pre-training (Sec. 3.3, Table 5)
        "mode": "both",                       # none | coarse | fine | both
        "segments": 32,                       # N: frames per video, one per equal segment
        "clusters": 8,                        # B: k-means classes of the fine contrast
        "temperature": 0.5,                   # of Eq. (11)
        "center_videos": True,                # fine k-means on frames minus their video's mean
        "weight": 0.1,                        # lambda_acp of Eq. (12), while fine-tuning
        "epochs": 20,                         # pre-training epochs after warmup
        "warmup_epochs": 2,
        "batch_size": 4,                      # videos per pre-training batch (the fine contrast spans it)
    },
    "pseudo": {
        "selection": "adaptive",              # adaptive (Eq. 6) | fixed: class score >= fixed_threshold
        "fixed_threshold": 0.3,
        "tau_neg": 0.15,                      # Eq. (6): joint scores <= tau_neg are dropped
        "pos_std": 1.0,                       # tau_pos = mean + pos_std * std of each video's remaining scores
        "icd": "both",                        # none | eap | mpp | both (Table 4)
        "tau_icd": 0.3,                       # EAP: positives with S_i < tau_icd are removed
        # MPP promotes a candidate when by: icd, S_i > threshold (Eq. 10); by: tiou, predicted tIoU >= threshold
        "mpp": {"by": "tiou", "threshold": 0.9},
        "relabel": "prototype",               # none: the detector's class | prototype: nearest labeled prototype
        "video_prior": 4.0,                   # mu: relabel prototype's classes weighed by the video's vote (0: none)
        # relabel prototype pools an action in this many equal pieces, start first (SSN's start / course /
        # end stages; the embedded actions are three blended phases, so 3 fits the generator exactly)
        "prototype_parts": 3,
        "carry_over": "labels",               # with --previous: none | thresholds | labels
    },
    "semi": {
        "beta": 1.0,                          # weight of the unlabeled loss, Eq. (12) (the paper: 2)
        "background": "rejected",             # outside the pseudo labels: all background | rejected left out
        "class_target": "soft",               # hard: one-hot of the label | soft: spread over class_scores
        "epochs": 10,                         # after warmup; an epoch is one pass over the unlabeled videos
        "warmup_epochs": 1,
    },
    "test": {
        "pre_nms_thresh": 0.001,
        "pre_nms_topk": 2000,                 # per pyramid level
        "duration_thresh": 0.05,              # drop shorter segments (grid steps)
        "nms_sigma": 0.5,
        "min_score": 0.001,
        "max_segments": 200,                  # per video
        "voting": False,                      # score voting (class-agnostic detectors: dataset.class_agnostic)
        "voting_iou": 0.75,
        "video_topk": 2,                      # class_agnostic: each proposal copied for its video's k classes
        "batch_size": 1,
        # BMN's inference (model.arch: bmn; published Soft-NMS and top_k proposals a video)
        "bmn": {"alpha": 0.4, "low_threshold": 0.5, "high_threshold": 0.9, "top_k": 100},
    },
}

# The paper's rules for the pseudo labels and the round (Sec. 3.1-3.3), laid over the config file's
# values when it names recipe paper, under the --set overrides. Both recipes keep the detector, ALQA,
# ACP, the ICD's training and EAP's tau_icd as the config sets them; the paper's trains one round
# (runs/main.sh: RECIPE=paper). What each difference measured: docs/config_history.md.
RECIPES = {
    "project": {},
    "paper": {
        "pseudo": {
            "selection": "adaptive", "tau_neg": 0.15, "pos_std": 1.0,  # Eq. (6): tau_pos = mean + std
            "icd": "both", "mpp": {"by": "icd", "threshold": 0.7},     # EAP and MPP by S_i (Eq. 10)
            "relabel": "none", "video_prior": 0.0,                     # the detector's own classes
            "carry_over": "none",                                      # one round, selected afresh
        },
        "semi": {
            "beta": 2.0,                                               # Eq. (12)
            "background": "all",                                       # every point outside the pseudo labels
            "class_target": "hard",                                    # the label's class (Eq. 5)
        },
    },
}


# ---------------------------------------------------------------- what a value may be: choices, types, removed keys

class ConfigError(ValueError):
    """An unknown key, a wrong type, a value that is not one of its key's choices, or an unreadable config file."""


# The embedded datasets (synthetic/make.py SYNTHETIC_SIZES, which a test holds equal): thumos_like.py's
# sizes and difficulty presets, and anet_like.py's. Written out here, as common/ imports no generator.
SYNTHETIC_SIZES = ("tiny", "small", "full", "scenes", "blurry", "confusable", "hard", "relu", "lean", "unseen",
                   "varied", "mirror", "fuzzy", "anet", "anet_hard")

# Every key whose value is one of a few names, with those names: load_config checks each of them,
# whether or not the stage at hand reads it, so a typo stops every stage before it reads any data.
# None among the choices: the key may be null.
CHOICES = {
    "recipe": tuple(RECIPES),
    "dataset.synthetic_size": (None, *SYNTHETIC_SIZES),
    "model.arch": ("actionformer", "bmn"),
    "model.alqa": ("none", "tiou", "diou", "tiou_tnd"),
    "train.precision": ("auto", "bf16", "fp32"),
    "acp.mode": ("none", "coarse", "fine", "both"),
    "pseudo.selection": ("adaptive", "fixed"),
    "pseudo.icd": ("none", "eap", "mpp", "both"),
    "pseudo.mpp.by": ("icd", "tiou"),
    "pseudo.relabel": ("none", "prototype"),
    "pseudo.carry_over": ("none", "thresholds", "labels"),
    "semi.background": ("all", "rejected"),
    "semi.class_target": ("hard", "soft"),
}


def check_choice(key, value):
    """`value` if it is one of CHOICES[key]; else a one-line error naming the key, the value and the choices."""
    choices = CHOICES[key]
    if not (value is None and None in choices or isinstance(value, str) and value in choices):
        names = ", ".join("null" if c is None else c for c in choices)
        raise ConfigError(f"config key {key}: expected one of {names}, got {value!r}")
    return value


def check_choices(cfg):
    """Every key of CHOICES in a resolved config."""
    for key in CHOICES:
        *sections, name = key.split(".")
        node = cfg
        for section in sections:
            node = node[section]
        check_choice(key, node[name])

def _check_type(key, default, value):
    """Values keep the type of their default; ints may stand for floats, None means 'any'."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key}: expected true/false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (int, float, str, list)) and not isinstance(value, type(default)):
        raise ConfigError(f"config key {key}: expected {type(default).__name__}, got {value!r}")
    return value


# Keys that are gone: a config file, --set or stored config naming one stops with this line (what
# each did and measured: docs/config_history.md). The value beside each reason is what remains, which
# a checkpoint's stored config may still hold (from_dict drops it; ...: nothing to drop).
REMOVED = {
    "pseudo.tau_ignore": (None, "removed; nothing below tau_neg is listed (the paper)"),
    "pseudo.scope": ("video", "removed; tau_pos is set per video (Eq. 6)"),
    "pseudo.video_topk": (0, "removed; every class of a video is selected (the paper); test.video_topk stays"),
    "pseudo.mpp_overlap": (None, "removed; MPP promotes every candidate its rule passes (the paper)"),
    "pseudo.relabel_refine": (0, "removed; pseudo.relabel prototype uses the labeled actions' prototypes"),
    "pseudo.sigma_icd": (..., "replaced by pseudo.mpp (by: icd, threshold: the old sigma_icd)"),
    "pseudo.mpp_tiou": (..., "replaced by pseudo.mpp (by: tiou, threshold: the old mpp_tiou; null: by: icd)"),
    "semi.candidate_weight": (0.0, "removed; candidates are left out of the classification loss"),
    "semi.feature_dropout": (0.0, "removed; the round trains on the unlabeled videos' features as they are"),
    "semi.feature_noise": (0.0, "removed; the round trains on the unlabeled videos' features as they are"),
    "semi.background_thresh": (..., "removed with semi.background confident; all or rejected remain"),
    "model.icd_features": ("input", "removed; the ICD pools the input features"),
    "test.class_agnostic": (..., "removed; NMS spans the classes exactly when dataset.class_agnostic is true"),
}
RENAMED = {"model.window": "model.attn_window"}


def unknown_key(name):
    """The one-line error for a key DEFAULTS lacks, naming the new key of a renamed one."""
    if name in RENAMED:
        return ConfigError(f"config key {name}: renamed {RENAMED[name]}")
    if name in REMOVED:
        return ConfigError(f"config key {name}: {REMOVED[name][1]}")
    return ConfigError(f"unknown config key: {name}")


# ---------------------------------------------------------------- reading a config: the file, its recipe, the overrides

def merge(cfg, update, prefix=""):
    """Merge `update` into `cfg` in place; unknown keys and type changes are errors."""
    for key, value in update.items():
        name = prefix + key
        if key not in cfg:
            raise unknown_key(name)
        if isinstance(cfg[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {name}: expected a mapping, got {value!r}")
            merge(cfg[key], value, name + ".")
        else:
            cfg[key] = _check_type(name, cfg[key], value)
    return cfg


def parse_override(text):
    """'train.lr=5e-4' -> {'train': {'lr': 0.0005}}; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw != "" else None
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)  # YAML 1.1 reads '5e-4' as a string
    nested = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def _looks_numeric(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_yaml(path):
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: broken YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping")
    return _fix_floats(data)


def _fix_floats(node):
    if isinstance(node, dict):
        return {k: _fix_floats(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_fix_floats(v) for v in node]
    if isinstance(node, str) and _looks_numeric(node) and not node.strip().isdigit():
        return float(node)
    return node


def load_config(path=None, overrides=()):
    """DEFAULTS <- YAML file <- the recipe it or an override names (RECIPES) <- each `key=value`
    override, all strict."""
    cfg = copy.deepcopy(DEFAULTS)
    updates = [parse_override(text) for text in overrides]
    if path:
        try:
            data = _read_yaml(path)
            merge(cfg, data)
            check_choices(cfg)  # a file's mistyped choice names the file, whatever the overrides say
            check_file_recipe(data, cfg["recipe"])
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    recipe = next((u["recipe"] for u in reversed(updates) if "recipe" in u), cfg["recipe"])
    merge(cfg, copy.deepcopy(RECIPES[check_choice("recipe", recipe)]))
    for update in updates:
        merge(cfg, update)
    check_values(cfg)
    return cfg


def check_file_recipe(data, recipe):
    """A config file (`data`, as read) that names a recipe sets no key of it to another value: the
    recipe would replace it unseen."""
    def walk(rules, node, prefix):
        for key, value in rules.items():
            if key not in node:
                continue
            if isinstance(value, dict):
                walk(value, node[key], f"{prefix}{key}.")
            elif node[key] != value:
                raise ConfigError(f"config key {prefix}{key}: recipe {recipe} sets it to {value!r}, the file "
                                  f"to {node[key]!r}; remove it from the file, or name recipe project")
    walk(RECIPES[recipe], data, "")


# ---------------------------------------------------------------- checks across keys

def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_values(cfg):
    """Every choice key (CHOICES), and the keys whose defaults (null) let any type through `merge`."""
    check_choices(cfg)
    dcfg, tcfg = cfg["dataset"], cfg["test"]
    if dcfg["resize_to"] is not None and not _positive_int(dcfg["resize_to"]):
        raise ConfigError(f"config key dataset.resize_to: expected null or a positive integer, "
                          f"got {dcfg['resize_to']!r}")
    if dcfg["video_scores"] is not None and not isinstance(dcfg["video_scores"], str):
        raise ConfigError(f"config key dataset.video_scores: expected a file path, got {dcfg['video_scores']!r}")
    if dcfg["class_agnostic"] and not dcfg["video_scores"]:
        raise ConfigError("config key dataset.video_scores: required when dataset.class_agnostic is true "
                          "(the video-level classifier that labels the proposals)")
    check_window(cfg)
    check_mpp(cfg["pseudo"]["mpp"])
    if not _positive_int(cfg["pseudo"]["prototype_parts"]):
        raise ConfigError(f"config key pseudo.prototype_parts: expected a positive integer, "
                          f"got {cfg['pseudo']['prototype_parts']!r}")
    prior = cfg["pseudo"]["video_prior"]
    if isinstance(prior, bool) or not isinstance(prior, (int, float)) or not 0 <= prior < float("inf"):
        raise ConfigError(f"config key pseudo.video_prior: expected a finite number >= 0, got {prior!r}")
    if cfg["pseudo"]["relabel"] != "none" and dcfg["class_agnostic"]:
        raise ConfigError("config key pseudo.relabel: a class-agnostic detector's classes come from the video-level "
                          "classifier (dataset.class_agnostic: true), there is nothing to relabel; set it none")
    if not _positive_int(tcfg["video_topk"]):
        raise ConfigError(f"config key test.video_topk: expected a positive integer, got {tcfg['video_topk']!r}")
    if tcfg["voting"] and not dcfg["class_agnostic"]:
        raise ConfigError("config key test.voting: score voting needs a class-agnostic detector "
                          "(dataset.class_agnostic: true)")
    check_arch(cfg)


def check_mpp(mcfg):
    """pseudo.mpp.threshold: a number in MPP's rule's range (S_i of Eq. 10 or a predicted tIoU)."""
    value = mcfg["threshold"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"config key pseudo.mpp.threshold: expected a number in [0, 1] (S_i or a predicted "
                          f"tIoU), got {value!r}")


def check_mpp_head(cfg):
    """pseudo.mpp by tiou reads ActionFormer's tIoU head: checked where the detector is known (its checkpoint)."""
    mcfg = cfg["model"]
    if cfg["pseudo"]["mpp"]["by"] == "tiou" and (mcfg["arch"] != "actionformer" or mcfg["alqa"] not in ("tiou", "tiou_tnd")):
        raise ConfigError(f"config key pseudo.mpp.by: tiou needs ActionFormer's tIoU head (model.alqa tiou or tiou_tnd), "
                          f"got model.arch {mcfg['arch']}, model.alqa {mcfg['alqa']}; "
                          f"set it icd for the paper's MPP by the ICD's S_i")


def check_window(cfg):
    """dataset.window: null, or windows of a positive size, a stride that leaves no gap, a share in (0, 1];
    windows are BMN's (ActionFormer crops with max_seq_len)."""
    wcfg = cfg["dataset"]["window"]
    size, stride, share = wcfg["size"], wcfg["stride"], wcfg["min_inside"]
    if size is None:
        return
    if not _positive_int(size):
        raise ConfigError(f"config key dataset.window.size: expected null or a positive integer, got {size!r}")
    if cfg["model"]["arch"] != "bmn":
        raise ConfigError(f"config key dataset.window.size: sliding windows are BMN's (model.arch bmn); "
                          f"{cfg['model']['arch']} crops long videos with dataset.max_seq_len")
    if not (_positive_int(stride) and stride <= size):
        raise ConfigError(f"config key dataset.window.stride: expected a positive integer of at most the window's "
                          f"{size} steps (a longer stride skips steps), got {stride!r}")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ConfigError(f"config key dataset.window.min_inside: expected a share in (0, 1], got {share!r}")


def check_arch(cfg):
    """model.arch, and what BMN needs of the rest: one fixed grid of T steps (dataset.resize_to, never
    cropped), proposals labelled by the video-level classifier (dataset.class_agnostic), a map that fits."""
    mcfg, dcfg = cfg["model"], cfg["dataset"]
    if mcfg["arch"] != "bmn":
        return
    bcfg, tcfg = mcfg["bmn"], cfg["test"]["bmn"]
    for key in ("temporal_scale", "max_duration", "num_samples", "num_samples_per_bin", "hidden_1d", "hidden_3d",
                "hidden_2d"):
        if not _positive_int(bcfg[key]):
            raise ConfigError(f"config key model.bmn.{key}: expected a positive integer, got {bcfg[key]!r}")
    T = bcfg["temporal_scale"]
    if bcfg["max_duration"] > T:
        raise ConfigError(f"config key model.bmn.max_duration: {bcfg['max_duration']} is longer than the "
                          f"temporal scale {T}")
    if bcfg["num_samples"] * bcfg["num_samples_per_bin"] < 2:
        raise ConfigError("config key model.bmn.num_samples: the BM layer needs num_samples x num_samples_per_bin >= 2")
    for key, value in (("model.bmn.hidden_1d", bcfg["hidden_1d"]), ("dataset.feature_dim", dcfg["feature_dim"])):
        if value % 4:  # the base module's convs are grouped by 4, as published
            raise ConfigError(f"config key {key}: BMN's grouped convs need a multiple of 4, got {value}")
    check_bmn_grid(cfg, T)
    if dcfg["window"]["size"] is None and dcfg["max_seq_len"] < T:
        raise ConfigError(f"config key dataset.max_seq_len: {dcfg['max_seq_len']} would crop BMN's {T} steps; "
                          f"set it to {T}")
    if not dcfg["class_agnostic"]:
        raise ConfigError("config key dataset.class_agnostic: model.arch bmn gives class-agnostic proposals; "
                          "set it true (with dataset.video_scores, the classifier that labels them)")
    if mcfg["alqa"] not in ("none", "tiou"):
        raise ConfigError(f"config key model.alqa: model.arch bmn takes none or tiou (whether the map's "
                          f"regression channel, its tIoU estimate, enters the joint score), got {mcfg['alqa']!r}")
    if not (tcfg["alpha"] > 0 and 0 <= tcfg["low_threshold"] <= tcfg["high_threshold"] <= 1):
        raise ConfigError("config key test.bmn: expected alpha > 0 and 0 <= low_threshold <= high_threshold <= 1")
    if not _positive_int(tcfg["top_k"]):
        raise ConfigError(f"config key test.bmn.top_k: expected a positive integer, got {tcfg['top_k']!r}")


def check_bmn_grid(cfg, T):
    """BMN sees T steps: every video resized to T (dataset.resize_to) or cut into windows of T
    (dataset.window.size), exactly one of the two."""
    dcfg = cfg["dataset"]
    size = dcfg["window"]["size"]
    if size is None and dcfg["resize_to"] != T:
        raise ConfigError(f"config key dataset.resize_to: model.arch bmn needs every video resized to "
                          f"model.bmn.temporal_scale = {T} steps, got {dcfg['resize_to']!r} (or windows of "
                          f"{T} steps: dataset.window.size)")
    if size is not None and dcfg["resize_to"] is not None:
        raise ConfigError(f"config key dataset.window.size: model.arch bmn takes windows or dataset.resize_to, "
                          f"not both (resize_to is {dcfg['resize_to']})")
    if size is not None and size != T:
        raise ConfigError(f"config key dataset.window.size: model.arch bmn needs windows of "
                          f"model.bmn.temporal_scale = {T} steps, got {size}")


# ---------------------------------------------------------------- stored configs and atomic writes

def from_dict(data):
    """A config stored in a checkpoint, checked against today's DEFAULTS: a renamed key is read under
    its new name, a removed one is dropped where it holds what remains (REMOVED)."""
    return merge(copy.deepcopy(DEFAULTS), _upgraded(data))


def _upgraded(data, prefix=""):
    out = {}
    for key, value in data.items():
        name = prefix + key
        if isinstance(value, dict) and name not in RENAMED:
            value = _upgraded(value, name + ".")
        if name in RENAMED:
            out[RENAMED[name].rsplit(".", 1)[1]] = value
        elif not (name in REMOVED and REMOVED[name][0] == value):
            out[key] = value
    return out


def save_config(cfg, path):
    atomic_write_text(path, yaml.safe_dump(cfg, sort_keys=False))


def atomic_write(path, write):
    """Call write(tmp_path) on a temporary file beside `path`, then rename it over `path`: a crash
    never leaves a half-written output, and a failed run never clobbers an existing one. Under
    torchrun only the main process writes."""
    if not is_main():
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        write(tmp)
        make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def make_readable(path):
    """mkstemp creates 0600 files; give outputs the permissions a plain open() would (umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
