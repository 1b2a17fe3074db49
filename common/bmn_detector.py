"""BMN as the toolkit's second detector (model.arch: bmn): what the stages get from it, in the shapes
they get from ActionFormer (common/stage.py, detector_parts).

  * BMNDetector: common/bmn.py's network plus the two parts APL adds to any detector: the ICD's
    discriminator (Sec. 3.2) and ACP's projection (Sec. 3.3), both on the base module, whose
    features (B, H1, T) play the pyramid's part (one level at full resolution). forward(feats, mask)
    returns BMN's raw outputs and those features, like ActionFormer's forward;
  * labeled_loss / pseudo_labeled_loss: BMN's published loss (TEM, PEM classification and
    regression, common/bmn.py) with the (pseudo) ground truth as its labels, plus L_acp and, on
    labeled videos, the ICD's loss, exactly as ActionFormer's;
  * predict: BMN's published inference (candidate boundaries, score fusion, its Soft-NMS), in seconds,
    with the fields every stage reads (segments, scores, labels, cls_score, tiou, tnd, topk_*).

Time: dataset.resize_to = T gives every video T steps; grid position g (step centres, common/data.py)
is BMN's normalised time (g + 0.5) / T, so snippet i covers [i / T, (i + 1) / T] as in bmn.py.
With dataset.window (THUMOS14) a video keeps its own grid and BMN sees windows of T steps of it
(common/windows.py): a window starting at step s reads BMN's time of the video shifted by s / T, so
the same (g + 0.5) / T holds for the merged proposals, with values past 1 (predict_windows).

The joint score (what ALQA's tau_pos is set on, Eq. 6, and what the mAP ranks) is BMN's fused score
p_start x p_end x p_cc x p_cr after its Soft-NMS: p_cc (the map's classification channel) plays
P_cls's part, p_cr (its regression channel, trained towards the tIoU) is the localisation quality,
as ALQA's tIoU branch is to ActionFormer; p_start x p_end adds the boundary evidence ALQA's tND
adds there (both score where the boundaries lie, not only how much a segment overlaps). model.alqa
none leaves p_cr out (ALQA's ablation); tiou keeps it (published BMN).
"""
import numpy as np
import torch
from tqdm import tqdm

from common.acp import Projection
from common.bmn import (BMN, CLS, REG, batch_targets, bmn_loss, bmn_soft_nms, candidate_index, fuse_scores,
                        uncertain_ignore)
from common.data import collate, grid_to_time
from common.detect import run_videos
from common.distributed import gather_results, is_main, shard
from common.icd import Discriminator
from common.losses import with_acp, with_icd
from common.windows import to_video_unit, window_starts

# What ACP pre-trains, and what starts fresh when a detector is built on it (cf. common/model.py).
PRETRAINED_PREFIXES = ("base.", "acp_proj.")
HEAD_PREFIXES = ("tem_start.", "tem_end.", "pem_1d.", "pem_3d.", "pem_2d.", "icd.")


class BMNDetector(BMN):
    """BMN + the ICD's discriminator + ACP's projection. forward(feats (B, C, T), mask (B, T)) ->
    start, end (B, T), confidence (B, 2, D, T) as BMN.forward, and "feats": [base (B, H1, T)]."""

    pad_multiple = 1  # every video has exactly T steps: nothing to pad

    def __init__(self, input_dim, mcfg):
        bcfg = mcfg["bmn"]
        super().__init__(input_dim, bcfg["temporal_scale"], bcfg["max_duration"], bcfg["num_samples"],
                         bcfg["num_samples_per_bin"], bcfg["boundary_ratio"], bcfg["hidden_1d"],
                         bcfg["hidden_3d"], bcfg["hidden_2d"])
        self.icd = Discriminator(input_dim, mcfg["icd_hidden"])  # ICD on the input features
        self.acp_proj = Projection(bcfg["hidden_1d"], mcfg["acp_proj_dim"])

    def pyramid(self, feats, mask):
        """The base module's features as a one-level pyramid, for ACP (common/acp.py)."""
        if feats.shape[-1] != self.temporal_scale:
            raise ValueError(f"BMN takes {self.temporal_scale} steps (dataset.resize_to), got {feats.shape[-1]}")
        return [self.base(feats)], [mask]

    def forward(self, feats, mask):
        levels, _ = self.pyramid(feats, mask)
        return {**self.heads(levels[0]), "feats": levels}


