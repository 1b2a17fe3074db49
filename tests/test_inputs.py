"""Every kind of input a stage reads, broken in many ways. Each broken input must end the stage with
exit code 2 and exactly one line `error: ...` on stderr naming the broken file (and the video and
field where there is one), before any output is touched: a file already at --out stays byte for
byte, a fresh --out folder is not created. One tiny checkpoint is trained once and shared, and one
class-agnostic one on a reduced ActivityNet-like dataset for the video-level scores and its ids."""
import copy
import json
import os
import types

import numpy as np
import pytest
import torch
from conftest import embedded

import evaluate
import pretrain_acp
import pseudo_label
import train_semi
import train_supervised
from common.config import CHOICES
from common.stage import run_main
from synthetic import make
from synthetic.anet_like import ensure_anet_dataset
from synthetic.thumos_like import ensure_dataset

TINY = ["model.embd_dim=16", "model.head_dim=16", "model.n_head=2", "model.attn_window=5", "dataset.max_seq_len=128",
        "train.epochs=1", "train.warmup_epochs=0", "train.batch_size=4", "semi.epochs=1", "semi.warmup_epochs=0",
        "acp.epochs=1", "acp.warmup_epochs=0"]
SENTINEL = b"an earlier output, which a failed run must leave alone\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny embedded dataset, its 40% splits, a checkpoint, a pseudo-label and a results file."""
    root = tmp_path_factory.mktemp("data") / "tiny"
    sets = TINY + [f"dataset.annotation_file={root}/annotations.json", f"dataset.feature_dir={root}/features",
                   f"dataset.labeled_split={root}/splits/labeled_40pct.txt",
                   f"dataset.unlabeled_split={root}/splits/unlabeled_40pct.txt"]
    embedded(sets + ["dataset.synthetic_size=tiny"])  # the dataset and its splits; every case reads them as they are
    run = tmp_path_factory.mktemp("run")
    train_supervised.main(_argv(sets + ["dataset.synthetic_size=tiny"]) + ["--out", str(run / "sup")])
    db = json.load(open(root / "annotations.json"))["database"]
    w = types.SimpleNamespace(root=root, sets=sets + ["dataset.synthetic_size=null"], config="configs/default.yaml",
                              db=db, ckpt=str(run / "sup" / "last.pt"),
                              lab=_lines(root / "splits" / "labeled_40pct.txt")[0],
                              unlab=_lines(root / "splits" / "unlabeled_40pct.txt")[0],
                              test=sorted(v for v in db if db[v]["subset"] == "test")[0])
    w.label = db[w.test]["annotations"][0]["label"]
    w.pl, w.preds = str(run / "pl.json"), str(run / "preds.json")
    _write_json(w.pl, {"database": {w.unlab: _pseudo_entry(w)}})
    _write_json(w.preds, {"results": {w.test: [{"label": w.label, "score": 0.5, "segment": [1.0, 3.0]}]}})
    return w


ANET_CONFIG = "configs/anet_synthetic.yaml"


@pytest.fixture(scope="module")
def anet_world(tmp_path_factory):
    """A reduced ActivityNet-like dataset (20 videos, 4 classes, ids without "v_"), read with the
    class-agnostic recipe and its video-level scores file; its 40% splits and a class-agnostic checkpoint."""
    root = tmp_path_factory.mktemp("data") / "anet"
    ensure_anet_dataset(str(root), seed=0, params=dict(num_train=16, num_val=4, num_classes=4))
    sets = TINY + ["dataset.resize_to=128", "dataset.synthetic_size=null",
                   f"dataset.annotation_file={root}/annotations.json", f"dataset.feature_dir={root}/features",
                   f"dataset.video_scores={root}/video_scores.json",
                   f"dataset.labeled_split={root}/splits/labeled_40pct.txt",
                   f"dataset.unlabeled_split={root}/splits/unlabeled_40pct.txt"]
    run = tmp_path_factory.mktemp("run")
    train_supervised.main(_argv(sets, ANET_CONFIG) + ["--out", str(run / "sup")])
    db = json.load(open(root / "annotations.json"))["database"]
    return types.SimpleNamespace(root=root, sets=sets, config=ANET_CONFIG, db=db, ckpt=str(run / "sup" / "last.pt"),
                                 lab=_lines(root / "splits" / "labeled_40pct.txt")[0],
                                 unlab=_lines(root / "splits" / "unlabeled_40pct.txt")[0],
                                 test=sorted(v for v in db if db[v]["subset"] == "validation")[0],
                                 scores=json.load(open(root / "video_scores.json")))


def _on_anet(build):
    """A case on the ActivityNet-like world instead of the default one."""
    build.world = "anet_world"
    return build


def _argv(sets, config="configs/default.yaml"):
    out = ["--config", config, "--device", "cpu", "--no-progress"]
    for s in sets:
        out += ["--set", s]
    return out


def _lines(path):
    return [line.strip() for line in open(path) if line.strip()]


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f)


def _pseudo_entry(w, **change):
    video = w.db[w.unlab]
    ann = {"label": w.label, "segment": [1.0, 2.0], "score": 0.9}
    entry = {"subset": "train", "duration": video["duration"], "fps": video["fps"], "annotations": [ann]}
    for key, value in change.items():
        (ann if key in ("label", "segment", "score", "label_id") else entry)[key] = value
    return entry


