"""BMN (common/bmn.py): the BM layer against a slow per-point reference, labels and losses against
values worked out by hand, inference on hand cases, Soft-NMS against a slow reference."""
import math

import pytest
import torch

from common.bmn import (BMN, CLS, REG, balanced_bce, batch_targets, bm_feature_bytes, bm_sampling_weights,
                        bm_weight_bytes, bmn_loss, bmn_soft_nms, bmn_targets, boundary_candidates,
                        candidate_proposals, decode_proposals, fuse_scores, pem_cls_loss, pem_reg_loss,
                        pem_reg_weights, proposal_mask, tem_loss)
from common.nms import soft_nms


def _tiny_bmn(T=8, D=6, N=4, K=3, ratio=0.5):
    torch.manual_seed(0)
    return BMN(8, T, D, N, K, ratio, hidden_1d=16, hidden_3d=32, hidden_2d=8).eval()


# ---------------------------------------------------------------- the BM layer

def _slow_bm(x, T, D, N, K, ratio):
    """Proposal by proposal, point by point: the N K points evenly spaced over the extended region
    [t - r (d + 1), t + d + r (d + 1)], each read by linear interpolation (the tent kernel, zero
    outside [0, T - 1]), the K points of a bin averaged."""
    B, C, _ = x.shape
    out = torch.zeros(B, C, N, D, T, dtype=torch.float64)
    for d in range(D):
        for t in range(T - d):  # proposals that end inside the video
            lo, hi = t - ratio * (d + 1), t + d + ratio * (d + 1)
            points = [lo + (hi - lo) * j / (N * K - 1) for j in range(N * K)]
            for n in range(N):
                for p in points[n * K:(n + 1) * K]:
                    for i in range(T):
                        w = max(0.0, 1.0 - abs(p - i))
                        if w > 0:
                            out[:, :, n, d, t] += w / K * x[:, :, i].double()
    return out


@pytest.mark.parametrize("T,D,N,K,ratio", [(8, 8, 4, 3, 0.5), (9, 5, 3, 2, 0.25)])
def test_bm_layer_matches_slow_reference(T, D, N, K, ratio):
    model = _tiny_bmn(T, D, N, K, ratio)
    x = torch.randn(2, 8, T)
    got = model.boundary_matching(x)
    assert got.shape == (2, 8, N, D, T)
    assert torch.allclose(got.double(), _slow_bm(x, T, D, N, K, ratio), atol=1e-5)


def test_bm_sampling_weights_by_hand():
    # T = 8, N = 1, K = 3, r = 0.5. Proposal (d=0, t=0) covers snippet 0; its region [-0.5, 0.5]
    # holds the points -0.5, 0, 0.5: step 0 gets (0.5 + 1 + 0.5) / 3 = 2/3, step 1 gets 0.5 / 3 = 1/6
    # (the half of -0.5 that falls on step -1 is lost). Proposal (0, 3): points 2.5, 3, 3.5.
    w = bm_sampling_weights(8, 1, 1, 3, 0.5)                          # (T, N, D, T)
    assert w[:, 0, 0, 0].tolist() == pytest.approx([2 / 3, 1 / 6, 0, 0, 0, 0, 0, 0])
    assert w[:, 0, 0, 3].tolist() == pytest.approx([0, 0, 1 / 6, 2 / 3, 1 / 6, 0, 0, 0])
    # N = 2, K = 1: proposal (d=1, t=2) covers snippets 2..3, length 2, region [2 - 1, 3 + 1] = [1, 4];
    # its 2 points are the ends: one-hot on steps 1 and 4.
    w = bm_sampling_weights(8, 2, 2, 1, 0.5)
    assert w[:, 0, 1, 2].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert w[:, 1, 1, 2].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]


def test_3d_conv_computed_as_a_2d_conv_is_the_conv3d():
    model = _tiny_bmn()
    bm = torch.randn(2, 8, 4, 6, 8)                                    # (B, C, N, D, T)
    ref = torch.relu(model.pem_3d(bm)).squeeze(2)                     # the published Conv3d + ReLU
    assert torch.allclose(model.proposal_features(bm), ref, atol=1e-6)