def build_model(cfg, num_classes=1):
    """BMN finds proposals of one class whatever the dataset's classes (a classifier labels them).
    With dataset.window a batch of windows is padded to T steps, the last window of a video masked."""
    model = BMNDetector(cfg["dataset"]["feature_dim"], cfg["model"])
    if cfg["dataset"]["window"]["size"]:
        model.pad_multiple = model.temporal_scale
    return model


def to_unit(segments, temporal_scale):
    """Grid units (step centres) -> BMN's normalised time: step i covers [i / T, (i + 1) / T]."""
    return (segments + 0.5) / temporal_scale


def from_unit(x, temporal_scale):
    return x * temporal_scale - 0.5


# ---------------------------------------------------------------- losses

def outputs_loss(model, outputs, batch, cfg, pseudo=False):
    """BMN's loss with the batch's (pseudo) ground truth as its labels: TEM + 10 L_R + L_C (loss.bmn).
    pseudo=True applies semi.background to a pseudo-labeled video: all trains everything outside the
    pseudo labels as background; rejected leaves out what the predictions pseudo_label.py rejected
    would make an action's (common/bmn.py uncertain_ignore)."""
    T, D, lw = model.temporal_scale, model.max_duration, cfg["loss"]["bmn"]
    device = batch["feats"].device
    with torch.autocast(device.type, enabled=False):  # labels and losses in fp32 under bf16 autocast
        segments = [to_unit(s.to(device).double(), T) for s in batch["segments"]]
        targets = batch_targets(segments, T, D, device)
        ignore = None
        if pseudo and cfg["semi"]["background"] == "rejected" and batch.get("uncertain") is not None:
            rejected = batch_targets([to_unit(u.to(device).double(), T) for u in batch["uncertain"]], T, D, device)
            ignore = uncertain_ignore(targets, rejected, model.valid)
        parts = bmn_loss({k: v.float() for k, v in outputs.items() if k != "feats"}, targets, model.valid, None,
                         lw["reg_weight"], lw["tem_weight"], lw["cls_weight"], ignore)
        # proposals left out of L_C or L_R (a proposal in both counts once)
        parts["num_ignored"] = 0.0 if ignore is None else float((ignore["cls"] | ignore["reg"]).sum())
        return parts


def labeled_loss(model, batch, cfg, normalizer, bank):
    """Labeled videos: BMN's loss, lambda_acp L_acp^s and the ICD's (Eq. 8). `normalizer` is
    ActionFormer's moving count of positives: BMN's losses are means over the batch, it is unused."""
    outputs = model(batch["feats"], batch["mask"])
    parts = with_acp(model, outputs, batch, cfg, outputs_loss(model, outputs, batch, cfg))
    return with_icd(model, outputs, batch, cfg, bank, parts)


def pseudo_labeled_loss(model, batch, cfg, normalizer):
    """Pseudo-labeled videos: BMN's loss with the pseudo labels as its labels, and lambda_acp L_acp^u."""
    outputs = model(batch["feats"], batch["mask"])
    return with_acp(model, outputs, batch, cfg, outputs_loss(model, outputs, batch, cfg, pseudo=True))


# ---------------------------------------------------------------- inference

def candidates(start, end, confidence, cfg, temporal_scale=None):
    """Candidate proposals of one video or window (candidate_index) with their joint score (module
    docstring): segments (K, 2) in BMN's normalised time of `temporal_scale` steps (default: the
    length of `start`; a padded window's real steps are fewer), scores, p_cc and p_cr (K,)."""
    dd, tt = candidate_index(start, end, confidence.shape[1])
    T = temporal_scale or start.shape[0]
    segments = torch.stack([tt, tt + dd + 1], dim=1).double() / T
    cls_conf, reg_conf = confidence[CLS, dd, tt].double(), confidence[REG, dd, tt].double()
    quality = reg_conf if cfg["model"]["alqa"] == "tiou" else torch.ones_like(reg_conf)
    scores = fuse_scores(start[tt].double(), end[tt + dd].double(), cls_conf, quality)
    return segments, scores, cls_conf, reg_conf


def suppress(segments, scores, cls_conf, reg_conf, cfg):
    """BMN's Soft-NMS and top_k over candidates -> the kept ones, best first, each with its parts."""
    tb = cfg["test"]["bmn"]
    segments, scores, idx = bmn_soft_nms(segments, scores, tb["alpha"], tb["low_threshold"],
                                         tb["high_threshold"], tb["top_k"])
    return segments, scores, cls_conf[idx], reg_conf[idx]


