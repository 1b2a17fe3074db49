"""Proposal quality (common/metrics.py: average_recall_curve, proposal_metrics) as the official ActivityNet
Evaluation/eval_proposal.py computes it: hand-worked curves, the official code's edge cases, a slow
line-by-line transcription of it on random data (benchmarks/check_proposals_official.py's, which holds
our code to the official code itself where that runs), and evaluate.py printing it beside the mAP."""
import json
import os
import random
import sys

import numpy as np
import pytest

import evaluate
from common.checkpoint import save_checkpoint
from common.config import load_config
from common.metrics import average_recall_curve, format_proposal_table, proposal_metrics
from common.stage import build_detector

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from check_proposals_official import official_curve, random_case  # noqa: E402  (the slow transcription)


def gt(start, end, label="A"):
    return {"label": label, "segment": [start, end]}


def prop(score, start, end, label="A"):
    return {"label": label, "score": score, "segment": [start, end]}


# ---------------------------------------------------------------- hand-worked curves

def test_two_videos_by_hand():
    truth = {"a": [gt(0, 8), gt(20, 28)], "b": [gt(0, 8)]}
    proposals = {"a": [prop(0.7, 1, 8),     # tIoU 7/8 with [0, 8]: thresholds 0.50..0.85, 8 of 10
                       prop(0.9, 0, 7),     # 7/8 with [0, 8]
                       prop(0.8, 20, 28)],  # 1 with [20, 28]: all 10
                 "b": [prop(0.95, 0, 16)]}  # 8/16 = 0.5 with [0, 8]: 0.5 only (equality recalls)
    # N = 4 proposals, V = 2 videos: ratio = 100 * 2 / 4 = 50, every proposal kept (K = 4).
    # Point j uses p_j = j / 100 * (100 * 2 / 4) = j / 2 and stands at AN = p_j * 4 / 2 = j.
    # a (3 kept) uses int(3 j / 2): 1 at j = 1, all 3 from j = 2; b (1 kept) int(j / 2): 0, then 1.
    # AN = 1: a's [0, 7] recalls [0, 8] at 8 thresholds; b uses none  -> AR = 8 / 30
    # AN = 2: 8 + 10 ([20, 28]) + 1 ([0, 8] of b at 0.5)              -> AR = 19 / 30, and so on to 100
    # AUC = 100 x trapz / 100 = (8/30 + 19/30) / 2 + 98 x 19/30 = 1875.5 / 30
    result = proposal_metrics(truth, proposals, ans=(1, 2, 5, 100))
    assert result["AR@1"] == pytest.approx(8 / 30, abs=1e-12)
    assert result["AR@2"] == result["AR@5"] == result["AR@100"] == pytest.approx(19 / 30, abs=1e-12)
    assert result["AUC"] == pytest.approx(1875.5 / 30, abs=1e-9)
    assert result["proposals_per_video"] == pytest.approx(np.arange(1, 101), abs=1e-12)
    assert (result["num_videos"], result["num_gt"], result["num_proposals"], result["num_kept"]) == (2, 3, 4, 4)
    curve = average_recall_curve(truth, proposals)
    # per threshold at AN = 2: 0.5 recalls all 3, 0.55..0.85 two, 0.9 / 0.95 only [20, 28]
    np.testing.assert_allclose(curve["recall"][:, 1], [1] + [2 / 3] * 7 + [1 / 3] * 2, atol=1e-12)


def test_the_average_is_shared_between_videos():
    # max_avg_nr_proposals 2 over a (6 proposals) and b (2): ratio = 2 * 2 / 8 = 1/2, so a keeps
    # int(3) = 3 and b int(1) = 1 (one of its 2, though it has no more than the average); K = 4,
    # p_j = j / 100 * (2 * 2 / 4): at j = 100 a uses 3 and b 1.
    truth = {"a": [gt(0, 10)], "b": [gt(0, 10)]}
    proposals = {"a": [prop(0.9 - 0.1 * i, 50, 60) for i in range(5)] + [prop(0.1, 0, 10)],  # the hit is 6th
                 "b": [prop(0.9, 50, 60), prop(0.8, 0, 10)]}                                 # the hit is 2nd
    curve = average_recall_curve(truth, proposals, max_avg_nr_proposals=2)
    assert curve["num_kept"] == 4 and curve["average_recall"].max() == 0.0
    assert curve["proposals_per_video"][-1] == pytest.approx(2.0, abs=1e-12)
    # With the official default (None: N / V = 4) every proposal is kept and both are recalled at the end.
    curve = average_recall_curve(truth, proposals, max_avg_nr_proposals=None)
    assert curve["num_kept"] == 8 and curve["average_recall"][-1] == 1.0


