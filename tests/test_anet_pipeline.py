"""ActivityNet's recipe through the stages: features resized to a fixed grid (dataset.resize_to), a
class-agnostic detector (dataset.class_agnostic) whose proposals a video-level classifier labels
(dataset.video_scores, test.video_topk), and APL on top of it. Hand-worked values for the grid and
the labelling, a tiny chain of every stage on a reduced ActivityNet-like dataset, and the errors."""
import json

import numpy as np
import pytest
import torch

import evaluate
import pretrain_acp
import pseudo_label
import train_semi
import train_supervised
from common import losses
from common.config import ConfigError, load_config
from common.data import (VideoDataset, grid_of, grid_to_time, load_annotations, resize_features, time_to_grid,
                         to_grid)
from common.losses import batch_targets, class_agnostic, labeled_loss
from common.model import build_model, make_points
from common.video_scores import load_video_scores
from conftest import REDUCED_ANET, reduced_anet
from conftest import exit_line as _exit_line

TINY = ["model.embd_dim=16", "model.head_dim=16", "model.n_head=2", "model.attn_window=5", "model.icd_hidden=16",
        "model.acp_proj_dim=16", "dataset.resize_to=64", "dataset.max_seq_len=64", "train.epochs=2",
        "train.warmup_epochs=1", "train.batch_size=4", "acp.epochs=0", "acp.warmup_epochs=1",
        "semi.epochs=1", "semi.warmup_epochs=0",
        "pseudo.tau_neg=0.0"]  # a detector this small and briefly trained scores far below the published 0.15


def _argv(sets, config="configs/anet_synthetic.yaml"):
    out = ["--config", config, "--device", "cpu", "--no-progress"]
    for s in sets:
        out += ["--set", s]
    return out


# ---------------------------------------------------------------- the resized grid (force_upsampling)

def test_resized_grid_maps_seconds_by_hand():
    dcfg = {"feat_stride": 16, "num_frames": 16, "resize_to": 6}
    # 12 features of 16 frames every 16 frames saw (12 - 1) * 16 + 16 = 192 frames; on 6 steps each
    # step spans 32 frames, and is centred on its own window: num_frames = stride = 32.
    assert grid_of(dcfg, 12) == (32.0, 32.0)
    # At 32 fps a step is 1 s: step i covers [i, i + 1] s, its centre i + 0.5 s.
    # t = 3 s -> 3 * 32 / 32 - 0.5 * 32 / 32 = 2.5; step 0 -> (0 * 32 + 16) / 32 = 0.5 s; step 5 -> 5.5 s
    assert time_to_grid(3.0, 32.0, *grid_of(dcfg, 12)) == 2.5
    assert grid_to_time(0.0, 32.0, *grid_of(dcfg, 12)) == 0.5
    assert grid_to_time(5.0, 32.0, *grid_of(dcfg, 12)) == 5.5
    # 10 features on 4 steps: (9 * 16 + 16) / 4 = 40 frames a step, 2 s at 20 fps:
    # t = 3 s -> 3 * 20 / 40 - 0.5 = 1.0, and back (1 * 40 + 0.5 * 40) / 20 = 3.0 s
    dcfg = {"feat_stride": 16, "num_frames": 16, "resize_to": 4}
    assert grid_of(dcfg, 10) == (40.0, 40.0)
    assert time_to_grid(3.0, 20.0, *grid_of(dcfg, 10)) == 1.0
    assert grid_to_time(1.0, 20.0, *grid_of(dcfg, 10)) == 3.0
    # without resize_to: the config's own grid, whatever the length
    assert grid_of({"feat_stride": 16, "num_frames": 16, "resize_to": None}, 10) == (16, 16)


def test_resize_is_actionformers_linear_interpolation_by_hand():
    # step i of the output samples input position (i + 0.5) * T / N - 0.5, held inside [0, T - 1]
    ramp = np.arange(12, dtype=np.float32)[:, None].repeat(3, 1)          # x[t] = t, 3 channels
    # 12 -> 6: positions 2i + 0.5 -> 0.5, 2.5, ..., 10.5
    np.testing.assert_allclose(resize_features(ramp, 6)[:, 0], [0.5, 2.5, 4.5, 6.5, 8.5, 10.5])
    # 2 -> 4: positions -0.25, 0.25, 0.75, 1.25 -> held to 0, 0.25, 0.75, 1
    np.testing.assert_allclose(resize_features(ramp[:2], 4)[:, 2], [0.0, 0.25, 0.75, 1.0])
    assert resize_features(ramp, 6).shape == (6, 3) and resize_features(ramp, 6).dtype == np.float32


