"""pseudo.relabel prototype: a pseudo label's class re-decided by the labeled actions' prototypes
(common/relabel.py), against values worked out by hand, and in pseudo_label.py's file."""
import json

import numpy as np
import pytest
from conftest import stage_args as _args

import pseudo_label
import train_semi
from common import pseudo_file
from common.config import load_config
from common.data import grid_features, to_grid
from common.relabel import centred, class_prototypes, mean_pool, nearest_listed
from common.stage import labeled_ids, load_data, run_main
from test_pseudo_labels import chain  # noqa: F401  (the module's tiny supervised -> pseudo chain)


def test_centred_and_mean_pool_by_hand():
    feats = np.array([[1.0, 0.0], [3.0, 0.0], [1.0, 2.0], [1.0, 0.0]])
    # median per dimension: 1 and 0
    assert centred(feats).tolist() == [[0, 0], [2, 0], [0, 2], [0, 0]]
    x = centred(feats)
    # [0.6, 1.4]: step 1 alone; [1, 2]: steps 1 and 2; [2.2, 2.4] holds no step centre: the step
    # nearest its centre 2.3, step 2 (not ceil(2.2) = 3)
    assert mean_pool(x, [[0.6, 1.4], [1.0, 2.0], [2.2, 2.4]]).tolist() == [[2, 0], [1, 1], [0, 2]]
    # pseudo.prototype_parts: the means over equal pieces, start first, side by side
    ramp = np.array([[0.0], [2.0], [4.0], [6.0]])
    # [0, 3] in thirds: steps 0-1, 1-2, 2-3 (a step on a piece's edge counts in both)
    assert mean_pool(ramp, [[0.0, 3.0]], parts=3).tolist() == [[1, 3, 5]]
    # halves [0, 1.5] (steps 0-1) and [1.5, 3] (steps 2-3); one part is the plain mean
    assert mean_pool(ramp, [[0.0, 3.0]], parts=2).tolist() == [[1, 5]] and mean_pool(ramp, [[0.0, 3.0]]).tolist() == [[3]]
    # pieces shorter than a step take the step nearest their centre: [0.6, 1.0] and [1.0, 1.4] both step 1
    assert mean_pool(ramp, [[0.6, 1.4]], parts=2).tolist() == [[2, 2]]
    # a mirrored pair: the same steps in reverse order have one mean and different thirds
    fwd, back = mean_pool(ramp, [[0.0, 3.0]]), mean_pool(ramp[::-1], [[0.0, 3.0]])
    assert fwd.tolist() == back.tolist()
    assert mean_pool(ramp[::-1], [[0.0, 3.0]], parts=3).tolist() == [[5, 3, 1]]


def test_prototypes_and_nearest_listed_class_by_hand():
    protos, has = class_prototypes([[2.0, 0.0], [4.0, 0.0], [0.0, 1.0]], [0, 0, 2], 3)
    assert has.tolist() == [True, False, True]
    assert protos.tolist() == [[1, 0], [0, 0], [0, 1]]  # class 0: mean [3, 0], normalised
    feats = [[1.0, 0.9],   # cos 0.743 with class 0, 0.669 with class 2
             [0.2, 1.0],   # listed 1 and 2: class 1 has no prototype
             [1.0, 1.0],   # only class 1 listed: no prototype, keeps its own label
             [1.0, 1.0]]   # a tie between 2 and 0: the first listed
    listed = [[2, 0], [1, 2], [1, 1], [2, 0]]
    assert nearest_listed(feats, listed, [2, 1, 0, 0], protos, has).tolist() == [0, 2, 0, 2]


