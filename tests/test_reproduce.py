"""The reproduction script's bookkeeping: which runs the tables share, and how seeds are summarised."""
import json
import math
import os

import pytest

from benchmarks import reproduce as rp
from common.data import DataError


def test_shared_runs_are_counted_once():
    cells = rp.cells([1, 2, 3, 4, 5])
    assert len(cells) == len({json.dumps(c, sort_keys=True) for c in cells})
    # APL is Table 1's row, Table 2's +ACP and Table 5's last row: one cell per ratio.
    assert sum(1 for r, m in cells if m == rp.APL) == 4  # 10, 20, 40, 60
    # Table 1: ActF* and APL at 4 ratios, ActF* at 100% (9); Table 2 adds baseline, +ALQA, +ICD at
    # 10% and 40% (6; +ACP is APL); Table 3 tIoU and DIoU (4; tIoU+tND is +ALQA); Table 4 EAP and
    # MPP (4); Table 5 coarse and fine (4; none is +ICD, both is APL).
    assert len(cells) == 9 + 6 + 4 + 4 + 4
    acp, sup, semi = rp.run_dirs("OUT", 3, 10, rp.APL)
    assert acp == os.path.join("OUT", "seed3", "acp-both")
    assert semi.startswith(sup) and "icd-both" in semi


def test_mean_and_sample_std_by_hand():
    assert rp.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)        # std sqrt((1 + 0 + 1) / 2) = 1
    mean, std = rp.mean_std([5.0])
    assert mean == 5.0 and math.isnan(std)
    assert rp.fmt([1.0, 2.0, 3.0]) == "2.00 ± 1.00" and rp.fmt([5.0]) == "5.00"


def _fake_run(out, seed, ratio, m, average, quality=None):
    _, sup, semi = rp.run_dirs(out, seed, ratio, m)
    run = semi or sup
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "metrics.json"), "w") as f:
        json.dump({"thresholds": [0.3, 0.5], "mAP": [average + 0.1, average - 0.1], "average": average}, f)
    if quality:
        with open(os.path.join(run, "pseudo_label.log"), "w") as f:
            f.write("wrote x\n| selection | #PL | Class Acc | Avg tIoU | Pos Acc | P@0.5 | R@0.5 |\n"
                    "|---|---|---|---|---|---|---|\n" + quality)


def test_tables_give_mean_and_std_over_the_seeds_found(tmp_path):
    out = str(tmp_path)
    _fake_run(out, 0, 10, rp.BASELINE, 0.10)
    _fake_run(out, 1, 10, rp.BASELINE, 0.14)
    _fake_run(out, 0, 10, rp.ALQA_ICD, 0.20, "| adaptive | 252 | 51.2 | 46.9 | 37.7 | 37.7 | 4.7 |\n")
    _fake_run(out, 1, 10, rp.ALQA_ICD, 0.20, "| adaptive | 250 | 53.2 | 46.9 | 37.7 | 37.7 | 4.7 |\n")
    args = rp.parse_args(["--out", out, "--tables", "2", "--seeds", "0", "1", "2"])
    text = rp.write_tables(args, 60.0)
    # baseline: 10 and 14 -> 12.00 +- 2.83 (sqrt(8)); the paper's 17.0 beside it; seeds found: 2
    assert "| 10% | baseline (class score >= 0.3) | 22.00 ± 2.83 | 2.00 ± 2.83 | **12.00 ± 2.83** | 2 | 17.0 |" in text
    assert "| 10% | +ICD | 30.00 ± 0.00 | 10.00 ± 0.00 | **20.00 ± 0.00** | 2 | 23.3 |" in text
    assert "+ALQA |" not in text  # no run yet: no row
    assert "| adaptive | 251.00 ± 1.41 | 52.20 ± 1.41 |" in text
    assert open(os.path.join(out, "tables.md")).read() == text
    cells = json.load(open(os.path.join(out, "cells.json")))
    assert [c["average"] for c in cells if c["method"].startswith("baseline")] == [pytest.approx([10.0, 14.0])]


def test_the_upper_bound_is_a_row_of_its_own(tmp_path):
    out = str(tmp_path)
    _fake_run(out, 0, 10, rp.ACTF, 0.10)
    _fake_run(out, 0, 100, rp.ACTF, 0.60)  # the same recipe on every training video
    text = rp.write_tables(rp.parse_args(["--out", out, "--tables", "1", "--seeds", "0"]), None)
    rows = [line for line in text.splitlines() if line.startswith("| 1")]
    assert len(rows) == 2 and rows[0].startswith("| 10% | ActF* (labeled") and "| 15.6 |" in rows[0]
    assert rows[1].startswith("| 100% | ActF, 100% labeled") and "**60.00**" in rows[1]