def test_dataset_gives_the_resized_grid_and_its_stride(tmp_path):
    ann = tmp_path / "annotations.json"
    ann.write_text(json.dumps({"database": {"v": {"subset": "training", "duration": 6.0, "fps": 32.0,
                                                  "annotations": [{"label": "Kayaking", "segment": [1.0, 3.0]}]}}}))
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "v.npy", np.arange(12 * 3, dtype=np.float32).reshape(12, 3))
    dcfg = {"annotation_file": str(ann), "feature_dir": str(tmp_path / "f"), "feature_dim": 3, "feat_stride": 16,
            "num_frames": 16, "resize_to": 6, "max_seq_len": 6, "trunc_thresh": 0.5}
    videos, _ = load_annotations(str(ann))
    item = VideoDataset(dcfg, videos, ["v"], training=True)[0]
    assert item["feats"].shape == (3, 6) and item["feat_stride"] == 32.0 and item["num_frames"] == 32.0
    # [1, 3] s at 1 s a step: [0.5, 2.5] (the hand values above), the same the ICD pools (to_grid)
    assert item["segments"].tolist() == [[0.5, 2.5]]
    np.testing.assert_array_equal(to_grid(dcfg, videos["v"], videos["v"].segments), [[0.5, 2.5]])


# ---------------------------------------------------------------- class-agnostic targets

def test_class_agnostic_targets_are_any_class_targets():
    # two actions of classes 3 and 7 on a 32-step grid, one level, stride 1, every range
    points = make_points([32], [1], [[0, 10000]])
    batch = {"segments": [torch.tensor([[2.0, 8.0], [20.0, 30.0]])], "labels": [torch.tensor([3, 7])],
             "label_weights": [torch.rand(2, 10)]}
    one = class_agnostic(batch)
    assert one["labels"][0].tolist() == [0, 0] and "label_weights" not in one
    assert batch["labels"][0].tolist() == [3, 7]  # the batch itself keeps its real labels
    multi, reg_multi = batch_targets(points, {k: v for k, v in batch.items() if k != "label_weights"}, 10, 1.5)
    agnostic, reg = batch_targets(points, one, 1, 1.5)
    assert agnostic.shape == (1, 32, 1)
    # a point is positive for "action" exactly where it is positive for some class; same regression
    torch.testing.assert_close(agnostic[..., 0], multi.amax(-1))
    torch.testing.assert_close(reg, reg_multi)
    # centre 5 +- 1.5 and 25 +- 1.5, strictly inside: points 4, 5, 6 and 24, 25, 26
    assert torch.nonzero(agnostic[0, :, 0]).squeeze(1).tolist() == [4, 5, 6, 24, 25, 26]


def test_icd_and_acp_keep_the_real_classes(monkeypatch):
    cfg = load_config("configs/anet_synthetic.yaml", TINY)
    model = build_model(cfg, 1)  # one "action" class
    seen = {}
    real_icd, real_truth = losses.icd_loss, losses.truth_labels

    def icd_spy(disc, anchors, anchor_labels, *args):
        seen["icd"] = anchor_labels.tolist()
        return real_icd(disc, anchors, anchor_labels, *args)

    def truth_spy(segments, labels, idx, *args):
        seen["acp"] = [lab.tolist() for lab in labels]
        return real_truth(segments, labels, idx, *args)

    monkeypatch.setattr(losses, "icd_loss", icd_spy)
    monkeypatch.setattr(losses, "truth_labels", truth_spy)
    feats = torch.randn(1, 64, 64)
    batch = {"feats": feats, "mask": torch.ones(1, 64, dtype=torch.bool),
             "segments": [torch.tensor([[4.0, 20.0], [30.0, 50.0]])], "labels": [torch.tensor([2, 5])]}

    class Bank:  # labeled instances of classes 2 and 5: each anchor has a same and an other partner
        feats, labels = torch.randn(4, 64), torch.tensor([2, 2, 5, 5])

        def rows_of(self, batch):  # none of the batch's instances is among these
            return None

    parts = labeled_loss(model, batch, cfg, losses.LossNormalizer(), Bank())
    assert seen == {"icd": [2, 5], "acp": [[2, 5]]}
    assert torch.isfinite(parts["loss"]) and parts["num_pos"] > 0 and parts["icd_loss"] > 0


# ---------------------------------------------------------------- the chain on a reduced dataset

@pytest.fixture(scope="module")
def anet(tmp_path_factory):
    """(root, overrides) of a reduced ActivityNet-like dataset at its smallest labeled split (20%: at
    10% its 40 training videos cannot hold every one of its 8 classes)."""
    root = str(tmp_path_factory.mktemp("data") / "anet")
    return root, reduced_anet(root) + TINY


