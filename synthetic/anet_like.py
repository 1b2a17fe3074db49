"""Synthetic ActivityNet-like dataset, so the ActivityNet recipe runs with no downloads.

Writes under root, in the layout and feature grid of synthetic/thumos_like.py, with ActivityNet's subsets
"training" / "validation":
- annotations.json (ActionFormer's format, label_id = alphabetical rank) and features/<video_id>.npy
  (float32 (T, D), T = num_features(duration, fps, feat_stride, num_frames): every video has its own
  length, which the ActivityNet recipe resizes to a fixed number of steps);
- video_scores.json: a video-level classifier's class probabilities for every video, in the CUHK
  format that common/video_scores.py reads and that labels the class-agnostic proposals;
- splits/labeled_<P>pct.txt and unlabeled_<P>pct.txt, P = 10, 20, 40, 60 (common.data.make_split);
- meta.json: parameters, class groups, measured statistics.

The temporal model is fitted to anet1.3.json (training + validation, 14,377 videos; the numbers in
the comments are from it). Where THUMOS14 has many short actions in long videos, ActivityNet has one
or two long actions in a YouTube clip:
- video length: piecewise uniform on the real histogram, nearly flat from 30 s to 4 min (median 115 s);
- instances per video: the real counts (73% one, 13% two, ..., mean 1.54), by stratified quantile so
  that a small subset keeps the mean; videos with more instances are longer (rank correlation 0.19);
- coverage (the fraction of the video inside actions): logit-normal given the count, so one action
  fills most of its video (median 79%), several share less (57% for two, 41% for four or more); a
  per-class shift makes some activities longer than others. The covered time is split among the
  instances, the rest among the gaps, uniformly at random (Dirichlet(1)): median action 27 s;
- one class per video (11 real videos have two), the classes balanced over the videos of a subset;
- a few last segments end just past the video's duration (1% of the real segments), which readers clip.
Appearance is synthetic/thumos_like.py's model with its defaults (confusable class groups, phased
actions over a drifting background that leans towards the video's group, weak distractor actions,
window averaging, a random embedding and noise), reused from there.

The video-level classifier: logits = score_margin at the true class + score_group_bonus at every
class of its group + unit Gaussian noise, softmax(score_sharpness x logits). Margin and bonus set the
expected top-1 accuracy to 88% and top-2 to 97% (CUHK's classifier: 88-90% top-1 on ActivityNet
validation), nine errors in ten inside the true class's group; the sharpness only calibrates
(median top probability 0.9). Measured on the files written, in meta.json.

20 classes (of 24, in groups of four), 500 training and 200 validation videos: the 10% split then
holds 50 labeled videos, 2.5 per class (ActivityNet's: 4.8), every class among them, and the
validation set 10 videos per class, so that each class's AP, which mAP averages, rests on more
than a couple of videos. ActivityNet's 200 classes would leave the labeled split a video per class
at best on data a CPU trains on in minutes.
Each video draws from its own streams (seed, subset, index): the same seed gives byte-identical files.

    python -m synthetic.anet_like --out data/synthetic_anet --seed 0
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from statistics import NormalDist

import numpy as np

from common.data import DataError, data_error, load_annotations, make_split, write_split
from common.video_scores import load_video_scores, top_k_accuracy, write_video_scores
from synthetic.thumos_like import (checked_params, class_groups, classifier_probs, dataset_stats, features, frame_latents,
                                   jitter, num_features, place, stream, unit, write_atomically)

VERSION = "synthetic-anet-v1"
SUBSETS = ("training", "validation")
SPLIT_RATIOS = (10, 20, 40, 60)  # the paper's labeled ratios (Table 1); synthetic/make.py writes these too

# ActivityNet v1.3 class names, in groups that look alike; classes are taken group by group.
CLASS_GROUPS = (
    ("Canoeing", "Kayaking", "Rafting", "Sailing"),
    ("Ping-pong", "Playing badminton", "Playing racquetball", "Playing squash"),
    ("Blow-drying hair", "Braiding hair", "Brushing hair", "Getting a haircut"),
    ("Making a sandwich", "Making an omelette", "Preparing pasta", "Preparing salad"),
    ("Playing accordion", "Playing flauta", "Playing guitarra", "Playing violin"),
    ("Using parallel bars", "Using the balance beam", "Using the pommel horse", "Using uneven bars"),
)


@dataclasses.dataclass(frozen=True)
class AnetParams:
    # scale
    num_train: int = 500
    num_val: int = 200
    num_classes: int = 20
    # feature grid: 16-frame windows every 16 frames, ~0.53 s at 30 fps: ~215 steps in a median video
    feat_stride: int = 16
    num_frames: int = 16
    feat_dim: int = 64
    latent_dim: int = 32  # must not exceed feat_dim: the embedding is orthonormal
    fps_choices: tuple = (30.0, 25.0, 24.0, 15.0, 29.97)
    fps_weights: tuple = (9483, 2571, 1260, 492, 177)  # videos at each rate (a few hundred have others)
    # video length (s): histogram edges and the videos in each bin (the 24 over 240 s in the last)
    duration_edges: tuple = (10.0, 15.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0, 210.0, 240.0)
    duration_counts: tuple = (510, 935, 2016, 2157, 1850, 1901, 1766, 1744, 1498)
    # videos with 1, 2, ..., 12 instances (the 27 with more in the last)
    count_weights: tuple = (10848, 1873, 686, 401, 213, 133, 74, 54, 31, 23, 14, 27)
    count_length_correlation: float = 0.35  # of the two normal scores; gives rank correlation ~0.2
    # coverage: logit-normal, by count 1, 2, 3, 4+ (quartiles of the real coverage, as logits)
    coverage_logit_mean: tuple = (1.35, 0.27, -0.27, -0.36)
    coverage_logit_std: tuple = (1.85, 1.4, 1.25, 1.0)
    class_coverage_spread: float = 0.5  # per-class logit shift; taken out of the std above
    split_concentration: float = 1.0  # Dirichlet over the instances' share of the covered time
    gap_concentration: float = 1.0  # Dirichlet over the gaps
    min_action: float = 2.0  # s (real p5: 2.3 s); also a step or two of the resized grid
    overflow_prob: float = 0.015  # videos whose last segment is annotated just past the end
    # appearance: synthetic/thumos_like.py's model and defaults
    class_separation: float = 0.5
    phase_separation: float = 0.5
    intensity_median: float = 1.0
    intensity_sigma: float = 0.3
    instance_offset_std: float = 0.5
    context_strength: float = 0.3
    drift_std: float = 0.3
    drift_period: float = 5.0
    onset_ramp: float = 0.0
    boundary_jitter: float = 0.0
    noise_std: float = 0.7
    # > 0: features out of a fixed random two-layer ReLU network of this width (thumos_like.py's encoder)
    encoder_width: int = 0
    encoder_gain: float = 2.0
    encoder_bias: float = -0.5
    # > 0: camera cuts between shot_setups setups (thumos_like.py's shot_median)
    shot_median: float = 0.0
    shot_setups: int = 3
    shot_strength: float = 1.0
    # weak unlabeled actions in the background: a Poisson number per video, log-normal lengths (s)
    distractor_rate: float = 0.5
    distractor_median: float = 4.0
    distractor_sigma: float = 0.6
    distractor_strength: float = 0.4
    distractor_same_class_prob: float = 0.5
    # the video-level classifier (see the docstring)
    score_margin: float = 2.4
    score_group_bonus: float = 1.6
    score_sharpness: float = 2.0


# dataset.synthetic_size names of the ActivityNet-like data: anet (the defaults above) and its
# presets, each a dict of AnetParams over the defaults (calibration: docs/embedded_data.md).
ANET_PRESETS = {
    "anet": {},
    # soft, ambiguous boundaries and features through a ReLU encoder, as real ActivityNet's
    "anet_hard": dict(encoder_width=128, onset_ramp=0.25, boundary_jitter=0.12),
}


def make_anet_params(overrides=None):
    """AnetParams with `overrides` (a dict, e.g. meta.json's "params") over the defaults.

    Unknown keys and wrong types are errors, so a typo cannot silently leave a default in place."""
    return checked_params(AnetParams, overrides or {})


def _make_world(p, seed):
    """Class names (label_id order), groups, phase prototypes, coverage shifts, the embedding:
    what synthetic/thumos_like.py's frame_latents and features read."""
    if p.latent_dim > p.feat_dim:
        raise ValueError("latent_dim must not exceed feat_dim")
    rng, L = stream(seed, 0), p.latent_dim
    groups = class_groups(p.num_classes, CLASS_GROUPS)
    names = sorted(n for g in groups for n in g)
    group_of = np.array([next(i for i, g in enumerate(groups) if n in g) for n in names])
    group_vec = unit(rng.standard_normal((len(groups), L)))
    proto = unit(group_vec[group_of] + p.class_separation * unit(rng.standard_normal((len(names), L))))
    phases = unit(proto[:, None] + p.phase_separation * unit(rng.standard_normal((len(names), 3, L))))[:, None]
    # normal quantiles dealt to classes at random: the pooled coverage keeps its spread at any K
    quantiles = [NormalDist().inv_cdf((i + 0.5) / len(names)) for i in rng.permutation(len(names))]
    embed = np.linalg.qr(rng.standard_normal((p.feat_dim, L)))[0].T  # (L, D), orthonormal rows
    encoder = None
    if p.encoder_width:  # its own stream, so the rest of the world is the linear preset's
        r = stream(seed, 7)
        encoder = (unit(r.standard_normal((p.encoder_width, L))), unit(r.standard_normal((p.feat_dim, p.encoder_width))))
    return dict(names=names, groups=groups, group_of=group_of, group_vec=group_vec, phases=phases,
                coverage_shift=p.class_coverage_spread * np.array(quantiles), embed=embed, scenes=None,
                encoder=encoder, event_looks=None)


def _from_histogram(weights, u):
    """Index of the bin of quantile u in a histogram, and u's relative position inside the bin."""
    cum = np.cumsum(weights) / np.sum(weights)
    i = min(int(np.searchsorted(cum, u, side="right")), len(cum) - 1)
    lo = cum[i - 1] if i else 0.0
    return i, (u - lo) / (cum[i] - lo)


def _count_and_length(p, rng, count_quantile):
    """Instances and video length (s), the length's normal score correlated with the count's."""
    i, _ = _from_histogram(p.count_weights, count_quantile)
    z = NormalDist().inv_cdf(count_quantile)
    rho = p.count_length_correlation
    u = NormalDist().cdf(rho * z + math.sqrt(1 - rho ** 2) * rng.standard_normal())
    j, frac = _from_histogram(p.duration_counts, u)
    length = p.duration_edges[j] + frac * (p.duration_edges[j + 1] - p.duration_edges[j])
    n = min(i + 1, int(length / (2 * p.min_action)))  # room for every instance
    return n, length


def _layout(p, world, rng, n, label, length):
    """n instances (start, end) without overlap in [0, length], and whether the last one ends the video."""
    k = min(n, len(p.coverage_logit_mean)) - 1
    std = math.sqrt(max(p.coverage_logit_std[k] ** 2 - p.class_coverage_spread ** 2, 0.0))
    logit = p.coverage_logit_mean[k] + world["coverage_shift"][label] + std * rng.standard_normal()
    coverage = 1.0 / (1.0 + math.exp(-logit))
    dur = np.maximum(coverage * length * rng.dirichlet(np.full(n, p.split_concentration)), p.min_action)
    dur *= min(1.0, length / dur.sum())
    gaps = rng.dirichlet(np.full(n + 1, p.gap_concentration))
    overflow = bool(rng.random() < p.overflow_prob)
    if overflow:
        gaps[-1] = 0.0
        gaps /= gaps.sum()
    gaps *= length - dur.sum()
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(dur[:-1])])
    return list(zip(starts, starts + dur)), overflow


