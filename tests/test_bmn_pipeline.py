"""BMN through the stages (model.arch: bmn, issue 11): the config's checks, BMN's time against the
toolkit's grid and its decoding worked by hand, a tiny BMN through every stage script on a reduced
ActivityNet-like dataset (the files each writes, in the schema ActionFormer's write), and the errors."""
import json

import numpy as np
import pytest
import torch

import evaluate
import pretrain_acp
import pseudo_label
import train_semi
import train_supervised
from common import pseudo_file
from common.bmn_detector import BMNDetector, decode_video, from_unit, postprocess, to_unit
from common.checkpoint import load_checkpoint
from common.config import DEFAULTS, RECIPES, ConfigError, load_config
from common.data import grid_of, load_annotations, time_to_grid
from common.stage import build_detector
from common.video_scores import load_video_scores
from conftest import REDUCED_ANET, reduced_anet
from conftest import exit_line as _exit_line

CONFIG = "configs/anet_synthetic_bmn.yaml"
TINY = ["dataset.resize_to=16", "dataset.max_seq_len=16", "model.bmn.temporal_scale=16", "model.bmn.max_duration=16",
        "model.bmn.num_samples=4", "model.bmn.num_samples_per_bin=2", "model.bmn.hidden_1d=8",
        "model.bmn.hidden_3d=8", "model.bmn.hidden_2d=8", "model.icd_hidden=8", "model.acp_proj_dim=8",
        "train.epochs=2", "train.warmup_epochs=1", "train.batch_size=4", "acp.epochs=1", "acp.warmup_epochs=0",
        "semi.epochs=1", "semi.warmup_epochs=0",
        "pseudo.tau_neg=0.0"]  # a BMN this small and briefly trained scores far below any published threshold


def _argv(sets, config=CONFIG):
    out = ["--config", config, "--device", "cpu", "--no-progress"]
    for s in sets:
        out += ["--set", s]
    return out


# ---------------------------------------------------------------- config

@pytest.mark.parametrize("override, message", [
    ("model.arch=bmm", "model.arch: expected one of actionformer, bmn, got 'bmm'"),
    ("dataset.resize_to=64", "dataset.resize_to: model.arch bmn needs every video resized to model.bmn.temporal_scale"),
    ("dataset.max_seq_len=50", "dataset.max_seq_len: 50 would crop BMN's 100 steps"),
    ("dataset.class_agnostic=false", "dataset.class_agnostic: model.arch bmn gives class-agnostic proposals"),
    ("model.bmn.max_duration=101", "model.bmn.max_duration: 101 is longer than the temporal scale 100"),
    ("model.bmn.num_samples=0", "model.bmn.num_samples: expected a positive integer"),
    ("model.bmn.hidden_1d=30", "model.bmn.hidden_1d: BMN's grouped convs need a multiple of 4"),
    ("model.alqa=tiou_tnd", "model.alqa: model.arch bmn takes none or tiou"),
    ("test.bmn.top_k=0", "test.bmn.top_k: expected a positive integer"),
    ("test.bmn.low_threshold=0.95", "test.bmn: expected alpha > 0 and 0 <= low_threshold <= high_threshold"),
])
def test_config_checks_what_bmn_needs(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(CONFIG, [override])


def test_default_arch_and_old_checkpoints_stay_actionformer():
    assert DEFAULTS["model"]["arch"] == "actionformer"
    assert load_config("configs/anet_synthetic.yaml")["model"]["arch"] == "actionformer"


def _leaves(cfg, prefix=""):
    for key, value in cfg.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + key + ".")
        else:
            yield prefix + key, value


