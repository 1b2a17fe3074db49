"""From raw outputs to scored segments in seconds: decoding, Soft-NMS, grid -> time.

`evaluate.py` scores these predictions and `pseudo_label.py` selects pseudo labels from the very
same ones, so a pseudo label is exactly a prediction that the mAP would have counted.
"""
import os

import numpy as np
import torch
from tqdm import tqdm

from common.data import collate, grid_to_time
from common.distributed import gather_results, is_main, shard
from common.losses import joint_score
from common.model import make_points
from common.nms import batched_nms
from common.video_scores import label_proposals

CLASS_TOPK = 5  # classes kept per prediction beside its own: the pseudo labels' class_scores


def decode_video(outputs, b, points, cfg):
    """Candidates of video `b` of a batch: per level the top-k (point, class) pairs by joint score.

    Returns segments (N, 2) in grid units, scores (N,) = the joint score of Eq. (4), labels (N,),
    the parts of the score: cls_score (N,), tiou (N,), tnd (N,) (NaN where not predicted), and the
    point's CLASS_TOPK most likely classes: topk_labels (N, K) and topk_probs (N, K) (P_cls).
    """
    tcfg, mode, eps = cfg["test"], cfg["model"]["alqa"], cfg["loss"]["quality_eps"]
    parts = {k: [] for k in ("segments", "scores", "labels", "cls_score", "tiou", "tnd", "topk_probs", "topk_labels")}
    for lvl, pts in enumerate(points):
        mask = outputs["masks"][lvl][b]
        cls_logits = outputs["cls_logits"][lvl][b][mask]                    # (T, C)
        q_logits = outputs["quality_logits"][lvl][b][mask] if mode != "none" else None
        scores = joint_score(cls_logits, q_logits, mode, eps).flatten()
        keep = torch.nonzero(scores > tcfg["pre_nms_thresh"]).squeeze(1)
        top = scores[keep].topk(min(tcfg["pre_nms_topk"], keep.numel())).indices
        idx = keep[top]
        num_classes = cls_logits.shape[1]
        pt, cls = idx // num_classes, idx % num_classes
        p = pts[mask][pt]
        off = outputs["offsets"][lvl][b][mask][pt]
        seg = torch.stack([p[:, 0] - off[:, 0] * p[:, 3], p[:, 0] + off[:, 1] * p[:, 3]], dim=1)
        long_enough = (seg[:, 1] - seg[:, 0]) > tcfg["duration_thresh"]
        parts["segments"].append(seg[long_enough])
        parts["scores"].append(scores[idx][long_enough])
        parts["labels"].append(cls[long_enough])
        parts["cls_score"].append(torch.sigmoid(cls_logits[pt, cls])[long_enough])
        top_probs, top_labels = torch.sigmoid(cls_logits[pt][long_enough]).topk(min(CLASS_TOPK, num_classes), dim=1)
        parts["topk_probs"].append(top_probs)
        parts["topk_labels"].append(top_labels)
        tiou, tnd = _quality_parts(q_logits, pt, mode, long_enough)
        parts["tiou"].append(tiou)
        parts["tnd"].append(tnd)
    return {k: torch.cat(v) for k, v in parts.items()}


def _quality_parts(q_logits, pt, mode, keep):
    n = int(keep.sum())
    nan = torch.full((n,), float("nan"), device=keep.device)
    if mode == "none":
        return nan, nan
    prob = torch.sigmoid(q_logits[pt][keep])
    if mode == "tiou_tnd":
        return prob[:, 0], prob[:, 1]
    if mode == "tiou":
        return prob[:, 0], nan
    return nan, nan  # diou: the single branch predicts DIoU itself


def postprocess(cands, fps, duration, feat_stride, num_frames, tcfg, class_agnostic=False):
    """Soft-NMS in grid units (across classes for a class-agnostic detector, dataset.class_agnostic),
    then seconds clamped to [0, duration]; all tensors on the CPU."""
    cands = {k: v.detach().float().cpu() for k, v in cands.items()}
    nms_cfg = {"sigma": tcfg["nms_sigma"], "min_score": tcfg["min_score"],
               "max_segments": tcfg["max_segments"], "class_agnostic": class_agnostic,
               "voting": tcfg["voting"], "voting_iou": tcfg["voting_iou"]}
    segs, scores, labels, index = batched_nms(cands["segments"], cands["scores"], cands["labels"], nms_cfg)
    seconds = grid_to_time(segs.numpy().astype("float64"), fps, feat_stride, num_frames, duration)
    out = {"segments": seconds, "scores": scores.numpy(), "labels": labels.numpy()}
    for key in ("cls_score", "tiou", "tnd", "topk_probs", "topk_labels"):
        out[key] = cands[key][index].numpy()
    return out


