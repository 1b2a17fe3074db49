"""Tests of synthetic/thumos_like.py: the file format, the feature grid, determinism, the THUMOS14-like
statistics of the default size, and that the features carry class signal with confusable groups."""
import json
import os
import time

import numpy as np
import pytest

from synthetic.thumos_like import (VERSION, dataset_stats, ensure_dataset, generate_dataset, main, make_params,
                              num_features)


def _generate_timed(root, size, seed=0, params=None):
    t0 = time.time()
    generate_dataset(root, size, seed, params)
    print(f"\n{size}: generated in {time.time() - t0:.2f} s")
    return root


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return _generate_timed(tmp_path_factory.mktemp("synthetic") / "tiny", "tiny")


@pytest.fixture(scope="session")
def small(tmp_path_factory):
    return _generate_timed(tmp_path_factory.mktemp("synthetic") / "small", "small")


def _load(root):
    with open(os.path.join(root, "annotations.json")) as f:
        ann = json.load(f)
    with open(os.path.join(root, "meta.json")) as f:
        return ann, json.load(f)


def _features(root, video_id):
    return np.load(os.path.join(root, "features", video_id + ".npy"))


def test_format(tiny):
    ann, meta = _load(tiny)
    p = meta["params"]
    assert set(ann) == {"version", "database"} and ann["version"] == VERSION
    db = ann["database"]
    assert list(db) == sorted(db)
    assert [v for v in db if db[v]["subset"] == "train"] == [f"video_train_{i:07d}" for i in range(1, 17)]
    assert [v for v in db if db[v]["subset"] == "test"] == [f"video_test_{i:07d}" for i in range(1, 9)]
    names = meta["class_names"]
    assert len(names) == 5 and names == sorted(names)
    assert sorted(n for g in meta["class_groups"] for n in g) == names
    for video_id, video in db.items():
        assert set(video) == {"subset", "duration", "fps", "annotations"}
        duration, fps = video["duration"], video["fps"]
        assert isinstance(duration, float) and round(duration, 2) == duration
        assert fps in (30.0, 29.97, 25.0, 24.0)
        previous_end = 0.0
        for a in video["annotations"]:
            assert set(a) == {"label", "segment", "segment(frames)", "label_id"}
            s, e = a["segment"]
            assert previous_end <= s < e and s < duration  # sorted, no overlap
            previous_end = e
            assert a["label_id"] == names.index(a["label"])  # label_id = alphabetical rank
            assert a["segment(frames)"] == [round(s * fps, 2), round(e * fps, 2)]
        feats = _features(tiny, video_id)
        T = num_features(duration, fps, p["feat_stride"], p["num_frames"])
        assert feats.dtype == np.float32 and feats.shape == (T, p["feat_dim"])
        # T full windows: the last one fits in the video's frames, one more would not
        n_frames = int(np.floor(duration * fps + 1e-6))
        stride, nf = p["feat_stride"], p["num_frames"]
        assert (T - 1) * stride + nf <= n_frames < T * stride + nf
        assert 40 <= T <= 300  # tiny: 15 to 60 s, a few hundred grid steps at most


def test_num_features_by_hand():
    # 10.1 s at 30 fps = 303 frames (10.1 * 30 is 302.99999999999994 in floats);
    # windows of 16 frames every 8 start at 0, 8, ..., 280 -> 36 windows
    assert num_features(10.1, 30.0) == 36
    assert num_features(0.64, 25.0) == 1  # exactly 16 frames
    assert num_features(0.63, 25.0) == 0  # 15.75 frames


def _inside_frames(video, n_frames):
    """Frames whose centre lies in some annotated [start, end): the generator's definition."""
    centres = (np.arange(n_frames) + 0.5) / video["fps"]
    inside = np.zeros(n_frames, bool)
    for a in video["annotations"]:
        inside |= (centres >= a["segment"][0]) & (centres < a["segment"][1])
    return inside


