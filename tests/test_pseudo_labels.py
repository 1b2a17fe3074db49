"""Pseudo-label selection (Eq. 6, EAP/MPP), the pseudo-label file as a user interface, and the chain
supervised -> pseudo labels -> semi -> evaluate on the tiny embedded dataset."""
import glob
import json
import os

import numpy as np
import pytest
from conftest import embedded
from conftest import stage_args as _args

import evaluate
import pseudo_label
import train_semi
import train_supervised
from common import pseudo_file
from common.config import load_config
from common.data import load_annotations
from common.stage import run_main

PCFG = {"selection": "adaptive", "fixed_threshold": 0.3, "tau_neg": 0.15, "pos_std": 1.0,
        "icd": "both", "tau_icd": 0.3, "mpp": {"by": "icd", "threshold": 0.7}}


def test_tau_pos_for_a_known_score_list():
    # kept (> 0.15): 0.2, 0.4, 0.6 -> mean 0.4, population std sqrt(0.08 / 3) = 0.163299
    assert pseudo_label.adaptive_threshold([0.1, 0.2, 0.4, 0.6], 0.15, 1.0) == pytest.approx(0.563299, abs=1e-6)
    assert pseudo_label.adaptive_threshold([0.1, 0.2, 0.4, 0.6], 0.15, 0.0) == pytest.approx(0.4)
    assert pseudo_label.adaptive_threshold([0.1, 0.15], 0.15, 1.0) == float("inf")  # nothing above tau_neg


def test_tau_pos_is_per_video():
    results = {"a": {"scores": np.array([0.2, 0.4])}, "b": {"scores": np.array([0.6, 0.1])}}
    per_video = pseudo_label.thresholds(results, PCFG)
    assert per_video["a"] == pytest.approx(0.3 + 0.1) and per_video["b"] == pytest.approx(0.6)


def test_eap_and_mpp_decisions_for_known_scores():
    pred = {"scores": np.array([0.9, 0.8, 0.3, 0.25, 0.1]), "cls_score": np.array([0.95, 0.9, 0.5, 0.2, 0.1])}
    status = pseudo_label.initial_status(pred, PCFG, tau_pos=0.5)
    assert status.tolist() == ["positive", "positive", "candidate", "candidate", "below_tau_neg"]
    icd = np.array([0.8, 0.2, 0.75, 0.6, 0.99])
    # EAP removes the positive with S 0.2 < 0.3; MPP promotes the candidate with S 0.75 > 0.7;
    # the candidate with 0.6 stays out; below tau_neg is never promoted.
    expected = {"none": ([1, 1, 0, 0, 0], ["positive", "positive", "candidate", "candidate", "below_tau_neg"]),
                "eap": ([1, 0, 0, 0, 0], ["positive", "eap", "candidate", "candidate", "below_tau_neg"]),
                "mpp": ([1, 1, 1, 0, 0], ["positive", "positive", "mined", "candidate", "below_tau_neg"]),
                "both": ([1, 0, 1, 0, 0], ["positive", "eap", "mined", "candidate", "below_tau_neg"])}
    for mode, (accepted, reason) in expected.items():
        got_acc, got_reason = pseudo_label.refine(status, icd, mode, PCFG, pred)
        assert got_acc.astype(int).tolist() == accepted and got_reason.tolist() == reason, mode
    # fixed selection: class score >= 0.3 is positive, whatever the joint score
    fixed = pseudo_label.initial_status(pred, {**PCFG, "selection": "fixed"}, tau_pos=0.5)
    assert fixed.tolist()[:4] == ["positive", "positive", "positive", "candidate"]


def test_mpp_by_predicted_tiou_by_hand():
    # pseudo.mpp by tiou, threshold 0.9: MPP promotes the candidates whose predicted tIoU is >= 0.9, whatever S_i;
    # EAP still reads S_i. Candidate 2 (tIoU 0.95, S 0.1) is promoted, 3 (0.9 exactly) too, 4 (0.85,
    # S 0.99) is not; the positive with S 0.2 is removed by EAP; below tau_neg (tIoU 0.99) never.
    status = np.array(["positive", "positive", "candidate", "candidate", "candidate", "below_tau_neg"])
    pred = {"tiou": np.array([0.5, 0.97, 0.95, 0.9, 0.85, 0.99])}
    icd = np.array([0.8, 0.2, 0.1, 0.5, 0.99, 0.99])
    accepted, reason = pseudo_label.refine(status, icd, "both", {**PCFG, "mpp": {"by": "tiou", "threshold": 0.9}}, pred)
    assert accepted.tolist() == [True, False, True, True, False, False]
    assert reason.tolist() == ["positive", "eap", "mined", "mined", "candidate", "below_tau_neg"]
    # the paper's MPP on the same entries promotes only the candidate with S 0.99 > 0.7
    assert pseudo_label.refine(status, icd, "both", PCFG, pred)[0].tolist() == [True, False, False, False, True, False]


