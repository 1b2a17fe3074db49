"""Label assignment, the APL formulas and the detector's losses, as pure functions.

Segments are handled as offsets from a point: (left, right) = distances to the start and the end,
so a prediction and its ground truth share the same anchor point. The formulas:
  tIoU  = |pred n gt| / |pred u gt|
  tND   = rho^2 / d^2, rho = distance between the centres, d = length of the enclosing segment
  DIoU  = tIoU - tND                                                     Eq. (1)
  joint = max(P_tiou - P_tnd, eps) * P_cls                               Eq. (4)
  soft label at the true class = max(tIoU - tND, eps)                    Eq. (5)
"""
import numpy as np
import torch
import torch.nn.functional as F

from common.acp import contrast, gather_frames, pyramid_representation, sample_frames, truth_labels
from common.config import check_choice
from common.distributed import all_reduce_sum, world_size
from common.icd import batch_instances, icd_loss
from common.model import make_points


def tiou_tnd(pred, gt, eps=1e-8):
    """tIoU and tND (Eq. 1) of offset pairs (..., 2) measured from the same point."""
    pl, pr = pred[..., 0], pred[..., 1]
    gl, gr = gt[..., 0], gt[..., 1]
    inter = torch.minimum(pl, gl) + torch.minimum(pr, gr)
    union = (pl + pr) + (gl + gr) - inter
    tiou = inter / union.clamp(min=eps)
    enclosing = torch.maximum(pl, gl) + torch.maximum(pr, gr)
    rho = 0.5 * ((pr - pl) - (gr - gl))  # centre of [-l, r] is (r - l) / 2
    tnd = rho.pow(2) / enclosing.clamp(min=eps).pow(2)
    return tiou, tnd


def diou_loss(pred, gt):
    """1 - DIoU = 1 - tIoU + tND (Eq. 1), ActionFormer's regression loss; summed."""
    tiou, tnd = tiou_tnd(pred, gt)
    return (1.0 - tiou + tnd).sum()


def focal_loss(log_p, log_1mp, target, alpha=0.25, gamma=2.0):
    """Sigmoid focal loss on probabilities given by their logs, for soft targets in [0, 1]; summed.

    FL = -alpha_t (1 - p_t)^gamma [t log p + (1 - t) log(1 - p)], p_t = p t + (1 - p)(1 - t),
    alpha_t = alpha t + (1 - alpha)(1 - t): ActionFormer's form, which reduces to the usual focal
    loss for one-hot targets and takes the soft label of Eq. (5) unchanged.
    """
    p = log_p.exp()
    ce = -(target * log_p + (1.0 - target) * log_1mp)
    p_t = p * target + (1.0 - p) * (1.0 - target)
    alpha_t = alpha * target + (1.0 - alpha) * (1.0 - target)
    return (alpha_t * (1.0 - p_t).pow(gamma) * ce).sum()


def quality_from_logits(quality_logits, mode, eps):
    """P_diou of Eq. (4) from the quality head: (..., Q) logits -> (...,) in [eps, 1]."""
    if mode == "none":
        return None
    prob = torch.sigmoid(quality_logits)
    if mode == "tiou_tnd":
        return (prob[..., 0] - prob[..., 1]).clamp(min=eps)
    return prob[..., 0].clamp(min=eps)  # one branch: tIoU or DIoU directly


def joint_score(cls_logits, quality_logits, mode, eps):
    """Eq. (4): max(P_tiou - P_tnd, eps) * P_cls per class; plain P_cls when mode is none."""
    prob = torch.sigmoid(cls_logits)
    quality = quality_from_logits(quality_logits, mode, eps)
    return prob if quality is None else prob * quality[..., None]


def quality_targets(tiou, tnd, mode):
    """Targets of the quality branch(es) for Eq. (3), (..., Q)."""
    if mode == "tiou_tnd":
        return torch.stack([tiou, tnd], dim=-1)
    if mode == "tiou":
        return tiou[..., None]
    return (tiou - tnd).clamp(min=0.0)[..., None]  # diou: its positive part, a probability


def soft_label(tiou, tnd, mode, eps):
    """The value at the true class of Eq. (5)'s soft label; 1 (one-hot) when mode is none."""
    if mode == "none":
        return torch.ones_like(tiou)
    value = tiou if mode == "tiou" else tiou - tnd
    return value.clamp(min=eps)


