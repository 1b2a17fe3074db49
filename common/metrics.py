"""Detection mAP of the ActivityNet protocol (the numbers of the official Evaluation/eval_detection.py).

Protocol, for each class and each tIoU threshold separately:
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