# ---------------------------------------------------------------- the cases
# A case builder gets the world and a fresh folder and returns (stage, --set overrides, replaced input
# arguments, fragments the error line must hold). Stages: supervised, acp, pseudo, semi, eval_ckpt,
# eval_pred (on the ActivityNet-like world, marked by _on_anet: supervised, pseudo, eval_ckpt).

CASES = {}


def _ann(mutate, role=None, field=None, stage="supervised"):
    """An annotation file whose database `mutate(db, video)` broke."""
    def build(w, d):
        db, vid = copy.deepcopy(w.db), getattr(w, role) if role else None
        mutate(db, vid)
        path = d / "annotations.json"
        _write_json(path, {"database": db})
        return stage, [f"dataset.annotation_file={path}"], {}, [str(path)] + _where(vid, field)
    return build


def _where(vid, field):
    return ([f"video {vid}"] if vid else []) + ([field] if field else [])


def _raw(kind, content, stage, problem=None):
    """A file of `kind` (annotation, labeled/unlabeled split, config, predictions, pseudo, checkpoint,
    init, scores) holding `content` (bytes, text, None: missing, "<dir>": a folder)."""
    def build(w, d):
        path = d / f"{kind}.input"
        if content == "<dir>":
            path.mkdir()
        elif content is not None:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        sets, args = _input_of(kind, path)
        return stage, sets, args, [str(path)] + ([problem] if problem else [])
    return build


def _input_of(kind, path):
    sets = {"annotation": "dataset.annotation_file", "labeled": "dataset.labeled_split",
            "unlabeled": "dataset.unlabeled_split", "scores": "dataset.video_scores"}
    flags = {"config": "--config", "predictions": "--predictions", "pseudo": "--pseudo-labels",
             "checkpoint": "--checkpoint", "init": "--init"}
    if kind in sets:
        return [f"{sets[kind]}={path}"], {}
    return [], {flags[kind]: str(path)}


NOT_TEXT = bytes(range(128, 256)) * 4

for _kind, _stage in [("annotation", "supervised"), ("labeled", "supervised"), ("unlabeled", "pseudo"),
                      ("config", "supervised"), ("predictions", "eval_pred"), ("pseudo", "semi")]:
    CASES[f"{_kind}: missing file"] = _raw(_kind, None, _stage)
    CASES[f"{_kind}: a folder"] = _raw(_kind, "<dir>", _stage)
    CASES[f"{_kind}: not a text file"] = _raw(_kind, NOT_TEXT, _stage)
for _kind, _stage in [("annotation", "eval_pred"), ("config", "pseudo"), ("predictions", "eval_pred"),
                      ("pseudo", "semi")]:
    CASES[f"{_kind}: broken"] = _raw(_kind, '{"database": {"a": [1, 2' if _kind != "config" else "train: [1, 2",
                                     _stage, "broken")
for _kind, _stage in [("annotation", "supervised"), ("predictions", "eval_pred"), ("pseudo", "semi")]:
    CASES[f"{_kind}: empty file"] = _raw(_kind, "", _stage, "JSON")
    CASES[f"{_kind}: top level is a list"] = _raw(_kind, "[1, 2]", _stage)

CASES.update({
    # annotation file
    "annotation: no database": _raw("annotation", '{"version": 1}', "supervised", '"database"'),
    "annotation: database is a list": _raw("annotation", '{"database": []}', "pseudo", '"database"'),
    "annotation: video twice": _raw("annotation", '{"database": {"a": {}, "a": {}}}', "supervised", "twice"),
    "annotation: video not an object": _ann(lambda db, v: db.update({v: 3}), "lab"),
    "annotation: negative duration": _ann(lambda db, v: db[v].update(duration=-5), "lab", "duration"),
    "annotation: zero duration": _ann(lambda db, v: db[v].update(duration=0), "test", "duration", "eval_pred"),
    "annotation: string duration": _ann(lambda db, v: db[v].update(duration="8 s"), "unlab", "duration"),
    "annotation: missing duration": _ann(lambda db, v: db[v].pop("duration"), "lab", "duration"),
    "annotation: missing fps": _ann(lambda db, v: db[v].pop("fps"), "test", "fps", "eval_ckpt"),
    "annotation: negative fps": _ann(lambda db, v: db[v].update(fps=-30), "lab", "fps"),
    "annotation: subset not a string": _ann(lambda db, v: db[v].update(subset=None), "lab", "subset"),
    "annotation: annotations not a list": _ann(lambda db, v: db[v].update(annotations={}), "lab", "annotations"),
    "annotation: annotation not an object": _ann(lambda db, v: db[v]["annotations"].insert(0, "x"), "lab",
                                                 "annotations[0]"),
    "annotation: label not a string": _ann(lambda db, v: db[v]["annotations"][0].update(label=7), "lab",
                                           "annotations[0].label"),
    "annotation: label_id disagrees": _ann(lambda db, v: db[v]["annotations"][1].update(label_id=99), "test",
                                           "annotations[1].label_id", "eval_pred"),
    "annotation: reversed segment": _ann(lambda db, v: db[v]["annotations"][0].update(segment=[5.0, 2.0]), "lab",
                                         "annotations[0].segment"),
    "annotation: non-numeric segment": _ann(lambda db, v: db[v]["annotations"][0].update(segment=["1", 2]),
                                            "unlab", "annotations[0].segment", "pseudo"),
    "annotation: segment of three numbers": _ann(lambda db, v: db[v]["annotations"][0].update(segment=[1, 2, 3]),
                                                 "lab", "annotations[0].segment"),
    "annotation: NaN in a segment": _ann(lambda db, v: db[v]["annotations"][0].update(segment=[float("nan"), 2]),
                                         "lab", "annotations[0].segment", "acp"),
})