def test_missing_split_files_stop_before_any_training(tmp_path):
    data = str(tmp_path / "tiny")  # the tiny dataset has no 10% split: it cannot cover every class
    sets = ["dataset.synthetic_size=tiny", f"dataset.annotation_file={data}/annotations.json",
            f"dataset.feature_dir={data}/features", "dataset.labeled_split=null", "dataset.unlabeled_split=null"]
    with pytest.raises(DataError, match="labeled_10pct.txt"):
        rp.main(sum((["--set", s] for s in sets), []) + ["--tables", "2", "--out", str(tmp_path / "o"), "--dry-run"])


def test_copies_share_the_work_through_locks(tmp_path, monkeypatch):
    # Cell A's first step is locked by "another copy"; cell B runs meanwhile; when the other copy
    # finishes A's step (done written, lock gone), A's second step runs here.
    script = tmp_path / "touch.py"
    script.write_text("import sys; open(sys.argv[1], 'w').close()\n")
    step = lambda name: ("cell", str(script), [str(tmp_path / name)], str(tmp_path / name),  # noqa: E731
                         str(tmp_path / (name + ".log")))
    a1, a2, b1 = step("a1"), step("a2"), step("b1")
    open(a1[3] + ".lock", "w").close()
    order = []
    real_step = rp.Runner.step

    def recording_step(self, *s):
        ok = real_step(self, *s)
        order.append((os.path.basename(s[3]), ok))
        return ok

    def other_copy_finishes(seconds):
        open(a1[3], "w").close()
        os.unlink(a1[3] + ".lock")

    monkeypatch.setattr(rp.Runner, "step", recording_step)
    monkeypatch.setattr(rp.time, "sleep", other_copy_finishes)
    rp.Runner(None, None, None).run_cells([[a1, a2], [b1]])
    # pass 1: A locked, B runs; pass 2: only A left and still locked: wait; pass 3: A goes on
    assert order == [("a1", False), ("b1", True), ("a1", False), ("a1", True), ("a2", True)]
    assert os.path.exists(a2[3]) and os.path.exists(b1[3])
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".lock")]


def _fake_anet_run(out, seed, ratio, m, at05, at075, at095, average):
    """metrics.json at ActivityNet's ten thresholds; the ones no column shows hold 0.99, so a column
    read from the wrong threshold shows 99.00."""
    _, sup, semi = rp.run_dirs(out, seed, ratio, m)
    run = semi or sup
    os.makedirs(run, exist_ok=True)
    maps = [at05, 0.99, 0.99, 0.99, 0.99, at075, 0.99, 0.99, 0.99, at095]
    with open(os.path.join(run, "metrics.json"), "w") as f:
        json.dump({"thresholds": [0.5 + 0.05 * i for i in range(10)], "mAP": maps, "average": average}, f)


def test_activitynet_columns_beside_the_papers(tmp_path):
    out = str(tmp_path)
    _fake_anet_run(out, 0, 10, rp.ACTF, 0.60, 0.50, 0.10, 0.45)
    _fake_anet_run(out, 1, 10, rp.ACTF, 0.62, 0.52, 0.14, 0.47)
    _fake_anet_run(out, 0, 10, rp.APL_SUPERVISED[1], 0.66, 0.53, 0.12, 0.50)  # APL's first half
    _fake_anet_run(out, 0, 10, rp.APL, 0.70, 0.55, 0.20, 0.52)   # seed 1 of APL not finished
    args = rp.parse_args(["--config", "configs/anet_synthetic.yaml", "--out", out, "--tables", "1",
                          "--seeds", "0", "1"])
    text = rp.write_tables(args, None)
    assert ("| labeled | method | mAP@0.5 | mAP@0.75 | mAP@0.95 | avg | seeds | paper @0.5 (ActivityNet) "
            "| paper @0.75 (ActivityNet) | paper @0.95 (ActivityNet) | paper avg (ActivityNet) |") in text
    # ActF*: 60 and 62 -> 61.00 +- 1.41 (sqrt 2), 10 and 14 -> 12.00 +- 2.83; the paper's 10% row
    assert ("| 10% | ActF* (labeled videos only) | 61.00 ± 1.41 | 51.00 ± 1.41 | 12.00 ± 2.83 "
            "| **46.00 ± 1.41** | 2 | 47.8 | 24.2 | 1.7 | 25.6 |") in text
    assert "| 10% | APL (ActF) | 70.00 | 55.00 | 20.00 | **52.00** | 1 | 52.2 | 33.9 | 6.7 | 33.5 |" in text
    # APL's supervised detector has no paper figure
    assert ("| 10% | APL's supervised detector (ALQA + ACP, no round) | 66.00 | 53.00 | 12.00 | **50.00** "
            "| 1 |  |  |  |  |") in text
    # The gains pair seed 0 only (APL's seed 1 is missing): 70 - 60, 55 - 50, 20 - 10, 52 - 45; the
    # paper's: 52.2 - 47.8, 33.9 - 24.2, 6.7 - 1.7, 33.5 - 25.6. Its parts: 66 - 60 ... and 70 - 66 ...
    assert "| 10% | APL - ActF* | 10.00 | 5.00 | 10.00 | 7.00 | 1 | +4.4 | +9.7 | +5.0 | +7.9 |" in text
    assert "| 10% | supervised: ALQA + ACP | 6.00 | 3.00 | 2.00 | 5.00 | 1 |  |  |  |  |" in text
    assert "| 10% | the round | 4.00 | 2.00 | 8.00 | 2.00 | 1 |  |  |  |  |" in text
    assert "99.00" not in text and "THUMOS14" in text  # Table 1 reads ActivityNet; the header names both
    cells = json.load(open(os.path.join(out, "cells.json")))
    assert [len(c["mAP"][0]) for c in cells] == [10, 10, 10]  # every threshold kept for later reading