def assign_targets(points, gt_segments, gt_labels, num_classes, center_radius):
    """ActionFormer's label assignment for one video.

    points: (P, 4) concatenated over levels (position, range lo, range hi, stride);
    gt_segments: (N, 2) in grid units; gt_labels: (N,) class ids, or (N, C) class targets in [0, 1]
    (a pseudo label's soft class target, pseudo_class_targets).
    A point is positive for an action when it lies in the action's centre region (centre +-
    radius * stride, clipped to the action) and its larger distance to a boundary lies in the
    level's regression range; of several such actions the shortest wins, and actions of the same
    (shortest) length all set their class (THUMOS14 annotates CliffDiving also as Diving): the
    largest of their targets per class.
    Returns cls_targets (P, C) in [0, 1] and reg_targets (P, 2) in units of the level's stride.
    """
    num_pts, num_gts = points.shape[0], gt_segments.shape[0]
    if num_gts == 0:
        return points.new_zeros(num_pts, num_classes), points.new_zeros(num_pts, 2)
    pos, lo, hi, stride = points[:, 0:1], points[:, 1:2], points[:, 2:3], points[:, 3:4]
    starts, ends = gt_segments[:, 0][None], gt_segments[:, 1][None]  # (1, N)
    offsets = torch.stack([pos - starts, ends - pos], dim=-1)       # (P, N, 2)
    centre = 0.5 * (starts + ends)
    c_lo = torch.maximum(centre - center_radius * stride, starts)
    c_hi = torch.minimum(centre + center_radius * stride, ends)
    in_centre = torch.minimum(pos - c_lo, c_hi - pos) > 0
    reach = offsets.max(dim=-1).values
    in_range = (reach >= lo) & (reach <= hi)
    lengths = (ends - starts).expand(num_pts, num_gts).clone()
    lengths[~(in_centre & in_range)] = float("inf")
    min_len, min_idx = lengths.min(dim=1)
    shortest = (lengths <= min_len[:, None] + 1e-3) & torch.isfinite(lengths)
    if gt_labels.dim() == 1:  # one-hot: the largest is the clamped sum, a matrix product
        one_hot = F.one_hot(gt_labels.long(), num_classes).to(points.dtype)
        cls_targets = (shortest.to(points.dtype) @ one_hot).clamp(max=1.0)
    else:
        cls_targets = (shortest[:, :, None].to(points.dtype) * gt_labels[None].to(points.dtype)).amax(dim=1)
    reg_targets = offsets[torch.arange(num_pts), min_idx] / stride
    return cls_targets, reg_targets


class LossNormalizer:
    """Moving average of the number of positive points (ActionFormer: momentum 0.9, start 100)."""

    def __init__(self, init=100.0, momentum=0.9):
        self.value, self.momentum = float(init), momentum

    def update(self, num_pos, device="cpu"):
        """Under torchrun num_pos is the global batch's: each process divides its own sum by the global
        count, times the W processes whose gradients DDP averages, so the step is one process's."""
        num_pos = all_reduce_sum(num_pos, device)
        self.value = self.momentum * self.value + (1 - self.momentum) * max(num_pos, 1)
        return self.value / world_size()


def uncertain_background(cls_targets, cfg, points=None, uncertain=None):
    """(B, P) mask of the points a pseudo-labeled video leaves out of its classification loss.

    The paper trains every point outside the pseudo labels as background (Eq. 12), which, when the
    pseudo labels find a small share of the actions, teaches the detector that the others are
    background. semi.background chooses what is background there:
      all        every point (the paper's reading): returns None;
      rejected   every point outside the predictions pseudo_label.py rejected (the file's "rejected"
                 list: candidates, EAP's removals, duplicates), which take no part: fixed by the
                 file, so what is left out can be read and edited, and cannot drift while training.
    points: the (P, 4) points of make_points, concatenated; uncertain: per video, the (M, 2) grid
    segments of its rejected predictions (the batch's "uncertain").
    """
    scfg = cfg["semi"]
    if check_choice("semi.background", scfg["background"]) == "all":
        return None
    if uncertain is None:  # a batch without rejected regions (not from a pseudo-label file)
        return None
    negative = cls_targets.sum(-1) == 0
    pos = torch.cat(points, dim=0)[:, 0]                                               # (P,)
    inside = [((pos[:, None] >= u[:, 0].to(pos.device)) & (pos[:, None] <= u[:, 1].to(pos.device))).any(1)
              for u in uncertain]
    return negative & torch.stack(inside)


