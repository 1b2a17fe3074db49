"""Tests of common/data.py on tiny datasets written under tmp_path: the time <-> grid mapping, the
checks of the annotation reader, splits, training crops against a slow reference, and batching."""
import json
import os

import numpy as np
import pytest
import torch

from common.data import (DataError, VideoDataset, check_features, collate, grid_to_time, load_annotations,
                         load_features, make_split, read_split, time_to_grid, write_split)

CLASSES = ["Jump", "Run", "Throw"]      # label_id 0, 1, 2
DIM = 8


def tiny_database():
    """Three videos: two training videos (one with an extra key per annotation) and a test video."""
    def ann(label, start, end, **extra):
        return {"label": label, "segment": [start, end], "label_id": CLASSES.index(label), **extra}
    return {
        "v1": {"subset": "train", "duration": 20.0, "fps": 30.0,
               "annotations": [ann("Jump", 1.0, 3.0), ann("Run", 5.5, 9.0, score=0.9)]},
        "v2": {"subset": "train", "duration": 12.0, "fps": 25,
               "annotations": [ann("Throw", 0.0, 2.0)]},
        "v3": {"subset": "test", "duration": 8.0, "fps": 30.0, "annotations": []},
    }


def write_dataset(tmp_path, database, lengths=None, dim=DIM, max_seq_len=64):
    """Annotation file + random features (T = `lengths[vid]`, default 40) -> the dataset config."""
    ann_file = tmp_path / "annotations.json"
    ann_file.write_text(json.dumps({"version": "test", "database": database}))
    feat_dir = tmp_path / "features"
    feat_dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for vid in database:
        length = (lengths or {}).get(vid, 40)
        np.save(feat_dir / f"{vid}.npy", rng.standard_normal((length, dim)).astype(np.float32))
    return {"annotation_file": str(ann_file), "feature_dir": str(feat_dir), "feature_dim": DIM,
            "feat_stride": 4, "num_frames": 16, "default_fps": None, "train_subset": "train",
            "eval_subset": "test", "classes": None, "labeled_split": None, "unlabeled_split": None,
            "max_seq_len": max_seq_len, "trunc_thresh": 0.5}


# ---------------------------------------------------------------- time <-> grid

def test_time_to_grid_hand_value_and_round_trip():
    # 10 s at 30 fps = frame 300 = 75 strides of 4 frames; the window of 16 frames centres a
    # feature 8 frames = 2 strides after its first frame: grid 75 - 2 = 73
    assert time_to_grid(10.0, 30.0, 4, 16) == pytest.approx(73.0)
    t = np.array([0.0, 0.4, 3.3, 10.0, 59.9])
    g = time_to_grid(t, 29.97, 4, 16)
    np.testing.assert_allclose(grid_to_time(g, 29.97, 4, 16), t, atol=1e-12)
    # the grid starts before 0 s and decoded times are clamped into the video
    assert grid_to_time(-5.0, 30.0, 4, 16, duration=8.0) == 0.0
    assert grid_to_time(1e6, 30.0, 4, 16, duration=8.0) == 8.0


# ---------------------------------------------------------------- annotation reader

def test_load_valid_file(tmp_path):
    database = tiny_database()
    database["v1"]["note"] = "kept"
    del database["v2"]["fps"]                           # falls back to default_fps
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"database": database, "meta": {"round": 1}}))
    videos, classes = load_annotations(str(path), default_fps=24.0)
    assert classes == CLASSES                           # ordered by label_id
    assert list(videos) == ["v1", "v2", "v3"]
    v1 = videos["v1"]
    assert (v1.subset, v1.duration, v1.fps) == ("train", 20.0, 30.0)
    assert v1.segments.dtype == np.float64 and v1.segments.tolist() == [[1.0, 3.0], [5.5, 9.0]]
    assert v1.labels.dtype == np.int64 and v1.labels.tolist() == [0, 1]
    assert v1.extra == [{}, {"score": 0.9}] and v1.video_extra == {"note": "kept"}
    assert videos["v2"].fps == 24.0 and videos["v2"].labels.tolist() == [2]
    assert videos["v3"].segments.shape == (0, 2) and videos["v3"].labels.shape == (0,)


