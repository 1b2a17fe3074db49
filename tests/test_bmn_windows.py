"""BMN with sliding windows (dataset.window, BMN's THUMOS14 setting; issue 11): window cutting, the
windows' ground truth, merging a video's windows back and the per-video Soft-NMS worked by hand; the
embedded dataset's video-level classifier file; the config's one-line errors; and a tiny BMN through
every stage script on windows of the tiny THUMOS-like dataset."""
import json
import os

import numpy as np
import pytest
import torch

import evaluate
import pretrain_acp
import pseudo_label
import train_semi
import train_supervised
from common import pseudo_file
from common.bmn_detector import predict_windows
from common.checkpoint import load_checkpoint
from common.config import load_config
from common.data import Video, VideoDataset, collate, load_annotations
from common.stage import training_dataset
from common.video_scores import load_video_scores
from common.windows import WindowDataset, to_video_unit, window_starts, window_truth
from synthetic.thumos_like import SCORES_FILE, ensure_video_scores
from conftest import embedded, exit_line
from test_bmn_pipeline import ENTRY_KEYS, TINY, _argv

CONFIG = "configs/thumos_synthetic_bmn.yaml"


# ---------------------------------------------------------------- windows by hand

def test_window_starts_by_hand():
    assert window_starts(300, 128, 64) == [0, 64, 128, 192]   # the last, 192..319, padded by 20 steps
    assert window_starts(256, 128, 64) == [0, 64, 128]        # 128..255 reaches the end: no more
    assert window_starts(129, 128, 64) == [0, 64]
    assert window_starts(128, 128, 64) == window_starts(50, 128, 64) == [0]   # short videos: one window
    assert window_starts(10, 4, 4) == [0, 4, 8]


def _hand_video(tmp_path, segments, length=10):
    """One video of `length` steps whose features are the step index; fps 1, stride 1 and one frame
    a step, so step i covers [i, i + 1] s and sits at grid position i (seconds t -> grid t - 0.5)."""
    (tmp_path / "features").mkdir(exist_ok=True)
    np.save(tmp_path / "features" / "v.npy", np.repeat(np.arange(length, dtype=np.float32)[:, None], 4, 1))
    dcfg = {"feature_dir": str(tmp_path / "features"), "feature_dim": 4, "annotation_file": "hand.json",
            "feat_stride": 1, "num_frames": 1, "resize_to": None,
            "window": {"size": 4, "stride": 4, "min_inside": 0.9}}
    seg = np.array(segments, dtype=np.float64).reshape(-1, 2)
    video = Video("v", "train", float(length), 1.0, seg, np.arange(len(seg)))
    return dcfg, {"v": video}


def test_window_truth_by_hand():
    # grid units; window 0 of 4 steps covers [-0.5, 3.5], window 4 covers [3.5, 7.5]
    a, b, c = [0.5, 2.5], [3.0, 5.0], [7.7, 9.4]   # b: 0.25 of it in window 0, 0.75 in window 4
    kept, index, clipped = window_truth([a, b, c], 0, 4)
    assert kept and index.tolist() == [0, 1]
    np.testing.assert_allclose(clipped, [[0.5, 2.5], [3.0, 3.5]])  # b cut at the window's edge, kept
    kept, index, clipped = window_truth([a, b, c], 4, 4)
    assert not kept and index.tolist() == [1]                      # 0.75 <= 0.9: not a training window
    np.testing.assert_allclose(clipped, [[-0.5, 1.0]])             # [3.5, 5] - 4
    assert window_truth([a, b, c], 4, 4, min_inside=0.7)[0]
    kept, index, clipped = window_truth([a, b, c], 8, 4)
    assert kept and index.tolist() == [2]
    np.testing.assert_allclose(clipped, [[-0.3, 1.4]])
    assert not window_truth(np.zeros((0, 2)), 0, 4)[0]


