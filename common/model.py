"""The detector: ActionFormer (Zhang, Wu, Li, ECCV 2022) with the ALQA quality heads of APL (Sec. 3.1).

Blocks -> backbone -> neck -> heads, as in ActionFormer's THUMOS14 I3D setting:
  * embedding: `embd_layers` masked 1D convs (kernel 3) + LayerNorm + ReLU;
  * backbone: `stem_layers` pre-LN transformer blocks with local window self-attention at full
    resolution, then `branch_layers` blocks that each halve the length: a pyramid of
    branch_layers + 1 levels with strides 1, 2, 4, ... in grid units;
  * neck: a LayerNorm per level;
  * heads shared over levels: classification (convs + LayerNorm + ReLU, bias at the prior) and
    regression (same trunk, positive offsets scaled per level). ALQA's tIoU / tND heads share the
    regression trunk and differ only in their last layer (Eq. 2).

`forward` returns raw outputs only. Label assignment, losses, decoding and NMS are functions in
`common/losses.py`, `common/detect.py` and `common/nms.py`, so every stage calls the same code.
Everything is masked: padded steps never leak into valid ones.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from common.acp import Projection
from common.icd import Discriminator

# Outputs of the quality head for each `alqa` mode (Table 3).
QUALITY_OUTPUTS = {"none": 0, "tiou": 1, "diou": 1, "tiou_tnd": 2}
# What ACP pre-trains (Sec. 3.3), and what starts fresh when a detector is built on it.
PRETRAINED_PREFIXES = ("backbone.", "neck.", "acp_proj.")
HEAD_PREFIXES = ("cls_trunk.", "cls_out.", "reg_trunk.", "reg_out.", "reg_scale", "quality_out.", "icd.")


class MaskedConv1d(nn.Module):
    """A Conv1d whose output is zero on padded steps; a stride downsamples the mask too."""

    def __init__(self, n_in, n_out, kernel_size, stride=1, groups=1, bias=True):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(n_in, n_out, kernel_size, stride, kernel_size // 2,
                              groups=groups, bias=bias)
        if bias:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x, mask):
        # x: (B, C, T), mask: (B, T) bool; T divisible by the stride
        out = self.conv(x)
        if self.stride > 1:
            mask = mask[:, ::self.stride]  # nearest-neighbour downsampling of the mask
        return out * mask[:, None].to(out.dtype), mask


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, T) tensor."""

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))
        self.eps = eps

    def forward(self, x):
        # (x - mean) / sqrt(var + eps) * weight + bias over the channels, by the fused kernel
        return F.layer_norm(x.transpose(1, 2), (x.shape[1],), self.weight.view(-1), self.bias.view(-1),
                            self.eps).transpose(1, 2)


