"""Action-aware Contrastive Pre-training (ACP), APL Sec. 3.3: the contrastive losses and their parts.

The representation of a video is its pyramid: every level's (FPN) output upsampled to the input's
length and concatenated along the channels. From each video N frames are sampled, one at random in
each of N equal segments. Two contrasts use the InfoNCE of Eq. (11) on cosine similarities:
  coarse (L_conc): inside each video, positives are frames of the same class, action or background;
  fine   (L_conf): over all sampled frames of the mini-batch, positives share an action class.
Without labels (pre-training) the classes come from k-means on the sampled frames' input features:
2 clusters per video for the coarse contrast, `clusters` over the batch for the fine one. With
labels (fine-tuning) they come from the ground truth or the pseudo labels: inside-an-action vs
background, and the action class (background frames take no part in the fine contrast).
"""
import torch
import torch.nn.functional as F
from torch import nn

MODES = ("none", "coarse", "fine", "both")


def info_nce(feats, labels, temperature):
    """Eq. (11): -1/N_c sum_i sum_{j in P_i} log e^{s_ij} / (e^{s_ij} + sum_{k in N_i} e^{s_ik}).

    feats (M, d), labels (M,) with -1 = takes no part; s = cosine similarity / temperature.
    P_i = the other frames of i's class (a frame is not its own positive: that pair is constant),
    N_i = the frames of the other classes, N_c = sum_i |P_i|. Returns 0 when there is no pair.
    """
    keep = labels >= 0
    f, y = F.normalize(feats[keep], dim=-1), labels[keep]
    sim = f @ f.T / temperature                                             # (M, M)
    same = y[:, None] == y[None, :]
    pos = same & ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    if not pos.any():
        return feats.sum() * 0.0
    neg_lse = torch.logsumexp(sim.masked_fill(same, float("-inf")), dim=1)  # log sum_k e^{s_ik}, -inf if none
    terms = torch.logaddexp(sim, neg_lse[:, None]) - sim                    # -log of the fraction, per (i, j)
    return terms[pos].sum() / pos.sum()


def kmeans(x, k, iters=20, generator=None):
    """Labels of Lloyd's k-means on x (M, d), k-means++ seeding; deterministic for a given generator."""
    m = x.shape[0]
    k = min(k, m)
    centres = x[torch.randint(m, (1,), generator=generator, device="cpu").item()][None]
    for _ in range(1, k):  # k-means++: the next centre far from the chosen ones
        d2 = torch.cdist(x, centres).min(dim=1).values.pow(2)
        if d2.sum() <= 0:
            break
        idx = torch.multinomial((d2 / d2.sum()).cpu(), 1, generator=generator).item()
        centres = torch.cat([centres, x[idx][None]])
    for _ in range(iters):
        labels = torch.cdist(x, centres).argmin(dim=1)
        new = torch.stack([x[labels == c].mean(0) if (labels == c).any() else centres[c]
                           for c in range(len(centres))])
        if torch.allclose(new, centres):
            break
        centres = new
    return torch.cdist(x, centres).argmin(dim=1)


def sample_frames(mask, n, generator=None):
    """One random frame in each of N equal segments of every video's valid part -> (B, N) indices."""
    lengths = mask.sum(dim=1).float()                                        # (B,)
    edges = torch.arange(n + 1, device=mask.device).float() / n
    lo = (edges[:-1][None] * lengths[:, None])                               # (B, N)
    width = (edges[1:] - edges[:-1])[None] * lengths[:, None]
    u = torch.rand(lo.shape, generator=generator).to(mask.device)
    idx = (lo + u * width).floor().long()
    return torch.minimum(idx, (lengths[:, None] - 1).long().clamp(min=0))


def pyramid_representation(level_feats, length):
    """Every level (B, C, T_l) upsampled (nearest) to `length` and concatenated -> (B, L*C, length)."""
    return torch.cat([F.interpolate(f, size=length, mode="nearest") for f in level_feats], dim=1)


class Projection(nn.Module):
    """MLP head on the concatenated pyramid; only used by the contrast and dropped after pre-training."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(n_in, n_in), nn.ReLU(), nn.Linear(n_in, n_out)) if n_out else nn.Identity()

    def forward(self, x):
        return self.mlp(x)


def gather_frames(rep, idx):
    """rep (B, C, T), idx (B, N) -> (B, N, C)."""
    return torch.gather(rep, 2, idx[:, None, :].expand(-1, rep.shape[1], -1)).transpose(1, 2)


def contrast(frames, coarse_labels, fine_labels, mode, temperature):
    """L_conc (per video, averaged) and/or L_conf (over the batch) for (B, N, d) frames. Under
    torchrun the batch is each process's share: the fine contrast spans only its videos."""
    frames = frames.float()  # the softmax over similarities / temperature in fp32, also under autocast
    zero = frames.sum() * 0.0
    parts = {"conc_loss": zero, "conf_loss": zero}
    if mode in ("coarse", "both"):
        parts["conc_loss"] = torch.stack([info_nce(frames[b], coarse_labels[b], temperature)
                                          for b in range(frames.shape[0])]).mean()
    if mode in ("fine", "both"):
        parts["conf_loss"] = info_nce(frames.reshape(-1, frames.shape[-1]), fine_labels.reshape(-1), temperature)
    parts["acp_loss"] = parts["conc_loss"] + parts["conf_loss"]
    return parts


def cluster_labels(inputs, idx, clusters, center_videos=False, generator=None):
    """Unsupervised classes (Sec. 3.3): k-means of the sampled frames' input features.
    inputs (B, D, T) -> coarse (B, N) in {0, 1} per video, fine (B, N) in [0, clusters) over the batch.
    center_videos: subtract each video's mean frame before the fine k-means, so that its clusters
    follow what differs inside videos (actions) rather than what differs between them."""
    x = gather_frames(inputs, idx)                                          # (B, N, D)
    coarse = torch.stack([kmeans(x[b], 2, generator=generator) for b in range(x.shape[0])])
    xf = x - x.mean(dim=1, keepdim=True) if center_videos else x
    fine = kmeans(xf.reshape(-1, x.shape[-1]), clusters, generator=generator).view(x.shape[:2])
    return coarse, fine


def truth_labels(segments, labels, idx, offsets=None):
    """Classes from (pseudo) ground truth in grid units: coarse = inside any action (1) or not (0),
    fine = the class of the shortest action holding the frame, -1 for background. idx (B, N)."""
    coarse, fine = torch.zeros_like(idx), torch.full_like(idx, -1)
    for b, (seg, lab) in enumerate(zip(segments, labels)):
        if len(lab) == 0:
            continue
        t = idx[b].float()[:, None]                                          # (N, 1)
        seg = seg.to(idx.device)
        inside = (t >= seg[:, 0]) & (t <= seg[:, 1])                         # (N, A)
        length = (seg[:, 1] - seg[:, 0]).expand_as(inside).masked_fill(~inside, float("inf"))
        shortest = length.argmin(dim=1)
        has = inside.any(dim=1)
        coarse[b] = has.long()
        fine[b] = torch.where(has, lab.to(idx.device)[shortest], torch.full_like(shortest, -1))
    return coarse, fine