def detection_loss(outputs, cls_targets, reg_targets, cfg, normalizer, ignore=None):
    """Classification (Eq. 5), DIoU regression (Eq. 1) and localisation quality (Eq. 3) losses.

    outputs: the model's raw outputs; cls_targets (B, P, C); reg_targets (B, P, 2); ignore: None or
    a (B, P) mask of points left out of the classification loss (uncertain_background).
    Returns a dict of the weighted total `loss` and its parts, each divided by the moving average
    of the number of positives (the 1/N_pos of Eq. 12), `num_pos` and `num_ignored`.
    """
    lcfg, mode = cfg["loss"], cfg["model"]["alqa"]
    eps = lcfg["quality_eps"]
    valid = torch.cat(outputs["masks"], dim=1)                          # (B, P)
    cls_logits = torch.cat(outputs["cls_logits"], dim=1).float()       # (B, P, C); fp32 under autocast
    offsets = torch.cat(outputs["offsets"], dim=1).float()             # (B, P, 2)
    positive = (cls_targets.sum(-1) > 0) & valid
    num_pos = int(positive.sum())
    norm = normalizer.update(num_pos, cls_logits.device)
    cls_valid = valid if ignore is None else valid & ~(ignore & ~positive)

    pred_pos, gt_pos = offsets[positive], reg_targets[positive]
    reg_loss = diou_loss(pred_pos, gt_pos)
    # Targets of the quality heads and of the soft label: tIoU / tND of the detached prediction.
    tiou, tnd = tiou_tnd(pred_pos.detach(), gt_pos)
    target = cls_targets.clone()
    target[positive] = target[positive] * soft_label(tiou, tnd, mode, eps)[:, None]

    logits_v, target_v = cls_logits[cls_valid], target[cls_valid]
    log_p, log_1mp = F.logsigmoid(logits_v), F.logsigmoid(-logits_v)
    locq_loss = cls_logits.new_zeros(())
    if mode != "none":
        q_logits = torch.cat(outputs["quality_logits"], dim=1).float()  # (B, P, Q)
        quality = quality_from_logits(q_logits[cls_valid], mode, eps)[:, None]
        # Eq. (5): the focal loss scores the joint score of Eq. (4), log p = log q + log p_cls.
        log_p = log_p + quality.log()
        log_1mp = torch.log1p(-(log_p.exp()).clamp(max=1 - 1e-6))
        locq_loss = F.binary_cross_entropy_with_logits(
            q_logits[positive], quality_targets(tiou, tnd, mode), reduction="sum")
    cls_loss = focal_loss(log_p, log_1mp, target_v, lcfg["focal_alpha"], lcfg["focal_gamma"])
    parts = {"cls_loss": cls_loss / norm, "reg_loss": reg_loss / norm, "locq_loss": locq_loss / norm}
    parts["loss"] = (parts["cls_loss"] + lcfg["reg_weight"] * parts["reg_loss"]
                     + lcfg["locq_weight"] * parts["locq_loss"])
    parts["num_pos"] = num_pos
    parts["num_ignored"] = int((valid & ~cls_valid).sum())
    return parts


def pseudo_class_targets(labels, extra, num_classes, classes, mode):
    """(N, C) class targets of a pseudo-labeled video's N actions (semi.class_target).

    hard: one-hot of each action's label (the paper's reading).
    soft: an action whose class_scores (the detector's P_cls at the pseudo label's point, for its
          most likely classes) list its label with its own cls_score is an action of one of those
          classes, in proportion: target_c = P_c / sum of the listed P. A 10% detector often confuses
          classes inside a group while the segment itself is right; a hard label then teaches the
          wrong class as surely as the right one. An action without class_scores, or whose label is
          not listed with its cls_score (the label was changed by hand, or the entry written by hand),
          keeps its one-hot label: a relabelled entry trains as its new label alone.
    labels: (N,) class ids; extra: per action its dict of other keys (Video.extra); classes: names.
    """
    check_choice("semi.class_target", mode)
    targets = np.zeros((len(labels), num_classes))
    targets[np.arange(len(labels)), labels] = 1.0
    if mode == "hard":
        return targets
    index = {name: i for i, name in enumerate(classes)}
    for n, (label, ann) in enumerate(zip(labels, extra)):
        scores = ann.get("class_scores") or {}
        own, total = scores.get(classes[label]), sum(scores.values())
        # pseudo_label.py writes both from the same P_cls, rounded alike: a mismatch is an edit
        if own is not None and ann.get("cls_score") is not None and abs(own - ann["cls_score"]) < 5e-5 and total > 0:
            targets[n] = 0.0
            for name, p in scores.items():
                targets[n, index[name]] = p / total
    return targets


