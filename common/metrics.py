"""Detection mAP and proposal AR@AN / AUC of the ActivityNet protocol (the numbers of the official
Evaluation/eval_detection.py and Evaluation/eval_proposal.py; the proposal measure is described
above its own section below).

Detection mAP, for each class and each tIoU threshold separately:
  * predictions are ranked by descending score;
  * each prediction, in rank order, takes the ground truth of the same video and class with the highest
    tIoU among those not taken yet, if that tIoU >= the threshold (equality matches): a true positive.
    Otherwise, and always on a video without ground truth of that class, it is a false positive;
  * AP is all-point interpolated: precision over the ranked list is made monotone from the right and
    summed over the recall steps;
  * mAP is the mean AP over the classes present in the ground truth; a class without predictions has AP 0;
  * the ground truth is taken as given (evaluate.py passes every segment of the evaluation subset, as the
    official code reads it): one past its video's end still counts towards recall, and an empty one
    [t, t] has tIoU 0 with every non-empty prediction (intersection 0 over the prediction's length).

Where we knowingly differ from the official code:
  * ties in score keep the input order (stable sort); the official sort is unstable, so its order is
    arbitrary. Ties in tIoU go to the ground truth listed first;
  * a predicted label absent from the ground truth is ignored (the official code crashes);
  * a pair with no positive union (reversed or empty segments) has tIoU 0, not NaN (which the official
    loop counts as a match).

Matching is vectorised: within a class, videos are independent, so the k-th prediction of every video
is matched at once (a loop over k, each step over videos, ground truths and thresholds in numpy).
"""
from collections import defaultdict

import numpy as np


def _tiou(a, b):
    """tIoU of segments a and b (arrays ending in [start, end]) that broadcast against each other."""
    inter = np.clip(np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0]), 0.0, None)
    # Same union as the official: the lengths' sum minus the intersection.
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    return np.divide(inter, union, out=np.zeros(np.broadcast(inter, union).shape), where=union > 0)


def segment_tiou(segment, segments):
    """tIoU of one [start, end] against each row of an (N, 2) array; returns shape (N,)."""
    segment = np.asarray(segment, dtype=float).reshape(1, 2)
    segments = np.asarray(segments, dtype=float).reshape(-1, 2)
    return _tiou(segment, segments)


def _within_group_rank(groups):
    """Position of each element among the elements of the same group, counted in array order."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    first = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    counts = np.diff(np.r_[first, len(groups)])
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - np.repeat(first, counts)
    return rank


def _padded_ground_truth(gt_row, gt_seg):
    """Each video's ground truths in one row of a (videos, most per video, 2) array, in input order."""
    n_videos = int(gt_row.max()) + 1
    col = _within_group_rank(gt_row)
    segs = np.zeros((n_videos, int(col.max()) + 1, 2))
    valid = np.zeros(segs.shape[:2], dtype=bool)
    segs[gt_row, col] = gt_seg
    valid[gt_row, col] = True
    return segs, valid


def _candidates(gt_row, gt_seg, pred_row, pred_seg, lowest):
    """Predictions that may match at some threshold, their tIoU with each GT slot of their video
    (videos, most GTs per video) and the shape of those slots."""
    segs, valid = _padded_ground_truth(gt_row, gt_seg)
    hit = np.flatnonzero(pred_row >= 0)  # the others are on videos without GT of this class
    rows = pred_row[hit]
    # Padding slots get -inf, below any threshold, so they are never taken.
    tiou = np.where(valid[rows], _tiou(pred_seg[hit][:, None, :], segs[rows]), -np.inf)
    # Below the lowest threshold with every GT: a false positive whatever is taken.
    keep = tiou.max(axis=1, initial=-np.inf) >= lowest
    return hit[keep], tiou[keep], valid.shape