def test_video_prior_by_hand():
    """pseudo.video_prior: T = 0.05. Prototypes [1, 0] (class 0) and [0, 1] (class 2); one video's
    predictions a = [1, 0.9] and b = c = [0, 1], each listing classes 0 and 2."""
    protos, has = class_prototypes([[1.0, 0.0], [0.0, 1.0]], [0, 2], 3)
    feats, listed, own = [[1.0, 0.9], [0.0, 1.0], [0.0, 1.0]], [[0, 2], [2, 0], [2, 0]], [1, 1, 1]
    # a: cos 0.7433 / 0.6690 -> logits 14.866 / 13.379 -> softmax w = (0.8156, 0.1844); b, c: w = (0, 1).
    # Equal scores: q = (0.8156, 2.1844) / 3 = (0.2719, 0.7281).
    # mu 1: a's class 0 scores 14.866 + log(0.2729) = 13.567, class 2 13.379 + log(0.7291) = 13.063: 0 stays.
    assert nearest_listed(feats, listed, own, protos, has, [1, 1, 1], 1.0).tolist() == [0, 2, 2]
    # mu 4: 14.866 + 4 log(0.2729) = 9.671 against 13.379 + 4 log(0.7291) = 12.116: the video's class wins.
    assert nearest_listed(feats, listed, own, protos, has, [1, 1, 1], 4.0).tolist() == [2, 2, 2]
    # a scored 10, b and c 1: q = (8.156, 3.844) / 12 = (0.6796, 0.3204) and a keeps class 0
    # (14.866 + 4 log(0.6806) = 13.327 > 13.379 + 4 log(0.3214) = 8.839); b: 20 + 4 log(0.3214) = 15.46
    # for class 2 against 0 + 4 log(0.6806) = -1.54.
    assert nearest_listed(feats, listed, own, protos, has, [10, 1, 1], 4.0).tolist() == [0, 2, 2]
    # mu 0 is the prototypes alone, whatever the scores
    assert nearest_listed(feats, listed, own, protos, has, [1, 1, 1], 0.0).tolist() == [0, 2, 2]


def _relabelled(chain, tmp_path, relabel, prior=0):  # noqa: F811
    """The chain's supervised detector's pseudo-label file with pseudo.relabel=relabel: (path, data)."""
    path = tmp_path / f"pl{prior}.json"
    pseudo_label.main(_args(chain["sets"] + [f"pseudo.relabel={relabel}", f"pseudo.video_prior={prior}"]) + [
        "--checkpoint", str(chain["out"] / "sup" / "last.pt"), "--out", str(path)])
    data = json.load(open(path))
    assert data["meta"]["relabel"] == relabel
    return path, data


def test_relabelled_file(chain, tmp_path):  # noqa: F811
    sets = chain["sets"]
    path, data = _relabelled(chain, tmp_path, "prototype")
    entries = [(vid, e) for vid, v in data["database"].items() for e in v["annotations"] + v["rejected"]]
    assert entries and all(e["label"] in e["class_scores"] for _, e in entries)
    changed = [e for _, e in entries if "detector_label" in e]
    assert data["meta"]["counts"]["relabelled"] == len(changed) > 0
    assert all(e["detector_label"] != e["label"] for e in changed)
    # no two pseudo labels of a video share segment and class; the doubles are rejected
    for v in data["database"].values():
        keys = [(tuple(a["segment"]), a["label"]) for a in v["annotations"]]
        assert len(keys) == len(set(keys))
        for d in (r for r in v["rejected"] if r["reason"] == "duplicate"):
            assert (tuple(d["segment"]), d["label"]) in keys
    assert data["meta"]["counts"]["duplicate"] == sum(r.get("reason") == "duplicate" for _, r in entries) > 0
    # the file reads back strictly; a relabelled pseudo label trains as its new label alone (soft
    # targets: its class_scores no longer list its label with its cls_score)
    cfg = load_config("configs/default.yaml", sets)
    videos, classes = load_data(cfg)
    pseudo_file.read(str(path), classes)
    labeled = set(labeled_ids(cfg, videos))
    pl = train_semi.load_pseudo_labels(str(path), videos, classes, labeled, cfg["dataset"]["train_subset"], "soft")
    relabelled = 0
    for vid, v in data["database"].items():
        for n, a in enumerate(v["annotations"]):
            target = pl[vid].label_weights[n]
            if "detector_label" in a:
                assert target[classes.index(a["label"])] == 1.0 and target.sum() == 1.0
                relabelled += 1
    assert relabelled > 0