@pytest.fixture(scope="module")
def chain(anet, tmp_path_factory):
    """ACP -> supervised -> pseudo labels -> semi-supervised round, all class-agnostic."""
    root, sets = anet
    out = tmp_path_factory.mktemp("run")
    pretrain_acp.main(_argv(sets) + ["--out", str(out / "acp")])
    train_supervised.main(_argv(sets) + ["--init", str(out / "acp" / "last.pt"), "--out", str(out / "sup")])
    pseudo_label.main(_argv(sets) + ["--checkpoint", str(out / "sup" / "last.pt"), "--out", str(out / "pl.json")])
    train_semi.main(_argv(sets) + ["--init", str(out / "sup" / "last.pt"), "--pseudo-labels", str(out / "pl.json"),
                                   "--out", str(out / "semi")])
    return out


def test_pseudo_labels_take_their_video_class_from_the_classifier(anet, chain):
    root, sets = anet
    data = json.load(open(chain / "pl.json"))
    videos, classes = load_annotations(f"{root}/annotations.json")
    probs = load_video_scores(f"{root}/video_scores.json", classes)
    assert "top-1 class of the video" in data["meta"]["class_agnostic"]
    entries = [(vid, e) for vid, v in data["database"].items() for e in v["annotations"] + v["rejected"]]
    assert entries and any(v["annotations"] for v in data["database"].values()), "nothing above tau_neg"
    for vid, e in entries:
        order = np.argsort(-probs[vid], kind="stable")
        assert e["label"] == classes[order[0]] and e["label_id"] == order[0]
        # class_scores: the video's five most likely classes and their probabilities, not the detector's
        assert list(e["class_scores"]) == [classes[c] for c in order[:5]]
        np.testing.assert_allclose(list(e["class_scores"].values()), probs[vid][order[:5]], atol=1e-4)
    # every unlabeled video has its entry, and only those
    split = next(s.split("=", 1)[1] for s in sets if s.startswith("dataset.unlabeled_split="))
    assert sorted(data["database"]) == sorted(open(split).read().split()) and set(data["database"]) <= set(videos)
    # train_semi trained on the file, its pseudo labels included
    log = [json.loads(line) for line in open(chain / "semi" / "log.jsonl")]
    assert log and all(np.isfinite(line["loss"]) and line["u_reg_loss"] > 0 for line in log)


def test_evaluate_labels_the_proposals_with_the_top_k_classes(anet, chain, tmp_path):
    root, sets = anet
    pred, metrics = tmp_path / "pred.json", tmp_path / "m.json"
    got = evaluate.main(_argv(sets) + ["--checkpoint", str(chain / "semi" / "last.pt"), "--out", str(pred),
                                       "--json", str(metrics)])
    results = json.load(open(pred))
    _, classes = load_annotations(f"{root}/annotations.json")
    probs = load_video_scores(f"{root}/video_scores.json", classes)
    assert results["external_data"] == {"used": True, "details": f"{root}/video_scores.json"}
    assert len(results["results"]) == REDUCED_ANET["num_val"]
    for vid, preds in results["results"].items():
        top2 = {classes[c] for c in np.argsort(-probs[vid], kind="stable")[:2]}
        assert {p["label"] for p in preds} <= top2
        assert len(preds) % 2 == 0 and len(preds) <= 2 * 100  # every proposal twice; 100 after Soft-NMS
    assert got["thresholds"] == pytest.approx([0.5 + 0.05 * i for i in range(10)]) and 0 <= got["average"] <= 1
    assert evaluate.main(_argv(sets) + ["--predictions", str(pred)])["mAP"] == got["mAP"]


def _hand_dataset(tmp_path, scores):
    """Two validation videos of 64-d features, classes A, B (and C, only in training)."""
    def video(subset, label, segment):
        return {"subset": subset, "duration": 40.0, "fps": 16.0, "annotations": [{"label": label, "segment": segment}]}
    database = {"v1": video("validation", "A", [0.0, 10.0]), "v2": video("validation", "B", [5.0, 15.0]),
                "t1": video("training", "C", [1.0, 2.0])}
    (tmp_path / "annotations.json").write_text(json.dumps({"database": database}))
    (tmp_path / "f").mkdir()
    for vid in database:
        np.save(tmp_path / "f" / f"{vid}.npy", np.zeros((40, 64), dtype=np.float32))
    (tmp_path / "scores.json").write_text(json.dumps({"class": ["A", "B", "C"], "results": scores}))
    return ["dataset.synthetic_size=null", f"dataset.annotation_file={tmp_path}/annotations.json",
            f"dataset.feature_dir={tmp_path}/f", f"dataset.video_scores={tmp_path}/scores.json",
            "dataset.labeled_split=null", "dataset.unlabeled_split=null", "dataset.tiou_thresholds=[0.5]"]


