"""benchmarks/bench_bmn.py's bookkeeping on fake finished runs (no training): its steps, the table
beside the paper's rows, the gains paired by seed, the cost per stage, the files it writes."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import bench_bmn as bb  # noqa: E402
import harness  # noqa: E402
import reproduce  # noqa: E402

ANET = [round(0.5 + 0.05 * i, 2) for i in range(10)]


def _args(tmp_path, extra=()):
    return bb.parse_args(["--out", str(tmp_path / "bench"), "--actf-out", str(tmp_path / "repro"), "--seeds", "0", "1",
                          "--backgrounds", "all", "rejected", "--device", "cpu"] + list(extra))


def _fake(run, average, ar=None):
    """A finished run: every threshold's mAP = average (%), so each column reads the same."""
    os.makedirs(run, exist_ok=True)
    metrics = {"thresholds": ANET, "mAP": [average / 100] * 10, "average": average / 100}
    if ar is not None:
        metrics["proposals"] = {"AR@100": ar / 100, "AUC": ar - 10}
    with open(os.path.join(run, "metrics.json"), "w") as f:
        json.dump(metrics, f)


def test_steps_share_bmn_star_and_its_pseudo_labels_and_reuse_reproduce_cells(tmp_path):
    args = _args(tmp_path)
    run = bb.runners(args)
    steps = bb.cell_steps(args, run, 1)
    scripts = [s[1] for s in steps]
    assert scripts[:4] == ["pretrain_acp.py", "train_supervised.py", "evaluate.py", "pseudo_label.py"]
    assert scripts[4:8] == ["train_semi.py", "evaluate.py"] * 2            # one round per background
    sup, semi, rounds = bb.bmn_dirs(args, 1)
    pl = os.path.join(semi, "pseudo_labels.json")
    for step, background in ((steps[4], "all"), (steps[6], "rejected")):
        a = step[2]
        assert a[a.index("--init") + 1] == os.path.join(sup, "last.pt") and a[a.index("--pseudo-labels") + 1] == pl
        assert f"semi.background={background}" in a and a[a.index("--out") + 1] == rounds[background]
        assert a[a.index("--config") + 1] == "configs/anet_synthetic_bmn.yaml" and "model.alqa=tiou" in a
    # ActionFormer's steps are reproduce.py's Table 1 cells, command for command: its --out is reused
    rargs = reproduce.parse_args(["--config", "configs/anet_synthetic.yaml", "--out", str(tmp_path / "repro"),
                                  "--device", "cpu", "--splits", "data/synthetic_anet/splits"])
    runner = reproduce.Runner(rargs, None, None)
    assert steps[8:] == runner.steps(1, 10, reproduce.ACTF) + runner.steps(1, 10, reproduce.APL)