def _distractors(p, rng, instances, length, label):
    """Weak unlabeled actions (start, end, class) in the background, 0.5 s clear of the labeled ones."""
    edges = [0.0] + [x for s, e in instances for x in (s - 0.5, e + 0.5)] + [length]
    free = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b > a]
    out = []
    for _ in range(rng.poisson(p.distractor_rate)):
        c = label if rng.random() < p.distractor_same_class_prob else int(rng.integers(p.num_classes))
        d = max(p.distractor_median * math.exp(p.distractor_sigma * rng.standard_normal()), p.min_action)
        s = place(free, d, rng)
        if s is not None:
            out.append((s, s + d, c))
    return out


def _make_video(p, world, seed, k, index, label, stratum, n_strata):
    """One video's annotation entry, its (T, D) features and its video-level probabilities."""
    rng = stream(seed, 1 + k, index)
    n, length = _count_and_length(p, rng, (stratum + rng.uniform(0.01, 0.99)) / n_strata)
    instances, overflow = _layout(p, world, rng, n, label, length)
    fps = float(rng.choice(p.fps_choices, p=np.asarray(p.fps_weights) / sum(p.fps_weights)))
    duration = round(length, 2)
    segments = [[round(float(s), 2), round(float(e), 2)] for s, e in instances]
    if overflow:  # annotated a moment past the end, as 1% of ActivityNet's segments are
        segments[-1][1] = round(duration + rng.uniform(0.01, 0.1), 2)
    intensity = p.intensity_median * np.exp(p.intensity_sigma * rng.standard_normal(n))
    events = [(s, e, label, a, 0) for (s, e), a in zip(segments, intensity)]  # one look per class
    for s, e, c in _distractors(p, rng, instances, length, label):
        scale = p.intensity_median * np.exp(p.intensity_sigma * rng.standard_normal())
        events.append((s, e, c, p.distractor_strength * scale, 0))
    n_frames = int(np.floor(duration * fps + 1e-6))
    x = frame_latents(p, world, rng, n_frames, fps, events, label)
    feats = features(p, world, rng, x, num_features(duration, fps, p.feat_stride, p.num_frames))
    if p.boundary_jitter > 0:
        segments = jitter(p, rng, segments, duration)
    annotations = [{"label": world["names"][label], "segment": [s, e],
                    "segment(frames)": [round(s * fps, 2), round(e * fps, 2)], "label_id": int(label)}
                   for s, e in segments]
    probs = classifier_probs([label], world["group_of"], stream(seed, 7 + k, index), p.score_margin,
                             p.score_group_bonus, p.score_sharpness)  # its own stream
    return {"subset": SUBSETS[k], "duration": duration, "fps": fps, "annotations": annotations}, feats, probs