def _match(gt_row, gt_seg, pred_row, pred_seg, thresholds):
    """True positives (thresholds, predictions) of predictions already in rank order.

    gt_row / pred_row give each instance's video as a row index; pred_row < 0 means a video without
    ground truth of this class. Returns a boolean array; every False is a false positive.
    """
    tp = np.zeros((len(thresholds), len(pred_row)), dtype=bool)
    hit, tiou, slots = _candidates(gt_row, gt_seg, pred_row, pred_seg, thresholds.min())
    if len(hit) == 0:
        return tp
    rows = pred_row[hit]
    taken = np.zeros((len(thresholds),) + slots, dtype=bool)
    rank = _within_group_rank(rows)
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.flatnonzero(np.diff(rank[by_rank])) + 1
    matched = []
    # Step k handles the k-th prediction of every video: one per video, so no two compete for a GT.
    for sel in np.split(by_rank, bounds):
        video = rows[sel]
        cand = np.where(taken[:, video], -np.inf, tiou[sel][None])  # (T, n, G)
        best = cand.argmax(axis=-1)  # first maximum: ties go to the GT listed first
        ok = cand.max(axis=-1) >= thresholds[:, None]
        t_idx, p_idx = np.nonzero(ok)
        taken[t_idx, video[p_idx], best[t_idx, p_idx]] = True
        matched.append(ok)
    tp[:, hit[by_rank]] = np.concatenate(matched, axis=1)
    return tp


def _interpolated_ap(tp, n_gt):
    """All-point interpolated AP per row of a (thresholds, ranked predictions) true-positive array."""
    tp_cum = np.cumsum(tp, axis=1, dtype=float)
    precision = tp_cum / np.arange(1, tp.shape[1] + 1)
    recall = tp_cum / n_gt
    pad0, pad1 = np.zeros((len(tp), 1)), np.ones((len(tp), 1))
    precision = np.hstack([pad0, precision, pad0])
    recall = np.hstack([pad0, recall, pad1])  # the final step to recall 1 has precision 0
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    # Where recall does not change the step is 0, so summing every step equals summing the changes.
    return np.sum(np.diff(recall, axis=1) * envelope[:, 1:], axis=1)


def average_precision(predictions, ground_truth, tiou_thresholds):
    """AP of one class at each threshold; returns shape (n_thresholds,).

    predictions: (video_id, start, end, score) rows; ground_truth: (video_id, start, end) rows.
    """
    thresholds = np.asarray(tiou_thresholds, dtype=float).reshape(-1)
    if len(ground_truth) == 0 or len(thresholds) == 0:
        raise ValueError("average_precision needs ground truth and at least one tIoU threshold")
    if len(predictions) == 0:
        return np.zeros(len(thresholds))
    gt_videos, gt_start, gt_end = zip(*ground_truth)
    videos, start, end, scores = zip(*predictions)
    video_index = {}
    gt_row = np.array([video_index.setdefault(v, len(video_index)) for v in gt_videos])
    gt_seg = np.stack([np.array(gt_start, dtype=float), np.array(gt_end, dtype=float)], axis=1)
    pred_row = np.array([video_index.get(v, -1) for v in videos])
    pred_seg = np.stack([np.array(start, dtype=float), np.array(end, dtype=float)], axis=1)
    scores = np.array(scores, dtype=float)
    order = np.argsort(-scores, kind="mergesort")  # stable: tied scores keep the input order
    tp = _match(gt_row, gt_seg, pred_row[order], pred_seg[order], thresholds)
    return _interpolated_ap(tp, len(gt_seg))


def _rows_by_label(instances, with_score):
    """{video: [{"label", "segment"(, "score")}]} -> {label: [(video, start, end(, score))]}."""
    rows = defaultdict(list)
    for video, items in instances.items():
        for item in items:
            start, end = item["segment"]
            row = (video, float(start), float(end))
            rows[item["label"]].append(row + (float(item["score"]),) if with_score else row)
    return rows