def test_report_beside_the_paper_with_paired_gains_and_costs(tmp_path):
    args = _args(tmp_path)
    for seed, (actf, sup, apl, star, all_, rej) in enumerate([(30, 50, 52, 40, 44, 45), (32, 51, 54, 42, 45, 47)]):
        rows = bb.rows_of(args, seed)
        for name, value in zip(rows, (actf, sup, apl, star, all_, rej)):
            _fake(rows[name], value, ar=70 + seed)
    # costs of seed 0's BMN*: 2 epochs, 26 iterations in 13 s; its usage file
    sup, _, _ = bb.bmn_dirs(args, 0)
    with open(os.path.join(sup, "log.jsonl"), "w") as f:
        f.write(json.dumps({"epoch": 0, "iters": 13, "seconds": 5.0}) + "\n"
                + json.dumps({"epoch": 1, "iters": 13, "seconds": 8.0}) + "\n")
    with open(harness.usage_path(os.path.join(sup, "stage.log")), "w") as f:
        json.dump({"wall_s": 20.0, "max_rss_mb": 512.0}, f)
    open(os.path.join(sup, "done"), "w").close()
    _, _, rounds = bb.bmn_dirs(args, 1)        # a round still training: left out of the cost
    with open(os.path.join(rounds["all"], "log.jsonl"), "w") as f:
        f.write(json.dumps({"epoch": 0, "iters": 10, "seconds": 50.0}) + "\n")

    text = bb.main(["--out", args.out, "--actf-out", args.actf_out, "--seeds", "0", "1",
                    "--backgrounds", "all", "rejected", "--report"])
    lines = text.splitlines()
    row = lambda name: next(line for line in lines if line.startswith(f"| {name} |"))  # noqa: E731
    # ActF*: 30 and 32 -> 31 ± 1.41 in every mAP column; AR@100 70, 71; AUC 60, 61; paper 47.8 ... 25.6
    assert row("ActF*") == ("| ActF* | 31.00 ± 1.41 | 31.00 ± 1.41 | 31.00 ± 1.41 | 31.00 ± 1.41 | 70.50 ± 0.71 | "
                            "60.50 ± 0.71 | 2 | 47.8 | 24.2 | 1.7 | 25.6 |")
    assert row("APL (BMN), background all").endswith("| 2 | 51.5 | 32.4 | 8.2 | 33.0 |")
    assert row("APL (BMN), background rejected").endswith("| 2 |  |  |  |  |")   # no paper figure
    assert row("BMN* (from ACP)").startswith("| BMN* (from ACP) | 41.00 ± 1.41 |")
    # gains paired by seed: BMN round all 44-40, 45-42 -> +3.50 ± 0.71; rejected - all: +1, +2
    assert row("the BMN round, background all (APL (BMN) - BMN*)").startswith(
        "| the BMN round, background all (APL (BMN) - BMN*) | +3.50 ± 0.71 |")
    assert row("background rejected - background all (same BMN*, same pseudo labels)").startswith(
        "| background rejected - background all (same BMN*, same pseudo labels) | +1.50 ± 0.71 |")
    assert row("the ActF round (APL (ActF) - its supervised detector)").startswith(
        "| the ActF round (APL (ActF) - its supervised detector) | +2.50 ± 0.71 |")
    # the cost: 13 s / 26 iterations = 0.5 s, one seed measured
    assert row("BMN") == "| BMN | supervised (BMN*) | 0.50 | 20.00 | 512.00 | 1 |"
    assert not any("round (background all)" in line for line in lines)
    record = json.load(open(os.path.join(args.out, "bmn.json")))
    assert record["rows"]["ActF*"]["0"][3] == 30.0
    assert record["gains"]["APL (ActF) - ActF*"]["diffs"][3] == [22.0, 22.0]
    assert open(os.path.join(args.out, "bmn.md")).read() == text


def test_report_of_nothing_says_so(tmp_path):
    args = _args(tmp_path, ["--report"])
    text, record = bb.report(args)
    assert text.startswith("no finished run") and record["rows"] == {}


def test_cost_bytes_at_the_published_sizes_by_hand_and_one_tiny_measurement():
    import bench_bmn_cost as cost
    anet = cost.published_rows()[0]                 # T = D = 100, N = 32, C = 128, batch 16
    assert anet["weights_gb"] * 2 ** 30 == 100 * 32 * 100 * 100 * 4
    assert anet["features_gb"] * 2 ** 30 == 16 * 128 * 32 * 100 * 100 * 4       # 2.44 GiB
    assert anet["conv3d_gb"] * 2 ** 30 == 2 * 16 * 512 * 100 * 100 * 4          # output + gradient
    assert anet["share"][16] == (anet["weights_gb"] + 2 * anet["features_gb"] + anet["conv3d_gb"]) / 16
    got = cost.measure_one(8, 6, 4, channels=4, batch=2, repeats=1)
    assert got["features_mb"] * 2 ** 20 == 2 * 4 * 4 * 6 * 8 * 4 and got["weights_mb"] * 2 ** 20 == 8 * 4 * 6 * 8 * 4
    assert 0 < got["nonzero"] < 1 and got["forward_s"] >= 0 and got["backward_s"] >= 0


def test_thumos_entry_runs_windowed_bmn_beside_the_default_actionformer(tmp_path):
    args = _args(tmp_path, ["--dataset", "thumos"])
    steps = bb.cell_steps(args, bb.runners(args), 0)
    configs = [s[2][s[2].index("--config") + 1] for s in steps]
    assert set(configs[:8]) == {"configs/thumos_synthetic_bmn.yaml"} and set(configs[8:]) == {"configs/default.yaml"}
    assert "dataset.labeled_split=data/synthetic_small/splits/labeled_10pct.txt" in steps[1][2]
    assert args.out.endswith("bench") and bb.PAPER["thumos"][10]["APL (BMN)"][-1] == 33.3