def batch_targets(points, batch, num_classes, center_radius):
    """assign_targets over a batch: (B, P, C) and (B, P, 2); a batch's label_weights, where it has
    them, are the class targets instead of its one-hot labels."""
    flat = torch.cat(points, dim=0)
    classes = batch.get("label_weights", batch["labels"])
    cls_t, reg_t = zip(*(assign_targets(flat, seg.to(flat.device), lab.to(flat.device),
                                        num_classes, center_radius)
                         for seg, lab in zip(batch["segments"], classes)))
    return torch.stack(cls_t), torch.stack(reg_t)


def class_agnostic(batch):
    """The batch as a one-class detector's targets see it (dataset.class_agnostic): every action,
    whatever its label, is of class 0, "action", and class targets (label_weights) are dropped. Only
    the detector's loss sees this: the ICD and ACP's fine contrast keep the batch's real labels."""
    out = {k: v for k, v in batch.items() if k != "label_weights"}
    out["labels"] = [torch.zeros_like(lab) for lab in batch["labels"]]
    return out


def outputs_loss(model, outputs, batch, cfg, normalizer, pseudo=False):
    """The detector's loss for raw `outputs` of a batch whose `segments` / `labels` are its (pseudo)
    truth; pseudo=True applies semi.background to the points outside the pseudo labels."""
    device = batch["feats"].device
    if cfg["dataset"]["class_agnostic"]:
        batch = class_agnostic(batch)
    with torch.autocast(device.type, enabled=False):  # targets and losses in fp32 under bf16 autocast
        points = make_points([m.shape[1] for m in outputs["masks"]], model.strides,
                             cfg["model"]["regression_range"], device)
        cls_t, reg_t = batch_targets(points, batch, outputs["cls_logits"][0].shape[-1],
                                     cfg["model"]["center_radius"])
        ignore = uncertain_background(cls_t, cfg, points, batch.get("uncertain")) if pseudo else None
        return detection_loss(outputs, cls_t, reg_t, cfg, normalizer, ignore)


def acp_truth_loss(model, outputs, batch, cfg):
    """L_acp while fine-tuning (Sec. 3.3): contrast classes from the (pseudo) ground truth."""
    acfg = cfg["acp"]
    idx = sample_frames(batch["mask"], acfg["segments"])
    rep = pyramid_representation(outputs["feats"], batch["mask"].shape[1])
    frames = model.acp_proj(gather_frames(rep, idx))
    coarse, fine = truth_labels(batch["segments"], batch["labels"], idx)
    return contrast(frames, coarse, fine, acfg["mode"], acfg["temperature"])


def with_acp(model, outputs, batch, cfg, parts):
    """parts + lambda_acp * L_acp on the batch's (pseudo) truth, when ACP is on (any detector whose
    outputs carry "feats", the levels ACP contrasts, and which has an acp_proj)."""
    if cfg["acp"]["mode"] != "none":
        acp = acp_truth_loss(model, outputs, batch, cfg)
        parts["acp_loss"] = acp["acp_loss"]
        parts["loss"] = parts["loss"] + cfg["acp"]["weight"] * acp["acp_loss"]
    return parts


def pseudo_labeled_loss(model, batch, cfg, normalizer):
    """Loss on pseudo-labeled videos: the detector's (with semi.background's rule for the points
    outside the pseudo labels) and, with ACP, lambda_acp * L_acp^u (Eq. 12)."""
    outputs = model(batch["feats"], batch["mask"])
    return with_acp(model, outputs, batch, cfg, outputs_loss(model, outputs, batch, cfg, normalizer, pseudo=True))


def labeled_loss(model, batch, cfg, normalizer, bank):
    """Loss on labeled videos: the detector's (Eq. 3, 5, 1), lambda_acp * L_acp^s, and the ICD's
    (Eq. 8) on their instances."""
    outputs = model(batch["feats"], batch["mask"])
    parts = with_acp(model, outputs, batch, cfg, outputs_loss(model, outputs, batch, cfg, normalizer))
    return with_icd(model, outputs, batch, cfg, bank, parts)


def with_icd(model, outputs, batch, cfg, bank, parts):
    """parts + the ICD's loss (Eq. 8) on the batch's labeled instances, pooled from its input features,
    whichever detector it is."""
    anchors, labels = batch_instances(batch, batch["feats"])
    lcfg = cfg["loss"]
    parts["icd_loss"] = icd_loss(model.icd, anchors, labels.to(anchors.device), bank,
                                 lcfg["icd_same"], lcfg["icd_diff"], None, bank.rows_of(batch))
    parts["loss"] = parts["loss"] + lcfg["icd_weight"] * parts["icd_loss"]
    return parts
