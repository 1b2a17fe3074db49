"""Tests for common/nms.py: a slow reference, hand-worked cases, score voting and a CPU timing."""
import math
import time

import pytest
import torch

from common.nms import batched_nms, score_voting, segment_iou_matrix, soft_nms


# ---------------------------------------------------------------------------------------------
# The reference: one class at a time, one pick at a time, the whole run (no per-class cap), then
# the top max_segments of the video. Plain Python floats (doubles).

def ref_tiou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(0.0, a[1] - a[0]) + max(0.0, b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def ref_soft_nms(segments, scores, labels, sigma, min_score, max_segments, class_agnostic):
    """Returns [(input index, decayed score)] sorted by score desc, ties by lower index."""
    groups = {}
    for i, label in enumerate(labels):
        groups.setdefault(0 if class_agnostic else label, []).append(i)
    kept = []
    for members in groups.values():
        pool = {i: scores[i] for i in members if scores[i] >= min_score}
        while pool:
            best = max(pool, key=lambda j: (pool[j], -j))  # highest score, lowest index on ties
            kept.append((best, pool.pop(best)))
            for j in list(pool):
                pool[j] *= math.exp(-ref_tiou(segments[best], segments[j]) ** 2 / sigma)
                if pool[j] < min_score:
                    del pool[j]
    kept.sort(key=lambda p: (-p[1], p[0]))
    return kept[:max_segments]


def random_video(gen, n, n_classes):
    centres = torch.rand(n, generator=gen, dtype=torch.float64) * 100
    lengths = torch.rand(n, generator=gen, dtype=torch.float64) * 20
    lengths[torch.rand(n, generator=gen) < 0.02] = 0.0  # a few zero-length segments
    segments = torch.stack([centres - lengths / 2, centres + lengths / 2], dim=1)  # (n, 2)
    scores = torch.rand(n, generator=gen, dtype=torch.float64)  # continuous: no ties
    class_ids = torch.tensor([3, 7, 11, 12, 20])[:n_classes]  # labels need not be 0..C-1
    labels = class_ids[torch.randint(n_classes, (n,), generator=gen)]
    return segments, scores, labels


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_soft_nms_matches_reference_on_random_videos(class_agnostic):
    gen = torch.Generator().manual_seed(0 if class_agnostic else 1)
    for trial in range(40):
        n = [0, 1, 2, 7, 30, 120, 300][trial % 7]
        n_classes = 1 + trial % 5
        sigma = [0.3, 0.5, 0.75][trial % 3]
        min_score = [1e-3, 0.05][trial % 2]
        max_segments = [1, 5, 50, 200][trial % 4]
        segments, scores, labels = random_video(gen, n, n_classes)

        out_segs, out_scores, out_labels, out_idx = soft_nms(
            segments, scores, labels, sigma, min_score, max_segments, class_agnostic)
        expected = ref_soft_nms(segments.tolist(), scores.tolist(), labels.tolist(),
                                sigma, min_score, max_segments, class_agnostic)

        assert out_idx.tolist() == [i for i, _ in expected], f"trial {trial}"
        assert torch.allclose(out_scores, torch.tensor([s for _, s in expected], dtype=torch.float64),
                              rtol=0, atol=1e-6)
        assert torch.equal(out_labels, labels[out_idx])
        assert torch.equal(out_segs, segments[out_idx])


# ---------------------------------------------------------------------------------------------
# tIoU

def test_segment_iou_matrix_invariants():
    a = torch.tensor([[0.0, 2.0], [5.0, 5.0], [3.0, 1.0]])  # normal, zero-length, reversed
    b = torch.tensor([[0.0, 2.0], [1.0, 3.0], [2.0, 4.0], [5.0, 5.0], [10.0, 11.0]])
    iou = segment_iou_matrix(a, b)  # (3, 5)
    # [0,2] vs itself 1; vs [1,3]: inter 1 / union 3; touching [2,4]: 0; empty and disjoint: 0
    assert torch.allclose(iou[0], torch.tensor([1.0, 1 / 3, 0.0, 0.0, 0.0]))
    assert torch.all(iou[1:] == 0)  # zero-length or reversed: 0, never NaN
    assert torch.allclose(segment_iou_matrix(b, a), iou.T)


# ---------------------------------------------------------------------------------------------
# Hand-worked Soft-NMS cases (sigma 0.5)

def nms(segments, scores, labels, **kw):
    return soft_nms(torch.tensor(segments, dtype=torch.float64),
                    torch.tensor(scores, dtype=torch.float64), torch.tensor(labels), **kw)


def test_identical_segments_decay_by_exp_minus_one_over_sigma():
    _, scores, _, idx = nms([[0.0, 1.0], [0.0, 1.0]], [0.9, 0.8], [0, 0])
    # tIoU 1: 0.8 * exp(-1 / 0.5) = 0.8 * 0.1353352832 = 0.1082682266
    assert idx.tolist() == [0, 1]
    assert scores.tolist() == pytest.approx([0.9, 0.1082682266], abs=1e-9)


def test_partial_overlap_decay():
    _, scores, _, _ = nms([[0.0, 2.0], [1.0, 3.0]], [0.9, 0.8], [0, 0])
    # tIoU 1/3: 0.8 * exp(-(1/9) / 0.5) = 0.8 * 0.8007374029 = 0.6405899223
    assert scores.tolist() == pytest.approx([0.9, 0.6405899223], abs=1e-9)


def test_disjoint_segments_unchanged():
    _, scores, _, idx = nms([[0.0, 1.0], [1.0, 2.0], [5.0, 9.0]], [0.5, 0.7, 0.6], [0, 0, 0])
    assert idx.tolist() == [1, 2, 0]
    assert scores.tolist() == [0.7, 0.6, 0.5]


def test_classes_suppress_each_other_only_when_class_agnostic():
    args = ([[0.0, 1.0], [0.0, 1.0]], [0.9, 0.8], [0, 1])
    _, scores, labels, _ = nms(*args)
    assert scores.tolist() == [0.9, 0.8] and labels.tolist() == [0, 1]
    _, scores, labels, _ = nms(*args, class_agnostic=True)
    assert scores.tolist() == pytest.approx([0.9, 0.1082682266], abs=1e-9)
    assert labels.tolist() == [0, 1]  # labels are kept, only the suppression is shared


def test_max_segments_cap_across_classes():
    segs = [[float(i), i + 0.5] for i in range(6)]  # disjoint: no decay
    _, scores, labels, idx = nms(segs, [0.1, 0.6, 0.3, 0.5, 0.4, 0.2], [0, 1, 0, 1, 2, 2],
                                 max_segments=3)
    assert idx.tolist() == [1, 3, 4]
    assert labels.tolist() == [1, 1, 2]


def test_min_score_drops_decayed_and_low_segments():
    # 0.005 * exp(-2) = 0.00068 < 1e-3: dropped; 0.0005 starts below min_score: never kept
    _, scores, _, idx = nms([[0.0, 1.0], [0.0, 1.0], [4.0, 5.0]], [0.9, 0.005, 0.0005], [0, 0, 0],
                            min_score=1e-3)
    assert idx.tolist() == [0]


def test_ties_go_to_the_lower_index():
    _, scores, _, idx = nms([[5.0, 6.0], [0.0, 1.0], [0.0, 1.0]], [0.5, 0.5, 0.5], [0, 0, 0])
    # index 0 first (disjoint from the rest); then 1 is picked before its twin 2 decays
    assert idx.tolist() == [0, 1, 2]
    assert scores[2].item() == pytest.approx(0.5 * math.exp(-2))


def test_empty_input():
    segs, scores, labels, idx = soft_nms(torch.zeros(0, 2), torch.zeros(0),
                                         torch.zeros(0, dtype=torch.long))
    assert segs.shape == (0, 2) and scores.shape == (0,) and labels.shape == (0,)
    assert idx.dtype == torch.long and idx.numel() == 0


def test_float32_inputs_keep_their_dtype():
    gen = torch.Generator().manual_seed(5)
    segments, scores, labels = random_video(gen, 50, 3)
    out = soft_nms(segments.float(), scores.float(), labels)
    assert out[0].dtype == torch.float32 and out[1].dtype == torch.float32
    assert out[2].dtype == labels.dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(6)
    segments, scores, labels = random_video(gen, 300, 5)
    cpu = soft_nms(segments, scores, labels)
    gpu = soft_nms(segments.cuda(), scores.cuda(), labels.cuda())
    assert gpu[1].is_cuda and torch.equal(gpu[3].cpu(), cpu[3])
    assert torch.allclose(gpu[1].cpu(), cpu[1], rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Score voting

def test_score_voting_hand_worked():
    kept = torch.tensor([[0.0, 10.0]], dtype=torch.float64)
    segments = torch.tensor([[0.0, 10.0], [1.0, 10.0], [0.0, 12.0], [20.0, 30.0]],
                            dtype=torch.float64)
    scores = torch.tensor([0.9, 0.6, 0.3, 0.5], dtype=torch.float64)
    # tIoU with [0,10]: 1, 0.9, 10/12, 0. Threshold 0.85 keeps the first two,
    # weights score x tIoU: 0.9 and 0.54 (sum 1.44):
    # start = (0 * 0.9 + 1 * 0.54) / 1.44 = 0.375, end = 10
    voted = score_voting(kept, torch.tensor([0.9]), segments, scores, iou_threshold=0.85)
    assert voted[0].tolist() == pytest.approx([0.375, 10.0])
    # threshold 0.8 adds [0,12] with weight 0.3 x 10/12 = 0.25 (sum 1.69):
    # start = 0.54 / 1.69 = 0.3195266, end = (9 + 5.4 + 3) / 1.69 = 10.2958580
    voted = score_voting(kept, torch.tensor([0.9]), segments, scores, iou_threshold=0.8)
    assert voted[0].tolist() == pytest.approx([0.3195266, 10.2958580])


def test_score_voting_without_neighbours_keeps_the_segment():
    kept = torch.tensor([[3.0, 3.0]])  # zero-length: overlaps nothing
    voted = score_voting(kept, torch.tensor([0.5]), torch.tensor([[3.0, 3.0]]), torch.tensor([0.5]))
    assert voted.tolist() == [[3.0, 3.0]]


def test_batched_nms_applies_voting_when_asked():
    gen = torch.Generator().manual_seed(7)
    segments, scores, labels = random_video(gen, 100, 1)
    cfg = {"sigma": 0.75, "min_score": 1e-3, "max_segments": 100, "class_agnostic": True,
           "voting": True, "voting_iou": 0.9}
    segs, out_scores, out_labels, idx = batched_nms(segments, scores, labels, cfg)
    plain = soft_nms(segments, scores, labels, 0.75, 1e-3, 100, class_agnostic=True)
    assert torch.equal(idx, plain[3]) and torch.equal(out_scores, plain[1])
    assert torch.allclose(segs, score_voting(plain[0], plain[1], segments, scores, 0.9))
    with pytest.raises(ValueError):
        batched_nms(segments, scores, labels, {**cfg, "class_agnostic": False})


# ---------------------------------------------------------------------------------------------
# Timing (printed, not asserted): run with `pytest -s -k timing` to see it

def test_timing_10k_segments_20_classes():
    gen = torch.Generator().manual_seed(8)
    centres = torch.rand(10_000, generator=gen) * 1000
    lengths = torch.rand(10_000, generator=gen) * 50
    segments = torch.stack([centres - lengths / 2, centres + lengths / 2], dim=1)
    scores = torch.rand(10_000, generator=gen)
    labels = torch.randint(20, (10_000,), generator=gen)
    threads = torch.get_num_threads()
    # one thread: the tensors are small, and a busy shared machine makes more threads erratic
    torch.set_num_threads(1)
    try:
        soft_nms(segments, scores, labels)  # warm-up
        times = []
        for _ in range(5):
            start = time.perf_counter()
            out = soft_nms(segments, scores, labels, sigma=0.5, min_score=1e-3, max_segments=200)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert out[3].numel() == 200
    print(f"\nsoft_nms, 10k segments, 20 classes, max 200, CPU, 1 thread: "
          f"median {sorted(times)[2] * 1e3:.1f} ms over 5 runs")