def test_training_windows_padding_and_mask_by_hand(tmp_path):
    # the actions above in seconds (grid + 0.5): windows 0 and 8 hold one > 90% inside, window 4 not
    dcfg, videos = _hand_video(tmp_path, [[1.0, 3.0], [3.5, 5.5], [8.2, 9.9]])
    data = WindowDataset(dcfg, videos, ["v"])
    assert data.items == [("v", 0), ("v", 8)]
    first, last = data[0], data[1]
    np.testing.assert_allclose(first["segments"].numpy(), [[0.5, 2.5], [3.0, 3.5]])
    assert first["labels"].tolist() == [0, 1] and first["offset"] == 0
    np.testing.assert_allclose(last["segments"].numpy(), [[-0.3, 1.4]], atol=1e-6)
    assert last["labels"].tolist() == [2] and last["feats"].shape == (4, 2)   # steps 8 and 9 only
    batch = collate([first, last], pad_multiple=4)                         # BMN's pad_multiple = T
    assert batch["feats"].shape == (2, 4, 4)
    assert batch["mask"].tolist() == [[True] * 4, [True, True, False, False]]
    assert batch["feats"][1, 0].tolist() == [8.0, 9.0, 0.0, 0.0]           # padded with zeros at the end
    everything = WindowDataset(dcfg, videos, ["v"], select=False)           # ACP: every window, no label read
    assert everything.items == [("v", 0), ("v", 4), ("v", 8)]


class _StubBMN(torch.nn.Module):
    """BMN's outputs as a function of the window's features (the step index): start 0.9 at video step
    4, end 0.9 at step 5, 0.1 elsewhere; both confidences 0.5 wherever a proposal exists."""
    temporal_scale, max_duration = 4, 4

    def forward(self, feats, mask):
        step = feats[:, 0]                                                  # (B, T) video step index
        start = torch.where((step == 4) & mask, 0.9, 0.1)
        end = torch.where((step == 5) & mask, 0.9, 0.1)
        conf = torch.full((feats.shape[0], 2, 4, 4), 0.5)
        return {"start": start, "end": end, "confidence": conf}


def test_merged_windows_map_back_to_seconds_and_duplicates_are_suppressed(tmp_path):
    # windows of 4 steps every 2: starts 0, 2, 4, 6. Steps 4-5 ([4, 6] s) lie in windows 2 and 4,
    # which both find the proposal (d = 1): window 2 at t = 2 ([2/4, 4/4] of it, the video's
    # [4/4, 6/4] after to_video_unit), window 4 at t = 0. Same place, same score 0.9 x 0.9 x 0.5 x 0.5.
    np.testing.assert_allclose(to_video_unit(np.array([[0.5, 1.0]]), 2, 4), [[1.0, 1.5]])
    np.testing.assert_allclose(to_video_unit(np.array([[0.0, 0.5]]), 4, 4), [[1.0, 1.5]])
    dcfg, videos = _hand_video(tmp_path, [])
    cfg = load_config(CONFIG)
    cfg["dataset"] = {**cfg["dataset"], **dcfg, "window": {"size": 4, "stride": 2, "min_inside": 0.9}}
    out = predict_windows(_StubBMN(), VideoDataset(cfg["dataset"], videos, ["v"], training=False), cfg,
                          torch.device("cpu"), progress=False)["v"]
    best = 0.9 * 0.9 * 0.5 * 0.5
    np.testing.assert_allclose(out["segments"][0], [4.0, 6.0])            # back in the video's seconds
    assert out["scores"][0] == pytest.approx(best)
    # the other window's copy: tIoU 1 with the pick (> 0.5 + 0.4 x 2/4), decayed by exp(-1 / 0.4)
    same = np.flatnonzero(np.all(np.isclose(out["segments"], [4.0, 6.0]), axis=1))
    assert len(same) == 2 and out["scores"][same[1]] == pytest.approx(best * np.exp(-1 / 0.4))
    assert (out["scores"][1:] < 0.5 * best).all()                           # nothing else comes near
    assert ((out["segments"] >= 0) & (out["segments"] <= 10)).all()        # inside the video, no padding


# ---------------------------------------------------------------- config