def compute_map(ground_truth, predictions, tiou_thresholds, class_names=None):
    """mAP over the classes of the ground truth, in the ActivityNet protocol.

    ground_truth: {video_id: [{"label", "segment"}]}; predictions: {video_id: [{"label", "score",
    "segment"}]}; other keys are ignored. class_names, if given, selects the classes evaluated and their
    order (names without ground truth are skipped); by default every ground-truth label, sorted.
    num_predictions counts the predictions of the evaluated classes.
    """
    thresholds = [float(t) for t in tiou_thresholds]
    gt = _rows_by_label(ground_truth, with_score=False)
    preds = _rows_by_label(predictions, with_score=True)
    names = sorted(gt) if class_names is None else [c for c in class_names if c in gt]
    if not names:
        raise ValueError("compute_map: no ground-truth instance of any evaluated class")
    per_class = {c: average_precision(preds.get(c, []), gt[c], thresholds) for c in names}
    mean_ap = np.mean([per_class[c] for c in names], axis=0)
    return {
        "thresholds": thresholds,
        "mAP": mean_ap.tolist(),
        "average": float(mean_ap.mean()),
        "per_class": {c: ap.tolist() for c, ap in per_class.items()},
        "num_gt": {c: len(gt[c]) for c in names},
        "num_predictions": sum(len(preds.get(c, [])) for c in names),
    }


def format_map_table(result, per_class=True):
    """A compute_map result as text: mAP (%) per threshold and their average, then optionally a
    class x threshold table with each class's average AP and ground-truth count."""
    heads = [f"{t:.2f}" for t in result["thresholds"]]
    lines = ["tIoU   mAP (%)"]
    lines += [f"{h:<6} {100 * m:7.2f}" for h, m in zip(heads, result["mAP"])]
    lines.append(f"{'avg':<6} {100 * result['average']:7.2f}")
    if per_class:
        width = max(len("class"), *(len(c) for c in result["per_class"]))
        lines += ["", f"{'class':<{width}} " + " ".join(f"{h:>6}" for h in heads) + "    avg    #gt"]
        for name, aps in result["per_class"].items():
            cells = " ".join(f"{100 * a:6.2f}" for a in aps)
            avg = 100 * sum(aps) / len(aps)
            lines.append(f"{name:<{width}} {cells} {avg:6.2f} {result['num_gt'][name]:6d}")
    return "\n".join(lines)


# ---------------------------------------------------------------- proposals: AR@AN and AUC
#
# The official Evaluation/eval_proposal.py (average_recall_vs_avg_nr_proposals, then evaluate()),
# class labels ignored:
#   * the videos are those with at least one ground-truth segment (V of them); every proposal of the
#     results file counts in N, those on other videos too;
#   * AN is an average over videos, not a cut per video. With at most max_avg_nr_proposals (100) a
#     video on average, video v keeps its top k_v = min(int(n_v * ratio), n_v), ratio = max_avg * V / N,
#     and K is the sum of the k_v. Point j = 1..100 of the curve lets every video use the same share of
#     its kept ones, its top min(int(k_v * p_j), k_v) with p_j = j / 100 * (max_avg * V / K), and is
#     drawn at AN = p_j * K / V (= j for max_avg 100), the average before the cap at k_v and the
#     truncation. So a video with many proposals uses more than AN, one with few uses fewer (none at
#     small AN: int(1 x 0.5) = 0), and a video without proposals raises the others' share;
#   * the proposals of a video are ranked by the official line itself, np.argsort(scores)[::-1] over
#     the video's scores as listed: descending score, tied scores in the reverse of the order numpy's
#     default sort leaves them. That order is numpy's (last listed first where the sort keeps ties in
#     input order, another fixed one in its SIMD sorts), so ties match the official code run on the
#     same numpy, not across numpy builds;
#   * a ground truth is recalled at a point when one of the proposals its video uses there has tIoU
#     >= the threshold (equality recalls); recall = recalled / all ground truths, averaged over the
#     thresholds: the AR-AN curve. AUC = 100 x np.trapz(AR, AN) / AN[-1] (the trapezoids start at the
#     first point, AN = 1, not at 0). Every product and cast above is the official one, in its order,
#     so that int() truncates the same floats: with 100 proposals a video, points 29, 57 and 58 use
#     28, 56 and 57 of them.
# Where we knowingly differ: no proposal kept at all (none on the videos with ground truth) gives
# recall 0 and AN 0 everywhere, where the official code divides by zero; tIoU thresholds must be
# positive (at 0 the official code recalls through tIoU 0, even on a video without proposals).