def test_labelling_inside_evaluate_by_hand(chain, tmp_path, monkeypatch):
    # The classifier is wrong on v1 (B 0.6 over its true A 0.3) and right on v2.
    sets = TINY + _hand_dataset(tmp_path, {"v1": [0.3, 0.6, 0.1], "v2": [0.2, 0.7, 0.1]})
    proposals = {"v1": ([[0.0, 10.0], [20.0, 30.0]], [0.8, 0.5]), "v2": ([[5.0, 15.0]], [0.5])}

    def fake_predict(model, dataset, cfg, device, progress):  # the detector's proposals, after Soft-NMS
        return {vid: {"segments": np.array(s), "scores": np.array(p), "labels": np.zeros(len(p), dtype=np.int64)}
                for vid, (s, p) in proposals.items()}

    monkeypatch.setattr(evaluate, "predict", fake_predict)
    ckpt, pred = str(chain / "sup" / "last.pt"), str(tmp_path / "pred.json")
    # top 2: v1 -> B [0, 10] 0.8 x 0.6 = 0.48, B [20, 30] 0.30, A [0, 10] 0.24, A [20, 30] 0.15;
    #        v2 -> B [5, 15] 0.5 x 0.7 = 0.35, A [5, 15] 0.10.
    # A (truth v1 [0, 10]): 0.24 TP, 0.15 FP, 0.10 FP -> AP 1.
    # B (truth v2 [5, 15]): 0.48 FP, 0.35 TP, 0.30 FP -> recall 1 at precision 1/2: AP 0.5.  mAP 0.75
    metrics = evaluate.main(_argv(sets) + ["--checkpoint", ckpt, "--out", pred])
    assert metrics["mAP"] == pytest.approx([0.75])
    written = json.load(open(pred))["results"]
    assert [(p["label"], p["score"], p["segment"]) for p in written["v1"]] == [
        ("B", 0.48, [0.0, 10.0]), ("B", 0.3, [20.0, 30.0]), ("A", 0.24, [0.0, 10.0]), ("A", 0.15, [20.0, 30.0])]
    # top 1: A has no detection left (AP 0), B as above (0.5): mAP 0.25
    metrics = evaluate.main(_argv(sets + ["test.video_topk=1"]) + ["--checkpoint", ckpt, "--out", pred])
    assert metrics["mAP"] == pytest.approx([0.25])


# ---------------------------------------------------------------- errors, one line each

def test_bad_scores_file_through_a_stage(anet, chain, tmp_path, capsys):
    root, sets = anet
    scores = json.load(open(f"{root}/video_scores.json"))
    # a validation video without scores: evaluate needs it, and stops before running the detector
    missing = dict(scores, results={k: v for k, v in scores["results"].items() if k != "anet_valid_00003"})
    (tmp_path / "missing.json").write_text(json.dumps(missing))
    out = tmp_path / "pred.json"
    err = _exit_line(evaluate.main, _argv(sets + [f"dataset.video_scores={tmp_path}/missing.json"])
                     + ["--checkpoint", str(chain / "sup" / "last.pt"), "--out", str(out)], capsys)
    assert err.startswith(f"error: {tmp_path}/missing.json: video anet_valid_00003: results: no scores")
    assert not out.exists()
    # a malformed probability: every stage checks the whole file at its start, training ones too
    bad = dict(scores, results={**scores["results"], "anet_train_00002": ["x"] + scores["results"]
                                ["anet_train_00002"][1:]})
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    err = _exit_line(train_supervised.main, _argv(sets + [f"dataset.video_scores={tmp_path}/bad.json"])
                     + ["--out", str(tmp_path / "sup")], capsys)
    first = scores["class"][0]
    assert err == (f"error: {tmp_path}/bad.json: video anet_train_00002: score of {first!r}: "
                   "expected a probability >= 0, got 'x'")
    assert not (tmp_path / "sup").exists()