def _unknown_label(w, d):
    stage, sets, args, names = _ann(lambda db, v: db[v]["annotations"][0].update(label="Surfing"), "lab",
                                    "annotations[0].label")(w, d)
    classes = sorted({a["label"] for v in w.db.values() for a in v["annotations"]})
    return stage, sets + [f"dataset.classes=[{', '.join(classes)}]"], args, names


CASES["annotation: label not in the configured classes"] = _unknown_label


# feature files
def _feat(write, role, stage, field="features"):
    """A feature folder of links to the dataset's files, with the file of `role`'s video broken."""
    def build(w, d):
        vid, folder = getattr(w, role), d / "features"
        folder.mkdir()
        for name in os.listdir(w.root / "features"):
            if name != f"{vid}.npy":
                os.symlink(w.root / "features" / name, folder / name)
        path = folder / f"{vid}.npy"
        write(path, np.load(w.root / "features" / f"{vid}.npy"))
        return stage, [f"dataset.feature_dir={folder}"], {}, [str(path), f"video {vid}", field]
    return build


def _poison(value, at=(3, 5)):
    def write(path, x):
        x = x.copy()
        x[at] = value
        np.save(path, x)
    return write


def _nothing(path, x):
    """Write no file: the video's feature file is missing."""


CASES.update({
    "features: missing (labeled video)": _feat(_nothing, "lab", "supervised"),
    "features: missing (test video)": _feat(_nothing, "test", "eval_ckpt"),
    "features: missing (pseudo-labeled video)": _feat(_nothing, "unlab", "semi"),
    "features: a folder": _feat(lambda p, x: p.mkdir(), "lab", "supervised"),
    "features: wrong dim": _feat(lambda p, x: np.save(p, x[:, :5]), "lab", "supervised", "feature_dim"),
    "features: 1-D array": _feat(lambda p, x: np.save(p, x[:, 0]), "test", "eval_ckpt"),
    "features: 3-D array": _feat(lambda p, x: np.save(p, x[None]), "unlab", "pseudo"),
    "features: empty array": _feat(lambda p, x: np.save(p, x[:0]), "lab", "supervised"),
    "features: strings": _feat(lambda p, x: np.save(p, x.astype(str)), "lab", "supervised"),
    "features: booleans": _feat(lambda p, x: np.save(p, x > 0), "lab", "acp"),
    "features: objects (pickled)": _feat(lambda p, x: np.save(p, x.astype(object)), "lab", "supervised"),
    "features: NaN (labeled video)": _feat(_poison(np.nan), "lab", "supervised"),
    "features: NaN everywhere": _feat(lambda p, x: np.save(p, np.full_like(x, np.nan)), "lab", "supervised"),
    "features: NaN (unlabeled video)": _feat(_poison(np.nan), "unlab", "pseudo"),
    "features: NaN (pseudo-labeled video)": _feat(_poison(np.nan, at=(-1, -1)), "unlab", "semi"),
    "features: NaN (training video, pre-training)": _feat(_poison(np.nan), "unlab", "acp"),
    "features: Inf (test video)": _feat(_poison(np.inf), "test", "eval_ckpt"),
    "features: -Inf in float16": _feat(lambda p, x: _poison(-np.inf)(p, x.astype(np.float16)), "lab", "supervised"),
    "features: not an .npy file": _feat(lambda p, x: p.write_text("0.1 0.2\n"), "lab", "supervised"),
    "features: truncated .npy": _feat(lambda p, x: (np.save(p, x), p.write_bytes(p.read_bytes()[:200])),
                                      "lab", "supervised"),
    "features: both <id>.npy and v_<id>.npy": _feat(lambda p, x: (np.save(p, x), np.save(p.parent / f"v_{p.name}", x)),
                                                    "test", "eval_ckpt"),
})


# split files
def _split(text, role=None, field=None, kind="labeled", stage="supervised", mutate=None):
    """A split file holding text(w); mutate(db, w) changes the annotation file beside it. role: the
    attribute of the world naming the video the error must name, or a function of the world giving it."""
    def build(w, d):
        path = d / f"{kind}.txt"
        path.write_text(text(w))
        sets = [f"dataset.{kind}_split={path}"]
        if mutate:
            db = copy.deepcopy(w.db)
            mutate(db, w)
            _write_json(d / "annotations.json", {"database": db})
            sets.append(f"dataset.annotation_file={d / 'annotations.json'}")
        vid = role and (role(w) if callable(role) else getattr(w, role))
        return stage, sets, {}, [str(path)] + _where(vid, field)
    return build