PROPOSAL_TIOU = np.linspace(0.5, 0.95, 10)  # the official default, 0.8999999999999999 included
PROPOSAL_ANS = (1, 5, 10, 100)  # AR@AN as BMN and its successors report it


def _segments_of(instances, videos, with_score):
    """The instances of `videos` as (row of the video, start, end(, score)) arrays."""
    rows = [(i, *item["segment"]) + ((item["score"],) if with_score else ())
            for i, v in enumerate(videos) for item in instances.get(v, [])]
    table = np.array(rows, dtype=float).reshape(-1, 4 if with_score else 3)
    return (table[:, 0].astype(np.int64), table[:, 1:3]) + ((table[:, 3],) if with_score else ())


def _ranked_proposals(row, segments, scores, n_videos):
    """Proposals grouped by video and ranked as the official argsort()[::-1] ranks them; also each
    video's count and the index of its first proposal in that order."""
    listed = np.argsort(row, kind="stable")  # each video's proposals in the order listed
    counts = np.bincount(row, minlength=n_videos)
    first = np.cumsum(counts) - counts
    # One argsort a video, as the official: an unstable sort orders ties by the whole array it sees.
    order = [listed[a:a + n][np.argsort(scores[listed[a:a + n]])[::-1]] for a, n in zip(first, counts) if n]
    return segments[np.concatenate(order)] if order else segments, counts, first


def _first_recall_rank(gt_row, gt_seg, ranked, first, kept, thresholds):
    """(thresholds, ground truths): rank of the first kept proposal of the video with tIoU >= the
    threshold, int64 max where there is none."""
    per_gt = kept[gt_row]
    pair_gt = np.repeat(np.arange(len(gt_row)), per_gt)  # every ground truth with each kept proposal
    pair_rank = np.arange(len(pair_gt)) - np.repeat(np.cumsum(per_gt) - per_gt, per_gt)
    tiou = _tiou(ranked[first[gt_row[pair_gt]] + pair_rank], gt_seg[pair_gt])
    # Row-major: by threshold, then ground truth, then rank, so each pair's first hit comes first.
    t_idx, pair = np.nonzero(tiou[None] >= thresholds[:, None])
    key = t_idx * len(gt_row) + pair_gt[pair]
    new = np.ones(len(key), dtype=bool)
    new[1:] = key[1:] != key[:-1]
    rank = np.full((len(thresholds), len(gt_row)), np.iinfo(np.int64).max)
    rank[t_idx[new], pair_gt[pair[new]]] = pair_rank[pair[new]]
    return rank