def test_a_video_without_proposals_lends_its_share():
    # b has none: N = 4, V = 2, ratio 50, a keeps its 4, K = 4, p_j = j / 2; at AN = 1 a uses
    # int(4 x 1/2) = 2 proposals (the average over a and b is 1) and its 2nd recalls [0, 10].
    truth = {"a": [gt(0, 10)], "b": [gt(0, 10)]}
    proposals = {"a": [prop(0.9, 50, 60), prop(0.8, 0, 10), prop(0.7, 50, 60), prop(0.6, 50, 60)], "b": []}
    result = proposal_metrics(truth, proposals, ans=(1, 100))
    assert result["AR@1"] == result["AR@100"] == 0.5  # b's ground truth counts, never recalled
    assert result["proposals_per_video"][0] == pytest.approx(1.0, abs=1e-12)


def test_tied_scores_are_ranked_by_the_official_line():
    # The official np.argsort(scores)[::-1] over a video's scores as listed: numpy's default sort,
    # reversed. Its sorts of 2 equal numbers keep them in order, so the last listed ranks first.
    # At AN = 1 (one video, 2 proposals: N = 2, V = 1, ratio 50, p_1 = 0.01 x 50, int(2 x 0.5) = 1)
    # only the first ranked counts.
    assert np.argsort(np.array([0.5, 0.5]))[::-1].tolist() == [1, 0]
    truth = {"a": [gt(0, 10)]}
    hit, miss = prop(0.5, 0, 10), prop(0.5, 50, 60)
    assert proposal_metrics(truth, {"a": [miss, hit]})["AR@1"] == 1.0
    assert proposal_metrics(truth, {"a": [hit, miss]})["AR@1"] == 0.0
    # Longer ties go the way numpy's sort of that very array goes (on SIMD builds not the input order):
    # the hit listed at position i of 20 tied proposals ranks where argsort()[::-1] puts i.
    for i in (0, 7, 19):
        proposals = {"a": [hit if k == i else miss for k in range(20)]}
        rank = np.argsort(np.full(20, 0.5))[::-1].tolist().index(i)  # N = 20: point j uses int(20 j / 100 x 5)
        ar = average_recall_curve(truth, proposals)["average_recall"]
        assert ar[:rank].max(initial=0.0) == 0.0 and ar[rank] == 1.0


def test_one_hundred_proposals_truncate_as_the_official_floats_do():
    # One video, 100 proposals, only the 29th ranked hits. Point j uses int(100 x (j / 100.0 x 1.0)):
    # 100 x 0.29 = 28.999999999999996 -> 28, so the official curve recalls it from point 30, not 29.
    truth = {"a": [gt(0, 10)]}
    proposals = {"a": [prop(1.0 - 0.001 * i, 0, 10) if i == 28 else prop(1.0 - 0.001 * i, 50, 60)
                       for i in range(100)]}
    ar = average_recall_curve(truth, proposals)["average_recall"]
    assert ar[:29].max() == 0.0 and ar[29:].min() == 1.0


def test_proposals_of_videos_without_ground_truth_count_in_the_ratio():
    # At max 2 a video: a's 2 proposals alone give ratio 2 x 1 / 2 = 1 (both kept); with 2 more on
    # video x (no ground truth) ratio = 2 x 1 / 4 = 1/2: a keeps its top 1 only, and its 2nd (the hit) is lost.
    truth = {"a": [gt(0, 10)], "empty": []}  # a video without segments is no video of the measure
    proposals = {"a": [prop(0.9, 50, 60), prop(0.8, 0, 10)]}
    assert average_recall_curve(truth, proposals, max_avg_nr_proposals=2)["average_recall"][-1] == 1.0
    proposals["x"] = [prop(0.9, 0, 10), prop(0.9, 0, 10)]
    curve = average_recall_curve(truth, proposals, max_avg_nr_proposals=2)
    assert (curve["num_videos"], curve["num_proposals"], curve["num_kept"]) == (1, 4, 1)
    assert curve["average_recall"].max() == 0.0


def test_nothing_kept_gives_zero_where_the_official_code_divides_by_zero():
    truth = {"a": [gt(0, 10)]}
    # No proposal, none on a video with ground truth (the official code raises ZeroDivisionError), or
    # 1 on a among 301: ratio 100 / 301 keeps int(0.33) = 0 of it (the official AN and AUC are NaN).
    for proposals in ({}, {"x": [prop(0.9, 0, 10)]}, {"a": [], "x": [prop(0.9, 0, 10)] * 300},
                      {"a": [prop(0.9, 0, 10)], "x": [prop(0.9, 0, 10)] * 300}):
        result = proposal_metrics(truth, proposals)
        assert result["AR@100"] == 0.0 and result["AUC"] == 0.0 and result["num_kept"] == 0
        assert result["proposals_per_video"] == [0.0] * 100