def test_video_prior_in_the_file(chain, tmp_path):  # noqa: F811
    """A strong video prior gathers each video's listed predictions on fewer classes than the prototypes alone."""
    def classes_per_video(data):
        return [len({e["label"] for e in v["annotations"] + v["rejected"]}) for v in data["database"].values()]
    alone, voted = _relabelled(chain, tmp_path, "prototype")[1], _relabelled(chain, tmp_path, "prototype", 50)[1]
    assert voted["meta"]["video_prior"] == 50
    assert all(v <= a for v, a in zip(classes_per_video(voted), classes_per_video(alone)))
    assert sum(classes_per_video(voted)) < sum(classes_per_video(alone))


@pytest.mark.parametrize("parts", [1, 3])
def test_prototype_classes_and_duplicates_by_hand(chain, parts):  # noqa: F811
    cfg = load_config("configs/default.yaml", chain["sets"])
    videos, classes = load_data(cfg)
    dcfg, labeled = cfg["dataset"], labeled_ids(cfg, videos)
    vid = next(v for v in sorted(videos) if v not in labeled and videos[v].subset == dcfg["train_subset"]
               and len(videos[v].labels) >= 2)
    truth, c = videos[vid].segments, len(classes)
    # the video's first two actions, the first predicted twice (two classes of one point), and a
    # prediction below tau_neg, which the file does not list and keeps its class
    segments = np.array([truth[0], truth[0], truth[1], truth[1]])
    pred = {"segments": segments, "labels": np.array([0, 1, 2, 3]), "scores": np.array([0.9, 0.8, 0.7, 0.01]),
            "topk_labels": np.tile(np.arange(c), (4, 1))}
    accepted = np.array([True, True, False, False])
    reason = np.array(["positive", "positive", "candidate", "below_tau_neg"])
    results, decisions, changed = pseudo_label.prototype_classes(
        {vid: pred}, {vid: (accepted, reason, np.zeros(4))}, videos, dcfg, labeled, c, parts=parts)
    feats = lambda v: centred(grid_features(dcfg, v)[0])  # noqa: E731
    bank = [(mean_pool(feats(v), to_grid(dcfg, videos[v], videos[v].segments), parts), videos[v].labels)
            for v in labeled if len(videos[v].labels)]
    protos, has = class_prototypes(np.concatenate([b[0] for b in bank]), np.concatenate([b[1] for b in bank]), c)
    assert protos.shape[1] == parts * feats(vid).shape[1]
    nearest = nearest_listed(mean_pool(feats(vid), to_grid(dcfg, videos[vid], segments[:3]), parts),
                             pred["topk_labels"][:3], pred["labels"][:3], protos, has)
    assert nearest[0] == nearest[1]  # one segment, every class listed: one class
    assert results[vid]["labels"].tolist() == nearest.tolist() + [3]
    assert results[vid]["detector_labels"].tolist() == [0, 1, 2, 3]
    assert changed == int((nearest != [0, 1, 2]).sum())
    new_accepted, new_reason, _ = decisions[vid]
    # the lower-scored of the two is the duplicate; the input decisions are left as they were
    assert new_accepted.tolist() == [True, False, False, False]
    assert new_reason.tolist() == ["positive", "duplicate", "candidate", "below_tau_neg"]
    assert accepted.tolist() == [True, True, False, False] and reason[1] == "positive"


@pytest.mark.parametrize("value, message", [
    ("nearest", "pseudo.relabel: expected one of none, prototype, got 'nearest'"),
    ("video", "pseudo.relabel: expected one of none, prototype, got 'video'"),
    ("prototype", "pseudo.relabel: a class-agnostic detector's classes come from the video-level classifier")])
def test_bad_relabel_is_a_config_error(chain, tmp_path, capsys, value, message):  # noqa: F811
    extra = ["dataset.class_agnostic=true", "dataset.video_scores=scores.json"] if value == "prototype" else []
    with pytest.raises(SystemExit) as info:
        run_main(pseudo_label.main, _args(chain["sets"] + f"pseudo.relabel={value}".split(",") + extra) + [
            "--checkpoint", str(chain["out"] / "sup" / "last.pt"), "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "x.json").exists()
