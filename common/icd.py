"""Instance-level Consistency Discriminator (ICD), APL Sec. 3.2.

An instance is represented by its input features max-pooled over its segment (MAP in Eq. 8-10).
The discriminator D is an MLP from the concatenation of two instances (2D) to the probability that
they are the same action (Eq. 9). It is trained with BCE on pairs of labeled instances, with a
fixed number of same-class and different-class partners per instance so both sets are balanced
(Eq. 7-8); partners come from a bank of all labeled instances, since a mini-batch of two videos
rarely holds enough of them. At pseudo-labeling time the score of a predicted instance is the mean
of D against every labeled instance of its predicted class (Eq. 10).
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.data import grid_features, to_grid


class Discriminator(nn.Module):
    """D([x_i; x_j]) -> logit of 'same action' (Eq. 9); symmetric by averaging both orders."""

    def __init__(self, dim, hidden=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, a, b):
        # a, b: (N, D) pooled instances -> (N,) logits
        return 0.5 * (self.mlp(torch.cat([a, b], -1)) + self.mlp(torch.cat([b, a], -1))).squeeze(-1)


def segment_steps(start, end, length):
    """(first, last) grid step of a segment in grid units: every step whose centre (grid position i)
    lies in [start, end]; a segment that holds no centre (shorter than a step) takes the step
    nearest its own centre, so every instance has a feature. Held inside [0, length - 1]."""
    lo, hi = int(np.ceil(start)), int(np.floor(end))
    if lo > hi:
        lo = hi = int(np.floor(0.5 * (start + end) + 0.5))
    lo = min(max(lo, 0), length - 1)
    return lo, min(max(hi, lo), length - 1)


def pool_instances(feats, segments):
    """MaxPool of Eq. (8): feats (T, D), segments (N, 2) in grid units -> (N, D), over each
    segment's steps (segment_steps)."""
    feats = feats if torch.is_tensor(feats) else torch.from_numpy(np.array(feats, dtype=np.float32))
    out = []
    for start, end in segments.tolist():
        lo, hi = segment_steps(start, end, feats.shape[0])
        out.append(feats[lo:hi + 1].max(dim=0).values)
    return torch.stack(out) if out else feats.new_zeros(0, feats.shape[1])


def feature_source(dcfg, device):
    """Per-video (T, D) input features on the detector's grid (resized under dataset.resize_to): what
    the ICD pools."""
    def input_features(vid):
        return torch.from_numpy(np.array(grid_features(dcfg, vid)[0], dtype=np.float32)).to(device)
    return input_features


class InstanceBank:
    """Pooled features and labels of every ground-truth instance of the labeled videos.

    Built once from the input features (feature_source): the bank never changes.
    """

    def __init__(self, dcfg, videos, video_ids):
        self.dcfg, self.videos = dcfg, videos
        self.video_ids = [v for v in video_ids if len(videos[v].labels)]
        self.feats = self.labels = None
        self.first_row = dict(zip(self.video_ids, np.cumsum([0] + [len(videos[v].labels) for v in self.video_ids])))

    def build(self, source):
        feats, labels = [], []
        for vid in self.video_ids:
            video = self.videos[vid]
            grid = to_grid(self.dcfg, video, video.segments)
            x = source(vid)
            feats.append(pool_instances(x, torch.as_tensor(grid, dtype=torch.float32)))
            labels.append(torch.as_tensor(video.labels, dtype=torch.long, device=x.device))
        self.feats, self.labels = torch.cat(feats), torch.cat(labels)
        return self

    def rows_of(self, batch):
        """(N,) the bank row of each instance of a batch (its items' "instances": indices in their
        video's list), -1 for a video not in the bank; None for a batch that does not say."""
        if "instances" not in batch:
            return None
        return torch.cat([idx.cpu() + int(self.first_row[vid]) if vid in self.first_row else torch.full_like(idx.cpu(), -1)
                          for vid, idx in zip(batch["video_id"], batch["instances"])])