class LocalSelfAttention(nn.Module):
    """Multi-head self-attention restricted to a window of `window` steps around each query.

    Queries, keys and values first pass a depthwise conv (strided when the block downsamples) and a
    LayerNorm, as in ActionFormer's LocalMaskedMHCA. Any length works: blocks are padded and masked.
    """

    def __init__(self, n_embd, n_head, window, stride=1, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        assert n_embd % n_head == 0 and window % 2 == 1
        self.n_head, self.half = n_head, window // 2
        self.block = 16  # queries per block in _attend: 16 and 32 were fastest for window 19
        kernel = stride + 1 if stride > 1 else 3
        self.q_conv = MaskedConv1d(n_embd, n_embd, kernel, stride, groups=n_embd, bias=False)
        self.k_conv = MaskedConv1d(n_embd, n_embd, kernel, stride, groups=n_embd, bias=False)
        self.v_conv = MaskedConv1d(n_embd, n_embd, kernel, stride, groups=n_embd, bias=False)
        self.q_norm, self.k_norm, self.v_norm = (ChannelNorm(n_embd) for _ in range(3))
        self.q_proj = nn.Conv1d(n_embd, n_embd, 1)
        self.k_proj = nn.Conv1d(n_embd, n_embd, 1)
        self.v_proj = nn.Conv1d(n_embd, n_embd, 1)
        self.out_proj = nn.Conv1d(n_embd, n_embd, 1)
        self.attn_drop, self.proj_drop = nn.Dropout(attn_drop), nn.Dropout(proj_drop)

    def _heads(self, x):
        b, c, t = x.shape  # (B, C, T) -> (B, H, T, C/H)
        return x.view(b, self.n_head, c // self.n_head, t).transpose(2, 3)

    def _attend(self, q, k, v, kv_mask):
        """Each query over the keys within `half` steps of it, computed block by block: the queries
        of a block of S steps against the S + 2w keys around the block in one matrix product, the
        keys outside each query's own window masked. The same numbers as gathering each query's
        2w + 1 keys, seven times faster on the CPU (docs/results.md, "Performance"): many small products
        become a few large ones."""
        b, h, t, d = q.shape
        w, size = self.half, self.block
        nb = -(-t // size)
        pad = nb * size - t
        span = size + 2 * w
        q_blk = F.pad(q, (0, 0, 0, pad)).view(b, h, nb, size, d)
        k_blk = F.pad(k, (0, 0, w, w + pad)).unfold(2, span, size)           # (B, H, nb, d, span)
        v_blk = F.pad(v, (0, 0, w, w + pad)).unfold(2, span, size)
        key_ok = F.pad(kv_mask, (w, w + pad)).unfold(1, span, size)        # (B, nb, span)
        i, j = torch.arange(size, device=q.device)[:, None], torch.arange(span, device=q.device)
        in_window = (j >= i) & (j <= i + 2 * w)                             # key j of query i of a block
        allowed = in_window & key_ok[:, :, None, :]                         # (B, nb, size, span)
        att = torch.matmul(q_blk, k_blk) / math.sqrt(d)                     # (B, H, nb, size, span)
        att = att.masked_fill(~allowed[:, None], float("-inf"))
        att = torch.softmax(att, dim=-1).nan_to_num(0.0)  # a fully padded window gives zeros
        out = torch.matmul(self.attn_drop(att), v_blk.transpose(-1, -2))    # (B, H, nb, size, d)
        return out.reshape(b, h, nb * size, d)[:, :, :t]

    def project(self, x, mask):
        """Queries, keys and values split into heads (B, H, T, d), the keys' mask and the output's."""
        q, out_mask = self.q_conv(x, mask)
        k, kv_mask = self.k_conv(x, mask)
        v, _ = self.v_conv(x, mask)
        q = self._heads(self.q_proj(self.q_norm(q)))
        k = self._heads(self.k_proj(self.k_norm(k)))
        v = self._heads(self.v_proj(self.v_norm(v)))
        return q, k, v, kv_mask, out_mask

    def forward(self, x, mask):
        q, k, v, kv_mask, out_mask = self.project(x, mask)
        out = self._attend(q, k, v, kv_mask)                   # (B, H, T, d)
        b, h, t, d = out.shape
        out = out.transpose(2, 3).reshape(b, h * d, t)
        out = self.proj_drop(self.out_proj(out))
        return out * out_mask[:, None].to(out.dtype), out_mask


class DropPath(nn.Module):
    """Per-sample stochastic depth with a learnable per-channel scale (ActionFormer's AffineDropPath)."""

    def __init__(self, channels, drop_prob, init_scale=1e-4):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1, channels, 1), init_scale))
        self.drop_prob = drop_prob

    def forward(self, x):
        x = x * self.scale
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        noise = x.new_empty(x.shape[0], 1, 1).bernoulli_(keep)
        return x * noise / keep


