"""Gaussian Soft-NMS and score voting for 1D segments, in plain PyTorch.

A vectorised replacement for ActionFormer's compiled CPU extension: it runs on whatever device the
inputs live on. Per-class NMS processes all classes at once, one pick per class per loop step, on a
(C, Nmax) padded score matrix, so a video costs at most `max_segments` Python iterations.

Exactness of the cap: in one class the picked scores never increase (each pick is the maximum of
scores that only shrink), so the first K picks of a class are its K best, and the top K of a video
are found among the first K picks of every class.

Deliberate differences from ActionFormer (see tests/test_nms.py for the reference definition):
- tIoU is inter / union with no epsilon (ActionFormer's NMS adds 1e-6 to every length, which its
  voting does not); zero-length, reversed or disjoint segments give 0 instead of NaN.
- ties in score go to the lower input index (ActionFormer's order depends on its in-place swaps).
- a segment whose score is below `min_score` is never kept, even as the first pick.
"""
import torch
from torch import Tensor


def _tiou(s1: Tensor, e1: Tensor, s2: Tensor, e2: Tensor) -> Tensor:
    """Broadcast tIoU of [s1, e1] and [s2, e2]; 0 where the union is empty."""
    inter = (torch.minimum(e1, e2) - torch.maximum(s1, s2)).clamp(min=0)
    # clamping lengths makes a reversed segment behave like a zero-length one
    union = (e1 - s1).clamp(min=0) + (e2 - s2).clamp(min=0) - inter
    # an empty union has inter 0: clamping it gives tIoU 0 instead of 0/0
    return inter / union.clamp(min=torch.finfo(union.dtype).tiny)


def segment_iou_matrix(a: Tensor, b: Tensor) -> Tensor:
    """tIoU of every segment in a (N, 2) with every segment in b (M, 2) -> (N, M)."""
    return _tiou(a[:, None, 0], a[:, None, 1], b[None, :, 0], b[None, :, 1])


def _pad_by_class(rows: Tensor, n_rows: int, *columns: Tensor, fills):
    """Scatter flat candidates into (n_rows, Nmax) matrices, one row per class.

    Inside a row the candidates keep their input order, so the first maximum of a row is the
    candidate with the lowest input index: that is how ties are broken.
    """
    order = torch.argsort(rows, stable=True)  # (n,)
    rows_sorted = rows[order]
    counts = torch.bincount(rows_sorted, minlength=n_rows)  # (C,)
    first = torch.cumsum(counts, 0) - counts  # (C,) start of each class in `order`
    cols = torch.arange(rows.numel(), device=rows.device) - first[rows_sorted]
    n_max = int(counts.max())
    mats = []
    for col, fill in zip(columns, fills):
        mat = col.new_full((n_rows, n_max), fill)  # (C, Nmax)
        mat[rows_sorted, cols] = col[order]
        mats.append(mat)
    return mats


def _pick_loop(score_mat, start_mat, end_mat, sigma, min_score, max_picks):
    """Run Gaussian Soft-NMS on every row at once; -inf marks padding and picked slots.

    A score that falls below min_score stays there (decay only lowers it), so it is left in
    place rather than removed: it can only be picked once nothing valid is left in its row,
    and such picks are recorded below min_score, which the caller discards.
    Returns (T, C) picked scores and (T, C) picked columns.
    """
    n_rows = score_mat.shape[0]
    rows = torch.arange(n_rows, device=score_mat.device)
    len_mat = (end_mat - start_mat).clamp(min=0)  # (C, Nmax), computed once for all picks
    tiny = torch.finfo(score_mat.dtype).tiny
    pick_scores, pick_cols = [], []
    for _ in range(max_picks):
        best, col = score_mat.max(dim=1)  # (C,), (C,): first maximum on ties
        if not bool((best >= min_score).any()):
            break  # every class is exhausted
        pick_scores.append(best)
        pick_cols.append(col)
        # tIoU of each row's pick with its row, (C, Nmax); same arithmetic as _tiou
        inter = torch.minimum(end_mat[rows, col, None], end_mat)
        inter.sub_(torch.maximum(start_mat[rows, col, None], start_mat)).clamp_(min=0)
        union = (len_mat + len_mat[rows, col, None]).sub_(inter)
        # an empty union has inter 0: clamping it gives tIoU 0 instead of 0/0
        iou = inter.div_(union.clamp_(min=tiny))
        # exp(-iou^2 / sigma), floored at `tiny` so that -inf slots never meet -inf * 0 = NaN
        decay = iou.mul_(iou).div_(-sigma).exp_().clamp_(min=tiny)
        score_mat = score_mat.mul_(decay)
        score_mat[rows, col] = float("-inf")  # the pick leaves the pool
    # the caller passes at least one candidate >= min_score, so the first step always picks
    return torch.stack(pick_scores), torch.stack(pick_cols)