def sample_pairs(labels, bank_labels, num_same, num_diff, generator, own=None):
    """Partners for each anchor: `num_same` bank instances of its class and `num_diff` of others (Eq. 7).

    own: (N,) the anchor's own row in the bank (-1: not there), never its partner: G_i of Eq. (7)
    holds the other instances of its class. Returns (anchor index, bank index, target 1/0) as flat
    tensors. An anchor whose class has no other bank instance, or with no instance of another class,
    gets no partner of that kind.
    """
    same = labels[:, None] == bank_labels[None, :]                          # (N, M)
    diff = ~same
    if own is not None and (own >= 0).any():
        mine = torch.nonzero(own >= 0).squeeze(1)
        same[mine, own[mine]] = False
    rows, cols, targets = [], [], []
    for want, mask, target in ((num_same, same, 1.0), (num_diff, diff, 0.0)):
        weights = mask.float()
        has = weights.sum(1) > 0
        if want == 0 or not has.any():
            continue
        picks = torch.multinomial(weights[has], want, replacement=True, generator=generator)
        anchor = torch.nonzero(has).squeeze(1)[:, None].expand_as(picks)
        rows.append(anchor.reshape(-1))
        cols.append(picks.reshape(-1))
        targets.append(torch.full((picks.numel(),), target))
    if not rows:
        return (torch.zeros(0, dtype=torch.long),) * 2 + (torch.zeros(0),)
    return torch.cat(rows), torch.cat(cols), torch.cat(targets)


def icd_loss(disc, anchors, anchor_labels, bank, num_same, num_diff, generator, own=None):
    """Eq. (8): BCE of D on balanced same / different pairs; 0 when there is nothing to pair.
    own: (N,) each anchor's row in the bank, or None (sample_pairs)."""
    a, b, target = sample_pairs(anchor_labels.cpu(), bank.labels.cpu(), num_same, num_diff, generator, own)
    if a.numel() == 0:
        return anchors.new_zeros(())
    dev = anchors.device
    logits = disc(anchors[a.to(dev)], bank.feats[b.to(dev)])
    return F.binary_cross_entropy_with_logits(logits, target.to(dev))


@torch.no_grad()
def similarity_scores(disc, feats, labels, bank, chunk=4096):
    """Eq. (10): S_i = mean over the labeled instances of class y_i of D(x_i, x_j); NaN without any."""
    labels = labels.to(feats.device)
    scores = torch.full((len(labels),), float("nan"), device=feats.device)
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).squeeze(1)
        ref = bank.feats[bank.labels == c]
        if len(ref) == 0:
            continue
        x = feats[idx]
        pairs_a = x[:, None].expand(-1, len(ref), -1).reshape(-1, x.shape[1])
        pairs_b = ref[None].expand(len(x), -1, -1).reshape(-1, x.shape[1])
        prob = torch.cat([torch.sigmoid(disc(pa, pb)) for pa, pb in
                          zip(pairs_a.split(chunk), pairs_b.split(chunk))])
        scores[idx] = prob.view(len(x), len(ref)).mean(1)
    return scores.cpu()


def icd_scores(model, results, videos, dcfg, bank, source, device):
    """S_i of Eq. (10) for every prediction of every video: {video: (N,)}; results: {video: predictions
    (segments in seconds, labels)}, source: feature_source's, bank: the labeled instances'."""
    out = {}
    for vid, r in results.items():
        grid = to_grid(dcfg, videos[vid], r["segments"])
        feats = pool_instances(source(vid), torch.as_tensor(grid, dtype=torch.float32))
        labels = torch.as_tensor(r["labels"], dtype=torch.long).to(device)
        out[vid] = similarity_scores(model.icd, feats, labels, bank).numpy()
    return out


def batch_instances(batch, feats):
    """Pooled features (N, D) and labels (N,) of the ground-truth instances of a batch;
    feats (B, D, T) are the batch's input features."""
    out, labels = [], []
    for b, (seg, lab) in enumerate(zip(batch["segments"], batch["labels"])):
        length = int(batch["mask"][b].sum())
        out.append(pool_instances(feats[b, :, :length].T, seg))
        labels.append(lab)
    return torch.cat(out), torch.cat(labels).to(torch.long)