def test_config_and_checkpoint_errors_name_the_key(anet, chain, tmp_path, capsys):
    root, sets = anet
    for override, key in (("dataset.video_scores=null", "config key dataset.video_scores: required when"),
                          ("dataset.resize_to=0", "config key dataset.resize_to: expected null or a positive"),
                          ("test.video_topk=0", "config key test.video_topk: expected a positive integer"),
                          ("test.class_agnostic=false", "config key test.class_agnostic: removed; NMS spans the classes")):
        err = _exit_line(train_supervised.main, _argv(sets + [override]) + ["--out", str(tmp_path / "x")], capsys)
        assert key in err, err
    with pytest.raises(ConfigError, match="dataset.resize_to"):
        load_config("configs/anet_synthetic.yaml", ["dataset.resize_to=true"])
    # a class-agnostic detector evaluated with a per-class config: named, not a shape mismatch
    err = _exit_line(evaluate.main, _argv(sets + ["dataset.class_agnostic=false", "test.voting=false"]) +
                     ["--checkpoint", str(chain / "sup" / "last.pt"), "--out", str(tmp_path / "p.json")], capsys)
    assert "config.dataset.class_agnostic: the detector was trained with true, this config says false" in err


# ---------------------------------------------------------------- the published configs

def _leaves(cfg, prefix=""):
    for key, value in cfg.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + key + ".")
        else:
            yield prefix + key, value


PATHS = {"dataset.name", "dataset.annotation_file", "dataset.feature_dir"}  # where the user's copy lies


@pytest.mark.parametrize("name, dim", [("anet_i3d", 2048), ("anet_tsn", 400)])
def test_activitynet_configs_say_where_each_difference_comes_from(name, dim):
    path = f"configs/{name}.yaml"
    cfg, thumos = load_config(path), dict(_leaves(load_config("configs/thumos_i3d.yaml")))
    assert cfg["dataset"]["feature_dim"] == dim and cfg["dataset"]["class_agnostic"]
    assert (cfg["dataset"]["resize_to"], cfg["test"]["nms_sigma"], cfg["test"]["voting_iou"],
            cfg["test"]["max_segments"], cfg["test"]["video_topk"]) == (192, 0.75, 0.9, 100, 2)
    lines = open(path).read().splitlines()
    for key, value in _leaves(cfg):
        if value == thumos[key] or key in PATHS:
            continue
        section, leaf = key.split(".")
        # the key's line in its section is commented, or follows a comment, or its section's line is
        first = lines.index(f"{section}:") if f"{section}:" in lines else next(
            n for n, line in enumerate(lines) if line.startswith(f"{section}:"))
        n = next(n for n in range(first + 1, len(lines)) if lines[n].strip().startswith(leaf + ":"))
        assert "#" in lines[n] or lines[n - 1].strip().startswith("#") or "#" in lines[first], (key, lines[n])


def test_one_seam_names_the_classes_and_no_stage_branches_on_the_kind(tmp_path):
    """stage.class_namer is the class-agnostic kind's one seam: the detector's classes unchanged, or
    the video-level classifier's (top-k copies for evaluation, top-1 for pseudo labels), worked by
    hand; the stage scripts ask it and never read dataset.class_agnostic themselves."""
    from common.config import load_config
    from common.stage import class_namer
    pred = {"v": {"segments": np.array([[1.0, 2.0], [3.0, 5.0]]), "scores": np.array([0.8, 0.5]),
                  "labels": np.array([0, 0])}}
    own = class_namer(load_config("configs/default.yaml"), ["a", "b", "c"], ["v"])
    assert own.detections(pred) == (pred, None) and own.pseudo_labels(pred) is pred and not own.proposals
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"class": ["a", "b", "c"], "results": {"v": [0.2, 0.7, 0.1]}}))
    cfg = load_config("configs/anet_synthetic.yaml", [f"dataset.video_scores={path}", "test.video_topk=2"])
    namer = class_namer(cfg, ["a", "b", "c"], ["v"])
    detections, proposals = namer.detections(pred)
    assert proposals is pred and namer.proposals and namer.external == str(path)
    np.testing.assert_array_equal(detections["v"]["labels"], [1, 1, 0, 0])  # b (0.7), then a (0.2)
    np.testing.assert_allclose(detections["v"]["scores"], [0.56, 0.35, 0.16, 0.10])
    labelled = namer.pseudo_labels(pred)["v"]
    np.testing.assert_array_equal(labelled["labels"], [1, 1])
    np.testing.assert_allclose(labelled["topk_probs"][0], [0.7, 0.2, 0.1])
    assert "top-1 class of the video" in namer.meta["class_agnostic"]
    assert class_namer(cfg, ["a", "b", "c"]).probs is None  # the kind alone: no scores read
    for script in ("pretrain_acp.py", "train_supervised.py", "pseudo_label.py", "train_semi.py", "evaluate.py"):
        code = "".join(line for line in open(script) if not line.lstrip().startswith(("#", '"')))
        assert '["class_agnostic"]' not in code, script
