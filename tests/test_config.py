"""Strict config merge, overrides and atomic checkpoints."""
import os

import pytest
import torch

from common.checkpoint import CheckpointError, load_checkpoint, load_pretrained, save_checkpoint
from common.config import SYNTHETIC_SIZES, ConfigError, load_config, parse_override, save_config


def test_defaults_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 5.0e-4\n  epochs: 3\nmodel:\n  alqa: tiou\n")
    cfg = load_config(str(path), ["train.epochs=7", "dataset.classes=[a, b]", "train.lr=1e-3"])
    assert cfg["train"]["lr"] == 1e-3 and cfg["train"]["epochs"] == 7
    assert cfg["model"]["alqa"] == "tiou" and cfg["dataset"]["classes"] == ["a", "b"]
    assert cfg["train"]["batch_size"] == 2  # untouched default


@pytest.mark.parametrize("override,message", [
    ("train.lrr=1", "unknown config key: train.lrr"),
    ("train.epochs=abc", "train.epochs: expected int"),
    ("model=3", "model: expected a mapping"),
    ("test.voting=1", "test.voting: expected true/false"),
    ("novalue", "expects key=value"),
])
def test_bad_overrides_are_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {lr: [\n")
    with pytest.raises(ConfigError, match="bad.yaml: broken YAML"):
        load_config(str(path))
    path.write_text("trian:\n  lr: 1\n")
    with pytest.raises(ConfigError, match="bad.yaml: unknown config key: trian"):
        load_config(str(path))


@pytest.mark.parametrize("override, message", [
    ("model.window=7", "config key model.window: renamed model.attn_window"),
    ("pseudo.mpp_tiou=0.9", "config key pseudo.mpp_tiou: replaced by pseudo.mpp (by: tiou, threshold: the old mpp_tiou"),
    ("pseudo.sigma_icd=0.7", "config key pseudo.sigma_icd: replaced by pseudo.mpp (by: icd, threshold: the old sigma_icd)"),
    ("pseudo.scope=video", "config key pseudo.scope: removed; tau_pos is set per video (Eq. 6)"),
    ("semi.background_thresh=0.1", "config key semi.background_thresh: removed with semi.background confident"),
    ("test.class_agnostic=true", "config key test.class_agnostic: removed; NMS spans the classes exactly when"),
])
def test_removed_and_renamed_keys_are_named_in_one_line(tmp_path, override, message):
    # the same line from --set, from a file (after the file's name) and from every retired key
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert str(info.value) == message or str(info.value).startswith(message)
    assert len(str(info.value).splitlines()) == 1
    key, value = override.split("=")
    section, name = key.split(".")
    path = tmp_path / "old.yaml"
    path.write_text(f"{section}:\n  {name}: {value}\n")
    with pytest.raises(ConfigError, match=f"old.yaml: {message.replace('(', '.').replace(')', '.')}"):
        load_config(str(path))


def test_every_retired_key_is_gone_from_the_defaults():
    from common.config import DEFAULTS, REMOVED, RENAMED
    for key in list(REMOVED) + list(RENAMED):
        section, name = key.split(".")
        assert name not in DEFAULTS[section], key
        with pytest.raises(ConfigError, match=f"config key {key}: (removed|replaced|renamed)"):
            load_config(None, [f"{key}=1"])
    assert all(RENAMED[k].split(".")[1] in DEFAULTS[RENAMED[k].split(".")[0]] for k in RENAMED)


def test_a_stored_config_reads_old_names_and_drops_what_remains():
    # a checkpoint's config from before the renames: its attention window under the new name, the ICD
    # on input features (what remains) dropped; a removed setting that no longer exists stays an error
    from common.config import from_dict
    assert from_dict({"model": {"window": 7, "icd_features": "input"}})["model"]["attn_window"] == 7
    with pytest.raises(ConfigError, match="model.icd_features: removed"):
        from_dict({"model": {"icd_features": "fpn"}})


def test_voting_needs_a_class_agnostic_detector():
    with pytest.raises(ConfigError, match="test.voting: score voting needs a class-agnostic detector"):
        load_config(None, ["test.voting=true"])


def test_mpp_rule_is_one_key():
    cfg = load_config(None, ["pseudo.mpp.by=icd", "pseudo.mpp.threshold=0.7"])
    assert cfg["pseudo"]["mpp"] == {"by": "icd", "threshold": 0.7}
    assert load_config(None, ["recipe=paper"])["pseudo"]["mpp"] == {"by": "icd", "threshold": 0.7}
    assert load_config(None)["pseudo"]["mpp"] == {"by": "tiou", "threshold": 0.9}
    with pytest.raises(ConfigError, match="pseudo.mpp.by: expected one of icd, tiou, got 'S_i'"):
        load_config(None, ["pseudo.mpp.by=S_i"])


def test_video_prior_is_a_finite_weight():
    assert load_config(None)["pseudo"]["video_prior"] == 4.0 and load_config(None, ["recipe=paper"])["pseudo"]["video_prior"] == 0.0
    assert load_config(None, ["pseudo.video_prior=2"])["pseudo"]["video_prior"] == 2.0
    assert load_config(None, ["recipe=paper", "pseudo.video_prior=4"])["pseudo"]["video_prior"] == 4.0  # read by prototype only
    for bad in ("-1", ".inf", ".nan"):
        with pytest.raises(ConfigError, match="config key pseudo.video_prior: expected a finite number >= 0, got"):
            load_config(None, [f"pseudo.video_prior={bad}"])


def test_prototype_parts_is_a_positive_integer():
    assert load_config(None)["pseudo"]["prototype_parts"] == 3
    assert load_config(None, ["pseudo.prototype_parts=1"])["pseudo"]["prototype_parts"] == 1
    for bad in ("0", "-1"):
        with pytest.raises(ConfigError, match="config key pseudo.prototype_parts: expected a positive integer, got"):
            load_config(None, [f"pseudo.prototype_parts={bad}"])
    with pytest.raises(ConfigError, match="config key pseudo.prototype_parts: expected int, got 1.5"):
        load_config(None, ["pseudo.prototype_parts=1.5"])


def test_int_may_stand_for_float_and_scientific_strings_are_numbers():
    assert parse_override("train.lr=5e-4") == {"train": {"lr": 5e-4}}
    assert load_config(None, ["train.lr=1"])["train"]["lr"] == 1.0


def test_resolved_config_round_trip(tmp_path):
    cfg = load_config(None, ["seed=3"])
    save_config(cfg, str(tmp_path / "config.yaml"))
    assert load_config(str(tmp_path / "config.yaml")) == cfg


def test_checkpoint_atomic_round_trip(tmp_path):
    path = str(tmp_path / "ck" / "last.pt")
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 2, "config": {"a": [1, None]}}
    save_checkpoint(path, state)
    got = load_checkpoint(path)
    assert torch.equal(got["model"]["w"], state["model"]["w"]) and got["config"] == state["config"]
    assert os.listdir(tmp_path / "ck") == ["last.pt"]  # no temporary file left behind


def test_unreadable_checkpoint_is_one_line_error(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="x.pt: not a readable checkpoint"):
        load_checkpoint(str(bad))
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(str(tmp_path / "missing.pt"))


def test_partial_load_checks_missing_and_unexpected_keys():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    backbone = {k: v for k, v in model.state_dict().items() if k.startswith("0.")}
    assert load_pretrained(model, backbone, "p.pt", fresh_prefixes=("1.",)) == ["1.bias", "1.weight"]
    with pytest.raises(CheckpointError, match="missing weights outside the fresh parts: 1.bias"):
        load_pretrained(model, backbone, "p.pt", fresh_prefixes=())
    with pytest.raises(CheckpointError, match="keys the detector does not have: 2.weight"):
        load_pretrained(model, {**backbone, "2.weight": torch.zeros(1)}, "p.pt", ("1.",))
    with pytest.raises(CheckpointError, match="shape"):
        load_pretrained(model, {"0.weight": torch.zeros(3, 3)}, "p.pt", ("0.bias", "1."))


def test_the_papers_recipe_from_any_config(tmp_path):
    from common.config import RECIPES
    paper = RECIPES["paper"]
    for path in ("configs/default.yaml", "configs/anet_synthetic_bmn.yaml", "configs/thumos_i3d.yaml"):
        cfg = load_config(path, ["recipe=paper"])
        assert all(cfg[s][k] == v for s, rules in paper.items() for k, v in rules.items()), path
    # the paper's figures (Eq. 6 and 12, Sec. 3.1-3.2), read off its text
    cfg = load_config("configs/default.yaml", ["recipe=paper"])
    assert (cfg["pseudo"]["tau_neg"], cfg["pseudo"]["pos_std"], cfg["semi"]["beta"]) == (0.15, 1.0, 2.0)
    assert (cfg["semi"]["background"], cfg["semi"]["class_target"], cfg["pseudo"]["relabel"], cfg["pseudo"]["icd"],
            cfg["pseudo"]["mpp"], cfg["pseudo"]["carry_over"]) == ("all", "hard", "none", "both", {"by": "icd", "threshold": 0.7},
                                                                  "none")
    # the BMN config's own thresholds give way to the paper's; every --set lies over the recipe, wherever it is
    assert load_config("configs/anet_synthetic_bmn.yaml")["pseudo"]["tau_neg"] == 0.05
    for sets in (["semi.beta=1", "recipe=paper"], ["recipe=paper", "semi.beta=1"]):
        assert load_config("configs/default.yaml", sets)["semi"]["beta"] == 1.0
    # the project's recipe is the defaults, as the config adapts them; a paper config switches back in one step
    assert load_config("configs/default.yaml")["semi"] == load_config("configs/default.yaml", ["recipe=project"])["semi"]
    back = load_config("configs/thumos_i3d.yaml", ["recipe=project"])
    assert (back["semi"]["beta"], back["pseudo"]["relabel"], back["recipe"]) == (1.0, "prototype", "project")
    # a resolved config written beside an output loads back as it was
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(str(tmp_path / "resolved.yaml")) == cfg


def test_a_file_that_names_a_recipe_cannot_contradict_it(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("recipe: paper\nsemi:\n  beta: 1.0\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: config key semi.beta: recipe paper sets it to 2.0, the file to 1.0"):
        load_config(str(path))
    path.write_text("recipe: paper\nsemi:\n  beta: 2.0\n")  # the recipe's own value may be spelled out
    assert load_config(str(path))["semi"]["beta"] == 2.0
    with pytest.raises(ConfigError, match="config key recipe: expected one of project, paper, got 'papr'"):
        load_config(None, ["recipe=papr"])


def test_synthetic_sizes_are_the_generators():
    # config.py writes the names out, as common/ does not import the generators beside it
    # (tests/test_layout.py)
    from synthetic import make
    from synthetic.thumos_like import HELD_OUT, PRESETS, SIZES
    assert SYNTHETIC_SIZES == make.SYNTHETIC_SIZES == (*SIZES, "anet", "anet_hard")
    assert set(PRESETS) | set(HELD_OUT) <= set(SYNTHETIC_SIZES)
