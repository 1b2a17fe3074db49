"""The detector's blocks: local attention against a naive banded reference, masking, output shapes."""
import math

import pytest
import torch

from common.config import load_config
from common.model import LocalSelfAttention, build_model, make_points


def _naive_local_attention(attn, x, mask):
    """Full attention with a band mask |i - j| <= window // 2 over valid keys, one query at a time."""
    q, k, v, kv_mask, out_mask = attn.project(x, mask)  # the projections are shared; the attention is not
    b, h, t, d = q.shape
    out = torch.zeros_like(q)
    for bi in range(b):
        for i in range(t):
            keys = [j for j in range(t) if abs(i - j) <= attn.half and kv_mask[bi, j]]
            if not keys:
                continue
            s = (q[bi, :, i, None, :] * k[bi, :, keys, :]).sum(-1) / math.sqrt(d)  # (H, K)
            out[bi, :, i] = (torch.softmax(s, -1)[..., None] * v[bi, :, keys]).sum(1)
    out = attn.out_proj(out.transpose(2, 3).reshape(b, h * d, t))
    return out * out_mask[:, None]


@pytest.mark.parametrize("stride", [1, 2])
def test_local_attention_matches_banded_reference(stride):
    torch.manual_seed(0)
    attn = LocalSelfAttention(16, 4, window=5, stride=stride).eval()
    x = torch.randn(2, 16, 24)
    mask = torch.ones(2, 24, dtype=torch.bool)
    mask[1, 17:] = False
    got, _ = attn(x * mask[:, None], mask)
    ref = _naive_local_attention(attn, x * mask[:, None], mask)
    assert torch.allclose(got, ref, atol=1e-5)


def _tiny_cfg(alqa="tiou_tnd"):
    return load_config(None, ["model.embd_dim=32", "model.head_dim=32", "model.n_head=2",
                              "dataset.feature_dim=8", f"model.alqa={alqa}"])


@pytest.mark.parametrize("alqa,q", [("none", 0), ("tiou", 1), ("diou", 1), ("tiou_tnd", 2)])
def test_output_shapes_per_alqa_mode(alqa, q):
    model = build_model(_tiny_cfg(alqa), num_classes=3).eval()
    out = model(torch.randn(2, 8, 64), torch.ones(2, 64, dtype=torch.bool))
    assert [o.shape[1] for o in out["cls_logits"]] == [64, 32, 16, 8, 4, 2]
    assert out["cls_logits"][0].shape == (2, 64, 3) and out["offsets"][0].shape == (2, 64, 2)
    assert len(out["quality_logits"]) == (6 if q else 0)
    if q:
        assert out["quality_logits"][0].shape == (2, 64, q)
    assert all((o >= 0).all() for o in out["offsets"])  # distances to boundaries are non-negative


@pytest.mark.parametrize("kernel", [3, 5])
def test_heads_over_the_levels_at_once_equal_level_by_level(kernel):
    # forward runs the shared heads once over the levels laid end to end (with gaps); a level
    # alone through the same modules must give the same numbers, padding included.
    torch.manual_seed(0)
    cfg = _tiny_cfg()
    cfg["model"]["head_kernel_size"] = kernel
    model = build_model(cfg, num_classes=3).eval()
    mask = torch.ones(2, 64, dtype=torch.bool)
    mask[1, 37:] = False
    with torch.no_grad():
        for p in model.parameters():  # break the zero starts, so every path carries numbers
            p.add_(0.1 * torch.randn_like(p))
        out = model(torch.randn(2, 8, 64), mask)
        for lvl, (x, m) in enumerate(zip(out["feats"], out["masks"])):
            cls, _ = model.cls_out(model.cls_trunk(x, m), m)
            reg = model.reg_trunk(x, m)
            off, _ = model.reg_out(reg, m)
            q, _ = model.quality_out(reg, m)
            assert torch.allclose(out["cls_logits"][lvl], cls.transpose(1, 2), atol=1e-5)
            assert torch.allclose(out["offsets"][lvl], torch.relu(off * model.reg_scale[lvl]).transpose(1, 2), atol=1e-5)
            assert torch.allclose(out["quality_logits"][lvl], q.transpose(1, 2), atol=1e-5)


def test_padding_content_never_leaks():
    torch.manual_seed(0)
    model = build_model(_tiny_cfg(), num_classes=3).eval()
    x = torch.randn(1, 8, 64)
    mask = torch.ones(1, 64, dtype=torch.bool)
    mask[0, 40:] = False
    noisy = x.clone()
    noisy[0, :, 40:] = 100.0
    a, b = model(x, mask), model(noisy, mask)
    for la, lb in zip(a["cls_logits"] + a["offsets"], b["cls_logits"] + b["offsets"]):
        assert torch.equal(la, lb)


def test_classification_starts_at_the_prior():
    model = build_model(_tiny_cfg(), num_classes=3).eval()
    out = model(torch.zeros(1, 8, 32), torch.ones(1, 32, dtype=torch.bool))
    assert torch.sigmoid(out["cls_logits"][0]).mean().item() == pytest.approx(0.01, abs=1e-3)


def test_points_positions_ranges_strides():
    pts = make_points([4, 2], [1, 2], [[0, 4], [4, 8]])
    assert pts[0][:, 0].tolist() == [0, 1, 2, 3] and pts[1][:, 0].tolist() == [0, 2]
    assert pts[1][0, 1:].tolist() == [4, 8, 2]


def test_detector_and_icd_gradients_are_clipped_apart():
    from common.engine import clip_gradients

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(2, 1, bias=False)
            self.icd = torch.nn.Linear(2, 1, bias=False)

    toy = Toy()
    toy.head.weight.grad = torch.tensor([[3.0, 4.0]])   # norm 5: clipped to norm 1
    toy.icd.weight.grad = torch.tensor([[0.3, 0.4]])    # norm 0.5: left alone (together: norm 5.02)
    clip_gradients(toy, 1.0)
    assert torch.allclose(toy.head.weight.grad, torch.tensor([[0.6, 0.8]]))
    assert torch.allclose(toy.icd.weight.grad, torch.tensor([[0.3, 0.4]]))
    # the detector's discriminator is the one under "icd."
    names = [n for n, _ in build_model(_tiny_cfg(), num_classes=3).named_parameters()]
    assert any(n.startswith("icd.") for n in names) and not any(".icd." in n for n in names)
