"""Run the tests from the project root so the stage scripts and configs/ resolve, with plain `pytest` too."""
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)


def stage_args(overrides):
    """The command line of a stage on the CPU with the default config and `--set` overrides."""
    out = ["--config", "configs/default.yaml", "--device", "cpu", "--no-progress"]
    for o in overrides:
        out += ["--set", o]
    return out


def exit_line(main, argv, capsys):
    """Run a stage as its command line does: exit code 2 and exactly one line on stderr, returned."""
    from common.stage import run_main
    with pytest.raises(SystemExit) as info:
        run_main(main, argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def embedded(sets, config="configs/default.yaml"):
    """Make the embedded dataset that `config` with the overrides `sets` names, as `python -m synthetic`
    does before the stages read it (they never generate it) -> sets."""
    from common.config import load_config
    from synthetic.make import make_data
    make_data(load_config(config, sets))
    return sets


REDUCED_ANET = dict(num_train=40, num_val=16, num_classes=8)  # two class groups; a second to write


def reduced_anet(root):
    """Generate a reduced ActivityNet-like dataset at `root` -> the --set overrides that point a config
    at it and at its smallest labeled split (20%: at 10% its 40 training videos cannot hold every
    one of its 8 classes)."""
    from synthetic.anet_like import ensure_anet_dataset
    ensure_anet_dataset(root, seed=0, params=REDUCED_ANET)
    pct = json.load(open(os.path.join(root, "meta.json")))["stats"]["splits_pct"][0]
    return ["dataset.synthetic_size=null", f"dataset.annotation_file={root}/annotations.json",
            f"dataset.feature_dir={root}/features", f"dataset.video_scores={root}/video_scores.json",
            f"dataset.labeled_split={root}/splits/labeled_{pct}pct.txt",
            f"dataset.unlabeled_split={root}/splits/unlabeled_{pct}pct.txt"]