def _write_splits(out, seed):
    """The stratified labeled/unlabeled splits of the training videos, as the stages write them."""
    videos, classes = load_annotations(os.path.join(out, "annotations.json"), as_given=True)
    written = []
    for pct in SPLIT_RATIOS:
        try:
            labeled, unlabeled = make_split(videos, "training", pct / 100, seed, classes)
        except DataError:  # a reduced dataset cannot cover every class at 10%: no such split
            continue
        write_split(os.path.join(out, "splits", f"labeled_{pct}pct.txt"), labeled)
        write_split(os.path.join(out, "splits", f"unlabeled_{pct}pct.txt"), unlabeled)
        written.append(pct)
    return written


def _write(out, p, seed):
    world = _make_world(p, seed)
    os.makedirs(os.path.join(out, "features"))
    database, probs, steps = {}, {}, []
    for k, count in enumerate((p.num_train, p.num_val)):
        # stratified instance counts (their mean holds in every subset), balanced classes
        strata = stream(seed, 3 + k).permutation(count)
        labels = stream(seed, 5 + k).permutation(np.arange(count) % p.num_classes)
        for i in range(count):
            video_id = f"anet_{SUBSETS[k][:5]}_{i + 1:05d}"
            database[video_id], feats, probs[video_id] = _make_video(
                p, world, seed, k, i, int(labels[i]), strata[i], count)
            np.save(os.path.join(out, "features", video_id + ".npy"), feats)
            steps.append(len(feats))
    ann_file = os.path.join(out, "annotations.json")
    with open(ann_file, "w") as f:
        json.dump({"version": VERSION, "database": dict(sorted(database.items()))}, f, indent=2)
    write_video_scores(os.path.join(out, "video_scores.json"), probs, world["names"])
    splits = _write_splits(out, seed)
    stats = {**dataset_stats(ann_file), **_anet_stats(out, database, world, steps), "splits_pct": splits}
    meta = {"version": VERSION, "seed": seed, "params": dataclasses.asdict(p), "class_names": world["names"],
            "class_groups": world["groups"], "stats": stats}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return stats


