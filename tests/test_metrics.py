"""Tests of common/metrics.py: hand-computed cases, tIoU invariants, and a slow reference on random data."""
import random

import numpy as np
import pytest

from common.metrics import average_precision, compute_map, format_map_table, segment_tiou

ANET = np.linspace(0.5, 0.95, 10)  # holds 0.8999999999999999, used as given


def gt_entry(label, start, end):
    return {"label": label, "segment": [start, end]}


def pred_entry(label, score, start, end):
    return {"label": label, "score": score, "segment": [start, end]}


# ---------------------------------------------------------------- segment_tiou


def test_segment_tiou_invariants():
    segs = np.array([[0.0, 10.0], [20.0, 30.0], [10.0, 12.0], [2.0, 4.0], [5.0, 15.0]])
    tiou = segment_tiou([0.0, 10.0], segs)
    # identical 1, disjoint 0, touching 0, contained 2/10, half-overlap 5/15
    np.testing.assert_allclose(tiou, [1.0, 0.0, 0.0, 0.2, 1 / 3])
    for a in segs:  # symmetric
        np.testing.assert_allclose(segment_tiou(a, segs), [segment_tiou(b, a[None])[0] for b in segs])


def test_segment_tiou_degenerate_is_zero_not_nan():
    # The official code divides 0 by 0 here (NaN, which its loop counts as a match).
    assert segment_tiou([3.0, 3.0], [[3.0, 3.0]])[0] == 0.0
    assert segment_tiou([10.0, 0.0], [[0.0, 10.0]])[0] == 0.0


# ---------------------------------------------------------------- hand-computed cases


def test_perfect_predictions_give_one():
    gt = {"v1": [gt_entry("a", 0, 10), gt_entry("b", 20, 30)], "v2": [gt_entry("a", 5, 8)]}
    preds = {v: [pred_entry(g["label"], 0.5, *g["segment"]) for g in items] for v, items in gt.items()}
    gt["v2"][0]["extra"] = "ignored"
    result = compute_map(gt, preds, ANET)
    assert result["mAP"] == [1.0] * 10 and result["average"] == 1.0
    assert result["num_gt"] == {"a": 2, "b": 1} and result["num_predictions"] == 3


def test_duplicate_detection_is_a_false_positive():
    gt = {"v1": [gt_entry("a", 0, 10), gt_entry("a", 20, 30)]}
    preds = {"v1": [pred_entry("a", 0.9, 0, 10), pred_entry("a", 0.8, 1, 10), pred_entry("a", 0.7, 20, 30)]}
    # ranked TP, FP (its GT is taken), TP: precision 1, 1/2, 2/3; recall 1/2, 1/2, 1.
    # Envelope at the recall steps: 1 at recall 1/2, 2/3 at recall 1 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    result = compute_map(gt, preds, [0.5, 0.7])
    np.testing.assert_allclose(result["per_class"]["a"], [5 / 6, 5 / 6])


def test_missed_ground_truth_halves_recall():
    gt = {"v1": [gt_entry("a", 0, 10)], "v2": [gt_entry("a", 0, 10)]}
    preds = {"v1": [pred_entry("a", 0.9, 0, 10)]}
    # precision 1 up to recall 1/2, then the step to recall 1 counts 0 -> AP 1/2.
    assert compute_map(gt, preds, [0.5])["mAP"] == [0.5]


def test_class_without_predictions_scores_zero():
    gt = {"v1": [gt_entry("a", 0, 10), gt_entry("b", 0, 10)]}
    preds = {"v1": [pred_entry("a", 0.9, 0, 10)]}
    result = compute_map(gt, preds, [0.5])
    assert result["per_class"] == {"a": [1.0], "b": [0.0]} and result["mAP"] == [0.5]


def test_class_names_select_and_order_classes():
    gt = {"v1": [gt_entry("a", 0, 10), gt_entry("b", 0, 10)]}
    preds = {"v1": [pred_entry("a", 0.9, 0, 10), pred_entry("b", 0.8, 0, 10)]}
    # "b" first, "a" left out, "nothing" has no ground truth and is skipped.
    result = compute_map(gt, preds, [0.5], class_names=["b", "nothing"])
    assert list(result["per_class"]) == ["b"] and result["num_gt"] == {"b": 1}
    assert result["num_predictions"] == 1 and result["mAP"] == [1.0]


def test_prediction_on_unknown_video_is_a_false_positive():
    gt = {"v1": [gt_entry("a", 0, 10)]}
    preds = {"v9": [pred_entry("a", 0.9, 0, 10)], "v1": [pred_entry("a", 0.8, 0, 10)]}
    # ranked FP, TP: precision 0, 1/2; recall 0, 1 -> AP = 1 * 1/2.
    assert compute_map(gt, preds, [0.5])["mAP"] == [0.5]
    # Same for a known video that has no ground truth of this class.
    gt["v9"] = [gt_entry("b", 0, 10)]
    assert compute_map(gt, preds, [0.5])["per_class"]["a"] == [0.5]


def test_label_absent_from_ground_truth_is_ignored():
    gt = {"v1": [gt_entry("a", 0, 10)]}
    preds = {"v1": [pred_entry("a", 0.8, 0, 10)]}
    base = compute_map(gt, preds, ANET)
    preds["v1"].append(pred_entry("zebra", 0.99, 0, 10))
    result = compute_map(gt, preds, ANET)
    assert result["mAP"] == base["mAP"] == [1.0] * 10
    assert "zebra" not in result["per_class"] and result["num_predictions"] == 1


def test_threshold_equality_matches():
    gt = {"v1": [gt_entry("a", 0, 10)]}
    preds = {"v1": [pred_entry("a", 0.9, 0, 5)]}  # tIoU 5 / 10 = 0.5 exactly
    assert compute_map(gt, preds, [0.5, 0.6])["mAP"] == [1.0, 0.0]


