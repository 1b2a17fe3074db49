"""Synthetic THUMOS-like dataset in ActionFormer's format, so the toolkit runs with no downloads.

Writes under root: annotations.json (ActionFormer's format, subsets "train"/"test", label_id =
alphabetical rank), features/<video_id>.npy (float32 (T, D); feature i averages frames
[i*feat_stride, i*feat_stride + num_frames), so a time t sits at grid position
t*fps/feat_stride - 0.5*num_frames/feat_stride; T as in `num_features`) and meta.json (parameters,
class groups, measured statistics).

The generative model, and the difficulty of real data each part stands in for:
- Layout follows THUMOS14's validation split: log-normal action durations (median 2.9 s, p5 0.7, p95
  9.7) with a per-class scale, as some sports are quick and others slow; log-normal instance counts
  (median 8, mean 15), so a few videos are crowded; a per-video coverage (mean 29%) sets the video
  length; Dirichlet gaps with concentration < 1 cluster instances and leave long empty stretches.
  1 class per video, sometimes 2, then mostly from one group. A few last segments end past the
  video's duration, as in the real file, so readers must clip.
- Confusable groups (CliffDiving/Diving, CricketBowling/CricketShot, ...): a class prototype is
  normalised(group vector + class_separation * own vector), so most errors stay inside a group.
- Frames are latent vectors. Background: a per-video vector leaning towards the video's group (scene
  context predicts the class, not the boundaries) plus a slow drift. An action adds its prototype in
  three phases (start, middle, end, interpolated by relative position), so boundaries look learnable,
  scaled by a per-instance intensity, plus a per-instance offset: no two instances are alike.
- Distractors: a weak action in unlabeled background, the false positives a detector must reject and
  that pseudo-labels get wrong.
- A feature averages its num_frames frames, which blurs boundaries exactly as clip features do; a
  random orthonormal embedding into D dims and Gaussian noise follow, so no dimension is meaningful.
Each video draws from its own stream (seed, subset, index): the same seed gives byte-identical files.

Difficulty presets (PRESETS; `--size scenes|blurry|confusable|hard|relu|lean|unseen|varied|mirror|fuzzy`,
the size of `small`) turn on what `small` leaves easy: background scenes shared across videos
(`small` gives every video its own background, which makes action vs background easy to tell),
actions that fade in and out and annotated boundaries that wander from those in the features,
tighter class groups with more and stronger distractors and noise, and all of these at once.
`relu`, `lean`, `unseen`, `varied`, `mirror` and `fuzzy` add what real features are and a template
added to a background is not: a fixed random ReLU network between the latents and the features
(non-negative; what an action adds depends on its scene), scenes that lean to their video's class,
several looks per class, classes told apart by the order of their parts. The method's defaults are
chosen on them (benchmarks/bench_presets.py), not on `small` alone, and never on the held-out
`unseen`, `varied` and `fuzzy`.

    python -m synthetic.thumos_like --out data/synthetic --size small --seed 0
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from statistics import NormalDist

import numpy as np

VERSION = "synthetic-thumos-v1"
SUBSETS = ("train", "test")

# Classes are taken group by group, so a small K still has confusable pairs.
CLASS_GROUPS = (
    ("CliffDiving", "Diving"),
    ("BaseballPitch", "CricketBowling", "CricketShot"),
    ("HammerThrow", "JavelinThrow", "Shotput", "ThrowDiscus"),
    ("HighJump", "LongJump", "PoleVault"),
    ("Billiards", "GolfSwing", "TennisSwing"),
    ("BasketballDunk", "CleanAndJerk", "FrisbeeCatch", "SoccerPenalty", "VolleyballSpiking"),
)


# ---------------------------------------------------------------- parameters and presets

@dataclasses.dataclass(frozen=True)
class GeneratorParams:
    # scale: overridden by the size presets in SIZES
    num_train: int = 160
    num_test: int = 80
    num_classes: int = 20
    max_instances: int = 128  # cap on the heavy-tailed count (THUMOS14: 128 in validation)
    min_duration: float = 20.0  # s, bounds on the video length
    max_duration: float = 1400.0
    # feature grid
    feat_stride: int = 8
    num_frames: int = 16
    feat_dim: int = 64
    latent_dim: int = 32  # must not exceed feat_dim: the embedding is orthonormal
    fps_choices: tuple = (30.0, 29.97, 25.0, 24.0)
    fps_weights: tuple = (0.90, 0.05, 0.04, 0.01)  # THUMOS14: 381, 18, 11, 2 videos
    # temporal layout; the defaults reproduce the THUMOS14 numbers in the comments
    duration_median: float = 2.9  # s, action duration
    duration_sigma_low: float = 0.86  # log-spread below the median: p5 = 0.7 s
    duration_sigma_high: float = 0.73  # log-spread above it: p95 = 9.7 s
    class_duration_spread: float = 0.3  # per-class log-scale; taken out of the two spreads above
    min_action: float = 0.2  # s
    count_median: float = 8.0  # instances per video, log-normal
    count_sigma: float = 1.12  # mean = median * exp(sigma^2 / 2) = 15
    coverage_mean: float = 0.31  # fraction of a video inside actions, Beta distributed; min_duration
    coverage_concentration: float = 4.1  # stretches short videos, so the measured mean is 0.29
    gap_concentration: float = 0.5  # Dirichlet gaps; < 1 clusters instances
    two_class_prob: float = 0.15  # THUMOS14: 61 of 412 videos
    same_group_prob: float = 0.8  # the second class shares the first one's group
    overflow_prob: float = 0.03  # videos whose last segment ends past the duration
    # appearance
    class_separation: float = 0.5  # own-vector weight; cosine within a group ~ 1 / (1 + s^2)
    phase_separation: float = 0.5  # how different start, middle and end of an action look
    intensity_median: float = 1.0  # per-instance scale of the action, log-normal
    intensity_sigma: float = 0.3
    instance_offset_std: float = 0.5  # norm of a per-instance latent offset
    context_strength: float = 0.3  # pull of the background towards the video's class group
    drift_std: float = 0.3  # norm of the slow background drift
    drift_period: float = 5.0  # s between independent drift knots
    distractor_rate: float = 0.3  # unlabeled weak actions per labeled instance
    distractor_strength: float = 0.4  # their intensity relative to an action's
    distractor_same_class_prob: float = 0.5  # else a random class
    noise_std: float = 0.7  # per feature dimension; a unit-norm latent gives ~1 per dimension
    # what makes real data harder (the difficulty presets; 0 leaves `small` byte for byte as it was)
    scene_count: int = 0  # > 0: background scenes shared across videos (a stadium, a pool, a studio)
    scene_weight: float = 0.0  # weight of the video's shared scene against its own background vector
    onset_ramp: float = 0.0  # fraction of an action over which it fades in and out: soft boundaries
    boundary_jitter: float = 0.0  # std of the annotated boundaries around the ones that made the
    # features, as a fraction of the action's length: annotators and features disagree
    # what real features are that a linear embedding is not (the "unseen" presets; 0 / 1 leave the rest as is)
    class_modes: int = 1  # looks per class (viewpoints, styles); each instance shows one of them
    mode_spread: float = 0.0  # how far a class's looks lie from its prototype (own-vector weight)
    scene_class_lean: float = 0.0  # chance that a video's scene is its class group's own (a pool for
    # diving) rather than any scene; needs scene_count > 0
    mirror_pairs: float = 0.0  # classes paired inside each group: how much the second of a pair shows
    # its mate's phases in reverse order (1: the same looks, end first, so that a mean over the action
    # cannot tell the two apart and only the order of the phases can)
    encoder_width: int = 0  # > 0: features come out of a fixed random two-layer ReLU network of this
    # hidden width (non-negative, as I3D's or TSN's pooled post-ReLU units; an action's features then
    # depend on the scene it happens in) instead of the orthonormal embedding
    encoder_gain: float = 2.0  # scale of the latents entering the network
    encoder_bias: float = -0.5  # bias of every unit: below 0, a unit fires for some inputs only
    # camera cuts (0 leaves the rest as is): a video is filmed from shot_setups camera setups, each
    # shifting its background by its own offset of norm shot_strength (an action's look has norm ~1),
    # cut into shots of log-normal length around shot_median s (p5-p95 x0.27-3.7), each from another
    # setup than the last: the largest change in a video is then often a cut, not an action
    shot_median: float = 0.0
    shot_setups: int = 3
    shot_strength: float = 1.0
    # background events (0 leaves the rest as is): motion that is not an action (a crowd, a replay, a
    # pan over the venue), event_rate of them a minute of video, placed clear of the actions, with an
    # action's durations, phases and strength times event_strength, each showing one of event_looks
    # looks that no class shares: a large change in a video is then not always an action
    event_rate: float = 0.0
    event_strength: float = 1.0
    event_looks: int = 8


SIZES = {
    "tiny": dict(num_train=16, num_test=8, num_classes=5, max_instances=6, min_duration=15.0,
                 max_duration=60.0),
    "small": {},
    "full": dict(num_train=200, num_test=212),  # THUMOS14's validation / test split sizes
}

# Difficulty presets at the size of `small` (160 training, 80 test videos): each stresses one thing
# that makes real data harder than `small`, and `hard` stacks them. They exist so that the method's
# defaults are chosen on data they were not tuned on (benchmarks/bench_presets.py).
PRESETS = {
    # one background per video makes action vs background easy to tell apart (ACP's coarse contrast
    # especially); real videos of one sport share their scenes
    "scenes": dict(scene_count=6, scene_weight=0.8),
    # actions fade in and out, and annotated boundaries wander from the ones in the features
    "blurry": dict(onset_ramp=0.25, boundary_jitter=0.12),
    # tighter class groups, more and stronger weak-action distractors, more noise
    "confusable": dict(class_separation=0.3, distractor_rate=0.6, distractor_strength=0.6, noise_std=0.9),
    # all of the above, each a little milder
    "hard": dict(scene_count=6, scene_weight=0.7, onset_ramp=0.2, boundary_jitter=0.08,
                 class_separation=0.35, distractor_rate=0.5, distractor_strength=0.5, noise_std=0.8),
    # The presets above build a class as a template added to a background, which subtracting a
    # video's median removes almost exactly; real features do not (issue 26). These pass the latents
    # through a fixed ReLU network, so what an action adds depends on its scene and a raw-feature
    # prototype names an unlabeled action right 40-50% of the time (81% on `small`).
    # shared scenes seen through the encoder
    "relu": dict(scene_count=6, scene_weight=0.8, encoder_width=128, noise_std=0.5),
    # and scenes that lean to their video's class group (a pool for diving), three looks per class,
    # soft and wandering boundaries, tighter groups
    "lean": dict(scene_count=6, scene_weight=0.8, encoder_width=128, noise_std=0.6, scene_class_lean=0.7,
                 class_modes=3, mode_spread=0.8, onset_ramp=0.2, boundary_jitter=0.08, class_separation=0.35),
    # held out (HELD_OUT): no default is chosen on it. Through the encoder, every instance further
    # from its class's look (a per-instance offset 1.5x small's), scenes that lean half the time
    "unseen": dict(scene_count=6, scene_weight=0.8, encoder_width=128, noise_std=0.4, instance_offset_std=0.75,
                   scene_class_lean=0.5),
    # held out too: `unseen` with each instance still further from its look (2.5x small's offset) and
    # three looks a class, so that the probe names 24% of the unlabeled actions right, as on the
    # held-out benchmark's ReLU features, where prototype classes cost 2 points (issue 26)
    "varied": dict(scene_count=6, scene_weight=0.8, encoder_width=128, noise_std=0.4, instance_offset_std=1.25,
                   scene_class_lean=0.5, class_modes=3, mode_spread=0.8),
    # shared scenes through the encoder, scenes that lean half the time, and classes paired with their
    # mirror image (the same looks, end first; phases further apart, so that their order shows), so
    # that a mean over the action, the prototype rule's ground, cannot tell 16 of the 20 classes from
    # their mate and only the order of their parts can. Built to be held out; chosen on since
    # pseudo.prototype_parts was designed after its pairs (docs/presets_history.md)
    "mirror": dict(scene_count=6, scene_weight=0.8, encoder_width=128, noise_std=0.5, scene_class_lean=0.5,
                   mirror_pairs=1.0, phase_separation=1.0),
    # held out, made after every default it reports on was fixed: `relu` with scenes that lean half
    # the time, actions that fade in and out over a quarter of their length and annotated boundaries
    # that wander by a fifth of it (annotators and features disagree), so that with every video
    # labeled mAP@0.7 falls to 38% of mAP@0.3 (THUMOS14's ActionFormer: 53%); the other presets
    # localise too well at 100% (docs/presets_history.md)
    "fuzzy": dict(scene_count=6, scene_weight=0.8, encoder_width=128, noise_std=0.5, scene_class_lean=0.5,
                  onset_ramp=0.25, boundary_jitter=0.2),
}
SIZES.update(PRESETS)
HELD_OUT = ("unseen", "varied", "fuzzy")  # reported apart by benchmarks/bench_presets.py; never a ground for a default


def make_params(size="small", overrides=None):
    """GeneratorParams of a size preset with `overrides` (a dict, e.g. meta.json's "params") on top.

    Unknown keys and wrong types are errors, so a typo cannot silently leave a default in place."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}, expected one of {sorted(SIZES)}")
    return checked_params(GeneratorParams, {**SIZES[size], **(overrides or {})})


