"""Tests of the ActivityNet data pieces: common/video_scores.py (the strict reader of video-level
classifier scores, the top-k labelling of class-agnostic proposals, the writer) and
synthetic/anet_like.py (the ActivityNet-like dataset: format, determinism, statistics)."""
import json
import os
import shutil

import numpy as np
import pytest

from common.data import DataError, load_annotations, read_split
from common.video_scores import label_proposals, load_video_scores, write_video_scores
from synthetic.anet_like import VERSION, ensure_anet_dataset, generate_anet_dataset, main, make_anet_params
from synthetic.thumos_like import num_features

CLASSES = ["Canoeing", "Kayaking", "Rafting"]  # a dataset's class list, alphabetical


def _write(path, data):
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


# ---------------------------------------------------------------- reading video-level scores

def test_list_form_in_the_dataset_class_order(tmp_path):
    # the file lists its classes in another order than the dataset: values follow the names
    path = _write(tmp_path / "s.json", {"class": ["Rafting", "Canoeing", "Kayaking"],
                                        "results": {"abc": [0.7, 0.2, 0.1], "def": [0, 1, 0]}})
    probs = load_video_scores(path, CLASSES)
    assert set(probs) == {"abc", "def"}
    np.testing.assert_array_equal(probs["abc"], [0.2, 0.1, 0.7])
    np.testing.assert_array_equal(probs["def"], [1.0, 0.0, 0.0])
    assert probs["abc"].dtype == np.float64 and probs["abc"].shape == (3,)


