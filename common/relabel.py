"""Class prototypes of the labeled actions, to re-decide a pseudo label's class (pseudo.relabel).

Not in the paper. A 10% detector finds where actions are far better than which class they are: on
the preset benchmark 85% of its tau_pos positives overlap an action at tIoU >= 0.5 but only 43-55%
carry that action's class, and the ICD's S_i (Eq. 10), which is meant to catch a wrong class, ranks
the pseudo labels near chance (docs/results.md, "What limits the round"). A nearest-prototype classifier on
the input features is a stronger prior with so few labeled actions:

  x_i    = mean over the grid steps of instance i of (features - the video's median feature)
  p_c    = mean of x_i over the labeled actions of class c
  label  = argmax over the classes the prediction lists (its class_scores: the detector's top 5)
           of cos(x_i, p_c)

Subtracting each video's median feature (its background, which most of a video is) leaves what the
action adds; the mean over the instance keeps its whole extent where the ICD's max-pool (Eq. 8)
keeps a few noisy peaks. Restricting to the listed classes keeps the detector's coarse decision
(which group of classes) and lets the prototypes decide among the classes it confuses.

With pseudo.video_prior mu > 0 the video's own predictions vote as well (a rule on the labels'
layout: 86.5% of THUMOS14's training videos hold one class, ActivityNet's nearly all):

  w_i(c) = softmax over i's listed classes of cos(x_i, p_c) / T        (T = PRIOR_TEMPERATURE)
  q_v(c) = sum_i s_i w_i(c) / sum_i s_i                                  (s_i: i's joint score, Eq. 4)
  label  = argmax over i's listed classes of cos(x_i, p_c) / T + mu * log(q_v(c) + PRIOR_FLOOR)

over every listed prediction i of the video v.
"""
import numpy as np

from common.data import grid_features, to_grid
from common.icd import segment_steps


def centred(feats):
    """(T, D) features minus the video's median feature (per dimension)."""
    feats = np.asarray(feats, dtype=np.float64)
    return feats - np.median(feats, axis=0) if len(feats) else feats


def mean_pool(feats, segments, parts=1):
    """Mean of feats (T, D) over each segment (N, 2) in grid units -> (N, D); with parts > 1 the
    means over its `parts` equal pieces, start first, side by side -> (N, parts * D). The steps
    counted are the ICD's (common/icd.py segment_steps): every step whose centre lies in the piece,
    or the one nearest the centre of a piece shorter than a step."""
    feats = np.asarray(feats, dtype=np.float64)
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((len(segments), parts, feats.shape[1]))
    for n, (start, end) in enumerate(segments):
        edges = np.linspace(start, end, parts + 1)
        for k in range(parts):
            lo, hi = segment_steps(edges[k], edges[k + 1], feats.shape[0])
            out[n, k] = feats[lo:hi + 1].mean(axis=0)
    return out.reshape(len(segments), -1)


def _unit(x):
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def class_prototypes(feats, labels, num_classes):
    """(C, D) unit prototypes (the mean pooled instance of each class, normalised) and (C,) whether
    the class has a labeled instance at all."""
    feats, labels = np.asarray(feats, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    protos = np.zeros((num_classes, feats.shape[1]))
    has = np.bincount(labels, minlength=num_classes)[:num_classes] > 0
    for c in np.flatnonzero(has):
        protos[c] = feats[labels == c].mean(axis=0)
    return _unit(protos), has


# The video prior's softmax temperature and the floor under log q_v: T chosen among 0.05 / 0.1 / 0.2
# with mu among 1 / 2 / 4 / 8 on relu and lean (the worse of them, three seeds) by the class accuracy
# of round 1's well-placed pseudo labels, then mu 4 measured through two rounds
# (docs/config_history.md, pseudo.video_prior).
PRIOR_TEMPERATURE = 0.05
PRIOR_FLOOR = 1e-3


def nearest_listed(feats, listed, labels, protos, has, scores=None, video_prior=0.0):
    """Per instance of one video, the class among its listed ones (N, k class ids) whose prototype
    is nearest in cosine, or with video_prior mu > 0 the one that maximises cos / T + mu log q_v
    (the module's docstring; `scores` (N,) weight the vote); its own label where none of them has a
    prototype. Ties: the first listed."""
    sims = _unit(np.asarray(feats, dtype=np.float64)) @ protos.T           # (N, C)
    listed = np.asarray(listed, dtype=np.int64).reshape(len(sims), -1)
    out = np.asarray(labels, dtype=np.int64).copy()
    usable = [(n, listed[n][has[listed[n]]]) for n in range(len(sims))]
    usable = [(n, classes, sims[n, classes] / PRIOR_TEMPERATURE) for n, classes in usable if classes.size]
    prior = np.zeros(protos.shape[0])
    if video_prior > 0:
        weights = np.ones(len(sims)) if scores is None else np.asarray(scores, dtype=np.float64)
        vote = np.zeros(protos.shape[0])
        for n, classes, logits in usable:
            w = np.exp(logits - logits.max())
            np.add.at(vote, classes, weights[n] * w / w.sum())
        if vote.sum() > 0:
            prior = video_prior * np.log(vote / vote.sum() + PRIOR_FLOOR)
    for n, classes, logits in usable:
        out[n] = classes[int(np.argmax(logits + prior[classes]))]
    return out


def pooled_actions(dcfg, videos, ids, transform=centred, parts=1):
    """(N, parts * D) mean-pooled features (mean_pool) of every annotated action of the videos `ids`,
    each video's (T, D) grid features first passed through `transform` (by default centred), and (N,)
    their labels; (0, 0) and (0,) when none holds an action."""
    feats, labels = [], []
    for vid in ids:
        if len(videos[vid].labels):
            x = transform(grid_features(dcfg, vid)[0])
            feats.append(mean_pool(x, to_grid(dcfg, videos[vid], videos[vid].segments), parts))
            labels.append(videos[vid].labels)
    if not feats:
        return np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
    return np.concatenate(feats), np.concatenate(labels)