def test_thumos_configs_keep_every_threshold(tmp_path):
    out = str(tmp_path)
    _fake_run(out, 0, 10, rp.APL, 0.30)
    text = rp.write_tables(rp.parse_args(["--out", out, "--tables", "1", "--seeds", "0"]), None)
    assert "| 10% | APL (ActF) | 40.00 | 20.00 | **30.00** | 1 | 24.5 |" in text
    assert "gain" not in text and "ActivityNet" not in text


PAPER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "paper",
                     "apl_paper.txt")  # ../shared beside the project, where present


@pytest.mark.skipif(not os.path.exists(PAPER), reason="needs ../shared/paper beside the project")
def test_the_papers_figures_are_those_of_its_table_1():
    # Table 1's I3D rows of ActF* and APL (ActF), in the order 10, 20, 40, 60%: six THUMOS14 figures
    # (0.3 ... 0.7, avg), then ActivityNet's four (0.5, 0.75, 0.95, avg).
    rows = {"ActF* [52]": [], "APL (ActF)": []}
    for line in open(PAPER):
        cells = [c.strip() for c in line.split("\t") if c.strip()]
        for name in rows:
            if name in cells and "I3D" in cells:
                rows[name].append([float(c) for c in cells[cells.index("I3D") + 1:]])
    for m, name in ((rp.ACTF, "ActF* [52]"), (rp.APL, "APL (ActF)")):
        assert len(rows[name]) == 4
        for ratio, figures in zip((10, 20, 40, 60), rows[name]):
            assert rp.anet_paper(ratio, m) == tuple(figures[6:10])
            thumos = next(paper for _, m_, paper in rp.TABLES[1][2] if m_ == m)
            assert thumos[ratio] == figures[5]


@pytest.mark.parametrize("config", ["configs/default.yaml", "configs/anet_synthetic.yaml", "configs/thumos_i3d.yaml"])
def test_every_cell_runs_the_papers_recipe(config):
    # Each cell's stages resolve to the paper's rules (Sec. 3.1-3.3, Eq. 6 and 12), whatever the
    # config's own recipe, with only the cell's components (ALQA, ACP, selection, ICD) varied in it.
    from common.config import RECIPES, load_config
    args = rp.parse_args(["--config", config, "--out", "OUT", "--device", "cpu", "--splits", "SPLITS"])
    runner = rp.Runner(args, None, None)
    for ratio, m in rp.cells([1, 2, 3, 4, 5]):
        argv = runner.sets(0, ratio, m)
        cfg = load_config(config, [argv[i + 1] for i, a in enumerate(argv) if a == "--set"])
        varied = {"selection": m["selection"], "icd": m["icd"]}
        for section, rules in RECIPES["paper"].items():
            for key, value in rules.items():
                want = varied.get(key, value) if section == "pseudo" else value
                assert cfg[section][key] == want, (m, section, key)
        assert (cfg["model"]["alqa"], cfg["acp"]["mode"]) == (m["alqa"], m["acp"]) and cfg["recipe"] == "paper"
        # the paper's figures, read off its text
        assert (cfg["semi"]["beta"], cfg["pseudo"]["tau_neg"], cfg["pseudo"]["pos_std"]) == (2.0, 0.15, 1.0)
        assert (cfg["semi"]["background"], cfg["semi"]["class_target"], cfg["pseudo"]["relabel"],
                cfg["pseudo"]["carry_over"], cfg["pseudo"]["mpp"]["by"]) == ("all", "hard", "none", "none", "icd")
        if m["semi"]:
            assert rp.run_dirs("OUT", 0, ratio, m)[2].endswith("_paper")
