"""benchmarks/score_ranking.py: how well a pseudo-label file's scores rank its entries, by hand."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import score_ranking  # noqa: E402


def _entry(label, segment, score, icd, **kind):
    return {"label": label, "segment": segment, "score": score, "icd": icd, "cls_score": 0.5, "tiou": None, **kind}


def _files(tmp_path):
    # one video, true actions A [0, 10] and B [20, 30]. Entries:
    #   p1 A [0, 9]   tIoU 0.9, right class        score 0.9  icd 0.2
    #   p2 B [0, 10]  tIoU 1.0, wrong class         score 0.6  icd 0.9
    #   c1 A [40, 50] overlaps nothing               score 0.3  icd 0.8
    #   c2 B [22, 30] tIoU 0.8, right class          score 0.2  icd 0.1
    truth = {"database": {"v": {"subset": "train", "duration": 60.0, "fps": 30.0, "annotations": [
        {"label": "A", "label_id": 0, "segment": [0, 10]}, {"label": "B", "label_id": 1, "segment": [20, 30]}]}}}
    pseudo = {"database": {"v": {"subset": "train", "duration": 60.0, "fps": 30.0,  # read by the file's strict reader
        "annotations": [_entry("A", [0, 9], 0.9, 0.2, origin="positive"), _entry("B", [0, 10], 0.6, 0.9, origin="mined")],
        "rejected": [_entry("A", [40, 50], 0.3, 0.8, reason="candidate"), _entry("B", [22, 30], 0.2, 0.1, reason="candidate")]}}}
    (tmp_path / "t.json").write_text(json.dumps(truth))
    (tmp_path / "p.json").write_text(json.dumps(pseudo))
    return pseudo["database"], truth["database"]


def test_judged_and_auc_by_hand(tmp_path):
    pseudo, truth = _files(tmp_path)
    rows = score_ranking.judged(pseudo, truth)
    assert [(r[0], r[2], r[3]) for r in rows] == [("positive", True, True), ("mined", True, False),
                                                   ("candidate", False, False), ("candidate", True, True)]
    # located: p1, p2, c2 right, c1 wrong. Joint score: c1 (0.3) beats c2 (0.2) only -> AUC 2 / 3.
    assert score_ranking.auc(rows, "score", False) == pytest.approx(2 / 3)
    # ICD: c1 (0.8) beats p1 (0.2) and c2 (0.1), not p2 (0.9) -> 1 / 3
    assert score_ranking.auc(rows, "icd", False) == pytest.approx(1 / 3)
    # right class (p1, c2) against wrong (p2, c1): score 0.9 > 0.6, 0.3; 0.2 < both -> 2 / 4
    assert score_ranking.auc(rows, "score", True) == pytest.approx(0.5)
    assert score_ranking.auc(rows, "tiou", False) is None  # no value to rank


def test_report_and_a_missing_video(tmp_path, capsys):
    _files(tmp_path)
    score_ranking.main([str(tmp_path / "p.json"), "--truth", str(tmp_path / "t.json")])
    out = capsys.readouterr().out
    assert "| joint score (Eq. 4) | 0.667 | 0.500 |" in out and "| candidate | 2 | 0.50 | 0.50 |" in out
    # a file that holds only class B (label_id 1 of the dataset's A, B) is read against the truth's classes
    only_b = json.load(open(tmp_path / "p.json"))
    video = only_b["database"]["v"]
    video["annotations"] = [{**a, "label": "B", "label_id": 1} for a in video["annotations"]]
    video["rejected"] = [{**r, "label": "B", "label_id": 1} for r in video["rejected"]]
    (tmp_path / "b.json").write_text(json.dumps(only_b))
    score_ranking.main([str(tmp_path / "b.json"), "--truth", str(tmp_path / "t.json")])
    assert "b.json: 4 entries" in capsys.readouterr().out
    (tmp_path / "t.json").write_text(json.dumps({"database": {"w": {"subset": "train", "duration": 60.0, "fps": 30.0, "annotations": [
        {"label": "A", "label_id": 0, "segment": [0, 10]}, {"label": "B", "label_id": 1, "segment": [20, 30]}]}}}))
    with pytest.raises(SystemExit, match="t.json: video v: not in the truth"):
        score_ranking.main([str(tmp_path / "p.json"), "--truth", str(tmp_path / "t.json")])