def test_published_config_comments_every_value():
    path = "configs/anet_tsn_bmn.yaml"
    cfg = load_config(path)
    # BMN's published ActivityNet setting (reference facts, the public code's opts.py)
    assert cfg["model"]["bmn"] == {"temporal_scale": 100, "max_duration": 100, "num_samples": 32,
                                   "num_samples_per_bin": 3, "boundary_ratio": 0.5, "hidden_1d": 256,
                                   "hidden_3d": 512, "hidden_2d": 128}
    assert cfg["test"]["bmn"] == {"alpha": 0.4, "low_threshold": 0.5, "high_threshold": 0.9, "top_k": 100}
    assert cfg["dataset"]["feature_dim"] == 400 and cfg["dataset"]["resize_to"] == 100
    assert cfg["loss"]["bmn"] == {"tem_weight": 1.0, "reg_weight": 10.0, "cls_weight": 1.0}
    defaults = dict(_leaves(DEFAULTS))
    defaults.update(_leaves(RECIPES[cfg["recipe"]]))  # the recipe the file names (commented at its top)
    lines = open(path).read().splitlines()
    for key, value in _leaves(cfg):
        if value == defaults[key] or key in ("dataset.annotation_file", "dataset.feature_dir", "dataset.name"):
            continue
        found = [-1]  # the line of each part of the key in turn, each after the one before
        for part in key.split("."):
            found.append(next(m for m in range(found[-1] + 1, len(lines)) if lines[m].strip().startswith(part + ":")))
        n, block = found[-1], found[-2]
        # commented on its own line, on the line before, or on its block's line (loss.bmn)
        assert "#" in lines[n] or lines[n - 1].strip().startswith("#") or "#" in lines[block], (key, lines[n])
    small = load_config(CONFIG)
    assert small["model"]["arch"] == "bmn" and small["dataset"]["resize_to"] <= 100


# ---------------------------------------------------------------- time and decoding by hand

def test_bmn_time_is_the_resized_grid_by_hand():
    # 12 features every 16 frames of 16 on T = 6 steps: 32 frames a step, 1 s at 32 fps (the hand
    # values of tests/test_anet_pipeline.py). Step i covers [i, i + 1] s, BMN's [i / 6, (i + 1) / 6].
    dcfg = {"feat_stride": 16, "num_frames": 16, "resize_to": 6}
    grid = time_to_grid(np.array([[1.0, 3.0]]), 32.0, *grid_of(dcfg, 12))         # [[0.5, 2.5]]
    unit = to_unit(torch.tensor(grid), 6)
    torch.testing.assert_close(unit, torch.tensor([[1 / 6, 3 / 6]], dtype=torch.float64))
    # the whole first step, grid [-0.5, 0.5], is BMN's first snippet [0, 1/6]
    torch.testing.assert_close(to_unit(torch.tensor([-0.5, 0.5]), 6), torch.tensor([0.0, 1 / 6]))
    np.testing.assert_allclose(from_unit(unit.numpy(), 6), grid)
    # and back to seconds through the stages' post-processing: [1/6, 3/6] -> [1, 3] s
    out = postprocess(unit, torch.tensor([0.5]), torch.tensor([0.7]), torch.tensor([0.6]),
                      (32.0, 6.0, *grid_of(dcfg, 12)), 6)
    np.testing.assert_allclose(out["segments"], [[1.0, 3.0]])
    assert out["cls_score"].tolist() == pytest.approx([0.7]) and out["tiou"].tolist() == pytest.approx([0.6])
    assert np.isnan(out["tnd"]).all() and out["labels"].tolist() == [0] and out["topk_labels"].shape == (1, 1)


def test_joint_score_is_the_fused_score_by_hand():
    cfg = load_config(CONFIG)
    # T = 4: one start candidate (step 0, a peak) and one end candidate (step 3): the proposal
    # (d = 3, t = 0), [0, 1]; the other steps are 0.1 between equal neighbours, no peak.
    start, end = torch.tensor([0.8, 0.1, 0.1, 0.1]), torch.tensor([0.1, 0.1, 0.1, 0.8])
    conf = torch.zeros(2, 4, 4)
    conf[1, 3, 0], conf[0, 3, 0] = 0.5, 0.6                    # classification 0.5, regression 0.6
    segments, scores, cls_conf, reg_conf = decode_video(start, end, conf, cfg)
    assert segments.tolist() == [[0.0, 1.0]]
    assert scores.tolist() == pytest.approx([0.8 * 0.8 * 0.5 * 0.6])          # 0.192, published fusion
    assert cls_conf.tolist() == pytest.approx([0.5]) and reg_conf.tolist() == pytest.approx([0.6])
    cfg["model"]["alqa"] = "none"                               # the ablation: no tIoU estimate in the score
    assert decode_video(start, end, conf, cfg)[1].tolist() == pytest.approx([0.8 * 0.8 * 0.5])


