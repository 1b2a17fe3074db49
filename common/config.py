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

DEFAULTS = {
    "seed": 0,
    # Which rules select the pseudo labels and train the round (RECIPES below): project = the defaults
    # of this file, as the dataset config adapts them; paper = APL exactly as the paper describes it
    "recipe": "project",
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
        "synthetic_size": None,               # the embedded dataset `python -m synthetic` makes there (the
                                              # stages only read it): tiny | small | full, a difficulty
                                              # preset (SYNTHETIC_SIZES), or anet (the ActivityNet-like one)
        "synthetic_seed": 0,
        # ActivityNet's recipe (ActionFormer's published config). resize_to: null keeps each video's
        # own grid; N resizes every video's features to N steps by linear interpolation
        # (force_upsampling), so each video's grid has its own stride in seconds (common/data.py, grid_of)
        "resize_to": None,
        # BMN's THUMOS14 recipe (common/windows.py): size N slides windows of N steps over each video's
        # own grid (not resized), `stride` steps apart, for training and inference; the last window is
        # padded. A training window is kept when some action lies more than `min_inside` of its length
        # inside it, and every action it overlaps is its ground truth, clipped to it. size null: no
        # windows. model.arch bmn takes windows of model.bmn.temporal_scale steps or resize_to, not both
        "window": {"size": None, "stride": None, "min_inside": 0.9},
        # true: the detector finds actions of one class ("action"): its training targets collapse every
        # label to it, and its proposals take their classes from a video-level classifier
        # (dataset.video_scores, test.video_topk); the ICD and ACP's fine contrast keep the real classes
        "class_agnostic": False,
        "video_scores": None,                 # the classifier's scores file ({"class", "results"}, as
                                              # CUHK's); required when class_agnostic, checked at every stage's start
    },
    "model": {
        # The detector: actionformer (one-stage, common/model.py) | bmn (two-stage proposals with a
        # video-level classifier, common/bmn.py and common/bmn_detector.py). BMN needs the
        # class-agnostic recipe (dataset.class_agnostic) on features resized to model.bmn.temporal_scale
        # (dataset.resize_to, ActivityNet) or cut into windows of that many steps (dataset.window, THUMOS14).
        "arch": "actionformer",
        "embd_dim": 128,                      # width after the convolutional embedding
        "embd_kernel_size": 3,
        "embd_layers": 2,
        "n_head": 4,
        "window": 19,                         # local self-attention window (odd)
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
        # Localisation quality heads (Sec. 3.1, Table 3): none = plain ActionFormer; tiou = one
        # branch predicting tIoU; diou = one branch predicting DIoU; tiou_tnd = the paper's two.
        "alqa": "tiou_tnd",
        "icd_hidden": 256,                    # width of the ICD discriminator's MLP (Eq. 9)
        "icd_features": "input",              # instances pooled from: input features | fpn (level 0)
        "acp_proj_dim": 128,                  # ACP projection head output; 0: contrast the pyramid itself
        # BMN's shape (model.arch: bmn); the published ActivityNet values (BMN's public code)
        "bmn": {
            "temporal_scale": 100,            # T: every video resized to T steps (= dataset.resize_to) or cut
                                              # into windows of T steps (= dataset.window.size)
            "max_duration": 100,              # D: longest proposal, in steps (<= T)
            "num_samples": 32,                # N: sample points per proposal in the BM layer
            "num_samples_per_bin": 3,         # sub-points averaged into one sample point
            "boundary_ratio": 0.5,            # share of a proposal's length sampled beyond each end
            "hidden_1d": 256,                 # base module and TEM width
            "hidden_3d": 512,                 # the 3-D conv over each proposal's N points
            "hidden_2d": 128,                 # PEM 1-D / 2-D convs; BM features: hidden_2d x N x D x T a video
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
        # BMN (model.arch: bmn): L = tem_weight L_TEM + reg_weight L_R + cls_weight L_C, published 1 / 10 / 1
        "bmn": {"tem_weight": 1.0, "reg_weight": 10.0, "cls_weight": 1.0},
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
    "acp": {
        # Action-aware contrastive pre-training and fine-tuning loss (Sec. 3.3, Table 5). The defaults
        # were chosen with benchmarks/sweep_acp.py (README: 5-NN separation of the pre-trained
        # representation on the embedded dataset, one knob at a time from N 32, B 4, temperature 0.1).
        "mode": "both",                       # none | coarse | fine | both
        "segments": 32,                       # N: frames per video, one per equal segment (64 helped the
                                              # class separation, hurt action/background: kept 32)
        "clusters": 8,                        # B: k-means classes of the fine contrast (4 videos a batch,
                                              # 1-2 classes each, plus background); 8 beat 2 and 4
        "temperature": 0.5,                   # of Eq. (11); 0.5 beat 0.1 and 0.05 on both separations
        "center_videos": True,                # fine k-means on frames minus their video's mean: without
                                              # it the clusters follow videos and L_conf hurt (README)
        "weight": 0.1,                        # lambda_acp of Eq. (12), while fine-tuning
        "epochs": 20,                         # pre-training epochs after warmup
        "warmup_epochs": 2,
        "batch_size": 4,                      # videos per pre-training batch (the fine contrast spans it)
    },
    "pseudo": {
        "selection": "adaptive",              # fixed: class score >= fixed_threshold (the baseline)
        "fixed_threshold": 0.3,
        "tau_neg": 0.15,                      # Eq. (6): joint scores <= tau_neg are dropped
        # Predictions with a joint score in (tau_ignore, tau_neg] are listed as rejected ("low_score"):
        # semi.background rejected leaves them out of the classification loss instead of training
        # them as background; tau_pos still comes from the scores above tau_neg. null: none (the paper).
        # 0.05 did worse than none on seed 0 (blurry -0.38 against -0.16 over supervised, confusable
        # +0.90 against +4.76): 39% of those predictions lie mostly on background (confusable; 36% on
        # blurry), false alarms the round no longer trains as background
        "tau_ignore": None,
        "pos_std": 1.0,                       # tau_pos = mean + pos_std * std of the remaining scores
        "scope": "video",                     # tau_pos per video, or one over the whole unlabeled set
        "icd": "both",                        # none | eap | mpp | both (Table 4)
        "tau_icd": 0.3,                       # EAP: positives with S_i < tau_icd are removed
        "sigma_icd": 0.7,                     # MPP: candidates with S_i > sigma_icd are promoted
        # MPP promotes no near-duplicate: a candidate overlapping an accepted pseudo label of its class
        # at tIoU >= mpp_overlap adds no action, only a second boundary guess (BMN's 100 proposals a
        # video overlap heavily: README, "BMN"). null: every candidate with S_i > sigma_icd (the paper)
        "mpp_overlap": None,
        # MPP promotes a candidate whose predicted tIoU (ALQA's head) is >= mpp_tiou instead of one
        # whose S_i > sigma_icd (not in the paper; the ICD's S_i ranks the candidates near chance,
        # the predicted tIoU well: README, "What limits the round"). null: S_i decides (the paper).
        # With prototype classes, round 1 on the five presets, seeds 0-2, change over supervised:
        # +8.1 (confusable, the worst) to +25.7 (scenes), against +4.9 to +24.1 with S_i; better in
        # 14 of the 15 (preset, seed) pairs (README, "The semi-supervised round on data it was not
        # tuned on"). Needs the tIoU head: configs without it, and the class-agnostic ones where it
        # was not measured, set null
        "mpp_tiou": 0.9,
        # Each listed prediction's class re-decided among its class_scores' classes by the nearest
        # prototype of the labeled actions (mean of the video-median-centred input features over the
        # instance; common/relabel.py; not in the paper): none = the detector's class (the paper).
        # Round 1 on the five presets, seeds 0-2, change over supervised: prototype +4.9 (confusable,
        # its worst preset) to +24.1 (scenes); the detector's class +2.4 to +5.3 (README, "How the
        # defaults were chosen"). Class-agnostic configs set none (the classifier's classes).
        # video: each video's class voted by its accepted predictions' scores, taken by every listed
        # prediction whose class_scores hold it (a rule on real files' layout: most videos one class)
        "relabel": "prototype",
        "relabel_refine": 0,                  # more passes, each prototype also the mean of the pseudo labels given its class
        "video_topk": 0,                      # > 0: pseudo labels only of each video's k most likely classes
                                              # (sum of joint scores); 0: every class (the paper)
        # A later round (pseudo_label.py --previous FILE, the round before's file): none = select
        # afresh; thresholds = a video's tau_pos is at most the previous round's (a surer detector
        # raises its own); labels = that, and the previous round's pseudo labels and rejected
        # predictions that no new entry overlaps (tIoU >= 0.5). No effect without --previous.
        # Round 2 on hard, seeds 0-2: labels 25.89 / 23.13 / 23.43 against none's 24.97 / 21.73 /
        # 21.98; thresholds alone 25.04 (seed 0) (README)
        "carry_over": "labels",
    },
    "semi": {
        # Weight of the unlabeled loss, Eq. (12); the paper sets 2. On the preset benchmark, seeds
        # 0-2 (README "The semi-supervised round"), 1 gained over supervised in all 15 (preset, seed)
        # pairs where 2 lost in 3, beat 2 in 13 of the 15, and raised each preset's mean gain (1
        # against 2): small +7.02 / +6.49, scenes +2.90 / +2.35, blurry +2.93 / +1.34, confusable
        # +2.49 / +1.83, hard +2.43 / +2.14. The BMN and ActivityNet configs keep 2, where 1 was
        # not measured
        "beta": 1.0,
        # Points of a pseudo-labeled video outside every pseudo label: all = background (the paper's
        # reading); rejected = background except inside the predictions pseudo_label.py rejected
        # (left out of the classification loss); confident = background only where the detector's
        # own joint score is below background_thresh, the rest left out (common/losses.py).
        # rejected beat all in every (preset, seed) measured: hard x 3 seeds by +0.3 to +2.6, small
        # by +0.6 (README, benchmarks/bench_presets.py); all is the paper's reading. BMN (model.arch
        # bmn) takes all or rejected, read on its labels (common/bmn.py uncertain_ignore); its
        # configs keep all, which rejected trailed on the ActivityNet-like data (benchmarks/bench_bmn.py)
        "background": "rejected",
        "background_thresh": 0.1,
        # Class target of a pseudo label: hard = one-hot of its label (the paper); soft = spread over
        # the classes its class_scores list, in proportion to P_cls (common/losses.py). soft beat hard
        # (both with background rejected) in every (preset, seed) pair measured: hard x 3 seeds by
        # +1.5 / +2.7 / +1.8, small by +1.1 (README). No effect with dataset.class_agnostic (one class)
        "class_target": "soft",
        # Candidates (the file's rejected entries with reason candidate: joint score between tau_neg
        # and the video's tau_pos, not mined by MPP) as pseudo labels whose class target is scaled by
        # this weight (not in the paper): 0 leaves them out of the classification loss as rejected.
        # 0.5 did worse than 0 on hard and scenes, seed 0 (README)
        "candidate_weight": 0.0,
        "epochs": 10,                         # after warmup; an epoch is one pass over the unlabeled videos
        "warmup_epochs": 1,
        # Perturbed input for the pseudo-labeled videos (not in the paper): the labels come from the
        # detector's clean view, the round trains on a noisier one (Noisy Student). feature_dropout:
        # each feature value zeroed with this probability (the rest scaled by 1 / (1 - p));
        # feature_noise: Gaussian noise of this many times the video's feature std (common/losses.py
        # perturbed; both detectors)
        "feature_dropout": 0.0,
        "feature_noise": 0.0,
    },
    "test": {
        "pre_nms_thresh": 0.001,
        "pre_nms_topk": 2000,                 # per pyramid level
        "duration_thresh": 0.05,              # drop shorter segments (grid steps)
        "nms_sigma": 0.5,
        "min_score": 0.001,
        "max_segments": 200,                  # per video
        "class_agnostic": False,              # True for ActivityNet-like data (with voting)
        "voting": False,
        "voting_iou": 0.75,
        "video_topk": 2,                      # class_agnostic: each proposal copied for its video's k most
                                              # likely classes, score = proposal score x class probability
        "batch_size": 1,
        # BMN's inference (model.arch: bmn; published): its Soft-NMS decays a proposal by
        # exp(-tIoU^2 / alpha) when tIoU > low + (high - low) x the pick's length; top_k proposals a
        # video. The test.nms_* / voting / max_segments keys above are ActionFormer's
        "bmn": {"alpha": 0.4, "low_threshold": 0.5, "high_threshold": 0.9, "top_k": 100},
    },
}


# The paper's rules for the pseudo labels and the round (Sec. 3.1-3.3), laid over the config file's
# values when it names recipe paper, under the --set overrides. Both recipes keep the detector, ALQA,
# ACP, the ICD's training and thresholds (tau_icd, sigma_icd) as the config sets them; the paper's
# trains one round (runs/main.sh: RECIPE=paper). Why the project's own differ, and what each
# difference measured: README, "Two recipes".
RECIPES = {
    "project": {},
    "paper": {
        "pseudo": {
            "selection": "adaptive", "tau_neg": 0.15, "pos_std": 1.0,  # Eq. (6): tau_pos = mean + std
            "scope": "video", "tau_ignore": None, "video_topk": 0,     # of each video's predictions
            "icd": "both", "mpp_tiou": None, "mpp_overlap": None,      # EAP and MPP by S_i (Eq. 10)
            "relabel": "none", "relabel_refine": 0,                    # the detector's own classes
            "carry_over": "none",                                      # one round, selected afresh
        },
        "semi": {
            "beta": 2.0,                                               # Eq. (12)
            "background": "all",                                       # every point outside the pseudo labels
            "class_target": "hard", "candidate_weight": 0.0,          # the label's class, as a labeled action's (Eq. 5)
            "feature_dropout": 0.0, "feature_noise": 0.0,              # the unlabeled videos as they are
        },
    },
}


class ConfigError(ValueError):
    """An unknown key, a wrong type, a value that is not one of its key's choices, or an unreadable config file."""


# The embedded datasets (synthetic/make.py SYNTHETIC_SIZES, which a test holds equal): thumos_like.py's
# sizes and difficulty presets, and anet_like.py's. Written out here, as common/ imports no generator.
SYNTHETIC_SIZES = ("tiny", "small", "full", "scenes", "blurry", "confusable", "hard", "relu", "lean", "unseen", "anet")

# Every key whose value is one of a few names, with those names: load_config checks each of them,
# whether or not the stage at hand reads it, so a typo stops every stage before it reads any data.
# None among the choices: the key may be null.
CHOICES = {
    "recipe": tuple(RECIPES),
    "dataset.synthetic_size": (None, *SYNTHETIC_SIZES),
    "model.arch": ("actionformer", "bmn"),
    "model.alqa": ("none", "tiou", "diou", "tiou_tnd"),
    "model.icd_features": ("input", "fpn"),
    "train.precision": ("auto", "bf16", "fp32"),
    "acp.mode": ("none", "coarse", "fine", "both"),
    "pseudo.selection": ("adaptive", "fixed"),
    "pseudo.scope": ("video", "dataset"),
    "pseudo.icd": ("none", "eap", "mpp", "both"),
    "pseudo.relabel": ("none", "prototype", "video"),
    "pseudo.carry_over": ("none", "thresholds", "labels"),
    "semi.background": ("all", "rejected", "confident"),
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


def merge(cfg, update, prefix=""):
    """Merge `update` into `cfg` in place; unknown keys and type changes are errors."""
    for key, value in update.items():
        name = prefix + key
        if key not in cfg:
            raise ConfigError(f"unknown config key: {name}")
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
    scfg = cfg["semi"]
    if not 0.0 <= scfg["feature_dropout"] < 1.0:
        raise ConfigError(f"config key semi.feature_dropout: expected a probability in [0, 1), "
                          f"got {scfg['feature_dropout']!r}")
    if not 0.0 <= scfg["candidate_weight"] <= 1.0:
        raise ConfigError(f"config key semi.candidate_weight: expected a number in [0, 1], "
                          f"got {scfg['candidate_weight']!r}")
    if scfg["candidate_weight"] > 0 and dcfg["class_agnostic"]:
        raise ConfigError("config key semi.candidate_weight: a weighted candidate needs class targets, which a "
                          "class-agnostic detector (dataset.class_agnostic: true) drops; set it 0")
    if not (isinstance(cfg["pseudo"]["relabel_refine"], int) and 0 <= cfg["pseudo"]["relabel_refine"] <= 10):
        raise ConfigError(f"config key pseudo.relabel_refine: expected a number of passes in 0..10, "
                          f"got {cfg['pseudo']['relabel_refine']!r}")
    check_pseudo(cfg["pseudo"])
    if cfg["pseudo"]["relabel"] != "none" and dcfg["class_agnostic"]:
        raise ConfigError("config key pseudo.relabel: a class-agnostic detector's classes come from the video-level "
                          "classifier (dataset.class_agnostic: true), there is nothing to relabel; set it none")
    if not scfg["feature_noise"] >= 0.0:
        raise ConfigError(f"config key semi.feature_noise: expected a number >= 0, got {scfg['feature_noise']!r}")
    if not _positive_int(tcfg["video_topk"]):
        raise ConfigError(f"config key test.video_topk: expected a positive integer, got {tcfg['video_topk']!r}")
    if tcfg["voting"] and not tcfg["class_agnostic"]:
        raise ConfigError("config key test.voting: score voting needs test.class_agnostic: true")
    check_arch(cfg)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_pseudo(pcfg):
    """pseudo.tau_ignore, mpp_overlap and mpp_tiou: null or a number in their range."""
    ignore, overlap, by_tiou = pcfg["tau_ignore"], pcfg["mpp_overlap"], pcfg["mpp_tiou"]
    if ignore is not None and not (_number(ignore) and 0 <= ignore < pcfg["tau_neg"]):
        raise ConfigError(f"config key pseudo.tau_ignore: expected null or a joint score in [0, tau_neg "
                          f"{pcfg['tau_neg']}), got {ignore!r}")
    if overlap is not None and not (_number(overlap) and 0 < overlap <= 1):
        raise ConfigError(f"config key pseudo.mpp_overlap: expected null or a tIoU in (0, 1], got {overlap!r}")
    if by_tiou is not None and not (_number(by_tiou) and 0 < by_tiou <= 1):
        raise ConfigError(f"config key pseudo.mpp_tiou: expected null or a predicted tIoU in (0, 1], got {by_tiou!r}")


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
    if cfg["semi"]["background"] not in ("all", "rejected"):
        raise ConfigError(f"config key semi.background: model.arch bmn takes all or rejected (common/bmn.py "
                          f"uncertain_ignore); confident, which reads ActionFormer's joint score per point, has "
                          f"no BMN form, got {cfg['semi']['background']!r}")
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
    if size is not None and cfg["model"]["icd_features"] == "fpn":
        raise ConfigError("config key model.icd_features: fpn runs BMN over a whole video, which windows "
                          "(dataset.window) cut up; use input")


def from_dict(data):
    """A config stored in a checkpoint, checked against today's DEFAULTS."""
    return merge(copy.deepcopy(DEFAULTS), data)


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