def test_given_class_list_is_used(tmp_path):
    database = tiny_database()
    for video in database.values():                     # no label_id: the given list decides
        for ann in video["annotations"]:
            del ann["label_id"]
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"database": database}))
    videos, classes = load_annotations(str(path), classes=["Throw", "Run", "Jump", "Swim"])
    assert classes == ["Throw", "Run", "Jump", "Swim"]
    assert videos["v1"].labels.tolist() == [2, 1]


def _set(path):
    """A mutation of the database that sets the value at `path` (keys and list indices)."""
    def mutate(value):
        def apply(db):
            target = db
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        return apply
    return mutate


BAD_CASES = {
    "label not in class list": (_set(["v1", "annotations", 1, "label"])("Swim"),
                                "v1", "annotations[1].label"),
    "reversed segment": (_set(["v2", "annotations", 0, "segment"])([2.0, 1.0]),
                         "v2", "annotations[0].segment"),
    "segment not two numbers": (_set(["v2", "annotations", 0, "segment"])([1.0, "2"]),
                                "v2", "annotations[0].segment"),
    "label_id disagrees": (_set(["v1", "annotations", 1, "label_id"])(2),
                           "v1", "annotations[1].label_id"),
    "non-numeric duration": (_set(["v3", "duration"])("8 s"), "v3", "duration"),
    "missing duration": (lambda db: db["v3"].pop("duration"), "v3", "duration"),
    "missing fps without default": (lambda db: db["v1"].pop("fps"), "v1", "fps"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_annotation_names_file_video_field(tmp_path, case):
    mutate, video, field = BAD_CASES[case]
    database = tiny_database()
    mutate(database)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"database": database}))
    with pytest.raises(DataError) as info:
        load_annotations(str(path), classes=CLASSES)
    message = str(info.value)
    assert message.startswith(f"{path}: video {video}: {field}: "), message
    assert "\n" not in message


@pytest.mark.parametrize("text, problem", [('{"database": {"v1": ', "broken JSON"),
                                           ('{"version": 1}', '"database"'),
                                           ('{"database": {"v1": {}, "v1": {}}}', "twice")])
def test_broken_file_names_file(tmp_path, text, problem):
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(DataError, match=problem) as info:
        load_annotations(str(path))
    assert str(info.value).startswith(f"{path}: ")


def test_segments_past_the_end_are_clipped_and_counted(tmp_path, capsys):
    database = tiny_database()
    database["v1"]["annotations"][1]["segment"] = [18.0, 25.0]     # ends past 20 s: clipped
    database["v2"]["annotations"][0]["segment"] = [11.0, 13.0]     # ends past 12 s: clipped
    database["v3"]["annotations"] = [{"label": "Run", "segment": [8.0, 9.0]},    # starts at the end
                                     {"label": "Run", "segment": [0.0, 0.0]},    # empty
                                     {"label": "Jump", "segment": [1.0, 9.0]}]   # clipped
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"database": database}))
    videos, _ = load_annotations(str(path))
    assert videos["v1"].segments.tolist() == [[1.0, 3.0], [18.0, 20.0]]
    assert videos["v2"].segments.tolist() == [[11.0, 12.0]]
    assert videos["v3"].segments.tolist() == [[1.0, 8.0]] and videos["v3"].labels.tolist() == [0]
    assert len(videos["v3"].extra) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{path}: clipped 3 segments that end past their video's duration",
                     f"{path}: dropped 1 segments that start at or past their video's duration (v3: 1)",
                     f"{path}: dropped 1 empty segments (end == start) (v3: 1)"]
    # evaluation reads them as the official evaluator does: as given, nothing clipped or dropped
    given, _ = load_annotations(str(path), as_given=True)
    assert given["v1"].segments.tolist() == [[1.0, 3.0], [18.0, 25.0]]
    assert given["v3"].segments.tolist() == [[8.0, 9.0], [0.0, 0.0], [1.0, 9.0]]
    assert given["v3"].labels.tolist() == [1, 1, 0] and capsys.readouterr().out == ""