@pytest.mark.parametrize("sets, message", [
    (["pseudo.mpp.threshold=1.5"], "pseudo.mpp.threshold: expected a number in [0, 1] (S_i or a predicted tIoU), got 1.5"),
    (["pseudo.mpp.by=tIoU"], "pseudo.mpp.by: expected one of icd, tiou, got 'tIoU'"),
    (["pseudo.mpp.by=tiou"], "pseudo.mpp.by: tiou needs ActionFormer's tIoU head (model.alqa tiou or tiou_tnd)")])
def test_bad_mpp_rule_is_a_config_error(chain, tmp_path, capsys, sets, message):
    ckpt = chain["out"] / "sup" / "last.pt"
    if sets == ["pseudo.mpp.by=tiou"]:  # a detector without the tIoU head (the model's keys come from its checkpoint)
        ckpt = tmp_path / "plain" / "last.pt"
        train_supervised.main(_args(chain["sets"] + ["model.alqa=none", "train.epochs=1"]) + ["--out", str(ckpt.parent)])
    with pytest.raises(SystemExit) as info:
        run_main(pseudo_label.main, _args(chain["sets"] + sets) + [
            "--checkpoint", str(ckpt), "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "x.json").exists()


def test_mpp_by_predicted_tiou_writes_its_file(chain, tmp_path):
    out, sets = chain["out"], chain["sets"]
    pseudo_label.main(_args(sets + ["pseudo.mpp.by=tiou", "pseudo.mpp.threshold=0.5"]) + [
        "--checkpoint", str(out / "sup" / "last.pt"), "--out", str(tmp_path / "pl.json")])
    data = json.load(open(tmp_path / "pl.json"))
    assert data["meta"]["mpp"] == {"by": "tiou", "threshold": 0.5}
    mined = [a for v in data["database"].values() for a in v["annotations"] if a["origin"] == "mined"]
    rest = [a for v in data["database"].values() for a in v["rejected"] if a["reason"] == "candidate"]
    assert all(a["tiou"] >= 0.5 for a in mined) and all(a["tiou"] < 0.5 + 5e-5 for a in rest)


def test_quality_measures_by_hand():
    class V:
        segments = np.array([[0.0, 10.0], [20.0, 30.0]])
        labels = np.array([0, 1])
    # PL 1 [0, 8] class 0: tIoU 0.8, right class -> positive; PL 2 [20, 24] class 0: tIoU 0.4 with a
    # class-1 action -> wrong class. Class Acc 1/2, Avg tIoU 0.6, Pos Acc 1/2, P 1/2, R 1/2.
    q = pseudo_file.quality({"v": (np.array([[0.0, 8.0], [20.0, 24.0]]), np.array([0, 0]), np.array([0.9, 0.8]))},
                             {"v": V})
    assert (q["class_acc"], q["avg_tiou"], q["pos_acc"], q["precision@0.5"], q["recall@0.5"]) == \
        pytest.approx((0.5, 0.6, 0.5, 0.5, 0.5))


# ---------------------------------------------------------------- the chain on the tiny dataset

TINY = ["model.embd_dim=16", "model.head_dim=16", "model.n_head=2", "model.attn_window=5", "dataset.max_seq_len=128",
        "train.epochs=2", "train.warmup_epochs=1", "train.batch_size=4", "semi.epochs=1", "semi.warmup_epochs=0",
        # accept generously: an undertrained tiny detector scores low, and the file must not be empty
        "pseudo.tau_neg=0.0", "pseudo.pos_std=0.0", "test.max_segments=20"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data") / "tiny")
    sets = TINY + ["dataset.synthetic_size=tiny", f"dataset.annotation_file={root}/annotations.json",
                   f"dataset.feature_dir={root}/features", f"dataset.labeled_split={root}/splits/labeled_40pct.txt",
                   f"dataset.unlabeled_split={root}/splits/unlabeled_40pct.txt",
                   # the detector's own classes and MPP by S_i: these tests check its class_scores
                   # and the paper's selection; the defaults pseudo.relabel prototype and
                   # pseudo.mpp by tiou 0.9 are tests/test_relabel.py's and test_mpp_by_predicted_tiou's
                   "pseudo.relabel=none", "pseudo.mpp.by=icd", "pseudo.mpp.threshold=0.7"]
    embedded(sets)
    out = tmp_path_factory.mktemp("chain")
    train_supervised.main(_args(sets) + ["--out", str(out / "sup")])
    pseudo_label.main(_args(sets) + ["--checkpoint", str(out / "sup" / "last.pt"), "--out", str(out / "pl.json")])
    return {"sets": sets, "out": out, "root": root}


def test_chain_supervised_pseudo_semi_evaluate(chain):
    out, sets = chain["out"], chain["sets"]
    data = json.load(open(out / "pl.json"))
    assert set(data) == {"version", "meta", "database"}
    n = sum(len(v["annotations"]) for v in data["database"].values())
    assert n > 0 and data["meta"]["counts"]["positive"] + data["meta"]["counts"]["mined"] == n
    train_semi.main(_args(sets) + ["--init", str(out / "sup" / "last.pt"), "--pseudo-labels", str(out / "pl.json"),
                                   "--out", str(out / "semi")])
    metrics = evaluate.main(_args(sets) + ["--checkpoint", str(out / "semi" / "last.pt"),
                                           "--out", str(out / "semi_pred.json")])
    assert 0.0 <= metrics["average"] <= 1.0
    # another round starts from the semi checkpoint
    pseudo_label.main(_args(sets) + ["--checkpoint", str(out / "semi" / "last.pt"), "--out", str(out / "pl2.json")])
    assert json.load(open(out / "pl2.json"))["meta"]["checkpoint"].endswith(os.path.join("semi", "last.pt"))


def test_file_is_stable_sorted_rounded_and_read_back_equal(chain):
    path = chain["out"] / "pl.json"
    text = open(path).read()
    data = json.loads(text)
    assert text == json.dumps(data, indent=2) + "\n"  # indent 2, nothing else
    assert list(data["database"]) == sorted(data["database"])
    for v in data["database"].values():
        starts = [a["segment"][0] for a in v["annotations"]]
        assert starts == sorted(starts)
        for a in v["annotations"] + v["rejected"]:
            assert a["score"] == round(a["score"], 4) and a["segment"][0] == round(a["segment"][0], 3)
            assert a.get("origin", a.get("reason")) in ("positive", "mined", "candidate", "eap")
    videos, again = pseudo_file.read(str(path)).videos, pseudo_file.read(str(path)).videos
    for vid, v in videos.items():
        assert np.array_equal(v.segments, again[vid].segments) and np.array_equal(v.labels, again[vid].labels)
        assert [a["label_id"] for a in data["database"][vid]["annotations"]] == v.labels.tolist()


def _edit(chain, tmp_path, change):
    data = json.load(open(chain["out"] / "pl.json"))
    change(data["database"])
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data, indent=2))
    return str(path)


def _trained_on(chain, path, class_target="hard"):
    from common.stage import labeled_ids, load_data
    cfg = load_config("configs/default.yaml", chain["sets"])
    videos, classes = load_data(cfg)
    labeled = set(labeled_ids(cfg, videos))
    return train_semi.load_pseudo_labels(path, videos, classes, labeled, cfg["dataset"]["train_subset"],
                                         class_target), classes


def test_hand_edits_change_what_semi_trains_on(chain, tmp_path):
    db = json.load(open(chain["out"] / "pl.json"))["database"]
    vid = next(v for v in sorted(db) if db[v]["annotations"])
    original, classes = _trained_on(chain, str(chain["out"] / "pl.json"))
    n = len(original[vid].labels)

    def delete(d):
        del d[vid]["annotations"][0]
    got, _ = _trained_on(chain, _edit(chain, tmp_path, delete))
    assert len(got[vid].labels) == n - 1

    def relabel(d):
        ann = d[vid]["annotations"][0]
        ann["label"] = classes[(classes.index(ann["label"]) + 1) % len(classes)]
        del ann["label_id"]  # a hand edit that changes the label alone
    got, _ = _trained_on(chain, _edit(chain, tmp_path, relabel))
    assert got[vid].labels[0] == (original[vid].labels[0] + 1) % len(classes)
    # under the default soft class target too, the relabelled entry trains as its new label alone
    got, _ = _trained_on(chain, _edit(chain, tmp_path, relabel), "soft")
    new = (original[vid].labels[0] + 1) % len(classes)
    assert got[vid].label_weights[0].tolist() == [float(c == new) for c in range(len(classes))]

    def move_in(d):
        d[vid]["annotations"].append({"label": classes[0], "segment": [1.0, 2.5]})  # only label and segment
    got, _ = _trained_on(chain, _edit(chain, tmp_path, move_in))
    assert len(got[vid].labels) == n + 1 and [1.0, 2.5] in got[vid].segments.tolist()


@pytest.mark.parametrize("change,message,entry", [
    (lambda d, v: d.update({"video_nope": d[v]}), "video video_nope: not a video of the dataset", False),
    (lambda d, v: d.update({"video_test_0000001": d[v]}), "video video_test_0000001: is a 'test' video", False),
    (lambda d, v: d[v]["annotations"][0].update(label="Dancing"), "'Dancing' is not in the class list", True),
    (lambda d, v: d[v]["annotations"][0].update(label_id=99), "label_id: 99 disagrees", True),
    (lambda d, v: d[v]["annotations"][0].update(segment=[5.0, 2.0]), "segment: reversed", True),
    (lambda d, v: d[v]["annotations"][0].update(segment=[1.0, 1e6]), "outside the video", True),
    (lambda d, v: d[v]["annotations"][0].update(score="high"), "score: expected a number", True),
    (lambda d, v: d[v]["annotations"][0].update(class_scores=[0.5]), "class_scores: expected an object", True),
    (lambda d, v: d[v]["annotations"][0].update(class_scores={"Dancing": 0.5}), "class_scores: 'Dancing' is not",
     True),
    (lambda d, v: d[v]["annotations"][0]["class_scores"].update({d[v]["annotations"][0]["label"]: 1.5}),
     "expected a probability in [0, 1], got 1.5", True),
])
def test_bad_edits_are_one_line_errors_and_keep_outputs(chain, tmp_path, capsys, change, message, entry):
    db = json.load(open(chain["out"] / "pl.json"))["database"]
    vid = next(v for v in sorted(db) if db[v]["annotations"])
    path = _edit(chain, tmp_path, lambda d: change(d, vid))
    out = chain["out"] / "sup"
    before = {f: open(out / f, "rb").read() for f in os.listdir(out)}
    with pytest.raises(SystemExit) as info:
        run_main(train_semi.main, _args(chain["sets"]) + ["--init", str(out / "last.pt"), "--pseudo-labels", path,
                                                          "--out", str(out), "--resume"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1
    assert "edited.json" in err and message in err
    if entry:  # the error names the video and the entry
        assert f"video {vid}" in err and "annotations[0]" in err
    assert {f: open(out / f, "rb").read() for f in os.listdir(out)} == before


def test_broken_json_is_a_one_line_error(chain, tmp_path, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text('{"database": {')
    with pytest.raises(SystemExit):
        run_main(train_semi.main, _args(chain["sets"]) + ["--init", str(chain["out"] / "sup" / "last.pt"),
                                                          "--pseudo-labels", str(bad), "--out", str(tmp_path / "x")])
    assert "broken.json" in capsys.readouterr().err


def test_oracle_file_holds_the_truth_and_trains(chain):
    import sys
    sys.path.insert(0, "benchmarks")
    import oracle_labels
    out, sets = chain["out"], chain["sets"]
    oracle_labels.main(_args(sets) + ["--out", str(out / "oracle.json")])
    truth, classes = load_annotations(os.path.join(chain["root"], "annotations.json"))
    got = pseudo_file.read(str(out / "oracle.json"), classes).videos
    unlabeled = [v.strip() for v in open(os.path.join(chain["root"], "splits", "unlabeled_40pct.txt")) if v.strip()]
    assert sorted(got) == sorted(unlabeled)
    for vid in unlabeled:  # the reader's (clipped) truth, to the file's 3 decimals
        assert np.allclose(got[vid].segments, truth[vid].segments, atol=5e-4)
        assert got[vid].labels.tolist() == truth[vid].labels.tolist()
    train_semi.main(_args(sets) + [
        "--init", str(out / "sup" / "last.pt"), "--pseudo-labels", str(out / "oracle.json"), "--out", str(out / "oracle")])
    log = [json.loads(line) for line in open(out / "oracle" / "log.jsonl")]
    assert "u_num_ignored" in log[-1] and np.isfinite(log[-1]["loss"])


def test_degraded_oracle_by_hand():
    import sys
    sys.path.insert(0, "benchmarks")
    import oracle_labels

    def data():
        anns = [{"label": name, "label_id": i, "segment": [i, i + 1.0], "origin": "oracle"}
                for i, name in enumerate(["A", "B", "C", "A"])]
        return {"meta": {"counts": {"positive": 4}}, "database": {"v": {"annotations": anns, "rejected": []}}}
    classes, groups = ["A", "B", "C"], [["A", "B"], ["C"]]
    rng = np.random.RandomState(0)
    same = oracle_labels.degrade(data(), classes, groups, 1.0, 1.0, rng)["database"]["v"]
    assert same == data()["database"]["v"]
    # class accuracy 0: A <-> B within their group; C, alone in its group, takes another class
    got = oracle_labels.degrade(data(), classes, groups, 1.0, 0.0, rng)
    labels = [a["label"] for a in got["database"]["v"]["annotations"]]
    assert labels[:2] == ["B", "A"] and labels[3] == "B" and labels[2] in ("A", "B")
    assert all(a["origin"] == "relabelled" and a["label_id"] == classes.index(a["label"])
               for a in got["database"]["v"]["annotations"])
    # keep 0: every action moves to the rejected list, where the round leaves it out
    got = oracle_labels.degrade(data(), classes, groups, 0.0, 1.0, rng)
    video = got["database"]["v"]
    assert video["annotations"] == [] and [r["segment"] for r in video["rejected"]] == [[0, 1.0], [1, 2.0], [2, 3.0], [3, 4.0]]
    assert all(r["reason"] == "dropped" for r in video["rejected"]) and got["meta"]["counts"] == {"positive": 0, "dropped": 4}
    # ... or, dropped to background, out of the file: the round trains them as background
    got = oracle_labels.degrade(data(), classes, groups, 0.0, 1.0, rng, "background")
    assert got["database"]["v"] == {"annotations": [], "rejected": []} and got["meta"]["counts"]["dropped"] == 4
    # keep 0.5 over many actions keeps about half
    many = {"meta": {"counts": {"positive": 1000}}, "database": {f"v{k}": {"annotations": [{"label": "A", "label_id": 0, "segment": [0, 1.0]}] * 10,
                                                           "rejected": []} for k in range(100)}}
    kept = oracle_labels.degrade(many, classes, groups, 0.5, 1.0, rng)["meta"]["counts"]["positive"]
    assert 400 < kept < 600


def test_oracle_against_a_pseudo_label_file_by_hand():
    import sys
    sys.path.insert(0, "benchmarks")
    import oracle_labels

    def data():  # three true actions; the file found [0, 10] as [1, 10] (tIoU 0.9), and lists
        anns = [{"label": "A", "label_id": 0, "segment": [0.0, 10.0], "origin": "oracle"},     # [12, 16] as a
                {"label": "A", "label_id": 0, "segment": [20.0, 30.0], "origin": "oracle"},    # candidate over
                {"label": "B", "label_id": 1, "segment": [40.0, 50.0], "origin": "oracle"}]    # [20, 30] (tIoU 0 ->
        return {"meta": {"counts": {"positive": 3}}, "database": {"v": {"annotations": anns, "rejected": []}}}
    theirs = {"v": {"annotations": [{"label": "B", "segment": [1.0, 10.0]}, {"label": "A", "segment": [22.0, 26.0]}],
                    "rejected": [{"label": "A", "segment": [20.0, 29.0], "reason": "candidate"},
                                 {"label": "A", "segment": [5.0, 10.0], "reason": "candidate"}]}}
    # found: [0, 10] (tIoU 0.9 with an accepted entry; its label B is not read), not [20, 30] (its
    # accepted overlap [22, 26] has tIoU 0.4; the rejected [20, 29] does not count), not [40, 50]
    got = oracle_labels.against_file(data(), theirs, "found")
    video = got["database"]["v"]
    assert [a["segment"] for a in video["annotations"]] == [[0.0, 10.0]] and video["annotations"][0]["label"] == "A"
    assert [(r["segment"], r["reason"]) for r in video["rejected"]] == [([20.0, 30.0], "dropped"), ([40.0, 50.0], "dropped")]
    assert got["meta"]["counts"] == {"positive": 1, "dropped": 2} and got["meta"]["found"]
    # boundaries: [0, 10] takes [1, 10] (0.9 beats the rejected [5, 10]'s 0.5), [20, 30] the rejected
    # [20, 29] (0.9 beats the accepted [22, 26]'s 0.4), [40, 50] overlaps nothing: dropped, to background
    got = oracle_labels.against_file(data(), theirs, "boundaries", "background")
    video = got["database"]["v"]
    assert [(a["segment"], a["label"]) for a in video["annotations"]] == [([1.0, 10.0], "A"), ([20.0, 29.0], "A")]
    assert video["rejected"] == [] and got["meta"]["counts"] == {"positive": 2, "dropped": 1}
    # a video the file does not hold loses every action
    assert oracle_labels.against_file(data(), {}, "boundaries")["database"]["v"]["annotations"] == []


def test_oracle_against_a_file_writes_and_refuses_a_second_shortfall(chain, tmp_path, capsys):
    import sys
    sys.path.insert(0, "benchmarks")
    import oracle_labels
    sets, pl = chain["sets"], str(chain["out"] / "pl.json")
    out = oracle_labels.main(_args(sets) + ["--boundaries-of", pl, "--out", str(tmp_path / "b.json")])
    data = pseudo_file.read(out, load_annotations(os.path.join(chain["root"], "annotations.json"))[1])
    assert data.meta["boundaries"] and data.meta["against"] == os.path.abspath(pl)
    theirs = json.load(open(pl))["database"]
    for vid, video in data.database.items():  # every segment is one the file lists for that video
        listed = {tuple(e["segment"]) for e in theirs[vid]["annotations"] + theirs[vid]["rejected"]}
        assert all(tuple(a["segment"]) in listed for a in video["annotations"])
    with pytest.raises(SystemExit) as info:
        oracle_labels.main(_args(sets) + ["--found-by", pl, "--keep", "0.5", "--out", str(tmp_path / "x.json")])
    assert info.value.code == 2 and "not with --keep or --class-accuracy" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_class_scores_are_the_points_most_likely_classes(chain):
    data = json.load(open(chain["out"] / "pl.json"))
    entries = [a for v in data["database"].values() for a in v["annotations"] + v["rejected"]]
    assert entries
    for a in entries:
        scores = a["class_scores"]
        assert len(scores) == 5 and list(scores.values()) == sorted(scores.values(), reverse=True)
        if a["label"] in scores:  # its own P_cls, to the file's 4 decimals
            assert scores[a["label"]] == pytest.approx(a["cls_score"], abs=1e-4)
    assert np.mean([a["label"] in a["class_scores"] for a in entries]) > 0.95
    # the soft target uses an entry's class_scores when they list its label with its cls_score
    listed = [a for a in entries if a["label"] in a["class_scores"]]
    assert all(a["class_scores"][a["label"]] == a["cls_score"] for a in listed)


def test_soft_round_trains_on_the_class_scores(chain, tmp_path):
    out, sets = chain["out"], chain["sets"]
    got, classes = _trained_on(chain, str(out / "pl.json"))
    assert all(v.label_weights is None for v in got.values())  # hard: one-hot labels
    soft, _ = _trained_on(chain, str(out / "pl.json"), "soft")
    vid = next(v for v in sorted(soft) if len(soft[v].labels))
    ann = json.load(open(out / "pl.json"))["database"][vid]["annotations"][0]
    total = sum(ann["class_scores"].values())
    expected = {classes.index(name): p / total for name, p in ann["class_scores"].items()}
    row = soft[vid].label_weights[0]
    assert {i: row[i] for i in np.flatnonzero(row)} == pytest.approx(expected)
    train_semi.main(_args(sets) + [  # soft is the default
        "--init", str(out / "sup" / "last.pt"), "--pseudo-labels", str(out / "pl.json"), "--out", str(tmp_path / "s")])
    log = [json.loads(line) for line in open(tmp_path / "s" / "log.jsonl")]
    assert np.isfinite(log[-1]["loss"]) and log[-1]["u_cls_loss"] > 0


def test_semi_round_leaves_the_rejected_regions_out(chain):
    out, sets = chain["out"], chain["sets"]
    data = json.load(open(out / "pl.json"))
    assert sum(len(v["rejected"]) for v in data["database"].values()) > 0
    train_semi.main(_args(sets + ["semi.background=rejected"]) + [
        "--init", str(out / "sup" / "last.pt"), "--pseudo-labels", str(out / "pl.json"), "--out", str(out / "rej")])
    log = [json.loads(line) for line in open(out / "rej" / "log.jsonl")]
    assert log[-1]["u_num_ignored"] > 0 and np.isfinite(log[-1]["loss"])


# ---------------------------------------------------------------- a later round (pseudo.carry_over)

def test_carried_thresholds_are_at_most_the_previous_by_hand():
    taus = {"a": 0.62, "b": 0.41, "c": float("inf"), "d": 0.5}
    previous = {"a": 0.55, "b": 0.48, "c": 0.30}  # d: not in the previous file
    assert pseudo_label.carried_thresholds(taus, previous) == {"a": 0.55, "b": 0.41, "c": 0.30, "d": 0.5}


def test_carried_labels_and_rejected_fill_in_where_no_new_one_overlaps_by_hand():
    new = {"segment": [10.0, 20.0], "label": "A", "origin": "positive"}
    new_rejected = {"segment": [40.0, 50.0], "label": "B", "reason": "candidate"}
    database = {"v": {"annotations": [new], "rejected": [new_rejected]}, "w": {"annotations": [], "rejected": []}}
    previous = {"v": ([{"segment": [11.0, 21.0], "label": "B", "origin": "positive"},    # tIoU 9/11: replaced
                       {"segment": [15.0, 30.0], "label": "A", "origin": "mined"},       # tIoU 5/20: kept
                       {"segment": [1.0, 4.0], "label": "C", "origin": "previous_round"},
                       {"segment": [40.0, 50.0], "label": "A", "origin": "positive"}],   # a new rejected one there
                      [{"segment": [12.0, 20.0], "label": "C", "reason": "candidate"},   # tIoU 0.8 to the new label
                       {"segment": [41.0, 50.0], "label": "C", "reason": "eap"},         # 0.9 to the new rejected
                       {"segment": [60.0, 70.0], "label": "C", "reason": "eap"}]),       # kept
                "w": ([{"segment": [2.0, 3.0], "label": "A", "origin": "positive"}], []),
                "x": ([{"segment": [2.0, 3.0], "label": "A", "origin": "positive"}], [])}  # not this round's
    assert pseudo_label.carry_labels(database, previous) == (4, 1)
    assert database["v"]["annotations"] == [
        {"segment": [1.0, 4.0], "label": "C", "origin": "previous_round"}, new,
        {"segment": [15.0, 30.0], "label": "A", "origin": "previous_round"},
        {"segment": [40.0, 50.0], "label": "A", "origin": "previous_round"}]
    assert database["v"]["rejected"] == [new_rejected, {"segment": [60.0, 70.0], "label": "C",
                                                        "reason": "previous_round"}]
    assert database["w"]["annotations"] == [{"segment": [2.0, 3.0], "label": "A", "origin": "previous_round"}]
    assert "x" not in database


def test_second_round_carries_thresholds_and_labels_over(chain, tmp_path):
    out, sets, first = chain["out"], chain["sets"], chain["out"] / "pl.json"
    prev = json.load(open(first))
    ckpt = str(out / "sup" / "last.pt")
    fresh = json.load(open(pseudo_label.main(_args(sets + ["pseudo.icd=none"]) + [
        "--checkpoint", ckpt, "--out", str(tmp_path / "f.json")])))
    # thresholds: the same detector against a previous file whose tau_pos is 1 (above every own one:
    # nothing changes) or 0 (every prediction above tau_neg becomes positive), alternately
    own = fresh["meta"]["tau_pos"]
    low = sorted(v for v in own if own[v] is not None)[::2]
    data = json.loads(json.dumps(prev))
    data["meta"]["tau_pos"] = {v: (0.0 if v in low else 1.0) for v in own}
    (tmp_path / "p.json").write_text(json.dumps(data))
    thr = json.load(open(pseudo_label.main(_args(sets + ["pseudo.carry_over=thresholds", "pseudo.icd=none"]) + [
        "--checkpoint", ckpt, "--out", str(tmp_path / "t.json"), "--previous", str(tmp_path / "p.json")])))
    assert thr["meta"]["tau_pos"] == {v: (0.0 if v in low else t) for v, t in own.items()}
    assert thr["meta"]["previous"] == os.path.abspath(tmp_path / "p.json")
    for v, got in thr["database"].items():
        if v in low:  # every candidate is now a positive
            assert not got["rejected"] and all(a["origin"] == "positive" and a["score"] > thr["meta"]["tau_neg"]
                                             for a in got["annotations"])
        else:
            assert got == fresh["database"][v]
    # labels: a previous round whose every label moved away from the new ones is carried whole
    moved = _edit(chain, tmp_path, lambda d: [a.update(segment=[0.0, 0.01]) for v in d.values()
                                              for a in v["annotations"][:1]])
    lab = json.load(open(pseudo_label.main(_args(sets + ["pseudo.carry_over=labels"]) + [
        "--checkpoint", ckpt, "--out", str(tmp_path / "l.json"), "--previous", moved])))
    carried = [a for v in lab["database"].values() for a in v["annotations"] if a["origin"] == "previous_round"]
    assert lab["meta"]["counts"]["previous_round"] == len(carried) > 0
    assert all(a["segment"] == [0.0, 0.01] for a in carried)
    again = [a for v in lab["database"].values() for a in v["rejected"] if a["reason"] == "previous_round"]
    assert lab["meta"]["counts"]["previous_rejected"] == len(again) == 0  # the same detector: nothing new
    _trained_on(chain, str(tmp_path / "l.json"), "soft")  # the written file reads back strictly


@pytest.mark.parametrize("change, message", [
    (lambda d: d["meta"].pop("tau_pos"), "meta.tau_pos: expected {video: tau_pos}"),
    (lambda d: d["meta"]["tau_pos"].update(v0="high"), "meta.tau_pos: expected a number or null, got 'high'"),
    (lambda d: d["database"][next(iter(d["database"]))].update(duration=-1), "duration"),
])
def test_bad_previous_file_is_a_one_line_error(chain, tmp_path, capsys, change, message):
    data = json.load(open(chain["out"] / "pl.json"))
    change(data)
    bad = tmp_path / "prev.json"
    bad.write_text(json.dumps(data))
    target = tmp_path / "out.json"
    target.write_text("keep")
    with pytest.raises(SystemExit) as info:
        run_main(pseudo_label.main, _args(chain["sets"] + ["pseudo.carry_over=labels"]) + [
            "--checkpoint", str(chain["out"] / "sup" / "last.pt"), "--out", str(target), "--previous", str(bad)])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and "prev.json" in err and message in err
    assert target.read_text() == "keep"


def test_unknown_carry_over_is_a_config_error(chain, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run_main(pseudo_label.main, _args(chain["sets"] + ["pseudo.carry_over=all"]) + [
            "--checkpoint", str(chain["out"] / "sup" / "last.pt"), "--out", str(tmp_path / "x.json")])
    assert info.value.code == 2 and "pseudo.carry_over" in capsys.readouterr().err


def test_rounding_never_carries_a_segment_past_the_video(tmp_path):
    from common.data import Video
    duration = 10.1236  # more decimals than the file's 3: an end at it rounds up to 10.124
    videos = {"v": Video("v", "train", duration, 30.0, np.zeros((0, 2)), np.zeros(0, dtype=np.int64))}
    pred = {"segments": np.array([[2.0, duration]]), "labels": np.array([0]), "scores": np.array([0.9]),
            "cls_score": np.array([0.9]), "tiou": np.array([0.8]), "tnd": np.array([0.1]),
            "topk_labels": np.array([[0]]), "topk_probs": np.array([[0.9]])}
    decisions = {"v": (np.array([True]), np.array(["positive"]), np.array([0.5]))}
    data = pseudo_file.build_file({"v": pred}, decisions, videos, ["A"], {}, "train")
    assert data["database"]["v"]["annotations"][0]["segment"] == [2.0, duration]
    path = tmp_path / "pl.json"
    path.write_text(json.dumps(data))
    pseudo_file.read(str(path), ["A"])  # read back by the round's reader


def test_shipped_configs_select_with_what_their_detector_has():
    # MPP by predicted tIoU (the default, 0.9) needs ActionFormer's tIoU head: every shipped config
    # either has it or names MPP by S_i; the class-agnostic ones keep the paper's selection (S_i, relabel
    # none), under either recipe
    assert load_config("configs/default.yaml", [])["pseudo"]["mpp"] == {"by": "tiou", "threshold": 0.9}
    for path in sorted(glob.glob("configs/*.yaml")):
        for cfg in (load_config(path, []), load_config(path, ["recipe=project"])):
            if cfg["pseudo"]["mpp"]["by"] == "tiou":
                assert cfg["model"]["arch"] == "actionformer" and cfg["model"]["alqa"] in ("tiou", "tiou_tnd"), path
            if cfg["dataset"]["class_agnostic"]:
                assert cfg["pseudo"]["mpp"] == {"by": "icd", "threshold": 0.7}, path