def test_invalid_proposals_never_leak():
    # proposal (d, t) exists when t + d < T: no weight, no BM feature, zero confidence elsewhere
    T, D = 8, 6
    valid = proposal_mask(T, D)
    assert valid.sum() == sum(min(D, T - t) for t in range(T))
    assert not valid[5, 3] and valid[5, 2] and valid[0, 7]
    w = bm_sampling_weights(T, D, 4, 3)
    assert (w[:, :, ~valid] == 0).all() and (w.sum(dim=(0, 1))[valid] > 0).all()
    model = _tiny_bmn(T, D)
    x = torch.randn(3, 8, T)
    with torch.no_grad():
        assert (model.boundary_matching(model.pem_1d(model.base(x)))[..., ~valid] == 0).all()
        conf = model(x)["confidence"]
    assert (conf[:, :, ~valid] == 0).all() and (conf[:, :, valid] > 0).all()


def test_output_shapes_and_published_widths():
    out = _tiny_bmn()(torch.randn(2, 8, 8))
    assert out["start"].shape == (2, 8) and out["end"].shape == (2, 8)
    assert out["confidence"].shape == (2, 2, 6, 8)
    for v in out.values():
        assert ((v >= 0) & (v <= 1)).all()
    # default widths: base / TEM 256 (groups 4), PEM 1-D 128, 3-D conv 512 over the N = 32 points, 2-D 128
    model = BMN(400, 16, 16)
    assert model.base[0].weight.shape == (256, 100, 3)
    assert model.pem_1d[0].weight.shape == (128, 256, 3)
    assert model.pem_3d.weight.shape == (512, 128, 32, 1, 1)
    assert model.pem_2d[-1].weight.shape == (2, 128, 1, 1)


def test_checkpoint_holds_no_fixed_tensors():
    model = _tiny_bmn()
    state = model.state_dict()
    assert "sample_weights" not in state and "valid" not in state
    _tiny_bmn().load_state_dict(state, strict=True)


def test_memory_functions_match_tensors():
    model = _tiny_bmn(T=8, D=6, N=4)
    w = model.sample_weights
    assert w.numel() * w.element_size() == bm_weight_bytes(8, 6, 4) == 8 * 4 * 6 * 8 * 4
    feats = model.boundary_matching(torch.randn(3, 8, 8))
    assert feats.numel() * feats.element_size() == bm_feature_bytes(3, 8, 8, 6, 4)
    # the published size: T = D = 100, N = 32, float32: 128 MB, quadratic in T
    w = bm_sampling_weights(100, 100, 32, 3)
    assert w.numel() * w.element_size() == bm_weight_bytes(100, 100, 32) == 128_000_000
    assert bm_weight_bytes(200, 200, 32) == 8 * bm_weight_bytes(100, 100, 32)


# ---------------------------------------------------------------- labels

def test_targets_single_ground_truth_by_hand():
    # T = 8, one action [0.25, 0.625] = snippets [2, 5) in grid units. Proposal (d, t) = [t, t + d + 1].
    tg = bmn_targets(torch.tensor([[0.25, 0.625]]), 8, 6)
    expected = [
        [0, 0, 1 / 3, 1 / 3, 1 / 3, 0, 0, 0],          # d = 0: [2, 3] has 1 of the 3 -> 1/3
        [0, 1 / 4, 2 / 3, 2 / 3, 1 / 4, 0, 0, 0],      # d = 1: [1, 3] -> 1 / 4, [2, 4] -> 2 / 3
        [1 / 5, 1 / 2, 1, 1 / 2, 1 / 5, 0, 0, 0],      # d = 2: [2, 5] is the action
        [2 / 5, 3 / 4, 3 / 4, 2 / 5, 1 / 6, 0, 0, 0],  # d = 3: [1, 5] -> 3 / 4; (3, 5) ends past 8
        [3 / 5, 3 / 5, 3 / 5, 1 / 3, 0, 0, 0, 0],      # d = 4: [0, 5] -> 3 / 5, [3, 8] -> 2 / 6
        [1 / 2, 1 / 2, 1 / 2, 0, 0, 0, 0, 0],          # d = 5: [0, 6] -> 3 / 6
    ]
    assert tg["iou_map"].shape == (6, 8)
    assert torch.allclose(tg["iou_map"], torch.tensor(expected), atol=1e-6)
    # start region [2 - 1.5, 2 + 1.5] = [0.5, 3.5]: snippet 0 is half in it, 1 and 2 fully, 3 half
    assert tg["start"].tolist() == [0.5, 1, 1, 0.5, 0, 0, 0, 0]
    # end region [3.5, 6.5]
    assert tg["end"].tolist() == [0, 0, 0, 0.5, 1, 1, 0.5, 0]