def test_bad_arguments():
    truth, proposals = {"a": [gt(0, 10)]}, {"a": [prop(0.9, 0, 10)]}
    with pytest.raises(ValueError, match="positive"):
        average_recall_curve(truth, proposals, [0.0, 0.5])
    with pytest.raises(ValueError, match="no ground-truth"):
        average_recall_curve({"a": []}, proposals)
    with pytest.raises(ValueError, match="1..100"):
        proposal_metrics(truth, proposals, ans=(0, 100))


def test_format_proposal_table():
    result = proposal_metrics({"a": [gt(0, 10)], "b": [gt(0, 10)]}, {"a": [prop(0.9, 0, 10)]})
    lines = format_proposal_table(result).splitlines()
    assert "1, 1 of them within 100" in lines[0] and "2 videos with 2 ground-truth segments" in lines[0]
    assert lines[1].split() == ["AR@1", "AR@5", "AR@10", "AR@100", "AUC", "(%)"]
    # a keeps its 1 (ratio 200), p_j = j / 100 x 200: a uses it from j = 1, AR 1/2 everywhere, AUC 50 x 99 / 100
    assert lines[2].split() == ["50.00", "50.00", "50.00", "50.00", "49.50"]


# ---------------------------------------------------------------- the official algorithm, slowly
# (official_curve, random_case: benchmarks/check_proposals_official.py)

def compare_with_official(truth, proposals, max_avg):
    """Largest absolute difference between the official transcription's curve and ours (recall, AR, AN
    and, with max 100, proposal_metrics' AUC); None when the official code divides by zero."""
    try:
        recall, avg, x, auc = official_curve(truth, proposals, max_avg)
    except ZeroDivisionError:  # no proposal at all, or none on a video with ground truth
        return None
    ours = average_recall_curve(truth, proposals, max_avg_nr_proposals=max_avg)
    diffs = [np.abs(ours["recall"] - recall).max(), np.abs(ours["average_recall"] - avg).max()]
    if np.isnan(x).any():  # some proposal, none kept: the official AN is NaN, its recall 0
        assert ours["proposals_per_video"].max() == 0.0
        return max(diffs)
    diffs.append(np.abs(ours["proposals_per_video"] - x).max())
    if max_avg == 100:
        metrics = proposal_metrics(truth, proposals)
        diffs += [abs(metrics["AUC"] - auc)] + [abs(metrics[f"AR@{an}"] - avg[an - 1]) for an in (1, 5, 10, 100)]
    return max(diffs)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("max_avg", [100, None, 3])
def test_matches_the_official_transcription(seed, integer, max_avg):
    rng = random.Random(seed)
    truth, proposals = random_case(rng, integer)
    if not any(truth.values()):
        truth["v0"] = [gt(0.0, 10.0)]
    worst = compare_with_official(truth, proposals, max_avg)
    if worst is None:
        assert average_recall_curve(truth, proposals, max_avg_nr_proposals=max_avg)["num_kept"] == 0
    else:
        assert worst <= 1e-9


# ---------------------------------------------------------------- evaluate.py

def _files(tmp_path, database, results):
    (tmp_path / "annotations.json").write_text(json.dumps({"database": database}))
    (tmp_path / "predictions.json").write_text(json.dumps({"results": results}))
    return [f"dataset.annotation_file={tmp_path}/annotations.json", "dataset.synthetic_size=null",
            "dataset.labeled_split=null", "dataset.unlabeled_split=null"]


def _argv(sets, config="configs/default.yaml"):
    out = ["--config", config, "--device", "cpu", "--no-progress"]
    for s in sets:
        out += ["--set", s]
    return out


def _database(rng):
    truth, proposals = random_case(rng, integer=False, n_videos=6)
    truth["v0"] = truth["v0"] or [gt(0.0, 10.0)]
    database = {v: {"subset": "test", "duration": 200.0, "fps": 30.0, "annotations": items}
                for v, items in truth.items()}
    database.update({v: {"subset": "train", "duration": 200.0, "fps": 30.0, "annotations": []}
                     for v in proposals if v not in database})  # results may name any video of the file
    return truth, database, proposals