def _no_actions(db, w):
    db[w.lab]["annotations"] = []


def _both_forms(db, w):
    db["v_" + w.lab] = copy.deepcopy(db[w.lab])


CASES.update({
    "labeled split: id not in the annotation file": _split(lambda w: "video_nope\n", None, "line 1"),
    "labeled split: id listed twice": _split(lambda w: f"{w.lab}\n# again\n{w.lab}\n", "lab", "line 3"),
    "labeled split: the same video with and without v_": _split(lambda w: f"{w.lab}\nv_{w.lab}\n", "lab", "line 2"),
    "labeled split: id of both forms in the annotation file": _split(lambda w: f"{w.lab}\n", "lab", "ambiguous",
                                                                     mutate=_both_forms),
    "labeled split: empty": _split(lambda w: "", stage="supervised"),
    "labeled split: only comments (pseudo-labeling)": _split(lambda w: "# none yet\n", stage="pseudo"),
    "labeled split: videos without actions": _split(lambda w: f"{w.lab}\n", mutate=_no_actions),
    "labeled split: videos without actions (semi)": _split(lambda w: f"{w.lab}\n", mutate=_no_actions,
                                                           stage="semi"),
    "unlabeled split: id not in the annotation file": _split(lambda w: f"{w.unlab}\nnope\n", None, "line 2",
                                                             kind="unlabeled", stage="pseudo"),
    "unlabeled split: overlaps the labeled one": _split(lambda w: f"{w.lab}\n", "lab", "labeled split too",
                                                        kind="unlabeled", stage="pseudo"),
    "unlabeled split: empty": _split(lambda w: "\n", kind="unlabeled", stage="pseudo"),
})


def _both_forms_of_unlab(db, w):
    db["v_" + w.unlab] = copy.deepcopy(db[w.unlab])


# ActivityNet's ids: the annotation file's without "v_", split lists often with it
CASES.update({
    "labeled split: ActivityNet id in neither form": _on_anet(_split(
        lambda w: f"{w.lab}\nv_anet_train_99999\n", None, "video v_anet_train_99999: line 2")),
    "labeled split: ActivityNet id written with v_, both forms in the annotation file": _on_anet(_split(
        lambda w: f"v_{w.lab}\n", lambda w: f"v_{w.lab}", "line 1: ambiguous", mutate=_both_forms)),
    "unlabeled split: ActivityNet id in neither form": _on_anet(_split(
        lambda w: f"v_{w.unlab}\nanet_train_99999\n", None, "video anet_train_99999: line 2", kind="unlabeled",
        stage="pseudo")),
    "unlabeled split: ActivityNet id, both forms in the annotation file": _on_anet(_split(
        lambda w: f"{w.unlab}\n", "unlab", "line 1: ambiguous", kind="unlabeled", stage="pseudo",
        mutate=_both_forms_of_unlab)),
})


# config file and --set overrides
def _config(text, key):
    def build(w, d):
        path = d / "config.yaml"
        path.write_text(text)
        return "supervised", [], {"--config": str(path)}, [str(path), key]
    return build


def _override(text, key, stage="supervised"):
    return lambda w, d: (stage, [text], {}, [key])


CASES.update({
    "config: not a mapping": _config("- a\n- b\n", "mapping"),
    "config: unknown key": _config("train:\n  lrr: 0.1\n", "train.lrr"),
    "config: wrong type": _config("train:\n  lr: fast\n", "train.lr"),
    "config: scalar where a section goes": _config("dataset: 3\n", "dataset"),
    "--set: unknown key": _override("train.lrr=0.1", "train.lrr"),
    "--set: wrong type": _override("train.epochs=many", "train.epochs", "eval_pred"),
    "--set: no '='": _override("train.epochs", "train.epochs"),
    "--set: scalar over a section": _override("model=3", "model", "pseudo"),
    "--set: list for a number": _override("seed=[1]", "seed", "semi"),
})


# choice keys (common/config.py CHOICES): a value not among a key's choices stops every stage at load,
# naming the key, the value and every choice, whether the stage reads the key or not
def _choice(key, value, stage):
    names = ["null" if c is None else c for c in CHOICES[key]]
    return lambda w, d: (stage, [f"{key}={value}"], {}, [f"config key {key}", repr(value)] + names)


# the issue's rows (issue 27): a loss of exactly 0, a KeyError, a file written as if adaptive, accepted,
# refused only after the data was read; the last was already refused at once
ISSUE_ROWS = [("acp.mode", "bth", "acp"), ("model.alqa", "tiou_tn", "supervised"),
              ("pseudo.selection", "adaptve", "pseudo"), ("pseudo.icd", "boht", "supervised"),
              ("semi.background", "rejectd", "semi"), ("pseudo.relabel", "prototyp", "pseudo")]
for _key, _value, _stage in ISSUE_ROWS:
    CASES[f"--set: {_key}={_value} ({_stage})"] = _choice(_key, _value, _stage)
_CHOICE_STAGES = ["acp", "supervised", "pseudo", "semi", "eval_ckpt", "eval_pred"]
for _i, _key in enumerate(sorted(CHOICES)):  # every key, each in another stage, most of them a stage that never reads it
    CASES[f"--set: choice {_key}"] = _choice(_key, "typo", _CHOICE_STAGES[_i % len(_CHOICE_STAGES)])
