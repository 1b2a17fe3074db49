"""evaluate.py scores against the ground truth the official ActivityNet evaluator (Evaluation/
eval_detection.py) reads: every segment of the evaluation subset as the annotation file gives it,
none clipped or dropped, though training's reader clips and drops some. Hand-worked values, a slow
transcription of the official algorithm on random files, and the real files' counts when present."""
import json
import os
import random

import pytest
from conftest import stage_args

import evaluate
from common.data import load_annotations
from common.metrics import segment_tiou

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
THUMOS = os.path.join(SHARED, "thumos14", "thumos14.json")  # ../shared beside the project, where present
ANET = os.path.join(SHARED, "activitynet", "anet1.3.json")


def _evaluate(tmp_path, database, results, thresholds, extra=()):
    ann, pred = tmp_path / "annotations.json", tmp_path / "predictions.json"
    ann.write_text(json.dumps({"database": database}))
    pred.write_text(json.dumps({"results": results}))
    sets = ["dataset.synthetic_size=null", f"dataset.annotation_file={ann}", "dataset.labeled_split=null",
            "dataset.unlabeled_split=null", f"dataset.tiou_thresholds={list(thresholds)}", *extra]
    return evaluate.main(stage_args(sets) + ["--predictions", str(pred)])


def test_segments_past_the_end_and_empty_ones_count_as_the_official_code_counts_them(tmp_path, capsys):
    def gt(start, end):
        return {"label": "Jump", "segment": [start, end], "label_id": 0}
    database = {
        "a": {"subset": "test", "duration": 10.0, "fps": 30.0,
              "annotations": [gt(2, 4), gt(11, 13), gt(9, 12), gt(5, 5)]},  # past the end, ending past it, empty
        "b": {"subset": "train", "duration": 10.0, "fps": 30.0, "annotations": [gt(1, 2)]},
    }
    results = {"a": [{"label": "Jump", "score": 0.9, "segment": [2.0, 4.0]},     # tIoU 1 with [2, 4]
                     {"label": "Jump", "score": 0.8, "segment": [9.0, 10.0]},    # 1/3 with [9, 12] as given
                     {"label": "Jump", "score": 0.7, "segment": [4.5, 5.5]}]}    # 0 with [5, 5]
    # The official tIoU of [5, 5] with [4.5, 5.5]: intersection 5 - 5 = 0 over union 1 + 0 - 0 = 1.
    assert segment_tiou([4.5, 5.5], [[5.0, 5.0]])[0] == 0.0
    # Four ground truths. At 0.5: TP, FP, FP -> recall 1/4 at precision 1: AP 1/4.
    # At 0.3: TP, TP (1/3 >= 0.3), FP -> recall 2/4 at precision 1: AP 1/2.
    metrics = _evaluate(tmp_path, database, results, [0.3, 0.5])
    assert metrics["num_gt"] == {"Jump": 4}
    assert metrics["mAP"] == pytest.approx([0.5, 0.25])
    # Training's reader keeps [2, 4] and [9, 10] (clipped): against those the same file would score 1.
    videos, _ = load_annotations(str(tmp_path / "annotations.json"))
    assert videos["a"].segments.tolist() == [[2.0, 4.0], [9.0, 10.0]]
    assert "scoring against 4 ground-truth segments of 1 'test' videos" in capsys.readouterr().out


# ---------------------------------------------------------------- the official algorithm, slowly

def official_tiou(pred, gt):
    """utils.segment_iou for one pair: the union is the sum of the lengths minus the intersection."""
    inter = max(min(pred[1], gt[1]) - max(pred[0], gt[0]), 0.0)
    return inter / ((gt[1] - gt[0]) + (pred[1] - pred[0]) - inter)