@pytest.mark.parametrize("config, overrides, message", [
    ("configs/default.yaml", ["dataset.window.size=64", "dataset.window.stride=32"],
     "config key dataset.window.size: sliding windows are BMN's (model.arch bmn); actionformer crops"),
    (CONFIG, ["dataset.resize_to=64"], "config key dataset.window.size: model.arch bmn takes windows or "
                                       "dataset.resize_to, not both"),
    (CONFIG, ["dataset.window.size=null"], "config key dataset.resize_to: model.arch bmn needs every video resized"),
    (CONFIG, ["dataset.window.size=32", "dataset.window.stride=16"],
     "config key dataset.window.size: model.arch bmn needs windows of model.bmn.temporal_scale = 64 steps, got 32"),
    (CONFIG, ["dataset.window.stride=65"], "config key dataset.window.stride: expected a positive integer of at most"),
    (CONFIG, ["dataset.window.stride=null"], "config key dataset.window.stride: expected a positive integer"),
    (CONFIG, ["dataset.window.min_inside=0"], "config key dataset.window.min_inside: expected a share in (0, 1]"),
    (CONFIG, ["dataset.window.size=1.5"], "config key dataset.window.size: expected int, got 1.5"),
])
def test_config_errors_are_one_line_naming_the_key(config, overrides, message, tmp_path, capsys):
    err = exit_line(train_supervised.main, _argv(overrides, config) + ["--out", str(tmp_path / "o")], capsys)
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "o").exists()


def test_published_thumos_config():
    cfg = load_config("configs/thumos_tsn_bmn.yaml")
    assert cfg["dataset"]["window"] == {"size": 128, "stride": 64, "min_inside": 0.9}
    assert cfg["model"]["bmn"]["temporal_scale"] == 128 and cfg["model"]["bmn"]["max_duration"] == 64
    assert cfg["dataset"]["feat_stride"] == 5 and cfg["dataset"]["resize_to"] is None
    assert cfg["test"]["video_topk"] == 2 and cfg["dataset"]["class_agnostic"]


# ---------------------------------------------------------------- a tiny THUMOS-like dataset