# ---------------------------------------------------------------- features

def test_missing_feature_file(tmp_path):
    dcfg = write_dataset(tmp_path, tiny_database())
    os.remove(os.path.join(dcfg["feature_dir"], "v2.npy"))
    with pytest.raises(DataError) as info:
        check_features(dcfg, ["v1", "v2"])
    path = os.path.join(dcfg["feature_dir"], "v2.npy")
    assert str(info.value).startswith(f"{path}: video v2: features: ")


def test_feature_dim_differs_from_config(tmp_path):
    dcfg = write_dataset(tmp_path, tiny_database(), dim=DIM + 1)
    path = os.path.join(dcfg["feature_dir"], "v1.npy")
    with pytest.raises(DataError) as info:
        check_features(dcfg, ["v1"])
    assert str(info.value).startswith(f"{path}: video v1: feature_dim: ")
    # the dataset checks again when it loads, for files that change after the check
    videos, _ = load_annotations(dcfg["annotation_file"])
    with pytest.raises(DataError, match="feature_dim"):
        VideoDataset(dcfg, videos, ["v1"], training=False)[0]


def test_non_finite_features_name_file_video_and_position(tmp_path):
    dcfg = write_dataset(tmp_path, tiny_database())
    path = os.path.join(dcfg["feature_dir"], "v2.npy")
    check_features(dcfg, ["v1", "v2"])
    for bad in (np.nan, np.inf, -np.inf):
        feats = np.load(path)
        feats[7, 3] = bad
        np.save(path, feats)
        stat = os.stat(path)  # a file changed since its check is read again, even within one clock tick
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
        with pytest.raises(DataError) as info:
            check_features(dcfg, ["v1", "v2"])
        assert str(info.value) == f"{path}: video v2: features: non-finite value {bad} at step 7, dim 3"
    videos, _ = load_annotations(dcfg["annotation_file"])
    with pytest.raises(DataError, match="non-finite"):  # a dataset checks its videos too
        VideoDataset(dcfg, videos, ["v2"], training=True)


# ---------------------------------------------------------------- ActivityNet's "v_" prefix

# Two real ActivityNet ids start with "v_" themselves; SSTAP's lists write them v_v_UmAH95xls.
PREFIX_VIDEOS = dict.fromkeys(["abc", "v_def", "v_UmAH95xls", "ghi", "v_ghi"])


@pytest.mark.parametrize("written, resolved", [("abc", "abc"), ("v_abc", "abc"), ("def", "v_def"),
                                               ("v_def", "v_def"), ("v_v_UmAH95xls", "v_UmAH95xls"),
                                               ("v_UmAH95xls", "v_UmAH95xls")])
def test_split_ids_with_or_without_the_prefix(tmp_path, written, resolved):
    path = tmp_path / "split.txt"
    path.write_text(f"{written}\n")
    assert read_split(str(path), PREFIX_VIDEOS) == [resolved]
    assert read_split(str(path)) == [written]  # without the annotation's videos, ids stay as written


@pytest.mark.parametrize("text, problem", [
    ("abc\nxyz\n", "video xyz: line 2: not in the annotation file"),
    ("v_xyz\n", "video v_xyz: line 1: not in the annotation file"),
    ("ghi\n", "video ghi: line 1: ambiguous: both ghi and v_ghi are videos of the annotation file"),
    ("v_ghi\n", "video v_ghi: line 1: ambiguous: both v_ghi and ghi are videos of the annotation file"),
    ("abc\nv_abc\n", "video abc: line 2: listed twice (first on line 1)")])
def test_split_id_unknown_ambiguous_or_twice(tmp_path, text, problem):
    path = tmp_path / "split.txt"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_split(str(path), PREFIX_VIDEOS)
    assert str(info.value) == f"{path}: {problem}"