def test_iou_map_is_the_max_over_ground_truths():
    segs = torch.tensor([[0.1, 0.3], [0.45, 0.9]])
    T, D = 10, 10
    iou = bmn_targets(segs, T, D)["iou_map"]
    for d in range(D):
        for t in range(T):
            lo, hi = t / T, (t + d + 1) / T
            best = 0.0
            for s, e in segs.tolist():
                inter = max(0.0, min(hi, e) - max(lo, s))
                best = max(best, inter / ((hi - lo) + (e - s) - inter))
            assert iou[d, t].item() == pytest.approx(best if t + d < T else 0.0, abs=1e-6)


def test_targets_of_a_video_without_actions_and_batching():
    tg = bmn_targets(torch.zeros(0, 2), 8, 4)
    assert all((v == 0).all() for v in tg.values()) and tg["iou_map"].shape == (4, 8)
    batch = batch_targets([torch.tensor([[0.25, 0.625]]), torch.zeros(0, 2)], 8, 6)
    assert batch["iou_map"].shape == (2, 6, 8) and batch["start"].shape == (2, 8)
    assert batch["start"][0].tolist() == [0.5, 1, 1, 0.5, 0, 0, 0, 0]


# ---------------------------------------------------------------- losses

def test_balanced_bce_by_hand_and_the_published_coefficients():
    p = torch.tensor([0.8, 0.1, 0.3, 0.6, 0.2])
    pos = torch.tensor([True, False, False, False, False])
    # half the mean BCE of the positive, half that of the 4 negatives:
    # 0.5 * -ln 0.8 + 0.5 * (-ln 0.9 - ln 0.7 - ln 0.4 - ln 0.8) / 4 = 0.111572 + 0.200184 = 0.311756
    got = balanced_bce(p, pos, ~pos).item()
    assert got == pytest.approx(0.311756, abs=1e-5)
    # the published form: ratio r = 5 / 1, a+ = 0.5 r = 2.5, a- = 0.5 r / (r - 1) = 0.625, mean over 5
    published = -(2.5 * math.log(0.8) + 0.625 * sum(math.log(1 - q) for q in [0.1, 0.3, 0.6, 0.2])) / 5
    assert got == pytest.approx(published, rel=1e-5)


def test_tem_loss_by_hand():
    # start: labels 1, 0.6 (> 0.5: positive), 0, 0.2 -> 0.25 * (-ln .8 - ln .4 - ln .9 - ln .7) = 0.400367
    # end: every probability 0.5 -> ln 2 on both sides = 0.693147
    start, gt_start = torch.tensor([[0.8, 0.4, 0.1, 0.3]]), torch.tensor([[1.0, 0.6, 0.0, 0.2]])
    end, gt_end = torch.full((1, 4), 0.5), torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    assert tem_loss(start, end, gt_start, gt_end).item() == pytest.approx(0.400367 + 0.693147, abs=1e-5)


# a (1, D=2, T=3) map: (d=1, t=2) ends past the video and is left out, whatever its values
VALID = proposal_mask(3, 2)