def test_grid_alignment(tmp_path):
    """With noise, drift, offsets and distractors off, a feature equals the background exactly when its
    window of frames [i*stride, i*stride + num_frames) misses every action."""
    clean = dict(noise_std=0.0, drift_std=0.0, instance_offset_std=0.0, distractor_rate=0.0,
                 overflow_prob=0.5)  # half the videos end inside an action, to exercise clipping
    generate_dataset(tmp_path / "clean", "tiny", seed=1, params=clean)
    ann, meta = _load(tmp_path / "clean")
    stride, nf = meta["params"]["feat_stride"], meta["params"]["num_frames"]
    checked = 0
    for video_id, video in ann["database"].items():
        feats = _features(tmp_path / "clean", video_id).astype(np.float64)
        n_frames = int(np.floor(video["duration"] * video["fps"] + 1e-6))
        inside = _inside_frames(video, n_frames)
        touched = np.array([inside[i * stride:i * stride + nf].any() for i in range(len(feats))])
        assert touched.any()
        # the documented mapping: a time t sits at grid position t*fps/stride - 0.5*nf/stride, so a
        # position whose centre falls inside a segment has a window touching that segment
        for a in video["annotations"]:
            s, e = (np.array(a["segment"]) * video["fps"] - 0.5 * nf) / stride
            assert touched[max(int(np.ceil(s)), 0):min(int(np.ceil(e)), len(feats))].all()
        if touched.all():
            continue
        background = feats[np.argmin(touched)]
        distance = np.abs(feats - background).max(axis=1)
        assert np.all(distance[~touched] < 1e-6)
        assert np.all(distance[touched] > 1e-3)
        checked += 1
    assert checked >= 20


def test_determinism(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_dataset(tmp_path / name, "tiny", seed=seed)
    files = sorted(os.path.relpath(os.path.join(d, f), tmp_path / "a")
                   for d, _, fs in os.walk(tmp_path / "a") for f in fs)
    assert len(files) == 2 + 24

    def read(name, f):
        with open(tmp_path / name / f, "rb") as fh:
            return fh.read()
    for f in files:
        assert read("a", f) == read("b", f), f
    assert read("a", "annotations.json") != read("c", "annotations.json")
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "c"]  # no temporary directory left behind


def test_generate_replaces_and_ensure_caches(tmp_path, capsys):
    root = tmp_path / "data"
    generate_dataset(root, "tiny", seed=5)
    generate_dataset(root, "tiny", seed=0)  # replaces the seed-5 dataset
    assert _load(root)[1]["seed"] == 0 and sorted(os.listdir(tmp_path)) == ["data"]
    capsys.readouterr()
    before = os.stat(root / "annotations.json").st_mtime_ns
    assert ensure_dataset(root, "tiny", seed=0) == str(root)
    assert capsys.readouterr().out == "" and os.stat(root / "annotations.json").st_mtime_ns == before
    with pytest.raises(ValueError, match="size=tiny seed=0"):
        ensure_dataset(root, "small", seed=0)

    fresh = tmp_path / "fresh"
    os.mkdir(fresh)  # an existing empty directory is filled
    assert ensure_dataset(fresh, "tiny", seed=0) == str(fresh)
    assert len(capsys.readouterr().out.strip().splitlines()) == 1
    assert _load(fresh)[0] == _load(root)[0]


def test_make_params():
    assert make_params("tiny").num_classes == 5
    assert make_params("full").num_test == 212
    assert make_params("small", {"noise_std": 0.0}).noise_std == 0.0
    with pytest.raises(TypeError, match="unknown"):
        make_params("small", {"nosie_std": 0.0})
    with pytest.raises(TypeError, match="must be int"):
        make_params("small", {"num_train": 1.5})
    with pytest.raises(ValueError):
        make_params("huge")


def test_dataset_stats_by_hand(tmp_path):
    seg = lambda label, s, e: {"label": label, "segment": [s, e], "segment(frames)": [s * 30, e * 30],  # noqa
                               "label_id": 0 if label == "A" else 1}
    database = {
        # overlapping [1, 3] and [2, 4]: union 3 s of 10 s -> coverage 0.3
        "v1": {"subset": "train", "duration": 10.0, "fps": 30.0,
               "annotations": [seg("A", 1.0, 3.0), seg("A", 2.0, 4.0)]},
        # [18, 22] ends past 20 s: counts 2 s -> coverage (1 + 2) / 20 = 0.15
        "v2": {"subset": "test", "duration": 20.0, "fps": 30.0,
               "annotations": [seg("A", 0.0, 1.0), seg("B", 18.0, 22.0)]},
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"version": "x", "database": database}))
    stats = dataset_stats(path)
    # lengths 2, 2, 1, 4 -> sorted 1, 2, 2, 4: p5 at rank 0.15 = 1.15, p95 at rank 2.85 = 3.7
    assert stats["action_duration_median"] == 2.0
    assert stats["action_duration_p5"] == pytest.approx(1.15)
    assert stats["action_duration_p95"] == pytest.approx(3.7)
    assert stats["instances_median"] == 2.0 and stats["instances_mean"] == 2.0 and stats["instances_max"] == 2
    assert stats["coverage_mean"] == pytest.approx(0.225)
    assert stats["classes_per_video"] == {"1": 1, "2": 1}
    assert stats["segments_past_end"] == 1
    assert stats["subsets"] == {"test": {"videos": 1, "instances": 2}, "train": {"videos": 1, "instances": 2}}