def test_stage_builds_bmn_with_the_icd_and_acp_parts():
    cfg = load_config(CONFIG, TINY)
    model = build_detector(cfg, ["a", "b"], torch.device("cpu"))
    assert isinstance(model, BMNDetector) and model.pad_multiple == 1
    out = model(torch.randn(2, 64, 16), torch.ones(2, 16, dtype=torch.bool))
    assert out["start"].shape == (2, 16) and out["confidence"].shape == (2, 2, 16, 16)
    assert [f.shape for f in out["feats"]] == [(2, 8, 16)]      # the base module: ACP's one-level pyramid
    with pytest.raises(ValueError, match="BMN takes 16 steps"):
        model(torch.randn(1, 64, 20), torch.ones(1, 20, dtype=torch.bool))


# ---------------------------------------------------------------- every stage on a reduced dataset

@pytest.fixture(scope="module")
def anet(tmp_path_factory):
    """(root, overrides) of the reduced ActivityNet-like dataset at its smallest labeled split."""
    root = str(tmp_path_factory.mktemp("data") / "anet")
    return root, reduced_anet(root) + TINY


@pytest.fixture(scope="module")
def supervised(anet, tmp_path_factory):
    """ACP on BMN's base module -> supervised BMN from it."""
    _, sets = anet
    out = tmp_path_factory.mktemp("run")
    pretrain_acp.main(_argv(sets) + ["--out", str(out / "acp")])
    train_supervised.main(_argv(sets) + ["--init", str(out / "acp" / "last.pt"), "--out", str(out / "sup")])
    return out


def test_acp_and_supervised_checkpoints_record_bmn(supervised):
    acp = load_checkpoint(str(supervised / "acp" / "last.pt"))
    assert acp["config"]["model"]["arch"] == "bmn" and acp["stage"] == "acp"
    assert {k.split(".")[0] for k in acp["model"]} == {"base", "acp_proj"}   # the pre-trained parts only
    sup = load_checkpoint(str(supervised / "sup" / "last.pt"))
    assert sup["config"]["model"]["arch"] == "bmn" and sup["epoch"] == 2
    log = [json.loads(line) for line in open(supervised / "sup" / "log.jsonl")]
    assert len(log) == 3 and all({"tem_loss", "pem_cls_loss", "pem_reg_loss", "icd_loss", "acp_loss"} <= set(line)
                                 for line in log)
    assert all(np.isfinite(line["loss"]) for line in log)


def test_evaluate_writes_labelled_proposals_and_prints_ar(anet, supervised, tmp_path, capsys):
    root, sets = anet
    pred, metrics = tmp_path / "pred.json", tmp_path / "m.json"
    got = evaluate.main(_argv(sets) + ["--checkpoint", str(supervised / "sup" / "last.pt"), "--out", str(pred),
                                       "--json", str(metrics)])
    printed = capsys.readouterr().out
    assert "AR@100" in printed and "AUC" in printed
    results = json.load(open(pred))
    assert results["external_data"] == {"used": True, "details": f"{root}/video_scores.json"}
    assert len(results["results"]) == REDUCED_ANET["num_val"]
    for preds in results["results"].values():  # each proposal twice (top-2 classes), at most 100 proposals
        assert preds and len(preds) % 2 == 0 and len(preds) <= 2 * 100
        assert all(0 <= p["segment"][0] < p["segment"][1] and 0 <= p["score"] <= 1 for p in preds)
    assert 0 <= got["average"] <= 1 and "proposals" in json.load(open(metrics))
    assert evaluate.main(_argv(sets) + ["--predictions", str(pred)])["mAP"] == got["mAP"]


def test_a_checkpoint_of_the_other_detector_is_one_line(anet, supervised, tmp_path, capsys):
    root, sets = anet
    ckpt = str(supervised / "sup" / "last.pt")
    af = [s for s in sets if s not in TINY] + ["dataset.resize_to=16", "dataset.max_seq_len=16"]
    err = _exit_line(evaluate.main, _argv(af, "configs/anet_synthetic.yaml")
                     + ["--checkpoint", ckpt, "--out", str(tmp_path / "p.json")], capsys)
    assert err == (f"error: {ckpt}: config.model.arch: the checkpoint holds a bmn detector, "
                   "this config builds actionformer")
    err = _exit_line(train_supervised.main, _argv(af, "configs/anet_synthetic.yaml")
                     + ["--init", ckpt, "--out", str(tmp_path / "sup")], capsys)
    assert "config.model.arch: the checkpoint holds a bmn detector" in err
    # the checkpoint's T against this run's features: named, not a shape error at the first batch
    bigger = ["dataset.resize_to=20", "dataset.max_seq_len=20", "model.bmn.temporal_scale=20",
              "model.bmn.max_duration=20"]
    err = _exit_line(evaluate.main, _argv(sets + bigger)
                     + ["--checkpoint", ckpt, "--out", str(tmp_path / "p.json")], capsys)
    assert err.startswith(f"error: {ckpt}: config key dataset.resize_to: model.arch bmn needs every video resized "
                          "to model.bmn.temporal_scale = 16 steps, got 20"), err
    assert not (tmp_path / "p.json").exists()