def checked_params(cls, values):
    """cls(**values) for a parameter dataclass, an unknown key or a wrong type being an error."""
    values = dict(values)
    for key, value in values.items():
        if key not in cls.__dataclass_fields__:
            raise TypeError(f"unknown generator parameter {key!r}")
        default = getattr(cls, key)
        values[key] = value = tuple(value) if isinstance(default, tuple) else value  # JSON gives lists
        if not isinstance(value, type(default)) and not (type(default) is float and type(value) is int):
            raise TypeError(f"generator parameter {key} must be {type(default).__name__}, got {value!r}")
    return cls(**values)


def num_features(duration, fps, feat_stride=8, num_frames=16):
    """Number of full windows of num_frames frames, every feat_stride frames, in the video."""
    n_frames = int(np.floor(duration * fps + 1e-6))  # 1e-6: 10.1 * 30 is 302.99999999999994
    return max(0, (n_frames - num_frames) // feat_stride + 1)


# stream, unit, class_groups, place, frame_latents, features and jitter are the appearance model that
# synthetic/anet_like.py shares, with checked_params, num_features, classifier_probs, dataset_stats and
# write_atomically: public, so that the two generators have one copy of it.
def stream(seed, *key):
    # one independent stream per key, whatever else is generated
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def class_groups(k, all_groups=CLASS_GROUPS):
    """The first k classes of `all_groups`, group by group (a small k still has confusable pairs)."""
    if not 1 <= k <= sum(map(len, all_groups)):
        raise ValueError(f"num_classes must be in 1..{sum(map(len, all_groups))}, got {k}")
    groups, left = [], k
    for group in all_groups:
        if left > 0:
            groups.append(sorted(group[:left]))
            left -= len(groups[-1])
    return groups


# ---------------------------------------------------------------- the world

def _make_world(p, seed):
    """Class names (label_id order), groups, phase prototypes, duration scales and the embedding."""
    if p.latent_dim > p.feat_dim:
        raise ValueError("latent_dim must not exceed feat_dim")
    rng, L = stream(seed, 0), p.latent_dim
    groups = class_groups(p.num_classes)
    names = sorted(n for g in groups for n in g)  # label_id = alphabetical rank, as in THUMOS14
    group_of = np.array([next(i for i, g in enumerate(groups) if n in g) for n in names])
    group_vec = unit(rng.standard_normal((len(groups), L)))
    proto = unit(group_vec[group_of] + p.class_separation * unit(rng.standard_normal((len(names), L))))
    phases = unit(proto[:, None] + p.phase_separation * unit(rng.standard_normal((len(names), 3, L))))
    phases = phases[:, None]  # (C, modes, 3, L): one look per class unless class_modes asks for more
    if p.class_modes > 1:  # own streams, so the one-look presets keep their bytes
        r = stream(seed, 6)
        looks = unit(proto[:, None] + p.mode_spread * unit(r.standard_normal((len(names), p.class_modes, L))))
        phases = unit(looks[:, :, None] + p.phase_separation
                       * unit(r.standard_normal((len(names), p.class_modes, 3, L))))
    if p.mirror_pairs > 0:  # no draws: the presets without it keep their bytes
        phases = mirrored(phases, groups, names, p.mirror_pairs)
    # normal quantiles dealt to classes at random: pooled durations keep their targets at any K
    quantiles = [NormalDist().inv_cdf((i + 0.5) / len(names)) for i in rng.permutation(len(names))]
    log_scale = p.class_duration_spread * np.array(quantiles)
    embed = np.linalg.qr(rng.standard_normal((p.feat_dim, L)))[0].T  # (L, D), orthonormal rows
    scenes = unit(stream(seed, 5).standard_normal((p.scene_count, L))) if p.scene_count else None
    encoder = None
    if p.encoder_width:  # unit rows: a unit's input is ~ N(0, |x|^2 / fan-in) before the sqrt below
        r = stream(seed, 7)
        encoder = (unit(r.standard_normal((p.encoder_width, L))),
                   unit(r.standard_normal((p.feat_dim, p.encoder_width))))
    events = None
    if p.event_rate > 0:  # its own stream: (looks, 3, L) phases of non-action motion
        r = stream(seed, 8)
        events = unit(unit(r.standard_normal((p.event_looks, 1, L)))
                      + p.phase_separation * unit(r.standard_normal((p.event_looks, 3, L))))
    return dict(names=names, groups=groups, group_of=group_of, group_vec=group_vec, phases=phases,
                log_scale=log_scale, embed=embed, scenes=scenes, encoder=encoder, event_looks=events)


def mirrored(phases, groups, names, share):
    """phases (C, modes, 3, L) with the classes of each group paired in label order, (a, b), (c, d), ...
    and b's phases moved towards a's in reverse order (end, middle, start) by `share`: a pair then
    differs in the order of its phases more than in their mean."""
    out = phases.copy()
    for group in groups:
        ids = sorted(names.index(n) for n in group)
        for a, b in zip(ids[0::2], ids[1::2]):
            out[b] = unit((1 - share) * phases[b] + share * phases[a, :, ::-1])
    return out


# ---------------------------------------------------------------- a video's layout

def _durations(p, rng, log_scale):
    """Two-piece log-normal action durations, one per entry of the class log-scales."""
    z = rng.standard_normal(len(log_scale))
    sigma = np.where(z < 0, p.duration_sigma_low, p.duration_sigma_high)
    # the class spread is part of the total, so the pooled quantiles keep their targets
    sigma = np.sqrt(np.maximum(sigma ** 2 - p.class_duration_spread ** 2, 0.0))
    return np.maximum(p.duration_median * np.exp(log_scale + sigma * z), p.min_action)


def _video_classes(p, world, rng):
    classes = [int(rng.integers(p.num_classes))]
    if p.num_classes > 1 and rng.random() < p.two_class_prob:
        others = [c for c in range(p.num_classes) if c != classes[0]]
        mates = [c for c in others if world["group_of"][c] == world["group_of"][classes[0]]]
        pool = mates if mates and rng.random() < p.same_group_prob else others
        classes.append(int(rng.choice(pool)))
    return classes


def _layout(p, world, rng, classes, count_quantile):
    """Instances (start, end, label) without overlap, the video length and the overflow flag."""
    z = NormalDist().inv_cdf(count_quantile)
    n = int(np.clip(np.rint(p.count_median * np.exp(p.count_sigma * z)), 1, p.max_instances))
    # every class of the video appears when there is room for it
    labels = rng.permutation(np.concatenate([classes, rng.choice(classes, n)])[:n])
    dur = _durations(p, rng, world["log_scale"][labels])
    a = p.coverage_mean * p.coverage_concentration
    coverage = rng.beta(a, p.coverage_concentration - a)
    length = float(np.clip(dur.sum() / coverage, p.min_duration, p.max_duration))
    if dur.sum() > 0.9 * length:  # more action than the longest video allows: shorten instances
        dur *= 0.9 * length / dur.sum()
    gaps = rng.dirichlet(np.full(n + 1, p.gap_concentration))
    overflow = bool(rng.random() < p.overflow_prob)
    if overflow:  # the last action runs to the end of the video
        gaps[-1] = 0.0
        gaps /= gaps.sum()
    gaps *= length - dur.sum()
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(dur[:-1])])
    return list(zip(starts, starts + dur, labels)), length, overflow