def test_small_statistics_follow_thumos14(small):
    ann, meta = _load(small)
    stats = dataset_stats(small / "annotations.json")
    print("\nsmall stats:", json.dumps(stats))
    assert meta["stats"] == stats
    assert make_params("small", meta["params"]) == make_params("small")  # meta.json round trip
    assert stats["subsets"]["train"]["videos"] == 160 and stats["subsets"]["test"]["videos"] == 80
    # THUMOS14 validation: action duration median 2.9 s, p5 0.7 s, p95 9.7 s
    assert 2.4 <= stats["action_duration_median"] <= 3.4
    assert 0.5 <= stats["action_duration_p5"] <= 0.9
    assert 8.0 <= stats["action_duration_p95"] <= 11.5
    # instances per video median 8, mean 15; actions cover 29% of a video on average
    assert 7 <= stats["instances_median"] <= 9
    assert 12 <= stats["instances_mean"] <= 18
    assert 0.24 <= stats["coverage_mean"] <= 0.34
    # 1 or 2 classes per video, two in ~15%, and then mostly from one confusable group
    assert set(stats["classes_per_video"]) == {"1", "2"}
    assert 0.05 <= stats["classes_per_video"]["2"] / 240 <= 0.3
    group = {n: i for i, g in enumerate(meta["class_groups"]) for n in g}
    pairs = [{group[a["label"]] for a in v["annotations"]} for v in ann["database"].values()
             if len({a["label"] for a in v["annotations"]}) == 2]
    assert sum(len(p) == 1 for p in pairs) >= 0.5 * len(pairs)
    # a few segments end past the duration (readers must clip), and several frame rates occur
    n_segments = sum(s["instances"] for s in stats["subsets"].values())
    assert 1 <= stats["segments_past_end"] <= 0.01 * n_segments
    assert len({v["fps"] for v in ann["database"].values()}) >= 3


def _instance_features(root, db, stride, nf):
    """Mean-pooled features of the grid positions whose centre lies inside each instance."""
    pooled = {"train": ([], []), "test": ([], [])}
    for video_id, video in db.items():
        feats = _features(root, video_id)
        for a in video["annotations"]:
            s, e = (np.array(a["segment"]) * video["fps"] - 0.5 * nf) / stride
            lo, hi = max(int(np.ceil(s)), 0), min(int(np.ceil(e)), len(feats))
            if hi <= lo:  # shorter than a grid step: the nearest position
                lo = min(max(int(round((s + e) / 2)), 0), len(feats) - 1)
                hi = lo + 1
            pooled[video["subset"]][0].append(feats[lo:hi].mean(axis=0))
            pooled[video["subset"]][1].append(a["label_id"])
    return {k: (np.array(x), np.array(y)) for k, (x, y) in pooled.items()}


def test_features_carry_signal_with_confusable_groups(small):
    """Nearest class mean on mean-pooled instance features: far above chance, yet within a group of
    confusable classes clearly below 100%."""
    ann, meta = _load(small)
    p = meta["params"]
    data = _instance_features(small, ann["database"], p["feat_stride"], p["num_frames"])
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    names, groups = meta["class_names"], meta["class_groups"]
    group = np.array([next(i for i, g in enumerate(groups) if n in g) for n in names])
    means = np.stack([x_train[y_train == c].mean(axis=0) for c in range(len(names))])
    dist = ((x_test[:, None] - means[None]) ** 2).sum(-1)
    pred = dist.argmin(1)
    same_group = group[None, :] == group[y_test][:, None]
    pred_in_group = np.where(same_group, dist, np.inf).argmin(1)
    accuracy = np.mean(pred == y_test)
    group_accuracy = np.mean(group[pred] == group[y_test])
    within_group = np.mean(pred_in_group == y_test)  # every class has at least one group mate
    print(f"\nnearest class mean on {len(y_test)} test instances: accuracy {accuracy:.3f} "
          f"(chance {1 / len(names):.3f}), group accuracy {group_accuracy:.3f}, "
          f"within-group accuracy {within_group:.3f}")
    assert accuracy >= 0.4
    assert group_accuracy >= 0.9
    assert 0.5 <= within_group <= 0.95