def test_pem_cls_loss_by_hand():
    gt = torch.tensor([[[0.95, 0.5, 0.0], [0.92, 0.3, 0.99]]])
    cls = torch.tensor([[[0.9, 0.2, 0.1], [0.6, 0.5, 0.999]]])
    # positives (IoU > 0.9): 0.9, 0.6 -> (-ln .9 - ln .6) / 2 = 0.308093
    # negatives: 0.2, 0.1, 0.5 -> (-ln .8 - ln .9 + ln 2) / 3 = 0.340551; loss = half the sum = 0.324322
    assert pem_cls_loss(cls, gt, VALID).item() == pytest.approx(0.324322, abs=1e-5)


def test_pem_reg_loss_by_hand():
    # high (> 0.7): 0.95, 0.8; medium: 0.5 (kept with probability 2 / 1); low: 0.0, 0.2 (2 / 2): all 5
    # kept. Squared errors 0.01, 0.04, 0.01, 0.04, 0 -> 0.5 * 0.1 / 5 = 0.01
    gt = torch.tensor([[[0.95, 0.5, 0.0], [0.2, 0.8, 0.99]]])
    reg = torch.tensor([[[0.85, 0.3, 0.1], [0.4, 0.8, 0.0]]])
    gen = torch.Generator().manual_seed(0)
    assert pem_reg_weights(gt, VALID, gen).tolist() == [[[1, 1, 1], [1, 1, 0]]]
    assert pem_reg_loss(reg, gt, VALID, gen).item() == pytest.approx(0.01, abs=1e-6)
    # no high-IoU proposal: nothing is sampled and the loss is 0 (the published code gives NaN)
    assert pem_reg_loss(reg, gt * 0.5, VALID, gen).item() == 0.0


def test_pem_reg_sampling_is_balanced_and_deterministic():
    T = 100
    valid = proposal_mask(T, T)
    gt = torch.zeros(1, T, T)
    cells = torch.nonzero(valid)                                       # 5050 valid proposals
    values = torch.cat([torch.full((50,), 0.8), torch.full((1000,), 0.5), torch.full((4000,), 0.1)])
    gt[0, cells[:, 0], cells[:, 1]] = values
    w = pem_reg_weights(gt, valid, torch.Generator().manual_seed(1))
    assert torch.equal(w, pem_reg_weights(gt, valid, torch.Generator().manual_seed(1)))
    assert not torch.equal(w, pem_reg_weights(gt, valid, torch.Generator().manual_seed(2)))
    assert (w[gt > 0.7] == 1).all() and (w[0][~valid] == 0).all()
    # 1:1:1 on average: about 50 of the 1000 medium and 50 of the 4000 low (std about 7)
    assert 25 <= w[gt == 0.5].sum() <= 75 and 25 <= w[gt == 0.1].sum() <= 75


def test_bmn_loss_weights_and_no_gradient_from_missing_proposals():
    torch.manual_seed(0)
    T, D = 8, 6
    valid = proposal_mask(T, D)
    outputs = {"start": torch.rand(2, T, requires_grad=True), "end": torch.rand(2, T, requires_grad=True),
               "confidence": torch.rand(2, 2, D, T, requires_grad=True)}
    targets = batch_targets([torch.tensor([[0.25, 0.625]]), torch.tensor([[0.0, 0.7]])], T, D)
    parts = bmn_loss(outputs, targets, valid, torch.Generator().manual_seed(0))
    # L = L_TEM + 10 L_R + L_C, as the released code weighs them
    assert parts["loss"].item() == pytest.approx(
        parts["tem_loss"].item() + 10 * parts["pem_reg_loss"].item() + parts["pem_cls_loss"].item(), rel=1e-6)
    parts["loss"].backward()
    grad = outputs["confidence"].grad
    assert (grad[:, :, ~valid] == 0).all() and (grad[:, CLS][:, valid] != 0).all()


# ---------------------------------------------------------------- inference