def soft_nms(segments: Tensor, scores: Tensor, labels: Tensor, sigma: float = 0.5,
             min_score: float = 1e-3, max_segments: int = 200, class_agnostic: bool = False):
    """Gaussian Soft-NMS, per class or class-agnostic, capped at `max_segments` per video.

    segments (N, 2) [start, end], scores (N,), labels (N,) long. Returns the kept
    (segments (K, 2), decayed scores (K,), labels (K,), indices into the input (K,)),
    sorted by decayed score, descending (ties: lower input index first).
    """
    device = scores.device
    # decay only lowers scores, so a candidate starting below min_score can never be kept
    cand = torch.nonzero(scores >= min_score).squeeze(1)  # (n,)
    if cand.numel() == 0 or max_segments <= 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return segments[empty], scores[empty], labels[empty], empty
    if class_agnostic:
        rows, n_rows = torch.zeros_like(cand), 1
    else:
        classes, rows = torch.unique(labels[cand], return_inverse=True)
        n_rows = classes.numel()
    seg = segments[cand]
    score_mat, start_mat, end_mat, idx_mat = _pad_by_class(
        rows, n_rows, scores[cand], seg[:, 0], seg[:, 1], cand,
        fills=(float("-inf"), 0.0, 0.0, -1))
    max_picks = min(max_segments, score_mat.shape[1])
    pick_scores, pick_cols = _pick_loop(score_mat, start_mat, end_mat, sigma, min_score, max_picks)

    # merge the classes: (T, C) picks -> flat kept candidates
    pick_rows = torch.arange(n_rows, device=device).expand_as(pick_cols)  # (T, C)
    valid = pick_scores >= min_score
    kept_scores = pick_scores[valid]
    kept_idx = idx_mat[pick_rows[valid], pick_cols[valid]]
    # sort by index first so that the stable score sort breaks ties by input index
    by_idx = torch.argsort(kept_idx)
    kept_idx, kept_scores = kept_idx[by_idx], kept_scores[by_idx]
    order = torch.argsort(kept_scores, descending=True, stable=True)[:max_segments]
    kept_idx, kept_scores = kept_idx[order], kept_scores[order]
    return segments[kept_idx], kept_scores, labels[kept_idx], kept_idx


def score_voting(kept_segments: Tensor, kept_scores: Tensor, segments: Tensor, scores: Tensor,
                 iou_threshold: float = 0.75) -> Tensor:
    """ActionFormer's segment voting: refine each kept segment's boundaries.

    Each kept segment (K, 2) becomes the average of the input segments (N, 2) whose tIoU with it
    is >= iou_threshold, weighted by input score x tIoU. As in ActionFormer, `kept_scores` (K,)
    plays no part in the weights (its unused score offset included); it is only checked for
    shape. A kept segment with no neighbour of positive weight is returned unchanged.
    """
    if kept_scores.shape[0] != kept_segments.shape[0]:
        raise ValueError("kept_scores and kept_segments differ in length")
    iou = segment_iou_matrix(kept_segments, segments)  # (K, N)
    weights = (iou >= iou_threshold).to(scores.dtype) * scores[None, :] * iou  # (K, N)
    total = weights.sum(dim=1, keepdim=True)  # (K, 1)
    voted = (weights @ segments) / total.clamp(min=torch.finfo(total.dtype).tiny)  # (K, 2)
    return torch.where(total > 0, voted, kept_segments)


def batched_nms(segments: Tensor, scores: Tensor, labels: Tensor, cfg: dict):
    """Soft-NMS from a config dict, then score voting when cfg["voting"].

    cfg keys: sigma, min_score, max_segments, class_agnostic, voting, voting_iou. Voting is
    defined only for class-agnostic NMS (ActionFormer disables it per class: neighbours of
    other classes would move the boundaries), so asking for both is an error.
    """
    if cfg["voting"] and not cfg["class_agnostic"]:
        raise ValueError("score voting needs class_agnostic NMS")
    kept_segments, kept_scores, kept_labels, kept_idx = soft_nms(
        segments, scores, labels, sigma=cfg["sigma"], min_score=cfg["min_score"],
        max_segments=cfg["max_segments"], class_agnostic=cfg["class_agnostic"])
    if cfg["voting"]:
        # vote among all the input candidates, as ActionFormer does, not only the kept ones
        kept_segments = score_voting(kept_segments, kept_scores, segments, scores,
                                     cfg["voting_iou"])
    return kept_segments, kept_scores, kept_labels, kept_idx