@torch.no_grad()
def run_videos(model, dataset, cfg, device, progress, decode_batch):
    """Run any detector over every video of `dataset` (whole videos, test.batch_size at a time) ->
    {video_id: its predictions}, decode_batch(outputs, batch) giving those of a batch.

    Under torchrun each process runs its share of the videos and rank 0 gets the merged dict."""
    model.eval()
    results = {}
    bs = cfg["test"]["batch_size"]
    order = shard(list(range(len(dataset))))
    bar = tqdm(range(0, len(order), bs), desc="inference", unit="batch", disable=not (progress and is_main()),
               leave=False)
    for start in bar:
        batch = collate([dataset[i] for i in order[start:start + bs]], model.pad_multiple)
        outputs = model(batch["feats"].to(device), batch["mask"].to(device))
        results.update(decode_batch(outputs, batch))
    return gather_results(results, dataset.video_ids)


def predict(model, dataset, cfg, device, progress=True):
    """ActionFormer over every video of `dataset` -> {video_id: postprocessed dict}."""
    def decode_batch(outputs, batch):
        lengths = [m.shape[1] for m in outputs["masks"]]
        points = make_points(lengths, model.strides, cfg["model"]["regression_range"], device)
        return {vid: postprocess(decode_video(outputs, b, points, cfg), batch["fps"][b], batch["duration"][b],
                                 batch["feat_stride"][b], batch["num_frames"][b], cfg["test"],
                                 cfg["dataset"]["class_agnostic"])
                for b, vid in enumerate(batch["video_id"])}
    return run_videos(model, dataset, cfg, device, progress, decode_batch)


def classify_proposals(results, video_probs, top_k):
    """A class-agnostic detector's proposals (dataset.class_agnostic) -> detections of real classes:
    each video's proposals copied for its top_k classes of the video-level classifier, score =
    proposal score x class probability (label_proposals; ActionFormer ranks by the square root of
    that product, the same order, so the same mAP). video_probs: {video_id: (C,) probabilities}."""
    out = {}
    for vid, r in results.items():
        segments, scores, labels = label_proposals(r["segments"], r["scores"], video_probs[vid], top_k)
        out[vid] = {"segments": segments, "scores": scores, "labels": labels}
    return out


def with_video_classes(pred, video_probs, k=CLASS_TOPK):
    """A class-agnostic detector's proposals of one video (dataset.class_agnostic), classed by the
    video-level classifier: each takes the video's top-1 class as its label (an ActivityNet video
    holds one class), and its class_scores become the video's k most likely classes with their
    probabilities. score (the joint score of Eq. 4, on which tau_pos is set) and cls_score (the
    detector's actionness) stay the detector's."""
    top = np.argsort(-video_probs, kind="stable")[:k]  # ties: the lower class id first
    n = len(pred["scores"])
    return {**pred, "labels": np.full(n, top[0], dtype=np.int64),
            "topk_labels": np.tile(top, (n, 1)), "topk_probs": np.tile(video_probs[top], (n, 1))}


class DetectorClasses:
    """Who names a prediction's class, for a multi-class detector: the detector itself. Its
    predictions are detections as they are (the seam's other side: VideoClassifierClasses)."""
    external = None    # the results file's external_data: none used
    proposals = False  # evaluation reports AR@AN only when asked (evaluate.py --proposals)
    meta = {}          # nothing to add to a pseudo-label file's meta

    def detections(self, results):
        """{video_id: prediction} -> (the detections evaluation scores, the proposals or None)."""
        return results, None

    def pseudo_labels(self, results):
        """{video_id: prediction} -> the same, each labelled as a pseudo label takes its class."""
        return results


class VideoClassifierClasses:
    """Who names a prediction's class, for a class-agnostic detector (dataset.class_agnostic,
    ActivityNet's recipe): a video-level classifier. `probs`: {video_id: (C,) probabilities} of the
    videos to label, read strictly from `path` before any inference; `top_k`: test.video_topk."""
    proposals = True  # its predictions are proposals: evaluation always reports AR@AN too

    def __init__(self, path, probs, top_k):
        self.external, self.probs, self.top_k = path, probs, top_k
        self.meta = {"class_agnostic": (
            f"proposals of a one-class detector; label: the top-1 class of the video in {os.path.abspath(path)}; class_scores: "
            f"its top {CLASS_TOPK} classes there; score, cls_score, tiou, tnd: the detector's (cls_score: actionness)")}

    def detections(self, results):
        """Each video's proposals copied for its top_k classes (classify_proposals), and the proposals."""
        return classify_proposals(results, self.probs, self.top_k), results

    def pseudo_labels(self, results):
        """Each proposal labelled by its video's top-1 class (with_video_classes)."""
        return {vid: with_video_classes(r, self.probs[vid]) for vid, r in results.items()}


def to_results_json(results, classes, digits=6, external=None):
    """ActivityNet results format: {"version", "results": {vid: [{label, score, segment}]}, "external_data"};
    external: what labelled the proposals (the video-level scores file), None when nothing did."""
    out = {}
    for vid in sorted(results):
        r = results[vid]
        out[vid] = [{"label": classes[int(lab)], "score": round(float(s), digits),
                     "segment": [round(float(a), 3), round(float(b), 3)]}
                    for (a, b), s, lab in zip(r["segments"], r["scores"], r["labels"])]
    used = {"used": False} if external is None else {"used": True, "details": external}
    return {"version": "VERSION 1.3", "results": out, "external_data": used}