def average_recall_curve(ground_truth, proposals, tiou_thresholds=PROPOSAL_TIOU, max_avg_nr_proposals=100):
    """The official AR-AN curve (see above this section), 100 points.

    ground_truth: {video_id: [{"segment"}]}; proposals: {video_id: [{"score", "segment"}]}; other keys
    (labels) are ignored. max_avg_nr_proposals: None or 0 takes the official default N / V. Returns
    {"proposals_per_video": (100,) AN, "recall": (thresholds, 100), "average_recall": (100,), "num_videos",
    "num_gt", "num_proposals" (N), "num_kept" (K)}.
    """
    thresholds = np.asarray(tiou_thresholds, dtype=float).reshape(-1)
    if len(thresholds) == 0 or thresholds.min() <= 0:
        raise ValueError("average_recall_curve needs tIoU thresholds, all positive")
    videos = [v for v, items in ground_truth.items() if items]
    if not videos:
        raise ValueError("average_recall_curve: no ground-truth segment")
    gt_row, gt_seg = _segments_of(ground_truth, videos, with_score=False)
    row, segments, scores = _segments_of(proposals, videos, with_score=True)
    n_all, n_videos = sum(len(items) for items in proposals.values()), len(videos)
    max_avg = max_avg_nr_proposals or float(n_all) / n_videos
    ranked, counts, first = _ranked_proposals(row, segments, scores, n_videos)
    kept = np.zeros(n_videos, dtype=np.int64)
    if n_all:
        kept = np.minimum((counts * (max_avg * float(n_videos) / n_all)).astype(np.int64), counts)
    total = int(kept.sum())
    curve = {"num_videos": n_videos, "num_gt": len(gt_row), "num_proposals": n_all, "num_kept": total}
    if total == 0:
        zeros = np.zeros(100)
        return {"proposals_per_video": zeros, "recall": np.zeros((len(thresholds), 100)),
                "average_recall": zeros, **curve}
    pcn = np.arange(1, 101) / 100.0 * (max_avg * float(n_videos) / total)
    used = np.minimum((kept[:, None] * pcn).astype(np.int64), kept[:, None])  # (videos, points)
    rank = _first_recall_rank(gt_row, gt_seg, ranked, first, kept, thresholds)
    recalled = (rank[:, :, None] < used[gt_row][None]).sum(axis=1)  # (thresholds, points)
    recall = recalled / float(len(gt_row))
    return {"proposals_per_video": pcn * (float(total) / n_videos), "recall": recall,
            "average_recall": recall.mean(axis=0), **curve}


def proposal_metrics(ground_truth, proposals, tiou_thresholds=PROPOSAL_TIOU, ans=PROPOSAL_ANS):
    """AR@AN (fractions, for AN in `ans`, 1..100) and AUC (percent, the official figure) of the official
    curve at up to 100 proposals a video on average, JSON-ready, with the curve itself."""
    if not all(1 <= an <= 100 for an in ans):
        raise ValueError(f"proposal_metrics: AN must be in 1..100, got {list(ans)}")
    curve = average_recall_curve(ground_truth, proposals, tiou_thresholds, max_avg_nr_proposals=100)
    x, ar = curve["proposals_per_video"], curve["average_recall"]
    area = np.sum(np.diff(x) * (ar[1:] + ar[:-1]) / 2.0)  # np.trapz(ar, x), as evaluate() calls it
    out = {f"AR@{an}": float(ar[an - 1]) for an in ans}
    out["AUC"] = 100.0 * float(area) / float(x[-1]) if x[-1] > 0 else 0.0
    out["thresholds"] = [float(t) for t in np.asarray(tiou_thresholds, dtype=float).reshape(-1)]
    out["average_recall"], out["proposals_per_video"] = ar.tolist(), x.tolist()
    out.update((k, curve[k]) for k in ("num_videos", "num_gt", "num_proposals", "num_kept"))
    return out


def format_proposal_table(result):
    """A proposal_metrics result as text: its counts, then AR@AN and AUC in percent."""
    names = [k for k in result if k.startswith("AR@")]
    values = [100 * result[n] for n in names] + [result["AUC"]]  # AUC is a percentage already
    t = result["thresholds"]
    return "\n".join([
        f"proposals (official ActivityNet proposal evaluation, {len(t)} tIoU thresholds {t[0]:.2f}..{t[-1]:.2f}): "
        f"{result['num_proposals']}, {result['num_kept']} of them within 100 a video on average, "
        f"on {result['num_videos']} videos with {result['num_gt']} ground-truth segments",
        " ".join(f"{n:>7}" for n in names + ["AUC"]) + "  (%)",
        " ".join(f"{v:7.2f}" for v in values)])