WINDOWS = ["dataset.window.size=16", "dataset.window.stride=8", "model.bmn.temporal_scale=16",
           "model.bmn.max_duration=12", "test.batch_size=16", "train.epochs=1", "semi.epochs=1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(root, overrides): the tiny THUMOS-like dataset, generated with its 40% split and its scores."""
    root = str(tmp_path_factory.mktemp("data") / "tiny")
    sets = ["dataset.synthetic_size=tiny", f"dataset.annotation_file={root}/annotations.json",
            f"dataset.feature_dir={root}/features", f"dataset.video_scores={root}/{SCORES_FILE}",
            f"dataset.labeled_split={root}/splits/labeled_40pct.txt",
            f"dataset.unlabeled_split={root}/splits/unlabeled_40pct.txt"]
    tiny_bmn = [s for s in TINY if not s.startswith(("dataset.", "model.bmn.temporal", "model.bmn.max_dur"))]
    return root, embedded(sets + tiny_bmn + WINDOWS, CONFIG)


@pytest.fixture(scope="module")
def chain(tiny, tmp_path_factory):
    """ACP -> supervised BMN -> evaluation -> pseudo labels -> one round, all on windows."""
    _, sets = tiny
    out = tmp_path_factory.mktemp("run")
    args = _argv(sets, CONFIG)
    pretrain_acp.main(args + ["--out", str(out / "acp")])
    train_supervised.main(args + ["--init", str(out / "acp" / "last.pt"), "--out", str(out / "sup")])
    metrics = evaluate.main(args + ["--checkpoint", str(out / "sup" / "last.pt"), "--out", str(out / "pred.json")])
    pseudo_label.main(args + ["--checkpoint", str(out / "sup" / "last.pt"), "--out", str(out / "pl.json")])
    train_semi.main(args + ["--init", str(out / "sup" / "last.pt"), "--pseudo-labels", str(out / "pl.json"),
                            "--out", str(out / "semi")])
    return out, metrics


def test_scores_file_is_written_read_and_deterministic(tiny, chain):
    root, _ = tiny
    path = os.path.join(root, SCORES_FILE)           # written by python -m synthetic, beside the dataset
    videos, classes = load_annotations(f"{root}/annotations.json")
    probs = load_video_scores(path, classes, sorted(videos))
    assert all(p.sum() == pytest.approx(1.0, abs=1e-5) for p in probs.values())
    # mostly right (a simulated classifier): one of its top-2 classes is one the video holds
    hits = [bool(set(np.argsort(-probs[vid])[:2]) & set(video.labels.tolist())) for vid, video in videos.items()]
    assert sum(hits) >= 0.8 * len(hits), hits
    first = open(path).read()
    os.remove(path)
    assert ensure_video_scores(root) == path and open(path).read() == first


def test_windows_through_every_stage(tiny, chain):
    root, sets = tiny
    out, metrics = chain
    videos, classes = load_annotations(f"{root}/annotations.json")
    sup = load_checkpoint(str(out / "sup" / "last.pt"))
    assert sup["config"]["dataset"]["window"]["size"] == 16 and sup["config"]["model"]["arch"] == "bmn"
    assert 0 <= metrics["average"] <= 1 and "proposals" in metrics
    pred = json.load(open(out / "pred.json"))["results"]
    for vid, preds in pred.items():   # whole videos in seconds, each proposal for the top-2 classes
        assert preds and len(preds) % 2 == 0
        assert all(0 <= p["segment"][0] < p["segment"][1] <= videos[vid].duration for p in preds)
    # the pseudo-label file: the schema of ActionFormer's, over the videos' own seconds
    data = json.load(open(out / "pl.json"))
    entries = [(vid, e, "origin") for vid, v in data["database"].items() for e in v["annotations"]]
    entries += [(vid, e, "reason") for vid, v in data["database"].items() for e in v["rejected"]]
    assert any(key == "origin" for _, _, key in entries), "no pseudo label selected"
    for vid, e, key in entries:
        assert set(e) == ENTRY_KEYS | {key}
        assert 0 <= e["segment"][0] < e["segment"][1] <= videos[vid].duration
    assert pseudo_file.read(str(out / "pl.json"), classes).videos.keys() == data["database"].keys()
    log = [json.loads(line) for line in open(out / "semi" / "log.jsonl")]
    assert log and all(np.isfinite(line["loss"]) and line["u_tem_loss"] > 0 for line in log)


def test_a_hand_edit_is_what_the_round_trains_on(tiny, chain, tmp_path):
    root, sets = tiny
    out, _ = chain
    data = json.load(open(out / "pl.json"))
    # every pseudo label removed, but one written by hand: [2, 4] s of the first video
    for v in data["database"].values():
        v["annotations"] = []
    vid = sorted(data["database"])[0]
    _, classes = load_annotations(f"{root}/annotations.json")
    data["database"][vid]["annotations"] = [{"label": classes[0], "segment": [2.0, 4.0]}]
    edited = tmp_path / "pl_edited.json"
    edited.write_text(json.dumps(data, indent=2))
    cfg = load_config(CONFIG, sets)
    videos, _ = load_annotations(f"{root}/annotations.json", classes)
    pseudo = train_semi.load_pseudo_labels(str(edited), videos, classes, set(), "train")
    windows = training_dataset(cfg, pseudo, sorted(pseudo), 1)
    # [2, 4] s at 30 fps, stride 8, 16 frames: grid [6.5, 14], inside windows 0 ([-0.5, 15.5]) alone
    # (window 8, [7.5, 23.5], holds 6.5 of its 7.5: 0.87 <= 0.9); the round trains on that window alone
    assert windows.items == [(vid, 0)]
    train_semi.main(_argv(sets, CONFIG) + ["--init", str(out / "sup" / "last.pt"), "--pseudo-labels", str(edited),
                                           "--out", str(tmp_path / "semi")])
    log = [json.loads(line) for line in open(tmp_path / "semi" / "log.jsonl")]
    assert [line["step"] for line in log] == [1]   # one epoch of one pseudo-labeled window: one step