def test_cli(tmp_path, capsys):
    main(["--out", str(tmp_path / "cli"), "--size", "tiny", "--seed", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    stats = json.loads("\n".join(out[:-1]))
    assert out[-1].startswith("generated") and stats["subsets"]["train"]["videos"] == 16
    assert stats == _load(tmp_path / "cli")[1]["stats"]


# ---------------------------------------------------------------- the difficulty presets

def _tiny_with(tmp_path, name, **overrides):
    return _generate_timed(tmp_path / name, "tiny", 0, make_params("tiny", overrides))


def test_presets_are_small_sized_and_their_knobs_off_by_default():
    from synthetic.thumos_like import PRESETS
    base = make_params("small")
    assert (base.scene_count, base.scene_weight, base.onset_ramp, base.boundary_jitter) == (0, 0.0, 0.0, 0.0)
    for name in PRESETS:
        p = make_params(name)
        assert (p.num_train, p.num_test, p.num_classes) == (base.num_train, base.num_test, base.num_classes)
        assert p != base


def test_boundary_jitter_moves_annotations_not_features(tmp_path, tiny):
    jittered = _tiny_with(tmp_path, "jitter", boundary_jitter=0.1)
    plain_db, jit_db = _load(tiny)[0]["database"], _load(jittered)[0]["database"]
    moved = []
    for vid, video in plain_db.items():
        assert np.array_equal(_features(tiny, vid), _features(jittered, vid))  # same features
        for a, b in zip(video["annotations"], jit_db[vid]["annotations"]):
            (s, e), (s2, e2) = a["segment"], b["segment"]
            assert a["label"] == b["label"] and e2 > s2 and s2 >= 0.0
            if e <= video["duration"]:
                assert e2 <= video["duration"]
            moved.append(max(abs(s2 - s), abs(e2 - e)) / (e - s))
    # each boundary moves by 0.1 x the length times a standard normal, bounded by the video
    assert 0.02 < float(np.median(moved)) < 0.3


def test_onset_ramp_softens_boundaries_and_scenes_share_backgrounds(tmp_path, tiny):
    ramped = _tiny_with(tmp_path, "ramp", onset_ramp=0.5)
    scenes = _tiny_with(tmp_path, "scenes", scene_count=1, scene_weight=1.0, context_strength=0.0,
                        drift_std=0.0, noise_std=0.0, distractor_rate=0.0)
    db = _load(tiny)[0]["database"]
    assert _load(ramped)[0] == _load(tiny)[0]  # the ramp changes features only
    vid = next(v for v in db if db[v]["annotations"])
    assert not np.array_equal(_features(tiny, vid), _features(ramped, vid))
    # one scene, weight 1, no context, drift, noise or distractor: frames outside every action are the
    # same vector in every video
    sdb = _load(scenes)[0]["database"]
    backgrounds = []
    for vid, video in sdb.items():
        f, fps = _features(scenes, vid), video["fps"]
        t = (np.arange(len(f)) * 8 + 8) / fps  # window centres (feat_stride 8, 16 frames)
        far = np.ones(len(f), dtype=bool)
        for a in video["annotations"]:
            far &= (t < a["segment"][0] - 1.0) | (t > a["segment"][1] + 1.0)
        if far.any():
            backgrounds.append(f[far][0])
    assert len(backgrounds) > 5 and np.allclose(backgrounds, backgrounds[0], atol=1e-4)


def test_relu_rms_by_hand():
    from synthetic.thumos_like import _relu_rms
    # bias 0: relu(a)^2 is a^2 on half the line, E = gain^2 / 2 -> rms = 2 / sqrt(2) at gain 2
    assert _relu_rms(2.0, 0.0) == pytest.approx(np.sqrt(2.0))
    # a very negative bias never fires; a very positive one is the identity: rms -> sqrt(gain^2 + bias^2)
    assert _relu_rms(1.0, -10.0) == pytest.approx(0.0, abs=1e-12)
    assert _relu_rms(1.0, 10.0) == pytest.approx(np.sqrt(101.0))


def test_unseen_knobs_off_leave_the_world_and_the_files_as_they_were(tmp_path, tiny):
    from synthetic.thumos_like import _make_world
    base = make_params("tiny")
    assert (base.class_modes, base.mode_spread, base.scene_class_lean, base.encoder_width) == (1, 0.0, 0.0, 0)
    world = _make_world(base, 0)
    assert world["phases"].shape == (5, 1, 3, base.latent_dim) and world["encoder"] is None
    # setting a knob to its off value writes the same files
    same = _tiny_with(tmp_path, "off", class_modes=1, scene_class_lean=0.0, encoder_width=0, shot_median=0.0,
                      event_rate=0.0, mirror_pairs=0.0)
    assert _load(same)[0] == _load(tiny)[0]
    vid = sorted(_load(tiny)[0]["database"])[0]
    assert np.array_equal(_features(same, vid), _features(tiny, vid))


def test_encoder_gives_non_negative_features_where_scene_and_action_interact(tmp_path, tiny):
    enc = _tiny_with(tmp_path, "enc", encoder_width=64)
    db = _load(enc)[0]["database"]
    assert _load(enc)[0] == _load(tiny)[0]  # the encoder changes the features only
    feats = [_features(enc, v) for v in db]
    assert all(f.dtype == np.float32 and f.shape == _features(tiny, v).shape for f, v in zip(feats, db))
    allf = np.concatenate(feats)
    assert allf.min() >= 0.0 and 0.05 < (allf == 0).mean() < 0.95  # post-ReLU: some units silent
    # the interaction, on the latents themselves: one action's feature change depends on its scene
    from synthetic.thumos_like import _encoded, _make_world
    p = make_params("tiny", dict(encoder_width=64, noise_std=0.0, num_frames=8, feat_stride=8))
    world = _make_world(p, 0)
    rng = np.random.default_rng(0)
    scene_a, scene_b = (np.linalg.qr(rng.standard_normal((p.latent_dim, 2)))[0].T)
    action = world["phases"][0, 0, 1]
    added = [_encoded(p, world, rng, np.stack([s + action, s]), 2) for s in (scene_a, scene_b)]
    diff_a, diff_b = (a[0] - a[1] for a in added)
    # a linear embedding would add the same vector in both scenes; the ReLU network does not
    assert np.linalg.norm(diff_a - diff_b) > 0.3 * np.linalg.norm(diff_a)


def test_class_modes_give_a_class_several_looks():
    from synthetic.thumos_like import _make_world
    p = make_params("tiny", dict(class_modes=3, mode_spread=1.0))
    phases = _make_world(p, 0)["phases"]
    assert phases.shape == (5, 3, 3, p.latent_dim)
    mid = phases[:, :, 1]                     # (C, modes, L) middle phases, unit vectors
    same_class = np.mean([mid[c, 0] @ mid[c, 1] for c in range(5)])
    # the looks of a class stay closer to each other than to another group's class
    assert 0.2 < same_class < 0.95


def test_mirror_pairs_reverse_a_mates_phases_within_its_group():
    from synthetic.thumos_like import _make_world
    base = _make_world(make_params("small"), 0)
    world = _make_world(make_params("small", dict(mirror_pairs=1.0, class_modes=2, mode_spread=0.5)), 0)
    plain = _make_world(make_params("small", dict(class_modes=2, mode_spread=0.5)), 0)
    names, ph, ph0 = world["names"], world["phases"], plain["phases"]
    assert names == base["names"]
    group = sorted(names.index(n) for n in ("BaseballPitch", "CricketBowling", "CricketShot"))
    a, b, odd = group  # a group of three: one pair in label order, the third class left as it was
    assert np.allclose(ph[b], ph0[a][:, ::-1]) and np.allclose(ph[a], ph0[a]) and np.allclose(ph[odd], ph0[odd])
    # a mean over the phases no longer tells the pair apart; their order still does
    assert np.allclose(ph[a].mean(axis=1), ph[b].mean(axis=1))
    assert np.linalg.norm(ph[a, :, 0] - ph[b, :, 0]) > 0.3
    # paired classes in every group of two or more: 8 of the 20 second mates
    moved = [c for c in range(len(names)) if not np.allclose(ph[c], ph0[c])]
    assert len(moved) == 8
    half = _make_world(make_params("small", dict(mirror_pairs=0.5, class_modes=2, mode_spread=0.5)), 0)["phases"]
    want = ph0[b] + ph0[a][:, ::-1]
    assert np.allclose(half[b], want / np.linalg.norm(want, axis=-1, keepdims=True))


def test_scene_class_lean_picks_the_groups_scene(tmp_path):
    from synthetic.thumos_like import frame_latents, _make_world
    p = make_params("tiny", dict(scene_count=4, scene_weight=1.0, scene_class_lean=1.0, context_strength=0.0,
                                 drift_std=0.0))
    world = _make_world(p, 0)
    for c in range(5):  # no action, no drift, no context: the frames are the video's scene
        x = frame_latents(p, world, np.random.default_rng(c), 10, 30.0, [], c)
        want = world["scenes"][world["group_of"][c] % 4]
        assert np.allclose(x[0], want, atol=1e-6)


def test_shots_cut_between_setups_and_are_drawn_last():
    from synthetic.thumos_like import frame_latents, shot_offsets, _make_world
    p = make_params("tiny", dict(shot_median=2.0, shot_setups=3, shot_strength=1.5))
    off = shot_offsets(p, np.random.default_rng(0), 30 * 600, 30.0)  # ten minutes at 30 fps
    assert off.dtype == np.float32 and np.allclose(np.linalg.norm(off, axis=1), 1.5, atol=1e-5)
    assert len(np.unique(off, axis=0)) == 3                    # every setup filmed, no other offset
    cuts = np.flatnonzero(np.any(off[1:] != off[:-1], axis=1)) + 1
    shots = np.diff(np.concatenate([[0], cuts, [len(off)]]))[:-1] / 30.0
    # log-normal around 2 s (1.83 s here); a cut that could stay on its setup would merge shots
    # (median about 2.7 s); 600 s / E[length] 2.75 s = 218 shots
    assert 1.6 < np.median(shots) < 2.4 and 180 < len(cuts) < 260
    # in a video: the frames of the same video without cuts, plus the offsets, drawn after the rest
    off_p = make_params("tiny", dict(shot_median=0.0))
    world = _make_world(p, 0)
    events = [(1.0, 3.0, 0, 1.0, 0)]
    plain = frame_latents(off_p, world, np.random.default_rng(7), 300, 30.0, events, 0)
    cut = frame_latents(p, world, np.random.default_rng(7), 300, 30.0, events, 0)
    rng = np.random.default_rng(7)
    frame_latents(off_p, world, rng, 300, 30.0, events, 0)  # the draws before the cuts'
    assert np.allclose(cut - plain, shot_offsets(p, rng, 300, 30.0), atol=1e-5)


def test_background_events_lie_clear_of_the_actions_and_are_drawn_after_the_cuts():
    from synthetic.thumos_like import background_events, frame_latents, paint, _make_world
    p = make_params("tiny", dict(event_rate=6.0, event_strength=1.0, event_looks=4))
    taken = [(10.0, 20.0, 0, 1.0, 0), (40.0, 41.0, 1, 1.0, 0)]
    got = [background_events(p, np.random.default_rng(k), 600.0, taken) for k in range(20)]
    counts = [len(g) for g in got]              # Poisson(6 a minute x 10 minutes), all of them placed
    assert 50 < np.mean(counts) < 70
    for s, e, look, scale in (ev for g in got for ev in g):
        assert 0 <= s < e <= 600.0 and 0 <= look < 4 and scale > 0
        assert e <= 9.5 or s >= 20.5 and (e <= 39.5 or s >= 41.5)      # 0.5 s clear of each action
    spans = sorted((s, e) for s, e, *_ in got[0])
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))          # and of each other
    world = _make_world(p, 0)
    looks = world["event_looks"]
    assert looks.shape == (4, 3, p.latent_dim) and np.allclose(np.linalg.norm(looks, axis=2), 1.0)
    # no class shares a look: an event's middle phase is no closer to a class than two classes are
    assert np.abs(looks[:, 1] @ world["phases"][:, 0, 1].T).max() < 0.8
    # in a video: the frames without events, plus the events painted with the draws after the rest
    off = make_params("tiny")
    events = [(1.0, 3.0, 0, 1.0, 0)]
    plain = frame_latents(off, _make_world(off, 0), np.random.default_rng(7), 3000, 30.0, events, 0)
    with_events = frame_latents(p, world, np.random.default_rng(7), 3000, 30.0, events, 0)
    rng = np.random.default_rng(7)
    frame_latents(off, _make_world(off, 0), rng, 3000, 30.0, events, 0)  # the draws before the events'
    want, centres = plain.copy(), (np.arange(3000) + 0.5) / 30.0
    drawn = background_events(p, rng, 100.0, events)
    assert drawn
    for s, e, look, scale in drawn:
        paint(p, rng, want, centres, s, e, looks[look], scale)
    assert np.allclose(with_events, want, atol=1e-5)