CASES["config: a choice mistyped in the file"] = lambda w, d: (
    _config("acp:\n  mode: bth\n", "acp.mode")(w, d)[:3] + ([str(d / "config.yaml"), "acp.mode", "'bth'", "coarse"],))


# checkpoints (--checkpoint of evaluate.py and pseudo_label.py, --init of train_supervised.py and train_semi.py)
def _ckpt(change, flag, stage, *fragments):
    """A copy of the trained checkpoint that change(ckpt) broke (or replaced: its return value)."""
    def build(w, d):
        ckpt = torch.load(w.ckpt, map_location="cpu", weights_only=True)
        ckpt = change(ckpt) or ckpt
        path = d / "broken.pt"
        torch.save(ckpt, path)
        return stage, [], {flag: str(path)}, [str(path), *fragments]
    return build


def _drop_key(ckpt):
    for state in (ckpt["model"], ckpt["ema"]):
        del state["cls_out.conv.weight"]


def _reshape(ckpt):
    for state in (ckpt["model"], ckpt["ema"]):
        state["cls_out.conv.weight"] = state["cls_out.conv.weight"][:2]


def _extra_key(ckpt):
    for state in (ckpt["model"], ckpt["ema"]):
        state["extra.weight"] = torch.zeros(3)


for _flag, _stage in [("checkpoint", "eval_ckpt"), ("checkpoint", "pseudo"), ("init", "supervised"),
                      ("init", "semi")]:
    CASES[f"--{_flag} of {_stage}: missing"] = _raw(_flag, None, _stage)
    CASES[f"--{_flag} of {_stage}: not a torch file"] = _raw(_flag, "epoch 3\n", _stage, "checkpoint")
CASES.update({
    "--checkpoint of eval_ckpt: a folder": _raw("checkpoint", "<dir>", "eval_ckpt"),
    "--checkpoint of eval_ckpt: a list": _ckpt(lambda c: [1, 2], "--checkpoint", "eval_ckpt", "dict"),
    "--checkpoint of eval_ckpt: no config": _ckpt(lambda c: {k: v for k, v in c.items() if k != "config"},
                                                  "--checkpoint", "eval_ckpt", "config.model"),
    "--checkpoint of eval_ckpt: no weights": _ckpt(lambda c: {"config": c["config"]}, "--checkpoint", "eval_ckpt",
                                                   "model"),
    "--checkpoint of eval_ckpt: weights not tensors": _ckpt(lambda c: c.update(ema={"a": 1}), "--checkpoint",
                                                            "eval_ckpt", "ema"),
    "--checkpoint of eval_ckpt: a weight missing": _ckpt(_drop_key, "--checkpoint", "eval_ckpt",
                                                         "cls_out.conv.weight"),
    "--checkpoint of eval_ckpt: a weight of another shape": _ckpt(_reshape, "--checkpoint", "eval_ckpt",
                                                                  "cls_out.conv.weight"),
    "--checkpoint of eval_ckpt: an unknown weight": _ckpt(_extra_key, "--checkpoint", "eval_ckpt", "extra.weight"),
    "--checkpoint of eval_ckpt: unknown model key": _ckpt(lambda c: c["config"]["model"].update(depth=3),
                                                          "--checkpoint", "eval_ckpt", "model.depth"),
    "--init of supervised: no weights": _ckpt(lambda c: {"config": c["config"]}, "--init", "supervised", "model"),
    "--init of supervised: an unknown weight": _ckpt(_extra_key, "--init", "supervised", "extra.weight"),
    "--init of supervised: a weight of another shape": _ckpt(_reshape, "--init", "supervised",
                                                             "cls_out.conv.weight"),
    "--init of semi: a folder": _raw("init", "<dir>", "semi"),
})


# results files given to evaluate.py --predictions
def _preds(make, *fragments):
    def build(w, d):
        path = d / "preds.json"
        path.write_text(json.dumps(make(w)) if not isinstance(make, str) else make)
        return "eval_pred", [], {"--predictions": str(path)}, [str(path), *[f(w) for f in fragments]]
    return build


def _one(w, **change):
    return {"results": {w.test: [{"label": w.label, "score": 0.5, "segment": [1.0, 3.0], **change}]}}


def _text(s):
    return lambda w: s


def _test_video(w):
    return f"video {w.test}"