def test_evaluate_prints_proposal_metrics_of_any_results_file(tmp_path, capsys):
    truth, database, proposals = _database(random.Random(1))
    sets = _files(tmp_path, database, proposals) + ["dataset.eval_subset=test", "dataset.train_subset=train"]
    pred = str(tmp_path / "predictions.json")
    assert "proposals" not in evaluate.main(_argv(sets) + ["--predictions", pred])  # THUMOS-like: mAP only
    capsys.readouterr()
    out = tmp_path / "m.json"
    metrics = evaluate.main(_argv(sets) + ["--predictions", pred, "--proposals", "--json", str(out)])
    expected = proposal_metrics(truth, proposals)  # every prediction a proposal, labels ignored
    assert metrics["proposals"] == expected == json.load(open(out))["proposals"]  # JSON floats round-trip
    _, avg, _, auc = official_curve(truth, proposals, 100)
    assert expected["AUC"] == pytest.approx(auc, abs=1e-9) and expected["AR@10"] == pytest.approx(avg[9], abs=1e-12)
    printed = capsys.readouterr().out
    assert "avg " in printed and "AR@100" in printed and f"{expected['AUC']:7.2f}" in printed


def test_class_agnostic_config_prints_them_without_the_flag(tmp_path):
    truth, database, proposals = _database(random.Random(2))
    sets = _files(tmp_path, database, proposals) + ["dataset.eval_subset=test", "dataset.train_subset=train",
                                                     f"dataset.video_scores={tmp_path}/absent.json"]
    pred = str(tmp_path / "predictions.json")
    metrics = evaluate.main(_argv(sets, "configs/anet_i3d.yaml") + ["--predictions", pred])
    assert metrics["proposals"] == proposal_metrics(truth, proposals)


def test_a_class_agnostic_detector_is_scored_on_its_own_proposals(tmp_path, monkeypatch):
    # Two validation videos; the classifier copies each proposal for the 2 top classes, so the results
    # file holds 6 detections, but AR@AN scores the detector's 3 proposals.
    database = {"v1": {"subset": "validation", "duration": 40.0, "fps": 16.0, "annotations": [gt(0.0, 10.0, "A")]},
                "v2": {"subset": "validation", "duration": 40.0, "fps": 16.0, "annotations": [gt(5.0, 15.0, "B")]}}
    sets = _files(tmp_path, database, {}) + [
        f"dataset.feature_dir={tmp_path}", f"dataset.video_scores={tmp_path}/scores.json", "model.embd_dim=16",
        "model.head_dim=16", "model.n_head=2", "model.attn_window=5", "dataset.resize_to=64", "dataset.max_seq_len=64"]
    (tmp_path / "scores.json").write_text(json.dumps({"class": ["A", "B"], "results": {"v1": [0.4, 0.6],
                                                                                       "v2": [0.3, 0.7]}}))
    for vid in database:
        np.save(tmp_path / f"{vid}.npy", np.zeros((40, 64), dtype=np.float32))
    cfg = load_config("configs/anet_synthetic.yaml", sets)
    save_checkpoint(str(tmp_path / "untrained.pt"), {"model": build_detector(cfg, ["A", "B"], "cpu").state_dict(),
                                                      "config": cfg})
    proposals = {"v1": ([[0.0, 10.0], [20.0, 30.0]], [0.8, 0.5]), "v2": ([[5.0, 15.0]], [0.5])}

    def fake_predict(model, dataset, cfg, device, progress):  # the detector's proposals, after Soft-NMS
        return {vid: {"segments": np.array(s), "scores": np.array(p), "labels": np.zeros(len(p), dtype=np.int64)}
                for vid, (s, p) in proposals.items()}

    monkeypatch.setattr(evaluate, "predict", fake_predict)
    pred = tmp_path / "pred.json"
    metrics = evaluate.main(_argv(sets, "configs/anet_synthetic.yaml") +
                            ["--checkpoint", str(tmp_path / "untrained.pt"), "--out", str(pred)])
    assert sum(map(len, json.load(open(pred))["results"].values())) == 6
    # N = 3, V = 2, all kept; p_j = j / 100 x 200 / 3. AN = 1: v1 uses int(2 x 2/3) = 1, its [0, 10]
    # (all 10 thresholds); v2 int(2/3) = 0 -> AR 1/2. From AN = 2 (int(8/3) = 2, int(4/3) = 1): AR 1.
    # AUC = (1/2 + 1) / 2 + 98 = 98.75
    got = metrics["proposals"]
    assert (got["num_proposals"], got["num_kept"], got["AR@1"], got["AR@5"]) == (3, 3, 0.5, 1.0)
    assert got["AUC"] == pytest.approx(98.75, abs=1e-9)