class TransformerBlock(nn.Module):
    """Pre-LN block: x + attn(LN(x)), then + MLP(LN(.)); stride 2 max-pools the skip path."""

    def __init__(self, n_embd, n_head, window, stride=1, dropout=0.0, path_drop=0.0):
        super().__init__()
        self.ln1, self.ln2 = ChannelNorm(n_embd), ChannelNorm(n_embd)
        self.attn = LocalSelfAttention(n_embd, n_head, window, stride, dropout, dropout)
        self.pool_skip = (nn.MaxPool1d(stride + 1, stride, (stride + 1) // 2) if stride > 1
                          else nn.Identity())
        self.mlp = nn.Sequential(nn.Conv1d(n_embd, 4 * n_embd, 1), nn.GELU(), nn.Dropout(dropout),
                                 nn.Conv1d(4 * n_embd, n_embd, 1), nn.Dropout(dropout))
        self.drop_attn = DropPath(n_embd, path_drop)
        self.drop_mlp = DropPath(n_embd, path_drop)

    def forward(self, x, mask):
        out, mask = self.attn(self.ln1(x), mask)
        m = mask[:, None].to(out.dtype)
        out = self.pool_skip(x) * m + self.drop_attn(out)
        out = out + self.drop_mlp(self.mlp(self.ln2(out)) * m)
        return out, mask


class Backbone(nn.Module):
    """Conv embedding + transformer stem + downsampling branch -> a list of per-level features."""

    def __init__(self, n_in, mcfg):
        super().__init__()
        d = mcfg["embd_dim"]
        self.embd = nn.ModuleList(
            MaskedConv1d(n_in if i == 0 else d, d, mcfg["embd_kernel_size"], bias=False)
            for i in range(mcfg["embd_layers"]))
        self.embd_norm = nn.ModuleList(ChannelNorm(d) for _ in range(mcfg["embd_layers"]))
        block = lambda stride: TransformerBlock(  # noqa: E731
            d, mcfg["n_head"], mcfg["attn_window"], stride, mcfg["dropout"], mcfg["path_drop"])
        self.stem = nn.ModuleList(block(1) for _ in range(mcfg["stem_layers"]))
        self.branch = nn.ModuleList(block(2) for _ in range(mcfg["branch_layers"]))
        for m in self.modules():  # ActionFormer starts every backbone bias at zero
            if isinstance(m, nn.Conv1d) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x, mask):
        for conv, norm in zip(self.embd, self.embd_norm):
            x, mask = conv(x, mask)
            x = F.relu(norm(x))
        for blk in self.stem:
            x, mask = blk(x, mask)
        feats, masks = [x], [mask]
        for blk in self.branch:
            x, mask = blk(x, mask)
            feats.append(x)
            masks.append(mask)
        return feats, masks


class HeadTrunk(nn.Module):
    """(layers - 1) x [conv, LayerNorm, ReLU], shared over pyramid levels."""

    def __init__(self, n_in, n_hidden, layers, kernel_size):
        super().__init__()
        self.convs = nn.ModuleList(
            MaskedConv1d(n_in if i == 0 else n_hidden, n_hidden, kernel_size, bias=False)
            for i in range(layers - 1))
        self.norms = nn.ModuleList(ChannelNorm(n_hidden) for _ in range(layers - 1))

    def forward(self, x, mask, keep=None):
        """keep: None, or a (B, T) bool mask whose False steps are set to zero after every layer
        (the gaps between levels laid end to end; masked steps keep LayerNorm's bias, as alone)."""
        for conv, norm in zip(self.convs, self.norms):
            x, _ = conv(x, mask)
            x = F.relu(norm(x))
            if keep is not None:
                x = x * keep[:, None].to(x.dtype)
        return x