def _distractors(p, world, rng, instances, length, classes):
    """Unlabeled weak actions placed in the background, 0.5 s clear of the labeled ones."""
    free, out = free_gaps(instances, length), []
    for _ in range(rng.poisson(p.distractor_rate * len(instances))):
        same = rng.random() < p.distractor_same_class_prob
        c = int(rng.choice(classes)) if same else int(rng.integers(p.num_classes))
        d = _durations(p, rng, world["log_scale"][[c]])[0]
        s = place(free, d, rng)
        if s is not None:
            out.append((s, s + d, c))
    return out


def free_gaps(taken, length, clear=0.5):
    """[(a, b), ...] the stretches of [0, length] at least `clear` s from every instance of `taken`
    ((start, end, ...) in time order), for place()."""
    edges = [0.0] + [x for s, e, *_ in taken for x in (s - clear, e + clear)] + [length]
    return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b > a]


def place(free, d, rng):
    """Start of a segment of length d put uniformly into the free gaps [(a, b), ...], which it
    splits in place; None when no gap holds it."""
    room = np.array([max(b - a - d, 0.0) for a, b in free])
    if room.sum() <= 0:
        return None
    j = int(rng.choice(len(free), p=room / room.sum()))
    s = free[j][0] + rng.random() * room[j]
    free[j:j + 1] = [(free[j][0], s), (s + d, free[j][1])]
    return s