def _anet_stats(out, database, world, steps):
    """What dataset_stats leaves out: one-action videos, the grid lengths, the classifier's accuracy
    (measured on video_scores.json as written, rounding included)."""
    single = [v for v in database.values() if len(v["annotations"]) == 1]
    cover = [min(a["segment"][1], v["duration"]) - a["segment"][0] for v in single for a in v["annotations"]]
    cover = np.array(cover) / np.array([v["duration"] for v in single])
    probs = load_video_scores(os.path.join(out, "video_scores.json"), world["names"])
    true = {vid: v["annotations"][0]["label_id"] for vid, v in database.items()}
    wrong = [vid for vid, p in probs.items() if int(np.argmax(p)) != true[vid]]
    group = world["group_of"]
    within = [group[int(np.argmax(probs[vid]))] == group[true[vid]] for vid in wrong]
    scores = {"top1_accuracy": top_k_accuracy(probs, true, 1), "top2_accuracy": top_k_accuracy(probs, true, 2),
              "errors_within_group": float(np.mean(within)) if within else 1.0,
              "top_probability_median": float(np.median([p.max() for p in probs.values()]))}
    for subset in SUBSETS:
        sub = {vid: p for vid, p in probs.items() if database[vid]["subset"] == subset}
        scores[f"top1_accuracy_{subset}"] = top_k_accuracy(sub, true, 1)
    return {"one_instance_share": round(len(single) / len(database), 3),
            "coverage_median_one_instance": round(float(np.median(cover)), 3),
            "feature_steps": {"min": int(min(steps)), "median": float(np.median(steps)), "max": int(max(steps))},
            "video_scores": {key: round(value, 3) for key, value in scores.items()}}