@pytest.mark.parametrize("video, file", [("abc", "abc"), ("abc", "v_abc"), ("v_def", "def"), ("v_def", "v_def"),
                                         ("v_UmAH95xls", "v_v_UmAH95xls"), ("v_UmAH95xls", "UmAH95xls")])
def test_feature_file_with_or_without_the_prefix(tmp_path, video, file):
    np.save(tmp_path / f"{file}.npy", np.ones((5, DIM), dtype=np.float32))
    dcfg = {"feature_dir": str(tmp_path), "feature_dim": DIM}
    assert load_features(dcfg, video).shape == (5, DIM)
    check_features(dcfg, [video])


def test_feature_file_ambiguous_or_missing(tmp_path):
    dcfg = {"feature_dir": str(tmp_path), "feature_dim": DIM}
    for name in ("abc", "v_abc"):
        np.save(tmp_path / f"{name}.npy", np.ones((5, DIM), dtype=np.float32))
    with pytest.raises(DataError) as info:
        load_features(dcfg, "v_abc")
    assert str(info.value) == f"{tmp_path}/v_abc.npy: video v_abc: features: ambiguous: there is abc.npy too; " \
                              "keep one of them"
    with pytest.raises(DataError) as info:
        load_features(dcfg, "xyz")
    assert str(info.value) == f"{tmp_path}/xyz.npy: video xyz: features: file is missing (nor is there v_xyz.npy)"


ANET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data",
                    "activitynet")  # ../shared beside the project, where present


@pytest.mark.skipif(not os.path.isdir(ANET), reason="needs ../shared/data/activitynet beside the project")
def test_sstap_splits_load_against_anet13_in_either_convention(tmp_path):
    videos, _ = load_annotations(os.path.join(ANET, "anet1.3.json"))
    training = {v for v, info in videos.items() if info.subset == "training"}
    assert len(videos) == 14377 and len(training) == 9649
    sizes = {}
    for pct in (10, 20, 40, 60):
        ids = {}
        for kind in ("labeled", "unlabeled"):
            path = os.path.join(ANET, f"anet_sstap_{kind}_{pct}pct.txt")
            written = [line.strip() for line in open(path) if line.strip()]
            assert all(v.startswith("v_") for v in written)
            bare = tmp_path / f"{kind}_{pct}.txt"  # the same list in anet1.3.json's convention
            bare.write_text("".join(v[2:] + "\n" for v in written))
            ids[kind] = read_split(path, videos)
            assert read_split(str(bare), videos) == ids[kind] == [v[2:] for v in written]
            sizes[f"{kind}_{pct}"] = len(ids[kind])
        labeled, unlabeled = set(ids["labeled"]), set(ids["unlabeled"])
        assert not labeled & unlabeled and labeled | unlabeled == training  # none missing from anet1.3.json
    assert sizes == {"labeled_10": 966, "unlabeled_10": 8683, "labeled_20": 1925, "unlabeled_20": 7724,
                     "labeled_40": 3867, "unlabeled_40": 5782, "labeled_60": 5782, "unlabeled_60": 3867}


# ---------------------------------------------------------------- splits

def split_videos(n=60, n_classes=6, seed=0):
    """n training videos, 1-3 actions each; class 5 occurs in one video only, to test the cover."""
    rng = np.random.default_rng(seed)
    database = {}
    for i in range(n):
        labels = rng.integers(0, n_classes - 1, size=rng.integers(1, 4))
        if i == 37:
            labels = np.array([n_classes - 1])
        anns = [{"label": f"c{c}", "segment": [k * 2.0, k * 2.0 + 1.0], "label_id": int(c)}
                for k, c in enumerate(labels)]
        database[f"vid{i:03d}"] = {"subset": "train", "duration": 30.0, "fps": 30, "annotations": anns}
    database["other"] = {"subset": "test", "duration": 30.0, "fps": 30, "annotations": []}
    return database


@pytest.fixture
def split_data(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"database": split_videos()}))
    return load_annotations(str(path))