def test_dict_form_and_mixed_entries(tmp_path):
    path = _write(tmp_path / "s.json", {"results": {"abc": {"Rafting": 0.5, "Kayaking": 0.25, "Canoeing": 0.25}}})
    np.testing.assert_array_equal(load_video_scores(path, CLASSES)["abc"], [0.25, 0.25, 0.5])
    # with a class list, list and dict entries may sit side by side
    path = _write(tmp_path / "m.json", {"class": CLASSES, "results": {
        "abc": [0.1, 0.2, 0.7], "def": {"Canoeing": 1, "Kayaking": 0, "Rafting": 0}}})
    probs = load_video_scores(path, CLASSES)
    np.testing.assert_array_equal(probs["def"], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("file_ids, asked, expect_key", [
    (["v_abc", "v_def"], ["abc", "def"], "v_abc"),  # CUHK-style keys, anet1.3.json-style ids
    (["abc", "def"], ["v_abc", "v_def"], "abc"),  # the other way round
    (["abc", "v_def"], ["abc", "def"], "abc"),  # mixed within one file
    (["abc", "def"], ["abc", "def"], "abc"),  # the same convention
])
def test_either_id_convention(tmp_path, file_ids, asked, expect_key):
    results = {vid: [1.0, 0.0, 0.0] if i == 0 else [0.0, 0.0, 1.0] for i, vid in enumerate(file_ids)}
    path = _write(tmp_path / "s.json", {"class": CLASSES, "results": results})
    probs = load_video_scores(path, CLASSES, asked)
    assert list(probs) == asked  # keyed as the annotation file writes them, in the order asked
    np.testing.assert_array_equal(probs[asked[0]], [1, 0, 0])
    np.testing.assert_array_equal(probs[asked[1]], [0, 0, 1])
    assert expect_key in load_video_scores(path, CLASSES)  # None: the file's own ids


def test_an_id_that_itself_starts_with_v_(tmp_path):
    # anet1.3.json has v_UmAH95xls; a file that prefixes every id writes it v_v_UmAH95xls
    path = _write(tmp_path / "s.json", {"class": CLASSES, "results": {"v_v_UmAH95xls": [0, 1, 0]}})
    np.testing.assert_array_equal(load_video_scores(path, CLASSES, ["v_UmAH95xls"])["v_UmAH95xls"], [0, 1, 0])


# (file text or object, video_ids, what the one line must name: video, field, problem)
BAD_FILES = {
    "missing video": ({"class": CLASSES, "results": {"abc": [1, 0, 0]}}, ["abc", "xyz"],
                      ("video xyz", "results", "no scores (nor under v_xyz)")),
    "unknown class": ({"class": ["Canoeing", "Kayaking", "Surfing"], "results": {}}, None,
                      ("class[2]", "'Surfing' is not a class of the dataset")),
    "duplicate class": ({"class": ["Canoeing", "Kayaking", "Canoeing"], "results": {}}, None,
                        ("class[2]", "'Canoeing' appears twice (first as class[0])")),
    "class missing": ({"class": ["Canoeing", "Kayaking"], "results": {}}, None,
                      ("class", "lacks the dataset's class 'Rafting'")),
    "class not a list": ({"class": "Canoeing", "results": {}}, None, ("class", "expected a list of class names")),
    "wrong length": ({"class": CLASSES, "results": {"abc": [0.5, 0.5]}}, None,
                     ("video abc", "results", "expected 3 probabilities", "got 2")),
    "string value": ({"class": CLASSES, "results": {"abc": [0.5, "0.3", 0.2]}}, None,
                     ("video abc", "score of 'Kayaking'", "got '0.3'")),
    "NaN": ('{"class": ["Canoeing", "Kayaking", "Rafting"], "results": {"abc": [NaN, 0.5, 0.5]}}', None,
            ("video abc", "score of 'Canoeing'", "got nan")),
    "Infinity": ('{"class": ["Canoeing", "Kayaking", "Rafting"], "results": {"abc": [0, 0, Infinity]}}', None,
                 ("video abc", "score of 'Rafting'", "got inf")),
    "negative": ({"class": CLASSES, "results": {"abc": [1.2, -0.2, 0.0]}}, None,
                 ("video abc", "score of 'Kayaking'", "expected a probability >= 0, got -0.2")),
    "bool": ({"class": CLASSES, "results": {"abc": [True, 0, 0]}}, None, ("video abc", "score of 'Canoeing'")),
    "null": ({"class": CLASSES, "results": {"abc": [None, 0, 0]}}, None, ("video abc", "got None")),
    "dict unknown class": ({"results": {"abc": {"Canoeing": 1, "Kayaking": 0, "Rafting": 0, "Surfing": 0}}},
                           None, ("video abc", "results", "'Surfing' is not a class of the dataset")),
    "dict missing class": ({"results": {"abc": {"Canoeing": 1, "Kayaking": 0}}}, None,
                           ("video abc", "results", "no probability for class 'Rafting'")),
    "dict bad value": ({"results": {"abc": {"Canoeing": 1, "Kayaking": "x", "Rafting": 0}}}, None,
                       ("video abc", "score of 'Kayaking'")),
    "entry not a list": ({"class": CLASSES, "results": {"abc": 0.5}}, None,
                         ("video abc", "results", "expected a list of class probabilities")),
    "list without names": ({"results": {"abc": [1, 0, 0]}}, None, ("video abc", "results", '"class" list')),
    "ambiguous id": ({"class": CLASSES, "results": {"abc": [1, 0, 0], "v_abc": [1, 0, 0]}}, ["abc"],
                     ("video abc", "results", "ambiguous: both")),
    "ambiguous, not asked": ({"class": CLASSES, "results": {"v_abc": [1, 0, 0], "abc": [1, 0, 0]}}, None,
                             ("video abc", "ambiguous: both v_abc and abc")),
    "broken JSON": ('{"class": ["Canoeing"], "results": {', None, ("broken JSON",)),
    "duplicate video": ('{"class": ["Canoeing", "Kayaking", "Rafting"], "results": {"abc": [1, 0, 0], '
                        '"abc": [0, 1, 0]}}', None, ("broken JSON", "'abc' appears twice")),
    "missing results": ({"class": CLASSES}, None, ('missing "results"',)),
    "results a list": ({"class": CLASSES, "results": [[1, 0, 0]]}, None, ("results: expected an object",)),
    "ambiguous, v_ id": ({"class": CLASSES, "results": {"UmAH95xls": [1, 0, 0], "v_v_UmAH95xls": [1, 0, 0]}},
                         ["v_UmAH95xls"], ("video v_UmAH95xls", "ambiguous: both UmAH95xls and v_v_UmAH95xls")),
    "not an object": ([1, 2, 3], None, ('missing "results"',)),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_scores_file_is_one_line_naming_file_video_field(tmp_path, case):
    data, video_ids, expected = BAD_FILES[case]
    path = _write(tmp_path / "scores.json", data)
    with pytest.raises(DataError) as info:
        load_video_scores(path, CLASSES, video_ids)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    for part in expected:
        assert part in message, (part, message)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(DataError, match=r"absent\.json: cannot read: No such file"):
        load_video_scores(tmp_path / "absent.json", CLASSES)


def test_every_entry_is_checked_not_only_those_asked_for(tmp_path):
    path = _write(tmp_path / "s.json", {"class": CLASSES, "results": {"abc": [1, 0, 0], "zzz": [1, 0]}})
    with pytest.raises(DataError, match="video zzz: results: expected 3 probabilities"):
        load_video_scores(path, CLASSES, ["abc"])


# ---------------------------------------------------------------- labelling proposals

def test_label_proposals_by_hand():
    segments = [[1.0, 5.0], [2.0, 8.0], [10.0, 12.0]]
    scores = [0.9, 0.5, 0.2]
    probs = [0.1, 0.6, 0.05, 0.25]  # top two: class 1 (0.6), then class 3 (0.25)
    seg, score, label = label_proposals(segments, scores, probs, top_k=2)
    # all proposals with class 1 first: 0.9 x 0.6 = 0.54, 0.5 x 0.6 = 0.30, 0.2 x 0.6 = 0.12;
    # then with class 3: 0.9 x 0.25 = 0.225, 0.5 x 0.25 = 0.125, 0.2 x 0.25 = 0.05
    np.testing.assert_allclose(score, [0.54, 0.30, 0.12, 0.225, 0.125, 0.05])
    np.testing.assert_array_equal(label, [1, 1, 1, 3, 3, 3])
    np.testing.assert_array_equal(seg, segments + segments)
    assert seg.shape == (6, 2) and label.dtype == np.int64
    # top-1: the proposals with the video's class, scaled by its probability
    seg, score, label = label_proposals(segments, scores, probs, top_k=1)
    np.testing.assert_allclose(score, [0.54, 0.30, 0.12])
    np.testing.assert_array_equal(label, [1, 1, 1])


def test_label_proposals_ties_and_edges():
    # classes 0, 2 and 3 tie at 0.3: the lower ids win, in order
    _, score, label = label_proposals([[0, 1]], [0.5], [0.3, 0.1, 0.3, 0.3], top_k=2)
    np.testing.assert_array_equal(label, [0, 2])
    np.testing.assert_allclose(score, [0.15, 0.15])
    # top_k beyond the classes gives each class once; no proposal gives no detection
    _, _, label = label_proposals([[0, 1]], [1.0], [0.2, 0.8], top_k=5)
    np.testing.assert_array_equal(label, [1, 0])
    seg, score, label = label_proposals(np.zeros((0, 2)), np.zeros(0), [0.5, 0.5])
    assert seg.shape == (0, 2) and score.shape == (0,) and label.shape == (0,)
    with pytest.raises(ValueError, match="2 segments but 1 scores"):
        label_proposals([[0, 1], [1, 2]], [0.5], [1.0])
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        label_proposals([[0, 1]], [0.5], [1.0], top_k=0)


# ---------------------------------------------------------------- writing

def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    probs = {vid: rng.dirichlet(np.ones(3)) for vid in ["v_b", "a", "c"]}
    path = tmp_path / "out" / "scores.json"
    write_video_scores(path, probs, CLASSES)
    assert os.listdir(tmp_path / "out") == ["scores.json"]  # no temporary file left beside it
    data = json.loads(path.read_text())
    assert data["class"] == CLASSES and list(data["results"]) == ["a", "c", "v_b"]  # sorted
    back = load_video_scores(path, CLASSES)
    assert set(back) == set(probs)
    for vid in probs:
        np.testing.assert_allclose(back[vid], probs[vid], atol=5e-7)  # rounded to 6 decimals
    # the same content read with the other convention and written again gives the same bytes
    again = tmp_path / "again.json"
    write_video_scores(again, load_video_scores(path, CLASSES, ["a", "c", "v_b"]), CLASSES)
    assert again.read_bytes() == path.read_bytes()
    with pytest.raises(ValueError, match="expected 3 finite probabilities"):
        write_video_scores(tmp_path / "bad.json", {"a": [0.5, 0.5]}, CLASSES)
    assert not (tmp_path / "bad.json").exists()


# ---------------------------------------------------------------- the ActivityNet-like dataset

REDUCED = dict(num_train=40, num_val=16, num_classes=8)  # two class groups, a few hundred ms to write


@pytest.fixture(scope="session")
def anet(tmp_path_factory):
    """The default size, as users get it (about two seconds)."""
    root = tmp_path_factory.mktemp("anet") / "default"
    generate_anet_dataset(root, seed=0)
    return root


@pytest.fixture(scope="session")
def reduced(tmp_path_factory):
    root = tmp_path_factory.mktemp("anet") / "reduced"
    generate_anet_dataset(root, seed=3, params=REDUCED)
    return root


def _load(root):
    with open(os.path.join(root, "annotations.json")) as f:
        ann = json.load(f)
    with open(os.path.join(root, "meta.json")) as f:
        return ann["database"], json.load(f)


def _files(root):
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_same_seed_same_bytes(tmp_path, reduced):
    generate_anet_dataset(tmp_path / "again", seed=3, params=REDUCED)
    first, second = _files(reduced), _files(tmp_path / "again")
    assert sorted(first) == sorted(second) and first == second
    assert {"annotations.json", "meta.json", "video_scores.json", "splits/labeled_20pct.txt"} <= set(first)
    generate_anet_dataset(tmp_path / "other", seed=4, params=REDUCED)
    assert _files(tmp_path / "other")["annotations.json"] != first["annotations.json"]


def test_format_and_variable_length_features(reduced):
    db, meta = _load(reduced)
    p = meta["params"]
    names = meta["class_names"]
    assert meta["version"] == VERSION and names == sorted(names) and len(names) == 8
    assert sorted(n for g in meta["class_groups"] for n in g) == names
    assert [v for v in db if db[v]["subset"] == "training"] == [f"anet_train_{i:05d}" for i in range(1, 41)]
    assert [v for v in db if db[v]["subset"] == "validation"] == [f"anet_valid_{i:05d}" for i in range(1, 17)]
    lengths = set()
    for vid, video in db.items():
        assert set(video) == {"subset", "duration", "fps", "annotations"}
        assert len({a["label"] for a in video["annotations"]}) == 1  # one class per video
        previous_end = 0.0
        for a in video["annotations"]:
            assert a["label_id"] == names.index(a["label"])
            s, e = a["segment"]
            assert previous_end <= s < e and s < video["duration"]  # sorted, no overlap
            previous_end = e
        feats = np.load(os.path.join(reduced, "features", vid + ".npy"))
        T = num_features(video["duration"], video["fps"], p["feat_stride"], p["num_frames"])
        assert feats.dtype == np.float32 and feats.shape == (T, p["feat_dim"]) == (T, 64)
        assert np.isfinite(feats).all()
        lengths.add(T)
    assert len(lengths) > 40  # every video its own length, for the recipe to resize


def test_readable_by_the_project_readers(anet):
    videos, classes = load_annotations(os.path.join(anet, "annotations.json"))
    _, meta = _load(anet)
    assert classes == meta["class_names"] and len(videos) == 700
    training = {vid for vid, v in videos.items() if v.subset == "training"}
    for pct in (10, 20, 40, 60):
        labeled = read_split(os.path.join(anet, "splits", f"labeled_{pct}pct.txt"), videos)
        unlabeled = read_split(os.path.join(anet, "splits", f"unlabeled_{pct}pct.txt"), videos)
        assert len(labeled) == pct * 5 and not set(labeled) & set(unlabeled)
        assert set(labeled) | set(unlabeled) == training
        assert {int(videos[vid].labels[0]) for vid in labeled} == set(range(20))  # every class labeled
    scores = load_video_scores(os.path.join(anet, "video_scores.json"), classes, sorted(videos))
    assert len(scores) == 700 and all(np.isclose(p.sum(), 1, atol=1e-4) for p in scores.values())


def test_activitynet_statistics(anet):
    # anet1.3.json: video median 115 s, action median 27 s, 1.54 instances a video, 75% with one,
    # a single action covers a median 79% of its video
    db, meta = _load(anet)
    stats = meta["stats"]
    durations = [v["duration"] for v in db.values()]
    actions = [a["segment"][1] - a["segment"][0] for v in db.values() for a in v["annotations"]]
    counts = [len(v["annotations"]) for v in db.values()]
    assert 100 <= np.median(durations) <= 130 and stats["video_duration_median"] == pytest.approx(np.median(durations))
    assert 20 <= np.median(actions) <= 35
    assert 1.35 <= np.mean(counts) <= 1.75 and np.median(counts) == 1
    assert 0.65 <= stats["one_instance_share"] <= 0.85 and 0.65 <= stats["coverage_median_one_instance"] <= 0.9
    assert stats["classes_per_video"] == {"1": 700} and len(meta["class_names"]) == 20
    assert 0 < stats["segments_past_end"] <= 20  # a few, as in the real file
    steps = stats["feature_steps"]
    assert steps["min"] >= 8 and 150 <= steps["median"] <= 260 and steps["max"] <= 460


def test_video_scores_realistic_and_confused_within_groups(anet):
    db, meta = _load(anet)
    names = meta["class_names"]
    group = {name: g for g, members in enumerate(meta["class_groups"]) for name in members}
    probs = load_video_scores(os.path.join(anet, "video_scores.json"), names, sorted(db))
    true = {vid: v["annotations"][0]["label_id"] for vid, v in db.items()}
    top = {vid: np.argsort(-p, kind="stable")[:2] for vid, p in probs.items()}
    top1 = np.mean([top[vid][0] == true[vid] for vid in db])
    top2 = np.mean([true[vid] in top[vid] for vid in db])
    wrong = [vid for vid in db if top[vid][0] != true[vid]]
    within = np.mean([group[names[top[vid][0]]] == group[names[true[vid]]] for vid in wrong])
    assert 0.8 <= top1 <= 0.93 and top1 < top2 <= 0.99
    assert within >= 0.7  # most confusions stay inside a group of similar classes
    recorded = meta["stats"]["video_scores"]
    assert recorded["top1_accuracy"] == round(top1, 3) and recorded["top2_accuracy"] == round(top2, 3)
    assert recorded["errors_within_group"] == round(within, 3)


def test_ensure_generates_once_and_refuses_other_folders(tmp_path, capsys):
    root = tmp_path / "data" / "anet"
    assert ensure_anet_dataset(root, seed=3, params=REDUCED) == str(root)
    assert "generating" in capsys.readouterr().out
    before = os.stat(root / "annotations.json").st_mtime_ns
    ensure_anet_dataset(root, seed=3, params=REDUCED)  # a cache: not written again
    assert os.stat(root / "annotations.json").st_mtime_ns == before and capsys.readouterr().out == ""
    with pytest.raises(DataError, match=r"meta\.json: the cached dataset was generated with seed=3 \(asked 4\): "):
        ensure_anet_dataset(root, seed=4, params=REDUCED)
    with pytest.raises(DataError, match=r"num_classes=8 \(asked 20\), num_train=40 \(asked 500\), num_val=16"):
        ensure_anet_dataset(root, seed=3)
    # a folder holding other files is a mistyped path: nothing is written there
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(DataError, match=r"mine/annotations\.json: no such file \(its folder holds other files"):
        ensure_anet_dataset(other, seed=0, params=REDUCED)
    with pytest.raises(DataError, match="not a dataset of this generator"):
        generate_anet_dataset(other, seed=0, params=REDUCED)
    (other / "annotations.json").write_text("{}")  # another generator's dataset is not reused either
    (other / "meta.json").write_text(json.dumps({"version": "synthetic-thumos-v1"}))
    with pytest.raises(DataError, match="mine/meta.json: holds a 'synthetic-thumos-v1' dataset"):
        ensure_anet_dataset(other, seed=0, params=REDUCED)
    for name in ("annotations.json", "meta.json"):
        os.remove(other / name)
    assert os.listdir(other) == ["notes.txt"] and os.listdir(tmp_path / "data") == ["anet"]  # no temp left


def test_params_are_strict():
    assert make_anet_params({"num_train": 10, "duration_edges": [10, 20.0]}).duration_edges == (10, 20.0)
    with pytest.raises(TypeError, match="unknown generator parameter 'num_trian'"):
        make_anet_params({"num_trian": 10})
    with pytest.raises(TypeError, match="num_val must be int"):
        make_anet_params({"num_val": 2.5})


def test_cli_prints_the_measured_statistics(tmp_path, capsys):
    main(["--out", str(tmp_path / "cli"), "--seed", "0"])
    out = capsys.readouterr().out
    assert '"top1_accuracy"' in out and '"video_duration_median"' in out
    assert f"generated {tmp_path / 'cli'} (seed=0) in" in out and "MiB" in out


def test_hard_preset_encodes_and_blurs_and_older_caches_still_load(tmp_path, reduced):
    """anet_hard: features through the ReLU encoder (non-negative), annotated boundaries moved away
    from the features' (jitter); the linear preset's draws untouched, so the same seed gives the same
    videos and layout. A cached meta.json written before the encoder fields existed still loads."""
    from synthetic.anet_like import ANET_PRESETS
    root = tmp_path / "hard"
    generate_anet_dataset(root, seed=3, params={**REDUCED, **ANET_PRESETS["anet_hard"]})
    hard_db, _ = _load(root)
    base_db, _ = _load(reduced)
    assert sorted(hard_db) == sorted(base_db)
    vid = sorted(hard_db)[0]
    assert hard_db[vid]["duration"] == base_db[vid]["duration"]
    assert len(hard_db[vid]["annotations"]) == len(base_db[vid]["annotations"])
    moved = [a["segment"] != b["segment"] for v in hard_db for a, b in zip(hard_db[v]["annotations"],
                                                                            base_db[v]["annotations"])]
    assert sum(moved) > 0.9 * len(moved)  # jittered
    feats = np.load(root / "features" / f"{vid}.npy")
    assert feats.min() >= 0.0 and (np.load(reduced / "features" / f"{vid}.npy") < 0).any()
    meta = json.loads((reduced / "meta.json").read_text())
    for key in ("encoder_width", "encoder_gain", "encoder_bias"):
        meta["params"].pop(key)
    old = tmp_path / "old"
    shutil.copytree(reduced, old)
    (old / "meta.json").write_text(json.dumps(meta))
    assert ensure_anet_dataset(old, seed=3, params=REDUCED) == str(old)