CASES.update({
    "predictions: no results": _preds(lambda w: {"version": "x"}, _text("results")),
    "predictions: results is a list": _preds(lambda w: {"results": []}, _text("results")),
    "predictions: unknown video": _preds(lambda w: {"results": {"video_nope": []}}, _text("video video_nope")),
    "predictions: video with v_ the annotation file lacks": _preds(lambda w: {"results": {"v_" + w.test: []}},
                                                                  lambda w: f"video v_{w.test}", lambda w: w.test),
    "predictions: a video's predictions not a list": _preds(lambda w: {"results": {w.test: {}}}, _test_video),
    "predictions: prediction without score": _preds(lambda w: {"results": {w.test: [{"label": w.label,
                                                                                     "segment": [1, 2]}]}},
                                                    _test_video, _text("prediction 0")),
    "predictions: unknown label": _preds(lambda w: _one(w, label="Surfing"), _test_video, _text("label")),
    "predictions: reversed segment": _preds(lambda w: _one(w, segment=[3.0, 1.0]), _test_video, _text("segment")),
    "predictions: non-numeric segment": _preds(lambda w: _one(w, segment=[1.0, "2"]), _test_video, _text("segment")),
    "predictions: non-numeric score": _preds(lambda w: _one(w, score="high"), _test_video, _text("score")),
    "predictions: NaN score": _preds(lambda w: _one(w, score=float("nan")), _test_video, _text("score")),
    "predictions: boolean score": _preds(lambda w: _one(w, score=True), _test_video, _text("score")),
})


# pseudo-label files given to train_semi.py --pseudo-labels
def _pseudo(entry, role, *fragments):
    """A pseudo-label file with the one video of `role` and its entry(w)."""
    def build(w, d):
        path = d / "pseudo.json"
        _write_json(path, {"database": {getattr(w, role): entry(w)}})
        return "semi", [], {"--pseudo-labels": str(path)}, [str(path), f"video {getattr(w, role)}", *fragments]
    return build


def _pseudo_unknown(w, d):
    path = d / "pseudo.json"
    _write_json(path, {"database": {"video_nope": _pseudo_entry(w)}})
    return "semi", [], {"--pseudo-labels": str(path)}, [str(path), "video video_nope"]


CASES.update({
    "pseudo: no database": _raw("pseudo", '{"meta": {}}', "semi", '"database"'),
    "pseudo: no video": _raw("pseudo", '{"database": {}}', "semi", "database"),
    "pseudo: unknown video": _pseudo_unknown,
    "pseudo: labeled video": _pseudo(_pseudo_entry, "lab", "labeled"),
    "pseudo: test-subset video": _pseudo(_pseudo_entry, "test", "'test'"),
    "pseudo: segment past the end": _pseudo(lambda w: _pseudo_entry(w, segment=[1.0, 1e4]), "unlab",
                                            "annotations[0].segment"),
    "pseudo: negative start": _pseudo(lambda w: _pseudo_entry(w, segment=[-1.0, 2.0]), "unlab",
                                      "annotations[0].segment"),
    "pseudo: empty segment": _pseudo(lambda w: _pseudo_entry(w, segment=[2.0, 2.0]), "unlab",
                                     "annotations[0].segment"),
    "pseudo: reversed segment": _pseudo(lambda w: _pseudo_entry(w, segment=[2.0, 1.0]), "unlab",
                                        "annotations[0].segment"),
    "pseudo: non-numeric score": _pseudo(lambda w: _pseudo_entry(w, score="high"), "unlab", "annotations[0].score"),
    "pseudo: unknown label": _pseudo(lambda w: _pseudo_entry(w, label="Surfing"), "unlab", "annotations[0].label"),
    "pseudo: label_id disagrees": _pseudo(lambda w: _pseudo_entry(w, label_id=99), "unlab",
                                          "annotations[0].label_id"),
    "pseudo: duration differs": _pseudo(lambda w: _pseudo_entry(w, duration=1e4), "unlab", "duration"),
    "pseudo: annotations not a list": _pseudo(lambda w: _pseudo_entry(w, annotations="none"), "unlab",
                                              "annotations"),
    "pseudo: video not an object": _pseudo(lambda w: [], "unlab"),
})


# video-level classifier scores (dataset.video_scores of the class-agnostic recipe), read whole at the
# start of evaluate.py --checkpoint and pseudo_label.py, which then look up their videos' scores
def _scores(mutate, role=None, field=None, stage="eval_ckpt"):
    """A copy of the ActivityNet-like world's scores file that `mutate(data, video)` broke."""
    def build(w, d):
        data, vid = copy.deepcopy(w.scores), getattr(w, role) if role else None
        mutate(data, vid)
        path = d / "video_scores.json"
        _write_json(path, data)
        return stage, [f"dataset.video_scores={path}"], {}, [str(path)] + _where(vid, field)
    return _on_anet(build)


def _set_prob(value, k=0):
    def mutate(data, vid):
        data["results"][vid][k] = value
    return mutate


def _as_dict(change):
    """The video's probabilities written {class name: probability}, then change(probs) applied."""
    def mutate(data, vid):
        probs = dict(zip(data["class"], data["results"][vid]))
        change(probs)
        data["results"][vid] = probs
    return mutate


def _without_class_list(data, vid):
    # the other videos by name, so the list of `vid` is the one left without names
    names = data.pop("class")
    data["results"] = {k: (v if k == vid else dict(zip(names, v))) for k, v in data["results"].items()}


def _drop_class(data, vid):
    data["class"].pop()
    for probs in data["results"].values():
        probs.pop()


for _stage in ("eval_ckpt", "pseudo"):
    CASES[f"video scores: missing file ({_stage})"] = _on_anet(_raw("scores", None, _stage, "cannot read"))