def decode_video(start, end, confidence, cfg):
    """One video's proposals, as published: candidates, joint score, BMN's Soft-NMS, top_k ->
    normalised segments (K, 2), scores and their parts (K,)."""
    return suppress(*candidates(start, end, confidence, cfg), cfg)


def postprocess(segments, scores, cls_conf, reg_conf, item_time, temporal_scale):
    """Normalised segments -> seconds clamped to the video, and the fields every stage reads.
    cls_score: p_cc (the proposal's actionness), tiou: p_cr, tnd: none (BMN predicts no tND)."""
    fps, duration, stride, frames = item_time
    n = len(scores)
    grid = from_unit(segments.numpy(), temporal_scale)
    cls_score = cls_conf.float().numpy()
    return {"segments": grid_to_time(grid, fps, stride, frames, duration), "scores": scores.float().numpy(),
            "labels": np.zeros(n, dtype=np.int64), "cls_score": cls_score, "tiou": reg_conf.float().numpy(),
            "tnd": np.full(n, np.nan, dtype=np.float32),
            "topk_probs": cls_score[:, None], "topk_labels": np.zeros((n, 1), dtype=np.int64)}


def predict(model, dataset, cfg, device, progress=True):
    """BMN over every video of `dataset` -> {video_id: postprocessed dict}, as common/detect.py's
    predict does for ActionFormer (run_videos: batches, and under torchrun each process its share);
    with dataset.window, over every window of each video (predict_windows)."""
    if cfg["dataset"]["window"]["size"]:
        return predict_windows(model, dataset, cfg, device, progress)

    def decode_batch(outputs, batch):
        out = {}
        for b, vid in enumerate(batch["video_id"]):
            parts = decode_video(outputs["start"][b].float().cpu(), outputs["end"][b].float().cpu(),
                                 outputs["confidence"][b].float().cpu(), cfg)
            item_time = (batch["fps"][b], batch["duration"][b], batch["feat_stride"][b], batch["num_frames"][b])
            out[vid] = postprocess(*parts, item_time, model.temporal_scale)
        return out
    return run_videos(model, dataset, cfg, device, progress, decode_batch)


def window_candidates(model, feats, cfg, device):
    """Every window of one video (D, n) -> its candidates merged in the video's normalised time
    (common/windows.py: to_video_unit), test.batch_size windows at a time; no Soft-NMS yet."""
    T, stride = model.temporal_scale, cfg["dataset"]["window"]["stride"]
    starts = window_starts(feats.shape[1], T, stride)
    bs, parts = cfg["test"]["batch_size"], []
    for i in range(0, len(starts), bs):
        chunk = starts[i:i + bs]
        batch = collate([{"feats": feats[:, s:s + T]} for s in chunk], T)  # the last window padded, masked
        outputs = model(batch["feats"].to(device), batch["mask"].to(device))
        for b, s in enumerate(chunk):
            n = int(batch["mask"][b].sum())  # decode the real steps only: no proposal ends in the padding
            segments, *rest = candidates(outputs["start"][b, :n].float().cpu(), outputs["end"][b, :n].float().cpu(),
                                         outputs["confidence"][b, :, :, :n].float().cpu(), cfg, T)
            parts.append((to_video_unit(segments, s, T), *rest))
    return [torch.cat(p) for p in zip(*parts)]


@torch.no_grad()
def predict_windows(model, dataset, cfg, device, progress=True):
    """BMN on THUMOS14 (dataset.window): each whole video of `dataset` cut into windows, every window's
    candidates moved to the video's time and merged, then BMN's Soft-NMS and top_k over the whole
    video, which also suppresses the duplicates of overlapping windows. Its length threshold reads a
    proposal's length in windows (lengths up to D / T, as in training). Under torchrun each process
    predicts its share of the videos, as run_videos."""
    model.eval()
    results = {}
    order = shard(list(range(len(dataset))))
    for i in tqdm(order, desc="inference", unit="video", disable=not (progress and is_main()), leave=False):
        item = dataset[i]
        merged = suppress(*window_candidates(model, item["feats"], cfg, device), cfg)
        item_time = (item["fps"], item["duration"], item["feat_stride"], item["num_frames"])
        results[item["video_id"]] = postprocess(*merged, item_time, model.temporal_scale)
    return gather_results(results, dataset.video_ids)