@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.4, 0.6, 1.0])
def test_make_split_sizes_cover_and_partition(split_data, ratio):
    videos, classes = split_data
    labeled, unlabeled = make_split(videos, "train", ratio, seed=3, classes=classes)
    train = sorted(vid for vid in videos if videos[vid].subset == "train")
    assert len(labeled) == round(ratio * 60)
    assert not set(labeled) & set(unlabeled) and sorted(labeled + unlabeled) == train
    covered = set(np.concatenate([videos[vid].labels for vid in labeled]).tolist())
    assert covered == set(range(len(classes)))          # the one-video class included
    assert "vid037" in labeled
    assert make_split(videos, "train", ratio, 3, classes) == (labeled, unlabeled)


def test_make_split_seeds_differ_and_impossible_ratio(split_data):
    videos, classes = split_data
    assert make_split(videos, "train", 0.2, 0, classes) != make_split(videos, "train", 0.2, 1, classes)
    with pytest.raises(DataError, match="raise the ratio"):
        make_split(videos, "train", 0.02, 0, classes)   # 1 labeled video cannot hold 6 classes


def test_split_file_round_trip(tmp_path, split_data):
    videos, _ = split_data
    path = tmp_path / "splits" / "labeled.txt"
    write_split(str(path), ["vid002", "vid001"])
    assert path.read_text() == "vid001\nvid002\n"
    assert os.listdir(path.parent) == ["labeled.txt"]   # no temporary file left behind
    path.write_text("# labeled videos\nvid002\n\nvid001  # a comment\n")
    assert read_split(str(path), videos) == ["vid002", "vid001"]
    path.write_text("vid001\nnope\n")
    with pytest.raises(DataError) as info:
        read_split(str(path), videos)
    assert str(info.value).startswith(f"{path}: video nope: line 2: ")


# ---------------------------------------------------------------- crops and batches

def reference_crop(segments, start, size, thresh):
    """Slow, obvious trunc rule: keep an action with >= thresh of its length in [start, start+size]."""
    kept = []
    for s, e in segments:
        inside = max(0.0, min(e, start + size) - max(s, start))
        if inside > 0 and inside >= thresh * (e - s):
            kept.append([max(s, start) - start, min(e, start + size) - start])
    return np.array(kept, dtype=np.float32).reshape(-1, 2)


@pytest.fixture
def long_video(tmp_path):
    """One 300-step video at 30 fps, stride 4 (7.5 steps a second) with 12 actions of 1-6 s."""
    rng = np.random.default_rng(1)
    starts = np.sort(rng.uniform(0, 34, size=12))
    anns = [{"label": CLASSES[k % 3], "segment": [float(s), float(s + rng.uniform(1, 6))]}
            for k, s in enumerate(starts)]
    database = {"long": {"subset": "train", "duration": 40.0, "fps": 30.0, "annotations": anns},
                "short": {"subset": "train", "duration": 4.0, "fps": 30.0,
                          "annotations": [{"label": "Run", "segment": [1.0, 2.0]}]}}
    dcfg = write_dataset(tmp_path, database, lengths={"long": 300, "short": 30}, max_seq_len=64)
    videos, _ = load_annotations(dcfg["annotation_file"], classes=CLASSES)
    return dcfg, videos


def test_training_crops_follow_the_trunc_rule(long_video):
    dcfg, videos = long_video
    dataset = VideoDataset(dcfg, videos, ["long", "short"], training=True, seed=5)
    full = np.load(os.path.join(dcfg["feature_dir"], "long.npy"))
    grid = time_to_grid(videos["long"].segments, 30.0, 4, 16)
    offsets = set()
    for epoch in range(20):
        dataset.set_epoch(epoch)
        item = dataset[0]
        start = item["offset"]
        offsets.add(start)
        assert item["feats"].shape == (DIM, 64) and item["feats"].dtype == torch.float32
        np.testing.assert_array_equal(item["feats"].numpy(), full[start:start + 64].T)
        expected = reference_crop(grid, start, 64, 0.5)
        np.testing.assert_allclose(item["segments"].numpy(), expected, atol=1e-4)
        assert len(item["segments"]) >= 1 and len(item["labels"]) == len(item["segments"])
        assert (item["segments"] >= 0).all() and (item["segments"] <= 64).all()
    assert len(offsets) > 5                             # the window moves between epochs
    short = dataset[1]                                  # shorter than max_seq_len: untouched
    assert short["offset"] == 0 and short["feats"].shape == (DIM, 30)


