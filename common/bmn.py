"""BMN (Lin et al., "BMN: Boundary-Matching Network for Temporal Action Proposal Generation", ICCV 2019):
the network, its labels, its losses and its inference, as pure functions beside one nn.Module.

The features of a video are rescaled to a fixed temporal scale T; time is normalised to [0, 1], as in
the published code, so snippet i covers [i / T, (i + 1) / T]. Where the public implementations
differ, this module follows the authors' release (PaddlePaddle, PaddleVideo's `bmn.py`, `bmn_loss.py`,
`bmn_metric.py`, `anet_pipeline.py`) and names the difference:

  * the confidence map is (D, T): entry (d, t) is the proposal over snippets t .. t + d, i.e.
    [t / T, (t + d + 1) / T]; it exists when t + d < T (`proposal_mask`). Channel 0 of the map is
    the regression confidence (trained towards the IoU), channel 1 the classification confidence;
  * the BM layer samples each proposal over [t - r (d + 1), t + d + r (d + 1)] (r = boundary_ratio,
    positions in snippets) at N x num_samples_per_bin evenly spaced points, both ends included; a
    point is read by linear interpolation, zero outside [0, T - 1], and each of the N sample points
    averages its num_samples_per_bin sub-points (`bm_sampling_weights`). The published code takes
    the integer part with math.modf, which truncates towards zero: a point in (-1, 0) gets weight
    1 at step 0 instead of 1 + x. Here it is plain linear interpolation (the slow reference of
    tests/test_bmn.py), which only changes points within one step left of the video's start;
  * the PEM's 1-D conv has hidden_2d (128) channels, as in PaddleVideo (mmaction2 and the
    JJBOY PyTorch port keep 256): the BM features are half as large;
  * the low-IoU group of the regression loss is every valid proposal with IoU <= 0.3, zero IoU
    included, as in PaddleVideo (mmaction2 / JJBOY: 0 < IoU <= 0.3);
  * total loss = TEM + 10 * PEM regression + PEM classification (all three codes).

`BMN.forward` returns raw outputs (probabilities, as published: the losses are written on them);
labels, losses, decoding and Soft-NMS are functions here, shared by every stage.
"""
import torch
import torch.nn.functional as F
from torch import nn

from common.nms import segment_iou_matrix

REG, CLS = 0, 1  # channels of the confidence map, in the published order


def proposal_mask(temporal_scale, max_duration, device=None):
    """(D, T) bool: True where proposal (d, t), over snippets t .. t + d, ends inside the video."""
    d = torch.arange(max_duration, device=device)[:, None]
    t = torch.arange(temporal_scale, device=device)[None, :]
    return t + d < temporal_scale