def test_second_best_ground_truth_when_best_is_taken():
    gt = {"v1": [gt_entry("a", 0, 10), gt_entry("a", 4, 14)]}
    preds = {"v1": [pred_entry("a", 0.9, 0, 10), pred_entry("a", 0.8, 1, 11)]}
    # First prediction takes [0, 10] (tIoU 1). Second: tIoU 9/11 with the taken [0, 10], 7/13 ~ 0.538
    # with [4, 14]. At 0.5 it takes [4, 14] -> two TPs, AP 1. At 0.6 it is an FP -> AP 1/2.
    assert compute_map(gt, preds, [0.5, 0.6])["mAP"] == [1.0, 0.5]


def test_tied_scores_keep_input_order():
    gt = [("v1", 0.0, 10.0)]
    miss, hit = ("v1", 50.0, 60.0, 0.5), ("v1", 0.0, 10.0, 0.5)
    # FP then TP: precision 1/2 at recall 1 -> AP 1/2; the other order gives 1.
    np.testing.assert_allclose(average_precision([miss, hit], gt, [0.5]), [0.5])
    np.testing.assert_allclose(average_precision([hit, miss], gt, [0.5]), [1.0])


def test_format_map_table():
    gt = {"v1": [gt_entry("a", 0, 10), gt_entry("long_class", 0, 10)]}
    preds = {"v1": [pred_entry("a", 0.9, 0, 10)]}
    result = compute_map(gt, preds, ANET)
    text = format_map_table(result)
    assert "0.90     50.00" in text and "avg      50.00" in text
    assert "long_class   0.00" in text and "a          100.00" in text
    assert "long_class" not in format_map_table(result, per_class=False)


# ---------------------------------------------------------------- slow reference on random data


def naive_tiou(s, e, gs, ge):
    inter = max(0.0, min(e, ge) - max(s, gs))
    union = (e - s) + (ge - gs) - inter
    return inter / union if union > 0 else 0.0


def naive_ap(preds, gts, threshold):
    """One class, one threshold, plain loops. preds: (video, s, e, score); gts: (video, s, e)."""
    ranked = sorted(preds, key=lambda p: -p[3])  # Python's sort is stable
    taken, tp = set(), []
    for video, s, e, _ in ranked:
        best, best_j = -1.0, None
        for j, (gv, gs, ge) in enumerate(gts):
            if gv == video and j not in taken and naive_tiou(s, e, gs, ge) > best:
                best, best_j = naive_tiou(s, e, gs, ge), j  # strict '>': ties go to the first GT
        hit = best_j is not None and best >= threshold
        if hit:
            taken.add(best_j)
        tp.append(hit)
    precision, recall, count = [], [], 0
    for k, t in enumerate(tp, 1):
        count += t
        precision.append(count / k)
        recall.append(count / len(gts))
    ap, previous = 0.0, 0.0
    for k in range(len(tp)):
        if recall[k] > previous:  # a recall step, weighted by the best precision from here on
            ap += (recall[k] - previous) * max(precision[k:])
            previous = recall[k]
    return ap


def naive_map(gt, preds, thresholds):
    gts, ps = {}, {}
    for video, items in gt.items():
        for g in items:
            gts.setdefault(g["label"], []).append((video, *g["segment"]))
    for video, items in preds.items():
        for p in items:
            ps.setdefault(p["label"], []).append((video, *p["segment"], p["score"]))
    return [np.mean([naive_ap(ps.get(c, []), gts[c], t) for c in gts]) for t in thresholds]


def random_case(rng, integer):
    """Videos with overlapping GTs of few classes; predictions jittered from GTs or random, some on videos
    without GT, some with labels absent from the GT. integer=True puts everything on a coarse grid so that
    tIoUs, scores and threshold equalities tie."""
    classes = ["a", "b", "c", "d"]
    num = (lambda lo, hi: float(rng.randint(lo, hi))) if integer else rng.uniform
    gt, preds = {}, {}
    for v in range(rng.randint(3, 8)):
        gt[f"v{v}"] = []
        for _ in range(rng.randint(0, 6)):
            start = num(0, 40)
            gt[f"v{v}"].append(gt_entry(rng.choice(classes[:3]), start, start + num(1, 15)))
    for v in range(rng.randint(3, 10)):  # indices above the GT's are unknown videos
        items = preds.setdefault(f"v{v}", [])
        anchors = gt.get(f"v{v}", [])
        for _ in range(rng.randint(0, 25)):
            score = num(0, 5) if integer else rng.random()
            if anchors and rng.random() < 0.6:
                g = rng.choice(anchors)
                label = g["label"] if rng.random() < 0.8 else rng.choice(classes)
                s, e = g["segment"][0] + num(-3, 3), g["segment"][1] + num(-3, 3)
            else:
                label, s = rng.choice(classes), num(0, 40)
                e = s + num(1, 15)
            items.append(pred_entry(label, score, s, max(e, s + 1)))
    return gt, preds


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("integer", [False, True])
def test_compute_map_matches_naive_reference(seed, integer):
    rng = random.Random(seed)
    gt, preds = random_case(rng, integer)
    if not any(gt.values()):
        gt["v0"] = [gt_entry("a", 0.0, 10.0)]
    thresholds = [0.1, 0.3, 0.5, 0.7] + list(ANET)
    result = compute_map(gt, preds, thresholds)
    np.testing.assert_allclose(result["mAP"], naive_map(gt, preds, thresholds), rtol=0, atol=1e-9)
    assert result["average"] == pytest.approx(np.mean(result["mAP"]), abs=1e-12)