def test_crop_depends_only_on_seed_epoch_index(long_video):
    dcfg, videos = long_video

    def offsets(seed, epoch, workers):
        dataset = VideoDataset(dcfg, videos, ["long", "short", "long"], training=True, seed=seed)
        dataset.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=workers,
                                             collate_fn=collate)
        return [batch["offset"][0] for batch in loader]

    first = offsets(seed=2, epoch=4, workers=0)
    assert offsets(seed=2, epoch=4, workers=2) == first
    assert first[0] != first[2] or offsets(2, 5, 0) != first     # index and epoch both matter


def test_eval_returns_whole_video(long_video):
    dcfg, videos = long_video
    item = VideoDataset(dcfg, videos, ["long"], training=False)[0]
    assert item["feats"].shape == (DIM, 300) and item["offset"] == 0
    np.testing.assert_allclose(item["segments"].numpy(),
                               time_to_grid(videos["long"].segments, 30.0, 4, 16), rtol=1e-6)
    assert (item["fps"], item["duration"], item["feat_stride"], item["num_frames"]) == (30.0, 40.0, 4, 16)


def test_collate_pads_and_masks():
    batch = [{"video_id": "a", "feats": torch.ones(3, 5), "segments": torch.zeros(1, 2),
              "labels": torch.zeros(1, dtype=torch.int64), "fps": 30.0},
             {"video_id": "b", "feats": 2 * torch.ones(3, 7), "segments": torch.zeros(0, 2),
              "labels": torch.zeros(0, dtype=torch.int64), "fps": 25.0}]
    out = collate(batch, pad_multiple=4)                # longest 7 -> padded to 8
    assert out["feats"].shape == (2, 3, 8) and out["mask"].dtype == torch.bool
    assert out["mask"].sum(1).tolist() == [5, 7]
    assert (out["feats"][0, :, :5] == 1).all() and (out["feats"][0, :, 5:] == 0).all()
    assert (out["feats"][1, :, :7] == 2).all() and (out["feats"][1, :, 7:] == 0).all()
    assert out["video_id"] == ["a", "b"] and out["fps"] == [30.0, 25.0]
    assert [s.shape for s in out["segments"]] == [(1, 2), (0, 2)]
    assert collate(batch)["feats"].shape == (2, 3, 7)


def test_rejected_regions_outside_the_crop_are_dropped_not_clipped_to_its_edge(long_video):
    # A pseudo-labeled video's rejected regions (semi.background rejected): one wholly before every crop,
    # one wholly after, one across the whole video. A crop keeps the parts inside it, in its own grid
    # units; a region outside it is no region of the crop (clipped, it became [0, 0] or [64, 64], and
    # point 0 of every pyramid level, at grid position 0, left the classification loss).
    import dataclasses
    dcfg, videos = long_video
    video = dataclasses.replace(videos["long"], uncertain=np.array([[0.0, 0.5], [39.5, 40.0], [0.0, 40.0]]))
    grid = time_to_grid(video.uncertain, 30.0, 4, 16)            # [-2, 1.75], [294.25, 298], [-2, 298]
    dataset = VideoDataset(dcfg, {"long": video}, ["long"], training=True, seed=5)
    for epoch in range(10):
        dataset.set_epoch(epoch)
        item = dataset[0]
        start = item["offset"]
        if not 2 <= start <= 294.25 - 64:                        # both short regions wholly outside
            continue
        np.testing.assert_allclose(item["uncertain"].numpy(), [[0.0, 64.0]])   # the long one, clipped
        return
    raise AssertionError("no crop between the two short regions: pick another seed")