@pytest.fixture(scope="module")
def chain(anet, supervised):
    """supervised BMN -> pseudo labels -> one semi-supervised round."""
    _, sets = anet
    out = supervised
    pseudo_label.main(_argv(sets) + ["--checkpoint", str(out / "sup" / "last.pt"), "--out", str(out / "pl.json")])
    train_semi.main(_argv(sets) + ["--init", str(out / "sup" / "last.pt"), "--pseudo-labels", str(out / "pl.json"),
                                   "--out", str(out / "semi")])
    return out


ENTRY_KEYS = {"label", "segment", "label_id", "score", "cls_score", "tiou", "tnd", "icd", "class_scores"}


def test_pseudo_label_file_has_actionformers_schema(anet, chain):
    root, sets = anet
    data = json.load(open(chain / "pl.json"))
    videos, classes = load_annotations(f"{root}/annotations.json")
    probs = load_video_scores(f"{root}/video_scores.json", classes)
    assert data["version"] == "apl-pseudo-labels-v1" and "top-1 class of the video" in data["meta"]["class_agnostic"]
    split = next(s.split("=", 1)[1] for s in sets if s.startswith("dataset.unlabeled_split="))
    assert sorted(data["database"]) == sorted(open(split).read().split())
    entries = [(vid, e, "origin") for vid, v in data["database"].items() for e in v["annotations"]]
    entries += [(vid, e, "reason") for vid, v in data["database"].items() for e in v["rejected"]]
    assert any(key == "origin" for _, _, key in entries), "no pseudo label selected"
    for vid, e, key in entries:
        assert set(e) == ENTRY_KEYS | {key}
        assert e["label"] == classes[int(np.argmax(probs[vid]))] and e["tnd"] is None
        # the joint score is BMN's fused score: below its parts, the map's two channels
        assert 0 <= e["score"] <= min(e["cls_score"], e["tiou"]) + 1e-4 and 0 <= e["icd"] <= 1
        assert 0 <= e["segment"][0] < e["segment"][1] <= videos[vid].duration
    # the same reader the annotation file has, strictly: hand-editable as ActionFormer's
    assert pseudo_file.read(str(chain / "pl.json"), classes).videos.keys() == data["database"].keys()


def test_semi_round_trains_on_the_pseudo_labels(chain):
    ckpt = load_checkpoint(str(chain / "semi" / "last.pt"))
    assert ckpt["config"]["model"]["arch"] == "bmn" and ckpt["stage"] == "semi"
    log = [json.loads(line) for line in open(chain / "semi" / "log.jsonl")]
    assert log and all(np.isfinite(line["loss"]) and line["u_tem_loss"] > 0 and line["u_pem_cls_loss"] > 0
                       for line in log)


def test_pseudo_icd_switch_and_a_hand_edit(anet, chain, tmp_path):
    root, sets = anet
    out = tmp_path / "pl_none.json"
    pseudo_label.main(_argv(sets + ["pseudo.icd=none"]) + ["--checkpoint", str(chain / "sup" / "last.pt"),
                                                           "--out", str(out)])
    data = json.load(open(out))
    assert data["meta"]["icd"] == "none" and data["meta"]["counts"]["mined"] == 0
    # a hand edit: a video's pseudo labels replaced by one segment written by hand; the round trains on it
    vid = sorted(data["database"])[0]
    _, classes = load_annotations(f"{root}/annotations.json")
    data["database"][vid]["annotations"] = [{"label": classes[0], "segment": [1.0, 5.0]}]
    out.write_text(json.dumps(data, indent=2))
    train_semi.main(_argv(sets) + ["--init", str(chain / "sup" / "last.pt"), "--pseudo-labels", str(out),
                                   "--out", str(tmp_path / "semi")])
    assert load_checkpoint(str(tmp_path / "semi" / "last.pt"))["parents"]["pseudo_labels"] == str(out)