CASES.update({
    "video scores: a folder": _on_anet(_raw("scores", "<dir>", "pseudo", "cannot read")),
    "video scores: not a text file": _on_anet(_raw("scores", NOT_TEXT, "eval_ckpt")),
    "video scores: broken JSON": _on_anet(_raw("scores", '{"class": ["Canoeing", ', "pseudo", "broken JSON")),
    "video scores: empty file": _on_anet(_raw("scores", "", "eval_ckpt", "JSON")),
    "video scores: a video twice": _on_anet(_raw("scores", '{"results": {"a": [1], "a": [1]}}', "pseudo", "twice")),
    "video scores: top level is a list": _on_anet(_raw("scores", "[1, 2]", "eval_ckpt", '"results"')),
    "video scores: no results": _on_anet(_raw("scores", '{"class": ["Canoeing"]}', "pseudo", '"results"')),
    "video scores: results is a list": _on_anet(_raw("scores", '{"results": []}', "eval_ckpt", "results: expected")),
    "video scores: validation video without scores": _scores(lambda data, v: data["results"].pop(v), "test",
                                                             "results: no scores"),
    "video scores: unlabeled video without scores": _scores(lambda data, v: data["results"].pop(v), "unlab",
                                                            "results: no scores", "pseudo"),
    "video scores: unknown class name in class": _scores(lambda data, v: data["class"].__setitem__(2, "Surfing"),
                                                         None, "class[2]: 'Surfing'"),
    "video scores: a class missing from class": _scores(_drop_class, None, "class: lacks", "pseudo"),
    "video scores: a class twice in class": _scores(lambda data, v: data["class"].__setitem__(3, data["class"][0]),
                                                    None, "class[3]"),
    "video scores: class not a list of names": _scores(lambda data, v: data.update({"class": [1, 2, 3, 4]}), None,
                                                       "class: expected a list", "pseudo"),
    "video scores: a list of the wrong length": _scores(lambda data, v: data["results"][v].pop(), "test",
                                                        "results: expected 4 probabilities"),
    "video scores: a video's scores not a list": _scores(lambda data, v: data["results"].update({v: 0.9}), "unlab",
                                                         "results", "pseudo"),
    "video scores: a list without the class list": _scores(_without_class_list, "test", "results"),
    "video scores: NaN probability": _scores(_set_prob(float("nan")), "unlab", "score of", "pseudo"),
    "video scores: infinite probability": _scores(_set_prob(float("inf"), 1), "test", "score of"),
    "video scores: negative probability": _scores(_set_prob(-0.1, 2), "test", "score of"),
    "video scores: string probability": _scores(_set_prob("0.9"), "unlab", "score of", "pseudo"),
    "video scores: boolean probability": _scores(_set_prob(True), "test", "score of"),
    # every entry is checked, not only those of the videos the stage asks for
    "video scores: broken entry of a video the stage does not need": _scores(_set_prob(None), "lab", "score of"),
    "video scores: id both with and without v_": _scores(
        lambda data, v: data["results"].update({"v_" + v: data["results"][v]}), "test", "results: ambiguous"),
    "video scores: id both with and without v_ (pseudo-labeling)": _scores(
        lambda data, v: data["results"].update({"v_" + v: data["results"][v]}), "unlab", "results: ambiguous",
        "pseudo"),
    "video scores: dict form with an unknown class": _scores(_as_dict(lambda p: p.update(Surfing=0.1)), "test",
                                                            "results: 'Surfing'"),
    "video scores: dict form without a class": _scores(_as_dict(lambda p: p.popitem()), "unlab",
                                                      "results: no probability", "pseudo"),
})


# ---------------------------------------------------------------- the sweep

STAGES = {"supervised": train_supervised, "acp": pretrain_acp, "pseudo": pseudo_label, "semi": train_semi,
          "eval_ckpt": evaluate, "eval_pred": evaluate}


def _outputs(stage, w, out):
    """The stage's input arguments with valid defaults, and its outputs: (args, files, folders)."""
    files = {"--out": out / "predictions.json", "--json": out / "metrics.json"}
    if stage in ("supervised", "acp"):
        return {"--out": str(out / "run")}, [], [out / "run"]
    if stage == "semi":
        return {"--init": w.ckpt, "--pseudo-labels": w.pl, "--out": str(out / "run")}, [], [out / "run"]
    if stage == "pseudo":
        return {"--checkpoint": w.ckpt, "--out": str(files["--out"])}, [files["--out"]], []
    if stage == "eval_ckpt":
        return {"--checkpoint": w.ckpt, **{k: str(v) for k, v in files.items()}}, list(files.values()), []
    return {"--predictions": w.preds, "--json": str(files["--json"])}, [files["--json"]], []