def bm_sampling_weights(temporal_scale, max_duration, num_samples=32, num_samples_per_bin=3,
                        boundary_ratio=0.5, dtype=torch.float32):
    """The BM layer's fixed sampling weights, (T, N, D, T).

    weights[i, n, d, t] is the weight of input step i in sample point n of proposal (d, t), so that
    the BM feature of (d, t) at point n is sum_i x[:, i] * weights[i, n, d, t] (BMN Sec. 3.3).
    Proposals that end past the video (t + d >= T) have all-zero weights.
    """
    T, D, N, K = temporal_scale, max_duration, num_samples, num_samples_per_bin
    if N * K < 2:
        raise ValueError("the BM layer needs num_samples * num_samples_per_bin >= 2 points")
    f64 = torch.float64
    d = torch.arange(D, dtype=f64)[:, None]                            # (D, 1)
    t = torch.arange(T, dtype=f64)[None, :]                            # (1, T)
    lo = t - boundary_ratio * (d + 1)                                  # (D, T) region of (d, t)
    hi = t + d + boundary_ratio * (d + 1)
    j = torch.arange(N * K, dtype=f64)                                 # sub-point index, bin j // K
    pos = lo[..., None] + (hi - lo)[..., None] / (N * K - 1) * j       # (D, T, N K) in snippets
    left = pos.floor()
    frac = pos - left
    valid = proposal_mask(T, D)[..., None].expand_as(pos)
    bins = (j.long() // K).expand_as(pos)
    dd = torch.arange(D)[:, None, None].expand_as(pos)
    tt = torch.arange(T)[None, :, None].expand_as(pos)
    flat, values = [], []
    for idx, w in ((left.long(), 1.0 - frac), (left.long() + 1, frac)):  # the two neighbours
        keep = valid & (idx >= 0) & (idx < T)
        flat.append(((idx[keep] * N + bins[keep]) * D + dd[keep]) * T + tt[keep])
        values.append(w[keep] / K)                                     # a bin averages its K points
    # sub-points of one bin can share a step: sum them in float64, then cast once
    cells, where = torch.unique(torch.cat(flat), return_inverse=True)
    sums = torch.zeros(cells.numel(), dtype=f64).index_add_(0, where, torch.cat(values))
    weights = torch.zeros(T * N * D * T, dtype=dtype)
    weights[cells] = sums.to(dtype)
    return weights.view(T, N, D, T)


def bm_weight_bytes(temporal_scale, max_duration, num_samples, element_size=4):
    """Bytes of the dense (T, N, D, T) sampling weights: quadratic in T, linear in D and N."""
    return temporal_scale * num_samples * max_duration * temporal_scale * element_size


def bm_feature_bytes(batch, channels, temporal_scale, max_duration, num_samples, element_size=4):
    """Bytes of the BM layer's output (B, C, N, D, T), kept for the backward pass."""
    return batch * channels * num_samples * max_duration * temporal_scale * element_size


class BMN(nn.Module):
    """Base module, TEM and PEM with the BM layer. forward(x (B, C, T)) -> raw outputs:
    start (B, T) and end (B, T) probabilities, confidence (B, 2, D, T) = [regression, classification]
    confidences of every proposal, zero where the proposal does not exist (proposal_mask).

    feat_dim: channels of the input features (400 for the published TSN features; a multiple of 4,
        the base convs are grouped); temporal_scale T and max_duration D: the map's size (100, 100);
    num_samples N: sample points per proposal (32); num_samples_per_bin: sub-points interpolated
        and averaged into one sample point (3); boundary_ratio: share of a proposal's length added
        on each side of its sampling region (0.5);
    hidden_1d / hidden_3d / hidden_2d: widths of the 1-D convs (base, TEM), of the 3-D conv and of
        the PEM's 1-D conv and 2-D convs (256 / 512 / 128). The BM features are
        hidden_2d x N x D x T per video: the memory to watch (bm_feature_bytes).
    """

    def __init__(self, feat_dim, temporal_scale, max_duration, num_samples=32, num_samples_per_bin=3,
                 boundary_ratio=0.5, hidden_1d=256, hidden_3d=512, hidden_2d=128):
        super().__init__()
        self.temporal_scale = temporal_scale  # T: every video's features are rescaled to T steps
        self.max_duration = max_duration      # D: longest proposal, in snippets (D = T in the paper)
        self.num_samples = num_samples        # N: sample points per proposal in the BM layer
        # Base module: two grouped 1-D convs (groups 4 as published), shared by TEM and PEM.
        self.base = nn.Sequential(
            nn.Conv1d(feat_dim, hidden_1d, 3, padding=1, groups=4), nn.ReLU(inplace=True),
            nn.Conv1d(hidden_1d, hidden_1d, 3, padding=1, groups=4), nn.ReLU(inplace=True))
        # TEM: one branch each for the start and the end probability.
        self.tem_start = nn.Sequential(
            nn.Conv1d(hidden_1d, hidden_1d, 3, padding=1, groups=4), nn.ReLU(inplace=True),
            nn.Conv1d(hidden_1d, 1, 1))
        self.tem_end = nn.Sequential(
            nn.Conv1d(hidden_1d, hidden_1d, 3, padding=1, groups=4), nn.ReLU(inplace=True),
            nn.Conv1d(hidden_1d, 1, 1))
        # PEM: 1-D conv, BM layer (B, C, T) -> (B, C, N, D, T), a 3-D conv that reads the N points of
        # each proposal at once, then 2-D convs over the (D, T) map.
        self.pem_1d = nn.Sequential(nn.Conv1d(hidden_1d, hidden_2d, 3, padding=1), nn.ReLU(inplace=True))
        self.pem_3d = nn.Conv3d(hidden_2d, hidden_3d, (num_samples, 1, 1), stride=(num_samples, 1, 1))
        self.pem_2d = nn.Sequential(
            nn.Conv2d(hidden_3d, hidden_2d, 1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden_2d, hidden_2d, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden_2d, hidden_2d, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden_2d, 2, 1))
        # Fixed tensors, rebuilt from the arguments: non-persistent, so checkpoints stay small (the
        # weights are 128 MB at T = D = 100, N = 32) and a strict load needs no extra keys.
        weights = bm_sampling_weights(temporal_scale, max_duration, num_samples, num_samples_per_bin,
                                      boundary_ratio)
        self.register_buffer("sample_weights", weights.view(temporal_scale, -1), persistent=False)
        self.register_buffer("valid", proposal_mask(temporal_scale, max_duration), persistent=False)

    def boundary_matching(self, x):
        """BM layer: (B, C, T) -> (B, C, N, D, T), one matrix product with the sampling weights."""
        b, c, _ = x.shape
        out = torch.matmul(x, self.sample_weights.to(x.dtype))            # (B, C, N D T)
        return out.view(b, c, self.num_samples, self.max_duration, self.temporal_scale)

    def proposal_features(self, bm):
        """The 3-D conv over the N points of each proposal and its ReLU: (B, C, N, D, T) -> (B, H3, D, T).

        A (N, 1, 1) kernel over N points is one linear map of the C N values of each (d, t): it is
        computed as that 1x1 2-D conv, with the Conv3d's own weights. Same numbers; on the CPU at the
        published sizes, batch 4, forward 1.0 s instead of 1.4 s and backward 2.4 s instead of 6-8 s.
        """
        b, c, n, d, t = bm.shape
        weight = self.pem_3d.weight.view(self.pem_3d.out_channels, c * n, 1, 1)
        return F.relu(F.conv2d(bm.reshape(b, c * n, d, t), weight, self.pem_3d.bias))

    def forward(self, x):
        return self.heads(self.base(x))                                    # base: (B, H1, T)

    def heads(self, base):
        """TEM and PEM on the base module's features (B, H1, T): the raw outputs of forward."""
        start = torch.sigmoid(self.tem_start(base)).squeeze(1)             # (B, T)
        end = torch.sigmoid(self.tem_end(base)).squeeze(1)                 # (B, T)
        bm = self.boundary_matching(self.pem_1d(base))                     # (B, H2, N, D, T)
        conf = torch.sigmoid(self.pem_2d(self.proposal_features(bm)))       # (B, 2, D, T)
        # Proposals past the video's end are never trained nor decoded; zero them so they can't be
        # mistaken for predictions (the published code leaves them at whatever the convs give).
        conf = conf * self.valid.to(conf.dtype)
        return {"start": start, "end": end, "confidence": conf}


# ---------------------------------------------------------------- labels (Sec. 3.5, published code)

def _overlap(a_lo, a_hi, b_lo, b_hi):
    return (torch.minimum(a_hi, b_hi) - torch.maximum(a_lo, b_lo)).clamp(min=0)


def bmn_targets(segments, temporal_scale, max_duration):
    """Labels of one video from its ground truth `segments` (M, 2) in normalised time [0, 1].

    iou_map (D, T): max tIoU of proposal (d, t) = [t / T, (t + d + 1) / T] with any ground truth,
        zero where the proposal does not exist;
    start, end (T,): max IoA of snippet i, [i / T, (i + 1) / T], with the ground truths' start
        (end) regions, [s - 1.5 / T, s + 1.5 / T]: width 3 / T around each boundary, as published.
    Segments are clipped to [0, 1] first, as the published reader does.
    """
    T, D = temporal_scale, max_duration
    f64 = torch.float64
    seg = torch.as_tensor(segments, dtype=f64).reshape(-1, 2).clamp(0.0, 1.0)
    if seg.shape[0] == 0:
        return {"iou_map": torch.zeros(D, T), "start": torch.zeros(T), "end": torch.zeros(T)}
    g_lo, g_hi = seg[:, 0], seg[:, 1]                                   # (M,)
    d = torch.arange(D, dtype=f64)[:, None, None]
    t = torch.arange(T, dtype=f64)[None, :, None]
    p_lo, p_hi = t / T, (t + d + 1) / T                                # (1, T, 1), (D, T, 1)
    inter = _overlap(p_lo, p_hi, g_lo, g_hi)                           # (D, T, M)
    union = (p_hi - p_lo) + (g_hi - g_lo) - inter
    iou = (inter / union).amax(-1) * proposal_mask(T, D)               # (D, T)
    i = torch.arange(T, dtype=f64)[:, None]
    a_lo, a_hi = i / T, (i + 1) / T                                    # (T, 1) snippets
    half = 1.5 / T

    def ioa(centres):  # (M,) boundaries -> (T,) max overlap / snippet length
        return (_overlap(a_lo, a_hi, centres - half, centres + half) / (a_hi - a_lo)).amax(-1)

    return {"iou_map": iou.float(), "start": ioa(g_lo).float(), "end": ioa(g_hi).float()}


def batch_targets(segments, temporal_scale, max_duration, device=None):
    """bmn_targets over a batch: a list of (M_b, 2) -> iou_map (B, D, T), start (B, T), end (B, T)."""
    per_video = [bmn_targets(s, temporal_scale, max_duration) for s in segments]
    return {k: torch.stack([v[k] for v in per_video]).to(device) for k in ("iou_map", "start", "end")}


# ---------------------------------------------------------------- losses (Sec. 3.5, published code)

def _kept(mask, ignore):
    return mask if ignore is None else mask & ~ignore


def balanced_bce(prob, positive, negative, eps=1e-6, ignore=None):
    """BMN's weighted binary logistic loss, L_bl, over the entries in `positive` and `negative`.

    The published form, -mean(a+ b log(p + eps) + a- (1 - b) log(1 - p + eps)) with
    a+ = 0.5 r, a- = 0.5 r / (r - 1), r = entries / positives, is exactly half the mean BCE of the
    positives plus half that of the negatives, which is how it is written here: a side with no
    entry contributes 0 instead of the published NaN. `ignore` (a mask like prob's, or None) takes
    entries out of both sides: out of the sums and out of the counts that balance them.
    """
    prob = prob.float()
    positive, negative = _kept(positive, ignore), _kept(negative, ignore)
    pos_nll = -torch.where(positive, torch.log(prob + eps), 0.0).sum()
    neg_nll = -torch.where(negative, torch.log(1.0 - prob + eps), 0.0).sum()
    return 0.5 * (pos_nll / positive.sum().clamp(min=1) + neg_nll / negative.sum().clamp(min=1))


def tem_loss(start, end, gt_start, gt_end, threshold=0.5, ignore_start=None, ignore_end=None):
    """L_TEM = L_bl(start) + L_bl(end); a snippet is positive when its IoA label is > 0.5.
    All (B, T); the balance is over the whole batch, as published. ignore_*: (B, T) snippets left out."""
    return (balanced_bce(start, gt_start > threshold, gt_start <= threshold, ignore=ignore_start)
            + balanced_bce(end, gt_end > threshold, gt_end <= threshold, ignore=ignore_end))


def pem_cls_loss(cls_conf, gt_iou, valid, threshold=0.9, ignore=None):
    """L_C: L_bl on the classification channel (B, D, T), positives IoU > 0.9, existing proposals only;
    ignore: (B, D, T) proposals left out."""
    return balanced_bce(cls_conf, (gt_iou > threshold) & valid, (gt_iou <= threshold) & valid, ignore=ignore)


def pem_reg_weights(gt_iou, valid, generator=None, high=0.7, low=0.3, ignore=None):
    """(B, D, T) 0/1 weights of the regression loss: the published balanced sampling.

    Every valid proposal with IoU > 0.7 is kept; of those with 0.3 < IoU <= 0.7 and those with
    IoU <= 0.3, each is kept with probability n_high / n_group (counts over the batch), so each group
    gives n_high proposals on average (1:1:1). `generator` (a torch.Generator, on any device) makes
    the draw reproducible. `ignore` (B, D, T) leaves proposals out of the groups and their counts;
    the draw is the same with or without it.
    """
    valid = _kept(valid, ignore)
    hi = (gt_iou > high) & valid
    mid = (gt_iou > low) & (gt_iou <= high) & valid
    lo = (gt_iou <= low) & valid
    n_hi = hi.sum()
    keep_mid = n_hi / mid.sum().clamp(min=1)                           # probability of keeping one
    keep_lo = n_hi / lo.sum().clamp(min=1)
    gen_device = generator.device if generator is not None else gt_iou.device
    u = torch.rand(gt_iou.shape, generator=generator, device=gen_device).to(gt_iou.device)
    # the groups are disjoint, so one draw serves both (published: u > 1 - ratio, P = ratio)
    keep = hi | (mid & (u > 1.0 - keep_mid)) | (lo & (u > 1.0 - keep_lo))
    return keep.float()


def pem_reg_loss(reg_conf, gt_iou, valid, generator=None, ignore=None):
    """L_R: 0.5 * sum of w (p - g)^2 / sum of w over the sampled proposals (pem_reg_weights)."""
    w = pem_reg_weights(gt_iou, valid, generator, ignore=ignore)
    return 0.5 * (w * (reg_conf.float() - gt_iou).pow(2)).sum() / w.sum().clamp(min=1)


def bmn_loss(outputs, targets, valid, generator=None, reg_weight=10.0, tem_weight=1.0, cls_weight=1.0,
             ignore=None):
    """L = L_TEM + 10 L_R + L_C, the published weights (PaddleVideo, mmaction2 and JJBOY agree:
    the factor 10 is on the regression). outputs: BMN.forward's; targets: batch_targets';
    valid: (D, T) proposal_mask; ignore: None (everything trained, as published) or uncertain_ignore's
    masks. Returns the total `loss` and its parts."""
    ig = ignore or {}
    conf = outputs["confidence"]
    gt_iou = targets["iou_map"] * valid                                # (B, D, T)
    parts = {"tem_loss": tem_loss(outputs["start"], outputs["end"], targets["start"], targets["end"],
                                  ignore_start=ig.get("start"), ignore_end=ig.get("end")),
             "pem_cls_loss": pem_cls_loss(conf[:, CLS], gt_iou, valid, ignore=ig.get("cls")),
             "pem_reg_loss": pem_reg_loss(conf[:, REG], gt_iou, valid, generator, ignore=ig.get("reg"))}
    parts["loss"] = (tem_weight * parts["tem_loss"] + reg_weight * parts["pem_reg_loss"]
                     + cls_weight * parts["pem_cls_loss"])
    return parts


def uncertain_ignore(targets, rejected, valid, boundary=0.5, positive=0.9, low=0.3):
    """What a pseudo-labeled video leaves out of BMN's loss under semi.background = rejected.

    targets: batch_targets of the pseudo labels; rejected: batch_targets of the predictions
    pseudo_label.py rejected (the batch's "uncertain"), i.e. the labels they would give if they
    were actions; valid: (D, T) proposal_mask. BMN has no "points outside the actions" to leave
    out, as ActionFormer has (common/losses.py uncertain_background): every label is a number per
    snippet or per proposal. Read label by label, an entry is left out where the pseudo labels call
    it background and a rejected prediction would make it an action's:
      start / end (B, T)  snippets that would be positive boundaries of a rejected prediction
                          (IoA > boundary, 0.5, as tem_loss) and lie in no pseudo label's boundary
                          region (IoA 0);
      cls (B, D, T)       proposals that would be positives of L_C (tIoU > positive, 0.9, as
                          pem_cls_loss) of a rejected prediction;
      reg (B, D, T)       proposals a rejected prediction would lift out of L_R's low group (tIoU >
                          low, 0.3, as pem_reg_weights): L_R's target is the tIoU itself, so each
                          of them would get another target, not about 0;
    cls and reg only where the proposal is in the low group of every pseudo label (tIoU <= low).
    What overlaps a pseudo label more keeps its label: it teaches where that pseudo label's
    boundaries lie, whatever was rejected around it, so a rejected near-duplicate of a pseudo label
    leaves out only its own boundaries where they lie away from the pseudo label's. TEM, PEM
    classification and regression alike: all three make up the fused score that ranks proposals.
    """
    gt_iou, rj_iou = targets["iou_map"] * valid, rejected["iou_map"] * valid
    background = (gt_iou <= low) & valid
    return {"start": (rejected["start"] > boundary) & (targets["start"] == 0),
            "end": (rejected["end"] > boundary) & (targets["end"] == 0),
            "cls": (rj_iou > positive) & background,
            "reg": (rj_iou > low) & background}


# ---------------------------------------------------------------- inference (Sec. 3.6, published code)

def boundary_candidates(prob, ratio=0.5):
    """(T,) probabilities -> (T,) bool: locations that are a peak (above both neighbours, zero
    beyond the ends) or above ratio * the maximum."""
    padded = F.pad(prob, (1, 1))
    peak = (prob > padded[:-2]) & (prob > padded[2:])
    return peak | (prob > ratio * prob.max())


def fuse_scores(start_prob, end_prob, cls_conf, reg_conf):
    """p_f = p_start * p_end * p_cc * p_cr, the product of the published code. (The paper's text is
    reported to take sqrt(p_cc * p_cr); the released code does not.)"""
    return start_prob * end_prob * cls_conf * reg_conf


def candidate_index(start, end, max_duration):
    """Map entries (dd, tt) of one video's candidate proposals, in (duration, start) order.

    A proposal (d, t) is kept when snippet t is a start candidate and snippet t + d, inside the
    video, an end candidate; the first snippet always counts as a start, the last as an end.
    """
    T = start.shape[0]
    starts = boundary_candidates(start)
    ends = boundary_candidates(end)
    starts[0] = True
    ends[-1] = True
    d = torch.arange(max_duration, device=start.device)[:, None]
    t = torch.arange(T, device=start.device)[None, :]
    last = t + d                                                       # (D, T) last snippet
    keep = (last < T) & starts[t] & ends[last.clamp(max=T - 1)]
    return torch.nonzero(keep, as_tuple=True)


def candidate_proposals(start, end, confidence):
    """Proposals of one video: start (T,), end (T,), confidence (2, D, T) -> segments (K, 2) in
    normalised time and fused scores (K,), in (duration, start) order (candidate_index)."""
    T = start.shape[0]
    dd, tt = candidate_index(start, end, confidence.shape[1])
    ee = tt + dd
    segments = torch.stack([tt, ee + 1], dim=1).to(start.dtype) / T
    scores = fuse_scores(start[tt], end[ee], confidence[CLS, dd, tt], confidence[REG, dd, tt])
    return segments, scores


def bmn_soft_nms(segments, scores, alpha=0.4, low_threshold=0.5, high_threshold=0.9, top_k=100):
    """BMN's Soft-NMS: segments (K, 2) in normalised time, scores (K,) -> the top_k picks.

    Each pick decays the score of every other proposal whose tIoU with it exceeds
    low + (high - low) * (the pick's length) by exp(-tIoU^2 / alpha): a long pick only suppresses
    near-duplicates. common/nms.py's Soft-NMS decays every overlap, so it can't serve; it shares
    the tIoU. Returns (segments, decayed scores, indices), best first (ties: lower index first).
    """
    work = scores.clone()
    picks, picked_scores = [], []
    for _ in range(min(top_k, scores.numel())):
        best = int(torch.argmax(work))                                 # first maximum on ties
        picks.append(best)
        picked_scores.append(work[best].clone())
        seg = segments[best]
        iou = segment_iou_matrix(seg[None], segments)[0]               # (K,)
        near = iou > low_threshold + (high_threshold - low_threshold) * (seg[1] - seg[0])
        work = torch.where(near, work * torch.exp(-iou.pow(2) / alpha), work)
        work[best] = float("-inf")                                     # the pick leaves the pool
    idx = torch.tensor(picks, dtype=torch.long, device=scores.device)
    kept = torch.stack(picked_scores) if picks else scores[idx]
    return segments[idx], kept, idx


def decode_proposals(start, end, confidence, alpha=0.4, low_threshold=0.5, high_threshold=0.9, top_k=100):
    """One video's proposals as published: candidates, fused scores, BMN's Soft-NMS, top_k.
    Returns segments (K, 2) in normalised time and scores (K,), best first."""
    segments, scores = candidate_proposals(start, end, confidence)
    segments, scores, _ = bmn_soft_nms(segments, scores, alpha, low_threshold, high_threshold, top_k)
    return segments, scores