def official_ap(preds, gts, threshold):
    """compute_average_precision_detection for one class and threshold, in plain loops.

    preds: (video, start, end, score); gts: (video, start, end). Predictions by descending score;
    each takes the untaken GT of its video with the highest tIoU if that tIoU >= threshold.
    """
    taken, tp = set(), []
    for video, s, e, _ in sorted(preds, key=lambda p: -p[3]):
        mine = [(official_tiou((s, e), (gs, ge)), j) for j, (gv, gs, ge) in enumerate(gts) if gv == video]
        hit = False
        for tiou, j in sorted(mine, key=lambda x: -x[0]):
            if tiou < threshold:
                break
            if j not in taken:
                taken.add(j)
                hit = True
                break
        tp.append(hit)
    # utils.interpolated_prec_rec: precision made monotone from the right, summed where recall moves
    prec, rec, count = [], [], 0
    for k, t in enumerate(tp, 1):
        count += t
        prec.append(count / k)
        rec.append(count / len(gts))
    mprec, mrec = [0.0] + prec + [0.0], [0.0] + rec + [1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def official_map(database, subset, results, thresholds):
    """_import_ground_truth takes every annotation of the subset as written; mAP over its classes."""
    gts, preds = {}, {}
    for video, entry in database.items():
        if entry["subset"] == subset:
            for ann in entry["annotations"]:
                gts.setdefault(ann["label"], []).append((video, *map(float, ann["segment"])))
    for video, items in results.items():
        for p in items:
            preds.setdefault(p["label"], []).append((video, *p["segment"], p["score"]))
    return [sum(official_ap(preds.get(c, []), gts[c], t) for c in gts) / len(gts) for t in thresholds]


def random_files(rng):
    """Test videos whose segments often run past the end, start past it or are empty, and a
    detector's predictions: clipped to the video, jittered from the truth or anywhere."""
    classes = ["Jump", "Run", "Throw"]
    database, results = {}, {}
    for i in range(rng.randint(3, 7)):
        duration, anns = rng.uniform(20, 60), []
        for _ in range(rng.randint(1, 6)):
            start = rng.uniform(0, duration * 1.2)       # some start past the end
            end = start if rng.random() < 0.15 else start + rng.uniform(0.5, 15)
            label = rng.choice(classes)
            anns.append({"label": label, "segment": [start, end], "label_id": classes.index(label)})
        database[f"v{i}"] = {"subset": "test", "duration": duration, "fps": 30.0, "annotations": anns}
        preds = []
        for _ in range(rng.randint(0, 12)):
            if rng.random() < 0.6:
                a = rng.choice(anns)
                label = a["label"] if rng.random() < 0.8 else rng.choice(classes)
                s, e = a["segment"][0] + rng.uniform(-2, 2), a["segment"][1] + rng.uniform(-2, 2)
            else:
                label, s = rng.choice(classes), rng.uniform(0, duration)
                e = s + rng.uniform(0.5, 15)
            s, e = min(max(s, 0.0), duration - 0.5), min(max(e, 0.0), duration)
            preds.append({"label": label, "score": rng.random(), "segment": [s, max(e, s + 0.1)]})
        results[f"v{i}"] = preds
    database["train0"] = {"subset": "train", "duration": 30.0, "fps": 30.0,
                          "annotations": [{"label": c, "segment": [1.0, 2.0], "label_id": k}
                                          for k, c in enumerate(classes)]}
    return database, results


@pytest.mark.parametrize("seed", range(8))
def test_evaluate_matches_a_slow_official_transcription(tmp_path, seed):
    database, results = random_files(random.Random(seed))
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    metrics = _evaluate(tmp_path, database, results, thresholds)
    expected = official_map(database, "test", results, thresholds)
    assert metrics["mAP"] == pytest.approx(expected, abs=1e-12)
    n_given = sum(len(v["annotations"]) for v in database.values() if v["subset"] == "test")
    assert sum(metrics["num_gt"].values()) == n_given


# ---------------------------------------------------------------- the real annotation files

@pytest.mark.skipif(not os.path.exists(THUMOS), reason="needs ../shared/data/thumos14/thumos14.json beside the project")
def test_thumos14_test_subset_scores_all_3358_segments(tmp_path, capsys):
    data = json.load(open(THUMOS))["database"]
    test = {v: e for v, e in data.items() if e["subset"] == "Test"}
    past = sum(a["segment"][0] >= e["duration"] for e in test.values() for a in e["annotations"])
    assert (sum(len(e["annotations"]) for e in test.values()), past) == (3358, 26)
    videos, _ = load_annotations(THUMOS)  # training's reader drops those 26
    assert sum(len(v.labels) for v in videos.values() if v.subset == "Test") == 3332
    metrics = evaluate.main(stage_args(["dataset.synthetic_size=null", f"dataset.annotation_file={THUMOS}",
                                        "dataset.eval_subset=Test", "dataset.train_subset=Validation",
                                        "dataset.labeled_split=null", "dataset.unlabeled_split=null"]) +
                            ["--predictions", _empty_results(tmp_path)])
    assert sum(metrics["num_gt"].values()) == 3358 and len(metrics["num_gt"]) == 20


@pytest.mark.skipif(not os.path.exists(ANET), reason="needs ../shared/data/activitynet/anet1.3.json beside the project")
def test_activitynet_validation_scores_every_segment(tmp_path):
    data = json.load(open(ANET))["database"]
    given = sum(len(e["annotations"]) for e in data.values() if e["subset"] == "validation")
    empty = sum(a["segment"][0] == a["segment"][1] for e in data.values() if e["subset"] == "validation"
                for a in e["annotations"])
    assert (given, empty) == (7293, 3)  # measured; the reader would drop the 3 empty ones
    metrics = evaluate.main(stage_args(["dataset.synthetic_size=null", f"dataset.annotation_file={ANET}",
                                        "dataset.eval_subset=validation", "dataset.train_subset=training",
                                        "dataset.labeled_split=null", "dataset.unlabeled_split=null"]) +
                            ["--predictions", _empty_results(tmp_path), "--no-per-class"])
    assert sum(metrics["num_gt"].values()) == given


def _args(config, sets):
    """stage_args with another config file than the default one."""
    argv = stage_args(sets)
    argv[argv.index("--config") + 1] = config
    return argv


def test_activitynet_recipe_scores_a_results_file_without_video_level_scores(tmp_path):
    # The class-agnostic recipe labels its own proposals with the classifier's scores; a results file
    # is labelled already, so scoring one must not ask for the scores file (here absent).
    database, results = random_files(random.Random(0))
    (tmp_path / "annotations.json").write_text(json.dumps({"database": database}))
    (tmp_path / "predictions.json").write_text(json.dumps({"results": results}))
    sets = [f"dataset.annotation_file={tmp_path}/annotations.json", f"dataset.video_scores={tmp_path}/absent.json",
            "dataset.eval_subset=test", "dataset.train_subset=train"]
    metrics = evaluate.main(_args("configs/anet_i3d.yaml", sets) +
                            ["--predictions", str(tmp_path / "predictions.json")])
    thresholds = [0.5 + 0.05 * i for i in range(10)]  # the config's, ActivityNet's protocol
    assert metrics["thresholds"] == pytest.approx(thresholds)
    assert metrics["mAP"] == pytest.approx(official_map(database, "test", results, thresholds), abs=1e-12)


def anet_results(data, rng, others=150):
    """A detector's results on the validation videos whose segments training's reader drops (empty) or
    clips (ending past the video) and on `others` more: per ground truth, a copy as given and jittered
    ones (mostly of its class), plus a few anywhere. None is empty: the official tIoU of two would be 0/0."""
    classes = sorted({a["label"] for e in data.values() for a in e["annotations"]})
    val = sorted(v for v, e in data.items() if e["subset"] == "validation")
    odd = [v for v in val if any(a["segment"][0] == a["segment"][1] or a["segment"][1] > data[v]["duration"]
                                 for a in data[v]["annotations"])]
    results = {}
    for v in odd + rng.sample([v for v in val if v not in odd], others):
        duration, preds = data[v]["duration"], []
        for a in data[v]["annotations"]:
            (s, e), length = a["segment"], a["segment"][1] - a["segment"][0]
            preds.append((a["label"], [s, max(e, s + 0.5)]))
            for _ in range(3):
                label = a["label"] if rng.random() < 0.8 else rng.choice(classes)
                js, je = s + rng.uniform(-0.3, 0.3) * length - 0.5, e + rng.uniform(-0.3, 0.3) * length + 0.5
                preds.append((label, [max(js, 0.0), max(je, js + 0.5)]))
        for _ in range(2):
            s = rng.uniform(0, duration - 1)
            preds.append((rng.choice(classes), [s, min(s + rng.uniform(1, 60), duration)]))
        results[v] = [{"label": label, "score": rng.random(), "segment": seg} for label, seg in preds]
    return results, odd


@pytest.mark.skipif(not os.path.exists(ANET), reason="needs ../shared/data/activitynet/anet1.3.json beside the project")
def test_activitynet_config_matches_the_official_transcription_on_the_real_file(tmp_path):
    data = json.load(open(ANET))["database"]
    results, odd = anet_results(data, random.Random(0))
    assert len(odd) == 74  # measured: 3 with an empty segment, 71 with one ending past the video
    pred = tmp_path / "predictions.json"
    pred.write_text(json.dumps({"results": results}))
    # the documented command, with the config's own video_scores path (no such file in a checkout)
    metrics = evaluate.main(["--config", "configs/anet_i3d.yaml", "--set", f"dataset.annotation_file={ANET}",
                             "--predictions", str(pred), "--no-per-class"])
    thresholds = [0.5 + 0.05 * i for i in range(10)]
    assert metrics["thresholds"] == pytest.approx(thresholds)
    assert sum(metrics["num_gt"].values()) == 7293 and len(metrics["num_gt"]) == 200
    expected = official_map(data, "validation", results, thresholds)
    assert metrics["mAP"] == pytest.approx(expected, abs=1e-12)
    # the segments the training reader repairs matter to these results: against its ground truth
    # (empty ones dropped, the rest clipped to the video) the same file scores otherwise
    videos, classes = load_annotations(ANET)
    repaired = {v: {"subset": x.subset, "annotations": [{"label": classes[int(c)], "segment": [float(s), float(e)]}
                                                         for (s, e), c in zip(x.segments, x.labels)]}
                for v, x in videos.items()}
    assert official_map(repaired, "validation", results, thresholds) != pytest.approx(expected, abs=1e-9)


def _empty_results(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text('{"results": {}}')
    return str(path)