# ---------------------------------------------------------------- a video's frames

def frame_latents(p, world, rng, n_frames, fps, events, context_class):
    """(n_frames, L) latents: background + drift + phased actions; events = (start, end, class, scale,
    look) with look the class's mode the instance shows."""
    L = p.latent_dim
    ctx = world["group_vec"][world["group_of"][context_class]]
    own = unit(rng.standard_normal(L))
    if world["scenes"] is not None:  # a scene shared with other videos, plus a little of its own
        k = rng.integers(len(world["scenes"]))
        if p.scene_class_lean > 0 and rng.random() < p.scene_class_lean:  # the class group's own scene
            k = world["group_of"][context_class] % len(world["scenes"])
        scene = world["scenes"][k]
        own = unit((1 - p.scene_weight) * own + p.scene_weight * scene)
    background = unit(own + p.context_strength * ctx)
    knots = p.drift_std * rng.standard_normal((int(n_frames / fps / p.drift_period) + 2, L)) / np.sqrt(L)
    pos = np.arange(n_frames) / (fps * p.drift_period)
    lo, w = pos.astype(int), (pos % 1.0)[:, None]
    x = (background + (1 - w) * knots[lo] + w * knots[lo + 1]).astype(np.float32)  # float32: speed
    centres = (np.arange(n_frames) + 0.5) / fps  # frame j is inside [s, e) when its centre is
    for s, e, c, scale, look in events:
        paint(p, rng, x, centres, s, e, world["phases"][c, look], scale)
    if p.shot_median > 0:  # drawn after everything else, so the knob off leaves every draw as it was
        x += shot_offsets(p, rng, n_frames, fps)
    if world["event_looks"] is not None:  # drawn after the cuts, so the knob off changes nothing
        for s, e, look, scale in background_events(p, rng, n_frames / fps, events):
            paint(p, rng, x, centres, s, e, world["event_looks"][look], scale)
    return x