def test_boundary_candidates_by_hand():
    # max 0.9: above 0.45 are 0.9, 0.5, 0.6; peaks are 0.3 (index 1), 0.9, 0.6
    prob = torch.tensor([0.1, 0.3, 0.2, 0.25, 0.9, 0.5, 0.6, 0.1])
    assert boundary_candidates(prob).tolist() == [False, True, False, False, True, True, True, False]
    # beyond the ends counts as 0: the last 0.3 is a peak though below half the maximum
    assert boundary_candidates(torch.tensor([0.9, 0.1, 0.2, 0.3])).tolist() == [True, False, False, True]
    # both tests are strict: exactly half the maximum, or a plateau, is no candidate
    assert boundary_candidates(torch.tensor([0.8, 0.4, 0.4, 0.1])).tolist() == [True, False, False, False]


def test_candidate_proposals_and_score_fusion_by_hand():
    # starts: 0 (peak, and always) and 2 (peak); ends: 1 (peak) and 3 (peak, and always).
    # pairs inside the video: (0, 1) d = 1, (2, 3) d = 1, (0, 3) d = 3; (2, 1) ends before it starts.
    start = torch.tensor([0.9, 0.1, 0.2, 0.1])
    end = torch.tensor([0.1, 0.2, 0.1, 0.8])
    conf = torch.zeros(2, 4, 4)
    conf[CLS] = 0.8
    conf[REG, 1, 0], conf[REG, 1, 2], conf[REG, 3, 0] = 0.5, 0.25, 0.4
    segments, scores = candidate_proposals(start, end, conf)
    assert segments.tolist() == [[0.0, 0.5], [0.5, 1.0], [0.0, 1.0]]  # (duration, start) order
    # .9 * .2 * .8 * .5, .2 * .8 * .8 * .25, .9 * .8 * .8 * .4
    assert scores.tolist() == pytest.approx([0.072, 0.032, 0.2304])
    assert fuse_scores(0.9, 0.2, 0.8, 0.5) == pytest.approx(0.072)
    # D = 2: the proposal of 4 snippets is not on the map
    segments, _ = candidate_proposals(start, end, conf[:, :2])
    assert segments.tolist() == [[0.0, 0.5], [0.5, 1.0]]


def test_first_start_and_last_end_always_count():
    # starts: 1 and 3 are peaks, 0 is not but always counts; ends: 0 and 2 are peaks, 3 always counts
    start = torch.tensor([0.1, 0.9, 0.1, 0.3])
    end = torch.tensor([0.3, 0.1, 0.9, 0.1])
    segments, _ = candidate_proposals(start, end, torch.ones(2, 4, 4))
    # pairs (start, last snippet), by duration then start: (0, 0) (3, 3) | (1, 2) | (0, 2) (1, 3) | (0, 3)
    assert (segments * 4).tolist() == [[0, 1], [3, 4], [1, 3], [0, 3], [1, 4], [0, 4]]


def test_candidates_never_pass_the_video_end():
    T, D = 8, 8
    flat = torch.full((T,), 0.5)  # every snippet is above half the maximum: every pair is a candidate
    segments, scores = candidate_proposals(flat, flat, torch.ones(2, D, T))
    assert len(segments) == int(proposal_mask(T, D).sum()) == 36
    assert (segments[:, 1] <= 1.0).all() and (segments[:, 0] < segments[:, 1]).all()


