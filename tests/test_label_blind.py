"""The stages that must not see the unlabeled videos' labels do not: ACP pre-training, pseudo labelling
and the semi-supervised round give the same weights and the same pseudo-label file whether the
annotation file holds those videos' actions or not (only pseudo_label.py's quality table, printed
after the file is written, reads them, and says when it cannot)."""
import json

import torch
from conftest import stage_args

import pretrain_acp
import pseudo_label
import train_semi
import train_supervised
from common.data import load_annotations, read_split
from synthetic.make import ensure_splits
from synthetic.thumos_like import ensure_dataset

# Long videos cropped to 128 steps; a warmup epoch in each stage, so every stage takes steps at lr > 0;
# thresholds that accept generously, so the undertrained detector's file is not empty.
TINY = ["model.embd_dim=16", "model.head_dim=16", "model.n_head=2", "model.attn_window=5", "dataset.max_seq_len=128",
        "train.epochs=2", "train.warmup_epochs=1", "train.batch_size=4", "semi.epochs=1", "semi.warmup_epochs=1",
        "acp.epochs=1", "acp.warmup_epochs=1", "dataset.synthetic_size=null",
        "pseudo.tau_neg=0.0", "pseudo.pos_std=0.0", "test.max_segments=20"]


def _chain(root, annotation_file, out, capsys):
    """ACP -> supervised -> pseudo labels -> one round on the tiny dataset read from `annotation_file`;
    the ACP and round checkpoints, the pseudo-label file and what pseudo_label.py printed."""
    sets = TINY + [f"dataset.annotation_file={annotation_file}", f"dataset.feature_dir={root}/features",
                   f"dataset.labeled_split={root}/splits/labeled_40pct.txt",
                   f"dataset.unlabeled_split={root}/splits/unlabeled_40pct.txt"]
    acp = pretrain_acp.main(stage_args(sets) + ["--out", str(out / "acp")])
    sup = train_supervised.main(stage_args(sets) + ["--init", acp, "--out", str(out / "sup")])
    capsys.readouterr()
    pl = pseudo_label.main(stage_args(sets) + ["--checkpoint", sup, "--out", str(out / "pl.json")])
    printed = capsys.readouterr().out
    semi = train_semi.main(stage_args(sets) + ["--init", sup, "--pseudo-labels", pl, "--out", str(out / "semi")])
    load = lambda path: torch.load(path, map_location="cpu", weights_only=True)  # noqa: E731
    for run in ("acp", "semi"):  # both trained: the weights compared are not their starting ones
        assert any(json.loads(line)["lr"] > 0 for line in open(out / run / "log.jsonl")), run
    start, trained = load(sup)["ema"], load(semi)["ema"]
    assert any(not torch.equal(start[name], trained[name]) for name in start)
    return load(acp), json.load(open(pl)), printed, load(semi)


def _same_weights(a, b):
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)


def test_no_stage_reads_the_unlabeled_videos_labels(tmp_path, capsys):
    root = tmp_path / "tiny"
    ensure_dataset(str(root), "tiny", 0)
    dcfg = {"annotation_file": str(root / "annotations.json"), "train_subset": "train", "synthetic_seed": 0}
    videos, classes = load_annotations(dcfg["annotation_file"])
    ensure_splits(videos, classes, dcfg)
    unlabeled = read_split(root / "splits" / "unlabeled_40pct.txt")
    # The annotation file a user with truly unlabeled videos has: their entries give subset, duration
    # and fps, and no action; some without the "annotations" key, some with an empty list.
    data = json.load(open(dcfg["annotation_file"]))
    for n, vid in enumerate(unlabeled):
        if n % 2:
            data["database"][vid]["annotations"] = []
        else:
            del data["database"][vid]["annotations"]
    blind_file = tmp_path / "without_unlabeled.json"
    blind_file.write_text(json.dumps(data))
    assert load_annotations(str(blind_file))[1] == classes  # the class list comes from the other videos

    acp, pl, printed, semi = _chain(root, dcfg["annotation_file"], tmp_path / "given", capsys)
    blind_acp, blind_pl, blind_printed, blind_semi = _chain(root, blind_file, tmp_path / "blind", capsys)

    _same_weights(acp, blind_acp)
    for f in (pl, blind_pl):  # where each run's files are, and its overrides (the annotation file's path)
        for key in ("checkpoint", "config", "overrides"):
            f["meta"].pop(key)
    assert pl == blind_pl
    assert sum(len(v["annotations"]) for v in pl["database"].values()) > 0  # a round with something to learn
    _same_weights(semi, blind_semi)
    # the quality table is pseudo_label.py's only reader of the unlabeled videos' ground truth
    assert "| selection | #PL | Class Acc" in printed and "Class Acc" not in blind_printed
    assert "no pseudo-label quality table: the unlabeled videos have no annotations" in blind_printed