def paint(p, rng, x, centres, s, e, ph, scale):
    """Add one instance over [s, e) to the frame latents x in place: its three phases ph (3, L)
    blended from start through middle to end, faded in and out over onset_ramp, times scale,
    plus the instance's own offset."""
    f0, f1 = np.searchsorted(centres, [s, e])
    u = (centres[f0:f1, None] - s) / (e - s)  # relative position in the instance
    w_start, w_end = np.maximum(1 - 2 * u, 0), np.maximum(2 * u - 1, 0)
    mix = w_start * ph[0] + (1 - w_start - w_end) * ph[1] + w_end * ph[2]
    if p.onset_ramp > 0:  # fade in over the first onset_ramp of the action, out over the last
        mix = mix * np.clip(np.minimum(u, 1 - u) / p.onset_ramp, 0.0, 1.0)
    offset = p.instance_offset_std * rng.standard_normal(p.latent_dim) / np.sqrt(p.latent_dim)
    x[f0:f1] += scale * mix + offset


def background_events(p, rng, length, taken):
    """(start, end, look, scale) of a video's background events (GeneratorParams.event_rate): a
    Poisson count over its length in minutes, each with an action's duration, put into the gaps
    0.5 s clear of the instances `taken` (start, end, ...), skipped where none holds it."""
    free, out = free_gaps(sorted(taken), length), []
    for _ in range(rng.poisson(p.event_rate * length / 60.0)):
        d = _durations(p, rng, np.zeros(1))[0]
        s = place(free, d, rng)
        scale = p.event_strength * p.intensity_median * np.exp(p.intensity_sigma * rng.standard_normal())
        if s is not None:
            out.append((s, s + d, int(rng.integers(p.event_looks)), scale))
    return out