def test_the_sweep_is_wide():
    assert len(CASES) >= 50
    kinds = {name.split(":")[0].split(" of ")[0] for name in CASES}
    assert kinds >= {"annotation", "features", "labeled split", "unlabeled split", "config", "--set",
                     "--checkpoint", "--init", "predictions", "pseudo", "video scores"}
    assert sum(name.startswith("video scores:") for name in CASES) >= 10
    assert {key for key in CHOICES if f"--set: choice {key}" in CASES} == set(CHOICES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_input_is_one_line_naming_it(request, tmp_path, capsys, name):
    world = request.getfixturevalue(getattr(CASES[name], "world", "world"))
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    stage, sets, args, fragments = CASES[name](world, inputs)
    defaults, files, folders = _outputs(stage, world, outputs)
    config = args.pop("--config", world.config)
    argv = _argv(world.sets + sets, config) + [x for item in {**defaults, **args}.items() for x in item]
    for f in files:
        f.write_bytes(SENTINEL)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_main(STAGES[stage].main, argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert all(f.read_bytes() == SENTINEL for f in files)
    assert not any(f.exists() for f in folders)
    assert sorted(os.listdir(outputs)) == sorted(f.name for f in files)  # no temporary file left behind


def test_the_inputs_of_the_sweep_are_valid_as_given(world, anet_world, tmp_path):
    # the unbroken inputs pass, so each case fails for its own breakage
    metrics = evaluate.main(_argv(world.sets) + ["--predictions", world.preds])
    assert 0.0 < metrics["average"] <= 1.0
    train_semi.main(_argv(world.sets) + ["--init", world.ckpt, "--pseudo-labels", world.pl,
                                         "--out", str(tmp_path / "semi")])
    assert os.path.exists(tmp_path / "semi" / "last.pt")
    # the ActivityNet-like world's stages read its scores file (and its splits: the fixture trained on them)
    argv = _argv(anet_world.sets, anet_world.config) + ["--checkpoint", anet_world.ckpt]
    metrics = evaluate.main(argv + ["--out", str(tmp_path / "anet_preds.json")])
    assert 0.0 <= metrics["average"] <= 1.0 and os.path.exists(tmp_path / "anet_preds.json")
    pseudo_label.main(argv + ["--out", str(tmp_path / "anet_pl.json")])
    assert anet_world.unlab in json.load(open(tmp_path / "anet_pl.json"))["database"]


def test_checkpoint_without_config_names_the_file_in_pseudo_label(world, tmp_path, capsys):
    stage, sets, args, fragments = CASES["--checkpoint of eval_ckpt: no config"](world, tmp_path)
    with pytest.raises(SystemExit) as info:
        run_main(pseudo_label.main, _argv(world.sets) + ["--checkpoint", args["--checkpoint"],
                                                         "--out", str(tmp_path / "pl.json")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.splitlines()) == 1 and "config.model" in err
    assert args["--checkpoint"] in err


# ---------------------------------------------------------------- the embedded dataset: python -m synthetic

def _embedded(folder):
    """The overrides that point the default config at a tiny embedded dataset in `folder`, 40% split."""
    return ["dataset.synthetic_size=tiny", f"dataset.annotation_file={folder}/annotations.json",
            f"dataset.feature_dir={folder}/features", f"dataset.labeled_split={folder}/splits/labeled_40pct.txt",
            f"dataset.unlabeled_split={folder}/splits/unlabeled_40pct.txt"]


def _files(folder):
    """{path: (mtime, bytes)} of every file under folder."""
    paths = [os.path.join(d, f) for d, _, names in os.walk(folder) for f in names]
    return {p: (os.stat(p).st_mtime_ns, open(p, "rb").read()) for p in paths}


def test_make_data_writes_the_dataset_and_its_splits_then_only_checks(tmp_path, capsys):
    folder = tmp_path / "fresh"
    folder.mkdir()  # an empty folder is a place to write
    argv = ["--config", "configs/default.yaml"] + sum((["--set", s] for s in _embedded(folder)), [])
    assert make.main(argv) == f"{folder}/annotations.json"
    assert len(json.load(open(folder / "annotations.json"))["database"]) == 24  # tiny: 16 + 8 videos
    assert {"labeled_40pct.txt", "unlabeled_40pct.txt"} <= set(os.listdir(folder / "splits"))
    first = _files(folder)
    capsys.readouterr()
    make.main(argv)  # idempotent: nothing rewritten
    assert _files(folder) == first and "generating" not in capsys.readouterr().out
    train_supervised.main(_argv(TINY + _embedded(folder)) + ["--out", str(tmp_path / "run")])  # what it reads


def test_stage_on_absent_embedded_data_names_the_command_that_makes_it(tmp_path, capsys):
    folder = tmp_path / "absent"
    for missing in ("annotations.json", "splits/labeled_40pct.txt"):
        with pytest.raises(SystemExit) as info:
            run_main(train_supervised.main, _argv(TINY + _embedded(folder)) + ["--out", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert info.value.code == 2 and len(err.splitlines()) == 1
        assert err.startswith(f"error: {folder}/{missing}: no such file") and "python -m synthetic --config" in err
        assert not os.path.exists(tmp_path / "run")  # no stage writes data or output on the way
        ensure_dataset(str(folder), "tiny", 0)  # the dataset without its splits: the split is named next


def test_mistyped_annotation_file_in_a_folder_of_other_files_is_not_generated_into(tmp_path, capsys):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    path = folder / "annotation.json"  # the embedded dataset is annotations.json
    with pytest.raises(SystemExit) as info:
        run_main(make.main, ["--config", "configs/default.yaml", "--set", f"dataset.annotation_file={path}"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: {path}: no such annotation file")
    assert sorted(os.listdir(tmp_path)) == ["elsewhere"] and os.listdir(folder) == ["notes.txt"]
