"""The preset benchmark's bookkeeping: its steps, the paired change, the share of the gap, the check."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import bench_presets as bp  # noqa: E402


def _fake(out, preset, seed, sub, average):
    run = os.path.join(out, preset, f"seed{seed}", sub)
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "metrics.json"), "w") as f:
        json.dump({"thresholds": [0.3], "mAP": [average / 100], "average": average / 100}, f)


def _args(out, extra=()):
    return bp.parse_args(["--presets", "small", "hard", "--seeds", "0", "1", "--variants", "paper", "mine",
                          "--variant", "mine=semi.background=all", "--check", "mine", "--out", str(out),
                          "--device", "cpu"] + list(extra))


def test_steps_share_the_supervised_run_and_chain_the_rounds(tmp_path):
    steps = bp.cell_steps(_args(tmp_path), "hard", 1)
    scripts = [s[1] for s in steps]
    assert scripts[:3] == ["pretrain_acp.py", "train_supervised.py", "evaluate.py"]
    # two variants x three rounds x (pseudo labels, semi, evaluate), then the oracle's three steps
    assert scripts[3:] == ["pseudo_label.py", "train_semi.py", "evaluate.py"] * 6 + [
        "benchmarks/oracle_labels.py", "train_semi.py", "evaluate.py"]
    # the oracle trains one full round whatever the config's length; the variants the config's
    assert steps[-2][1] == "train_semi.py" and "semi.epochs=10" in steps[-2][2]
    assert not any(a.startswith("semi.epochs=") for s in steps[3:-3] for a in s[2])
    sup = os.path.join(str(tmp_path), "hard", "seed1", "supervised", "last.pt")
    round1 = os.path.join(str(tmp_path), "hard", "seed1", "mine", "round1")
    mine = [s for s in steps if "mine round" in s[0]]
    assert mine[0][2][mine[0][2].index("--checkpoint") + 1] == sup               # round 1 from supervised
    assert mine[3][2][mine[3][2].index("--checkpoint") + 1] == os.path.join(round1, "last.pt")  # round 2 from 1
    assert "semi.background=all" in mine[1][2] and "semi.background=all" not in steps[1][2]
    assert "dataset.annotation_file=data/synthetic_hard/annotations.json" in steps[1][2]


def test_round_init_supervised_starts_every_round_from_the_supervised_detector(tmp_path):
    args = bp.parse_args(["--presets", "hard", "--seeds", "0", "--variants", "fresh", "--variant",
                          "fresh=semi.class_target=soft,round_init=supervised", "--out", str(tmp_path), "--no-oracle"])
    steps = [s for s in bp.cell_steps(args, "hard", 0) if "fresh round" in s[0]]
    sup = os.path.join(str(tmp_path), "hard", "seed0", "supervised", "last.pt")
    round1 = os.path.join(str(tmp_path), "hard", "seed0", "fresh", "round1", "last.pt")
    value = lambda step, flag: step[2][step[2].index(flag) + 1]  # noqa: E731
    assert value(steps[3], "--checkpoint") == round1     # round 2's pseudo labels: round 1's detector
    assert value(steps[1], "--init") == sup and value(steps[4], "--init") == sup  # both rounds from supervised
    assert "semi.class_target=soft" in steps[4][2] and "round_init=supervised" not in steps[4][2]


def test_round_init_acp_starts_every_round_from_the_pretrained_weights(tmp_path):
    args = bp.parse_args(["--presets", "hard", "--seeds", "0", "--variants", "student", "--variant",
                          "student=round_init=acp", "--out", str(tmp_path), "--no-oracle"])
    steps = [s for s in bp.cell_steps(args, "hard", 0) if "student round" in s[0]]
    acp = os.path.join(str(tmp_path), "hard", "seed0", "acp", "last.pt")
    round1 = os.path.join(str(tmp_path), "hard", "seed0", "student", "round1", "last.pt")
    value = lambda step, flag: step[2][step[2].index(flag) + 1]  # noqa: E731
    assert value(steps[3], "--checkpoint") == round1
    assert value(steps[1], "--init") == acp and value(steps[4], "--init") == acp
    with pytest.raises(SystemExit, match="round_init"):
        bp.variant_overrides(["round_init=scratch"])


def test_report_pairs_seeds_and_the_check_fails_loudly(tmp_path):
    out = tmp_path
    for seed, sup, oracle, paper, mine in ((0, 20.0, 60.0, 19.0, 24.0), (1, 22.0, 58.0, 23.0, 25.0)):
        for preset in ("small", "hard"):
            _fake(out, preset, seed, "supervised", sup)
            _fake(out, preset, seed, "oracle", oracle)
            _fake(out, preset, seed, os.path.join("paper", "round1"), paper)
            _fake(out, preset, seed, os.path.join("mine", "round1"), mine)
    _fake(out, "hard", 0, os.path.join("mine", "round2"), 19.5)   # round 2 below, one seed only
    text, failures = bp.report(_args(out))
    # paper: changes -1 and +1 -> +0.00 ± 1.41; mine: +4 and +3 -> +3.50 ± 0.71; gap shares 4/40 and
    # 3/36: mean 9.2% -> "9%"
    assert "| hard | paper round 1 | 21.00 ± 2.83 | 2 | +0.00 ± 1.41 | 0% |" in text
    assert "| hard | mine round 1 | 24.50 ± 0.71 | 2 | +3.50 ± 0.71 | 9% |" in text
    assert "| hard | oracle round | 59.00 ± 1.41 | 2 | +38.00 ± 2.83 |  |" in text
    assert failures == ["hard: mine round 2 changed supervised by -0.50 points on average over seeds [0]"]
    with pytest.raises(SystemExit) as info:
        bp.main(["--presets", "small", "hard", "--seeds", "0", "1", "--variants", "mine", "--variant",
                 "mine=semi.background=all", "--check", "mine", "--out", str(out), "--report"])
    assert info.value.code == 1


def test_report_gives_the_probe_whole_and_in_the_rules_parts(tmp_path, monkeypatch):
    _fake(tmp_path, "relu", 0, "supervised", 30.0)
    monkeypatch.setattr(bp, "probe", lambda args, preset: {1: 49.04, 3: 56.56})
    text, _ = bp.report(_args(tmp_path, ["--presets", "relu", "--seeds", "0"]))
    assert "| relu | probe (nearest prototype, raw features) | 49.0% | | | |" in text
    assert "| relu | probe (nearest prototype, raw features in 3 parts) | 56.6% | | | |" in text


def test_unknown_variant_is_refused():
    with pytest.raises(SystemExit):
        bp.parse_args(["--variants", "nosuch"])


def _probe_config(tmp_path, feats, labeled, unlabeled, duration):
    """A config over features {video: (T, 2)} and annotations {video: [(start, end, class)]}: fps 1,
    stride 1, one frame a feature, so second t sits at grid t - 0.5 ([2, 5] pools steps 2-4)."""
    from common.config import load_config
    import numpy as np
    (tmp_path / "f").mkdir()
    for vid, x in feats.items():
        np.save(tmp_path / "f" / f"{vid}.npy", np.asarray(x, dtype=np.float32))
    entry = lambda acts: {"subset": "train", "duration": duration, "fps": 1.0,  # noqa: E731
                          "annotations": [{"segment": [s, e], "label": c} for s, e, c in acts]}
    db = {**{v: entry(a) for v, a in {**labeled, **unlabeled}.items()},
          "tst": {"subset": "test", "duration": duration, "fps": 1.0, "annotations": []}}
    json.dump({"database": db}, open(tmp_path / "a.json", "w"))
    (tmp_path / "l.txt").write_text("".join(f"{v}\n" for v in labeled))
    (tmp_path / "u.txt").write_text("".join(f"{v}\n" for v in unlabeled))
    return load_config("configs/default.yaml", [
        f"dataset.annotation_file={tmp_path / 'a.json'}", f"dataset.feature_dir={tmp_path / 'f'}",
        "dataset.synthetic_size=null", "dataset.feature_dim=2", "dataset.feat_stride=1", "dataset.num_frames=1",
        f"dataset.labeled_split={tmp_path / 'l.txt'}", f"dataset.unlabeled_split={tmp_path / 'u.txt'}"])


def test_probe_names_unlabeled_actions_by_the_nearest_prototype_by_hand(tmp_path):
    from harness import probe_accuracy
    import numpy as np
    feats = {"lab": np.zeros((12, 2)), "unl": np.zeros((12, 2))}
    feats["lab"][2:5] = [2.0, 0.0]     # class A: prototype [1, 0]
    feats["lab"][7:10] = [0.0, 3.0]    # class B: prototype [0, 1]
    feats["unl"][1:3] = [1.0, 0.2]     # labeled B, nearest A: wrong
    feats["unl"][5:7] = [0.1, 1.0]     # B: right
    feats["unl"][9:11] = [2.0, 1.0]    # A: right
    # the median of each dimension over the 12 steps is 0: centring is a no-op
    cfg = _probe_config(tmp_path, feats, {"lab": [(2, 5, "A"), (7, 10, "B")]},
                        {"unl": [(1, 3, "B"), (5, 7, "B"), (9, 11, "A")]}, 12.0)
    got = probe_accuracy(cfg)
    assert got["actions"] == 3 and got["labeled_actions"] == 2 and got["classes_with_prototype"] == 2
    assert got["accuracy"] == pytest.approx(2 / 3)
    # on another representation of the same steps (as --checkpoint's pyramid): the second dimension
    # gone, B's prototype is zero and every unlabeled action is nearest A: only the third is right
    assert probe_accuracy(cfg, lambda x: x * np.array([1.0, 0.0]))["accuracy"] == pytest.approx(1 / 3)


def test_probe_in_parts_tells_a_mirrored_pair_apart_by_hand(tmp_path):
    from harness import probe_accuracy
    import numpy as np
    # A = [1, 0] then [0, 1]; B, its mirror image, [0, 1] then [1, 0]: one mean, [0.5, 0.5]
    x = np.zeros((16, 2))
    x[2:4], x[4:6], x[9:11], x[11:13] = [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]
    acts = [(2, 6, "A"), (9, 13, "B")]  # [2, 6] pools steps 2-5; in halves 2-3 and 4-5
    cfg = _probe_config(tmp_path, {"lab": x, "unl": x}, {"lab": acts}, {"unl": acts}, 16.0)
    # whole: the two prototypes are one, every action is named A (the first of a tie): half right
    assert probe_accuracy(cfg)["accuracy"] == pytest.approx(1 / 2)
    # in halves, A [1, 0, 0, 1] and B [0, 1, 1, 0]: both right
    assert probe_accuracy(cfg, parts=2)["accuracy"] == pytest.approx(1.0)
    # probe_by_parts: whole, and in the rule's parts where the config pools more than one
    from harness import probe_by_parts
    cfg["pseudo"]["prototype_parts"] = 1
    assert list(probe_by_parts(cfg)) == [1]
    cfg["pseudo"]["prototype_parts"] = 2
    got = probe_by_parts(cfg)
    assert list(got) == [1, 2] and got[1]["accuracy"] == pytest.approx(1 / 2) and got[2]["accuracy"] == pytest.approx(1.0)


def test_pyramid_embedding_lays_the_levels_upsampled_side_by_side_on_the_grid():
    import numpy as np
    import torch
    import torch.nn.functional as F
    from common.config import load_config
    from common.model import build_model
    from probe_classes import pyramid_embedding
    cfg = load_config("configs/default.yaml", ["model.embd_dim=16", "model.head_dim=16", "dataset.feature_dim=4"])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=3).eval()
    feats = np.random.default_rng(0).normal(size=(45, 4))        # padded to the coarsest stride's multiple
    got = pyramid_embedding(model)(feats)
    t_pad = -(-45 // model.pad_multiple) * model.pad_multiple
    x = F.pad(torch.tensor(feats, dtype=torch.float32).T[None], (0, t_pad - 45))
    mask = torch.zeros(1, t_pad, dtype=torch.bool)
    mask[:, :45] = True
    with torch.no_grad():
        levels, _ = model.pyramid(x, mask)
    assert got.shape == (45, 16 * len(levels))
    np.testing.assert_allclose(got[:, :16], levels[0][0, :, :45].T.numpy(), rtol=1e-6)
    coarse = levels[1][0].numpy()                                 # stride 2: step 2k+1 halfway between k and k+1
    np.testing.assert_allclose(got[5, 16:32], (coarse[:, 2] + coarse[:, 3]) / 2, rtol=1e-5, atol=1e-7)
    assert model.strides[2] == 4
    np.testing.assert_allclose(got[7, 32:48], (levels[2][0, :, 1] + 3 * levels[2][0, :, 2]).numpy() / 4,
                               rtol=1e-5, atol=1e-7)


def test_plain_runs_at_ten_and_hundred_percent_and_held_out_presets_come_apart(tmp_path):
    args = bp.parse_args(["--presets", "unseen", "small", "--seeds", "0", "--variants", "default", "--rounds", "1",
                          "--no-oracle", "--plain", "--out", str(tmp_path)])
    steps = bp.cell_steps(args, "unseen", 0)
    full = [s for s in steps if "plain_full" in s[0]]
    assert [s[1] for s in full] == ["train_supervised.py", "evaluate.py"]
    assert "dataset.labeled_split=null" in full[0][2] and "model.alqa=none" in full[0][2]
    for seed_avg, sub in ((30.0, "supervised"), (60.0, "plain_full")):
        for preset in ("small", "unseen"):
            _fake(tmp_path, preset, 0, sub, seed_avg)
    text, failures = bp.report(args)
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert rows[0].startswith("| small |") and rows[-1].startswith("| unseen (held out) |")
    assert "| unseen (held out) | plain ActionFormer, 100% labeled | 60.00 | 1 |" in text and not failures
    labeled = bp.parse_args(["--presets", "unseen", "--seeds", "0", "--variants", "default", "--no-oracle",
                             "--plain", "labeled", "--out", str(tmp_path)])
    names = [s[0] for s in bp.cell_steps(labeled, "unseen", 0)]
    assert "unseen, seed 0, plain" in names and not any("plain_full" in n for n in names)


def test_paper_variant_is_the_papers_recipe():
    from common.config import RECIPES, load_config
    cfg = load_config("configs/default.yaml", bp.preset_sets("hard") + bp.VARIANTS["paper"])
    for section, values in RECIPES["paper"].items():
        assert {k: cfg[section][k] for k in values} == values
    assert cfg["pseudo"]["relabel"] == "none" and cfg["semi"]["beta"] == 2.0


def test_activitynet_like_presets_run_with_their_config_and_plain_only_calibrates(tmp_path):
    args = bp.parse_args(["--presets", "anet_hard", "--seeds", "0", "--plain", "--plain-only", "--out", str(tmp_path)])
    steps = bp.cell_steps(args, "anet_hard", 0)
    assert [s[0] for s in steps] == ["anet_hard, seed 0, plain"] * 2 + ["anet_hard, seed 0, plain_full"] * 2
    first = steps[0][2]
    assert first[first.index("--config") + 1] == "configs/anet_synthetic.yaml"
    assert "dataset.video_scores=data/synthetic_anet_hard/video_scores.json" in first
    thumos = bp.args_of(args, "relu", 0)
    assert thumos[thumos.index("--config") + 1] == "configs/default.yaml"
    assert not any("video_scores" in a for a in thumos)


def test_default_presets_are_the_thumos_like_ones_and_plain_only_implies_plain(tmp_path):
    args = bp.parse_args(["--out", str(tmp_path)])
    assert "anet_hard" not in args.presets and "relu" in args.presets  # anet presets only when named
    calib = bp.parse_args(["--presets", "anet", "--seeds", "0", "--plain-only", "--out", str(tmp_path)])
    assert [s[0].rsplit(", ", 1)[1] for s in bp.cell_steps(calib, "anet", 0)] == ["plain", "plain", "plain_full",
                                                                                "plain_full"]


def test_probe_on_a_checkpoint_that_is_not_one_is_a_one_line_error(tmp_path, capsys):
    from conftest import exit_line
    import probe_classes
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    # before it makes or reads any data (the dataset named here does not exist)
    err = exit_line(probe_classes.main, ["--config", "configs/default.yaml", "--set",
                                         f"dataset.annotation_file={tmp_path}/none.json", "--checkpoint", str(bad)],
                    capsys)
    assert str(bad) in err and "not a readable checkpoint" in err and not (tmp_path / "none.json").exists()