def shot_offsets(p, rng, n_frames, fps):
    """(n_frames, L) float32: each frame's camera setup offset (GeneratorParams.shot_median)."""
    setups = p.shot_strength * unit(rng.standard_normal((p.shot_setups, p.latent_dim)))
    out = np.empty((n_frames, p.latent_dim), dtype=np.float32)
    start, setup = 0, int(rng.integers(p.shot_setups))
    while start < n_frames:
        length = max(1, int(round(p.shot_median * np.exp(0.8 * rng.standard_normal()) * fps)))
        out[start:start + length] = setups[setup]
        start += length
        if p.shot_setups > 1:  # a cut goes to another setup
            setup = (setup + 1 + int(rng.integers(p.shot_setups - 1))) % p.shot_setups
    return out


# ---------------------------------------------------------------- frames to features

def features(p, world, rng, x, n_features):
    """Average each window of num_frames frames, embed into feat_dim dims, add noise; or, with an
    encoder, the window's mean over its blocks of g frames of the network's non-negative output."""
    g = math.gcd(p.feat_stride, p.num_frames)  # windows are whole blocks of g frames
    blocks = x[: len(x) // g * g].reshape(-1, g, x.shape[1]).sum(axis=1, dtype=np.float64)
    if world["encoder"] is not None:
        return _encoded(p, world, rng, blocks / g, n_features)
    windows = _window_sums(p, blocks, n_features) / p.num_frames
    feats = np.sqrt(p.feat_dim) * windows @ world["embed"]  # unit latent -> ~1 per dimension
    return (feats + p.noise_std * rng.standard_normal(feats.shape)).astype(np.float32)


def _encoded(p, world, rng, blocks, n_features):
    """(n_features, D) non-negative features: each block of frames through a fixed two-layer ReLU
    network, noise added before its last ReLU (sensor and extractor noise), then averaged over the
    blocks of each window, as a clip network pools its post-ReLU units. Scene and action interact:
    a unit the scene keeps below zero does not see the action, so no subtraction of the background
    recovers what the action adds."""
    w1, w2 = world["encoder"]
    # unit rows: with sqrt(fan-in) a unit's input is ~ N(0, 1) x the input's norm (a latent's is ~ 1)
    hidden = np.maximum(p.encoder_gain * np.sqrt(w1.shape[1]) * blocks @ w1.T + p.encoder_bias, 0.0)
    pre = hidden @ w2.T / _relu_rms(p.encoder_gain, p.encoder_bias)  # ~ N(0, 1) per unit, as the
    # linear embedding's, plus a per-unit offset (the mean of the non-negative hidden units)
    out = np.maximum(pre + p.encoder_bias + p.noise_std * rng.standard_normal(pre.shape), 0.0)
    per = p.num_frames // math.gcd(p.feat_stride, p.num_frames)  # blocks a window holds
    return (_window_sums(p, out, n_features) / per).astype(np.float32)


def _window_sums(p, blocks, n_features):
    """(n_features, ·) sums over each window's blocks of gcd(feat_stride, num_frames) frames."""
    g = math.gcd(p.feat_stride, p.num_frames)
    cs = np.concatenate([np.zeros((1, blocks.shape[1])), np.cumsum(blocks, axis=0)])
    idx = np.arange(n_features) * (p.feat_stride // g)
    return cs[idx + p.num_frames // g] - cs[idx]


def _relu_rms(gain, bias):
    """sqrt(E[relu(a)^2]) for a ~ N(bias, gain^2): a hidden unit's rms when its input's norm is 1."""
    z = NormalDist()
    m = bias / gain
    return math.sqrt(max((gain ** 2 + bias ** 2) * z.cdf(m) + bias * gain * z.pdf(m), 0.0))  # >= 0 up to rounding


def jitter(p, rng, segments, duration):
    """Annotated boundaries: each moved by boundary_jitter x the action's length (Gaussian), kept in
    order, at least min_action long and inside [0, duration] (an overflowing end stays past it)."""
    out = []
    for s, e in segments:
        ds, de = p.boundary_jitter * (e - s) * rng.standard_normal(2)
        s2 = min(max(s + ds, 0.0), duration - p.min_action)
        e2 = max(e + de, s2 + p.min_action) if e > duration else min(max(e + de, s2 + p.min_action), duration)
        out.append([round(float(s2), 2), round(float(e2), 2)])
    return out


# ---------------------------------------------------------------- a video and the files

def _make_video(p, world, seed, subset, index, stratum, n_strata):
    """One video's annotation entry and its (T, D) features."""
    rng = stream(seed, 1 + SUBSETS.index(subset), index)
    classes = _video_classes(p, world, rng)
    count_quantile = (stratum + rng.uniform(0.01, 0.99)) / n_strata
    instances, length, overflow = _layout(p, world, rng, classes, count_quantile)
    fps = float(rng.choice(p.fps_choices, p=np.asarray(p.fps_weights) / sum(p.fps_weights)))
    duration = round(length, 2)
    segments = [[round(float(s), 2), round(float(e), 2)] for s, e, _ in instances]
    if overflow:  # annotated past the end, as some THUMOS14 test segments are
        segments[-1][1] = round(duration + rng.uniform(0.2, 2.0), 2)
    intensity = p.intensity_median * np.exp(p.intensity_sigma * rng.standard_normal(len(instances)))
    look = (lambda: int(rng.integers(p.class_modes))) if p.class_modes > 1 else (lambda: 0)
    events = [(s, e, c, a, look()) for (s, e), (_, _, c), a in zip(segments, instances, intensity)]
    for s, e, c in _distractors(p, world, rng, instances, length, classes):
        scale = p.intensity_median * np.exp(p.intensity_sigma * rng.standard_normal())
        events.append((s, e, c, p.distractor_strength * scale, look()))
    n_frames = int(np.floor(duration * fps + 1e-6))
    x = frame_latents(p, world, rng, n_frames, fps, events, classes[0])
    feats = features(p, world, rng, x, num_features(duration, fps, p.feat_stride, p.num_frames))
    if p.boundary_jitter > 0:  # drawn last: the features above are those of the unjittered preset
        segments = jitter(p, rng, segments, duration)
    annotations = [{"label": world["names"][c], "segment": [s, e],
                    "segment(frames)": [round(s * fps, 2), round(e * fps, 2)], "label_id": int(c)}
                   for (s, e), (_, _, c) in zip(segments, instances)]
    return {"subset": subset, "duration": duration, "fps": fps, "annotations": annotations}, feats


def _write(out, p, size, seed):
    world = _make_world(p, seed)
    os.makedirs(os.path.join(out, "features"))
    database = {}
    for k, (subset, count) in enumerate(zip(SUBSETS, (p.num_train, p.num_test))):
        # stratified instance counts: the heavy tail's median and mean hold in every subset
        strata = stream(seed, 3 + k).permutation(count)
        for i in range(count):
            video_id = f"video_{subset}_{i + 1:07d}"
            database[video_id], feats = _make_video(p, world, seed, subset, i, strata[i], count)
            np.save(os.path.join(out, "features", video_id + ".npy"), feats)
    ann_file = os.path.join(out, "annotations.json")
    with open(ann_file, "w") as f:
        json.dump({"version": VERSION, "database": dict(sorted(database.items()))}, f, indent=2)
    stats = dataset_stats(ann_file)
    meta = {"version": VERSION, "size": size, "seed": seed, "params": dataclasses.asdict(p),
            "class_names": world["names"], "class_groups": world["groups"], "stats": stats}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return stats


def _generate(root, size, seed, params, replace):
    p = params if isinstance(params, GeneratorParams) else make_params(size, params)
    return write_atomically(root, lambda tmp: _write(tmp, p, size, seed), replace)


def write_atomically(root, write, replace):
    """write(folder) into a temporary folder beside root, then rename it into place; its result."""
    root = os.path.abspath(root)
    os.makedirs(os.path.dirname(root), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(root)}.tmp-", dir=os.path.dirname(root))
    try:
        stats = write(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would outlive the rename
        if replace and os.path.exists(root):
            shutil.rmtree(root)
        os.rename(tmp, root)  # fails on a non-empty root, e.g. written meanwhile by another process
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return stats


def generate_dataset(root, size="small", seed=0, params=None):
    """Write the dataset under root (built beside it, then renamed into place); return its stats.

    params: None (the size preset), a dict of GeneratorParams fields over the preset, or a full
    GeneratorParams (then `size` only labels meta.json)."""
    return _generate(root, size, seed, params, replace=True)


def ensure_dataset(root, size="small", seed=0):
    """Generate the dataset under root unless root/annotations.json exists (a cache on disk); return root.

    A cached synthetic dataset of another size or seed (per its meta.json) is an error, not a reuse."""
    root = str(root)
    meta_file = os.path.join(root, "meta.json")
    if not os.path.exists(os.path.join(root, "annotations.json")):
        print(f"generating synthetic dataset (size={size}, seed={seed}) in {root}", flush=True)
        try:
            _generate(root, size, seed, None, replace=False)
        except OSError:  # a concurrent call may have written it first; anything else is an error
            if not os.path.exists(os.path.join(root, "annotations.json")):
                raise
    elif os.path.exists(meta_file):
        with open(meta_file) as f:
            meta = json.load(f)
        if (meta.get("size"), meta.get("seed")) != (size, seed):
            raise ValueError(f"{root} holds size={meta.get('size')} seed={meta.get('seed')}, asked for "
                             f"size={size} seed={seed}: delete it or pass the matching arguments")
    return root


# ---------------------------------------------------------------- the video-level classifier

# The video-level classifier a class-agnostic detector (BMN on THUMOS14: UntrimmedNet's top-2) needs:
# logits = SCORE_MARGIN at each class the video holds + SCORE_GROUP_BONUS at every class of their groups
# + unit Gaussian noise, softmax(SCORE_SHARPNESS x logits), as synthetic/anet_like.py's classifier.
# A video holding several classes averages one such softmax per class. Measured on `small` (seed 0,
# 240 videos): its top-1 class is one the video holds in 89.6%, one of its top-2 in 97.9%; 22 of
# the 25 wrong top-1s lie in the group of a class the video holds; in the 35 two-class videos the two
# get 0.50 and 0.32 on average, both in the top-2 in 27.
SCORE_MARGIN, SCORE_GROUP_BONUS, SCORE_SHARPNESS = 2.4, 1.6, 2.0
SCORES_FILE = "video_scores.json"


def classifier_probs(present, group_of, rng, margin=SCORE_MARGIN, group_bonus=SCORE_GROUP_BONUS,
                     sharpness=SCORE_SHARPNESS):
    """A video-level classifier's probabilities (C,) for a video holding the classes `present`:
    right most often, wrong mostly inside their groups; each class present gets a high probability.
    The ActivityNet-like dataset's (one class a video) is the same with its own parameters."""
    group_of = np.asarray(group_of)
    base = group_bonus * np.isin(group_of, group_of[list(present)]) + rng.standard_normal(len(group_of))
    out = np.zeros(len(group_of))
    for c in present:  # one softmax that favours each class present, averaged: two classes get ~0.4 each
        logits = base.copy()
        logits[c] += margin
        z = np.exp(sharpness * (logits - logits.max()))
        out += z / z.sum() / len(present)
    return out


def ensure_video_scores(root):
    """Write root/video_scores.json (common/video_scores.py's format) from the simulated classifier
    when it is missing; the features, annotations and splits stay as generated. Deterministic from
    the dataset's seed (meta.json): one stream per video. Returns the path."""
    from common.video_scores import write_video_scores  # common.video_scores imports the data reader
    path = os.path.join(root, SCORES_FILE)
    if os.path.exists(path):
        return path
    with open(os.path.join(root, "meta.json")) as f:
        meta = json.load(f)
    with open(os.path.join(root, "annotations.json")) as f:
        database = json.load(f)["database"]
    names = meta["class_names"]
    group_of = [next(g for g, members in enumerate(meta["class_groups"]) if name in members) for name in names]
    probs = {}
    for k, vid in enumerate(sorted(database)):
        present = sorted({names.index(a["label"]) for a in database[vid]["annotations"]})
        probs[vid] = classifier_probs(present, group_of, stream(meta["seed"], 11, k))
    write_video_scores(path, probs, names)
    return path


# ---------------------------------------------------------------- statistics, command line

def _covered(segments, duration):
    """Length of the union of segments clipped to [0, duration]."""
    total, reach = 0.0, 0.0
    for s, e in sorted((max(s, 0.0), min(e, duration)) for s, e in segments):
        total += max(e - max(s, reach), 0.0)
        reach = max(reach, e)
    return total


def dataset_stats(annotation_file):
    """Temporal statistics of an annotation file in ActionFormer's format (synthetic or real)."""
    with open(annotation_file) as f:
        database = json.load(f)["database"]
    lengths, counts, coverage, n_classes, subsets, past_end = [], [], [], {}, {}, 0
    for video in database.values():
        segments = [a["segment"] for a in video["annotations"]]
        lengths += [e - s for s, e in segments]
        counts.append(len(segments))
        coverage.append(_covered(segments, video["duration"]) / video["duration"])
        k = str(len({a["label"] for a in video["annotations"]}))
        n_classes[k] = n_classes.get(k, 0) + 1
        sub = subsets.setdefault(video["subset"], {"videos": 0, "instances": 0})
        sub["videos"] += 1
        sub["instances"] += len(segments)
        past_end += sum(e > video["duration"] for _, e in segments)
    p5, median, p95 = np.percentile(lengths, [5, 50, 95])
    video_median = np.median([v["duration"] for v in database.values()])
    numbers = dict(action_duration_median=median, action_duration_p5=p5, action_duration_p95=p95,
                   instances_median=np.median(counts), instances_mean=np.mean(counts),
                   coverage_mean=np.mean(coverage), video_duration_median=video_median)
    return {**{k: round(float(v), 3) for k, v in numbers.items()}, "instances_max": int(max(counts)),
            "classes_per_video": dict(sorted(n_classes.items())), "segments_past_end": int(past_end),
            "subsets": dict(sorted(subsets.items()))}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate the synthetic THUMOS-like dataset.")
    parser.add_argument("--out", required=True, help="dataset directory (replaced if it exists)")
    parser.add_argument("--size", default="small", choices=sorted(SIZES),
                        help="tiny for tests, small (default) for quick experiments, full = THUMOS14 sizes; "
                             f"difficulty presets at small's size: {', '.join(PRESETS)}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.time()
    stats = generate_dataset(args.out, args.size, args.seed)
    print(json.dumps(stats, indent=2))
    print(f"generated {args.out} (size={args.size}, seed={args.seed}) in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