def test_bmn_soft_nms_by_hand():
    # pick A [0, .5]; B [0, .4] overlaps it by tIoU .8 > .5 + .4 * .5 (A's length) = .7: decayed to
    # .8 * exp(-.64 / .4) = 0.161517; C [.6, 1] is apart and untouched.
    seg = torch.tensor([[0.0, 0.5], [0.0, 0.4], [0.6, 1.0]])
    kept, scores, idx = bmn_soft_nms(seg, torch.tensor([0.9, 0.8, 0.5]))
    assert idx.tolist() == [0, 2, 1]
    assert scores.tolist() == pytest.approx([0.9, 0.5, 0.8 * math.exp(-1.6)])
    assert torch.equal(kept, seg[[0, 2, 1]])
    # a long pick, [0, 1], only suppresses above tIoU .5 + .4 * 1 = .9: [0, .85] (tIoU .85) stays .8
    _, scores, idx = bmn_soft_nms(torch.tensor([[0.0, 1.0], [0.0, 0.85]]), torch.tensor([0.9, 0.8]))
    assert idx.tolist() == [0, 1] and scores.tolist() == pytest.approx([0.9, 0.8])
    # the threshold is strict: tIoU exactly at it ([0, .25] in [0, .5]: .5) is not decayed
    _, scores, _ = bmn_soft_nms(torch.tensor([[0.0, 0.5], [0.0, 0.25]]), torch.tensor([0.9, 0.8]), 0.4, 0.5, 0.5)
    assert scores.tolist() == pytest.approx([0.9, 0.8])
    # top_k; no candidate at all
    assert bmn_soft_nms(seg, torch.tensor([0.9, 0.8, 0.5]), top_k=2)[2].tolist() == [0, 2]
    assert all(v.numel() == 0 for v in bmn_soft_nms(torch.zeros(0, 2), torch.zeros(0)))


def _slow_bmn_soft_nms(segs, scores, alpha, low, high, top_k):
    """The published loop: pick the best, decay the others above the length-dependent threshold."""
    scores, alive, out = list(scores), list(range(len(scores))), []
    while alive and len(out) < top_k:
        best = max(alive, key=lambda i: (scores[i], -i))
        out.append((best, scores[best]))
        alive.remove(best)
        s0, e0 = segs[best]
        for i in alive:
            s1, e1 = segs[i]
            inter = max(0.0, min(e0, e1) - max(s0, s1))
            union = (e0 - s0) + (e1 - s1) - inter
            iou = inter / union if union > 0 else 0.0
            if iou > low + (high - low) * (e0 - s0):
                scores[i] *= math.exp(-iou * iou / alpha)
    return out


def test_bmn_soft_nms_matches_slow_reference():
    gen = torch.Generator().manual_seed(0)
    start = torch.randint(0, 19, (80,), generator=gen)
    length = torch.randint(1, 12, (80,), generator=gen)
    seg = torch.stack([start, (start + length).clamp(max=20)], 1).double() / 20
    scores = torch.rand(80, generator=gen, dtype=torch.float64)
    ref = _slow_bmn_soft_nms(seg.tolist(), scores.tolist(), 0.4, 0.5, 0.9, 40)
    _, got, idx = bmn_soft_nms(seg, scores, 0.4, 0.5, 0.9, 40)
    assert idx.tolist() == [i for i, _ in ref]
    assert got.tolist() == pytest.approx([s for _, s in ref], rel=1e-9)


def test_without_thresholds_it_is_the_shared_soft_nms():
    # low = high = 0 decays every overlap: common/nms.py's class-agnostic Gaussian Soft-NMS, sigma = alpha
    gen = torch.Generator().manual_seed(1)
    start = torch.rand(50, generator=gen, dtype=torch.float64) * 0.8
    seg = torch.stack([start, start + 0.05 + 0.15 * torch.rand(50, generator=gen, dtype=torch.float64)], 1)
    scores = torch.rand(50, generator=gen, dtype=torch.float64)
    _, got, idx = bmn_soft_nms(seg, scores, 0.4, 0.0, 0.0, 30)
    _, ref, _, ref_idx = soft_nms(seg, scores, torch.zeros(50, dtype=torch.long), sigma=0.4, min_score=0.0,
                                  max_segments=30, class_agnostic=True)
    assert idx.tolist() == ref_idx.tolist()
    assert torch.allclose(got, ref, rtol=1e-9)


def test_decode_proposals_end_to_end():
    model = _tiny_bmn(T=16, D=16)
    with torch.no_grad():
        out = model(torch.randn(1, 8, 16))
    segments, scores = decode_proposals(out["start"][0], out["end"][0], out["confidence"][0], top_k=10)
    assert segments.shape == (10, 2) and (scores[:-1] >= scores[1:]).all()  # best first
    assert ((segments >= 0) & (segments <= 1)).all() and (segments[:, 0] < segments[:, 1]).all()