class Detector(nn.Module):
    """ActionFormer + ALQA. forward(feats (B, D, T), mask (B, T)) -> raw per-level outputs."""

    def __init__(self, input_dim, num_classes, mcfg):
        super().__init__()
        self.num_classes = num_classes
        self.num_levels = mcfg["branch_layers"] + 1
        self.strides = [2 ** i for i in range(self.num_levels)]
        assert len(mcfg["regression_range"]) == self.num_levels, \
            "model.regression_range needs one [lo, hi] per pyramid level (branch_layers + 1)"
        d, h, k = mcfg["embd_dim"], mcfg["head_dim"], mcfg["head_kernel_size"]
        self.backbone = Backbone(input_dim, mcfg)
        self.neck = nn.ModuleList(ChannelNorm(d) for _ in range(self.num_levels))
        self.cls_trunk = HeadTrunk(d, h, mcfg["head_layers"], k)
        self.cls_out = MaskedConv1d(h, num_classes, k)
        nn.init.constant_(self.cls_out.conv.bias, -math.log((1 - mcfg["prior_prob"]) / mcfg["prior_prob"]))
        self.reg_trunk = HeadTrunk(d, h, mcfg["head_layers"], k)
        self.reg_out = MaskedConv1d(h, 2, k)
        self.reg_scale = nn.Parameter(torch.ones(self.num_levels))
        # ALQA (Eq. 2): tIoU / tND (or one DIoU / tIoU) branch, sharing the regression trunk.
        self.num_quality = QUALITY_OUTPUTS[mcfg["alqa"]]
        self.quality_out = MaskedConv1d(h, self.num_quality, k) if self.num_quality else None
        # ICD (Sec. 3.2) on input features; trained by its own loss, kept here so that it is saved,
        # averaged (EMA) and loaded with the detector it serves. forward() does not use it.
        self.icd = Discriminator(input_dim, mcfg["icd_hidden"])
        # ACP's projection of the concatenated pyramid (Sec. 3.3), pre-trained with the backbone.
        self.acp_proj = Projection(d * self.num_levels, mcfg["acp_proj_dim"])

    @property
    def pad_multiple(self):
        """Inputs are padded to a multiple of the coarsest stride."""
        return self.strides[-1]

    def pyramid(self, feats, mask):
        """Backbone and neck only: per level features (B, C, T_l) and masks (B, T_l)."""
        # Zero the padding first: afterwards every layer keeps padded steps at zero.
        levels, masks = self.backbone(feats * mask[:, None].to(feats.dtype), mask)
        return [self.neck[l](x) * m[:, None].to(x.dtype) for l, (x, m) in enumerate(zip(levels, masks))], masks

    def forward(self, feats, mask):
        levels, masks = self.pyramid(feats, mask)
        out = {"cls_logits": [], "offsets": [], "quality_logits": [], "masks": masks, "feats": levels}
        # The heads are shared over levels: run them once over the levels laid end to end, each
        # followed by a gap of kernel // 2 steps held at zero after every layer, so a conv at a
        # level's edge sees the zeros its own padding would give: the numbers of a level alone,
        # in 7 calls instead of 7 per level (and as many backward ones).
        gap = self.cls_out.conv.kernel_size[0] // 2
        x = torch.cat([t for lvl in levels for t in (lvl, lvl.new_zeros(*lvl.shape[:2], gap))], dim=2)
        m = torch.cat([t for lm in masks for t in (lm, lm.new_zeros(lm.shape[0], gap))], dim=1)
        keep = torch.cat([t for lm in masks for t in (torch.ones_like(lm), lm.new_zeros(lm.shape[0], gap))], dim=1)
        sizes = [n for lm in masks for n in (lm.shape[1], gap)]
        cls, _ = self.cls_out(self.cls_trunk(x, m, keep), m)
        reg = self.reg_trunk(x, m, keep)
        offsets, _ = self.reg_out(reg, m)
        quality = self.quality_out(reg, m)[0] if self.quality_out is not None else None
        per_level = lambda y: y.split(sizes, dim=2)[::2]  # noqa: E731  (B, K, T_l) per level
        for lvl, (c, o) in enumerate(zip(per_level(cls), per_level(offsets))):
            out["cls_logits"].append(c.transpose(1, 2))                                   # (B, T_l, C)
            out["offsets"].append(F.relu(o * self.reg_scale[lvl]).transpose(1, 2))        # (B, T_l, 2)
        if quality is not None:
            out["quality_logits"] = [q.transpose(1, 2) for q in per_level(quality)]       # (B, T_l, Q)
        return out


def make_points(level_lengths, strides, regression_range, device=None):
    """Per level a (T_l, 4) tensor: grid position, regression range lo/hi, stride (full-resolution units)."""
    points = []
    for length, stride, (lo, hi) in zip(level_lengths, strides, regression_range):
        pos = torch.arange(length, device=device, dtype=torch.float32) * stride
        rest = torch.tensor([lo, hi, stride], device=device, dtype=torch.float32).expand(length, 3)
        points.append(torch.cat([pos[:, None], rest], dim=1))
    return points


def build_model(cfg, num_classes):
    return Detector(cfg["dataset"]["feature_dim"], num_classes, cfg["model"])