def _generate(root, p, seed, replace):
    """Write into a temporary folder beside root, then rename it into place."""
    return write_atomically(root, lambda tmp: _write(tmp, p, seed), replace)


def _read_meta(root):
    try:
        with open(os.path.join(root, "meta.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def generate_anet_dataset(root, seed=0, params=None):
    """Write the dataset under root (built beside it, then renamed into place); return its stats.

    params: None (the defaults), a dict of AnetParams fields over them, or an AnetParams. An existing
    root is replaced only when empty or an earlier output of this generator (per its meta.json)."""
    p = params if isinstance(params, AnetParams) else make_anet_params(params)
    meta = _read_meta(root)
    if os.path.isdir(root) and os.listdir(root) and (meta or {}).get("version") != VERSION:
        raise data_error(root, "holds files that are not a dataset of this generator; choose another folder")
    return _generate(root, p, seed, replace=True)


def ensure_anet_dataset(root, seed=0, params=None):
    """Generate the dataset under root unless root/annotations.json exists (a cache on disk); return root.

    Only into an absent or empty folder: one holding other files means a mistyped path. A cached
    dataset of another seed or other parameters (per its meta.json) is an error, not a reuse."""
    root = str(root)
    p = params if isinstance(params, AnetParams) else make_anet_params(params)
    ann_file, meta_file = os.path.join(root, "annotations.json"), os.path.join(root, "meta.json")
    if not os.path.exists(ann_file):
        if os.path.isdir(root) and os.listdir(root):
            raise data_error(ann_file, "no such file (its folder holds other files, so the embedded "
                                       "ActivityNet-like dataset is not generated there)")
        print(f"generating the synthetic ActivityNet-like dataset (seed={seed}) in {root}", flush=True)
        try:
            _generate(root, p, seed, replace=False)
        except OSError:  # a concurrent call may have written it first; anything else is an error
            if not os.path.exists(ann_file):
                raise
    meta = _read_meta(root)
    if meta is None:  # not generated here (the user's own files): used as they are
        return root
    if meta.get("version") != VERSION:
        raise data_error(meta_file, f"holds a {meta.get('version')!r} dataset, not a {VERSION!r} one")
    asked = {"seed": seed, **json.loads(json.dumps(dataclasses.asdict(p)))}  # as meta.json writes them
    # a field the cached meta lacks was added later; its default reproduces the older generator's output
    defaults = json.loads(json.dumps(dataclasses.asdict(AnetParams())))
    cached = {"seed": meta.get("seed"), **defaults, **(meta.get("params") or {})}
    differ = [f"{key}={cached.get(key)!r} (asked {asked.get(key)!r})" for key in sorted(asked.keys() | cached.keys())
              if asked.get(key) != cached.get(key)]
    if differ:
        raise data_error(meta_file, f"the cached dataset was generated with {', '.join(differ[:3])}"
                                    f"{', ...' if len(differ) > 3 else ''}: delete {root} or ask for the same")
    return root


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate the synthetic ActivityNet-like dataset "
                                                 "(annotations, variable-length features, video-level scores, splits).")
    parser.add_argument("--out", required=True, help="dataset directory (an earlier one there is replaced)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.time()
    try:
        stats = generate_anet_dataset(args.out, args.seed)
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(args.out) for f in files)
    print(json.dumps(stats, indent=2))
    print(f"generated {args.out} (seed={args.seed}) in {time.time() - t0:.1f} s, {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
