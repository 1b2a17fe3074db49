"""Reproduce the paper's experiments (Tables 1-5, Fig. 3c) and write them as Markdown tables.

Every cell is a chain of the stage scripts, each run as its own process with the config's settings,
the paper's recipe (recipe=paper: common/config.py RECIPES, whatever the config names) and the cell's
components as overrides:
  ACP pre-training (per seed and ACP mode) -> supervised detector (per seed, ratio, ALQA mode, ACP
  mode) -> evaluation, and for semi-supervised cells -> pseudo labels -> one round of
  semi-supervised training -> evaluation.
A run shared by several tables (the APL row of Table 1 is also Table 2's +ACP and Table 5's last
row) is trained once. Finished runs under --out are reused, so an interrupted reproduction goes on
where it stopped and a second seed adds to the first. Before starting it prints how many runs are
left and how long they should take; at the end it writes OUT/tables.md (mean +- std over seeds) and
OUT/cells.json (every seed's figures).

  python benchmarks/reproduce.py --quick                   # Table 1, one seed: about 1 h on 2 CPU cores
  python benchmarks/reproduce.py                           # every table, seeds 0 1 2
  python benchmarks/reproduce.py --tables 2 4 --seeds 0 1  # some tables, some seeds
  python benchmarks/reproduce.py --config my_dataset.yaml --splits my_data/splits --out outputs/repro_mine
  python benchmarks/reproduce.py --report                  # the tables from the runs found so far
  python benchmarks/reproduce.py --config configs/anet_synthetic.yaml --tables 1 --ratios 10 --seeds 0 1 2

Several copies of the same command share the work (one per GPU: CUDA_VISIBLE_DEVICES=k for copy k;
on the CPU OMP_NUM_THREADS=1 per copy): each step is locked while a copy runs it (DONE.lock), the
others go on with other cells and come back to it.

Another dataset needs a config (see configs/) and a folder of split files named
labeled_<pct>pct.txt / unlabeled_<pct>pct.txt for the ratios used (common/data.py writes them:
python -m common.data --config CFG --ratio 0.1 --out-dir DIR). A config scored at ActivityNet's tIoU
thresholds (0.5:0.05:0.95) gets ActivityNet's columns: mAP at 0.5, 0.75, 0.95 and the average, beside
the paper's ActivityNet v1.3 figures in Table 1, and APL's gain over ActF* seed by seed.
"""
import argparse
import json
import math
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common.config import atomic_write_text, load_config  # noqa: E402
from common.data import read_split  # noqa: E402
from common.stage import labeled_ids, load_data, run_main, subset_ids  # noqa: E402
from harness import ACTF, APL, Runner, is_anet, mean_std, method, run_dirs, shown_columns  # noqa: E402
from synthetic.make import make_data  # noqa: E402


# ---------------------------------------------------------------- the experiments
# (method, ACTF and APL, the cells every benchmark compares, and the Runner: benchmarks/harness.py)

BASELINE = method(alqa="none", acp="none", selection="fixed", icd="none")
ALQA = method(acp="none", icd="none")
ALQA_ICD = method(acp="none")

# (title, ratios, rows); a row is (name, method, {ratio: the paper's THUMOS14 average mAP}).
TABLES = {
    1: ("Table 1: supervised only vs APL", (10, 20, 40, 60), [
        ("ActF* (labeled videos only)", ACTF, {10: 15.6, 20: 31.4, 40: 45.9, 60: 55.4}),
        ("APL (ActF)", APL, {10: 24.5, 20: 42.8, 40: 54.8, 60: 61.1})]),
    2: ("Table 2: the three components", (10, 40), [
        ("baseline (class score >= 0.3)", BASELINE, {10: 17.0, 40: 48.8}),
        ("+ALQA", ALQA, {10: 21.3, 40: 52.6}),
        ("+ICD", ALQA_ICD, {10: 23.3, 40: 53.9}),
        ("+ACP", APL, {10: 24.5, 40: 54.8})]),
    3: ("Table 3: localisation quality branches (on +ALQA: no ICD, no ACP)", (10, 40), [
        ("tIoU (1b)", method(alqa="tiou", acp="none", icd="none"), {10: 19.4, 40: 50.7}),
        ("DIoU (1b)", method(alqa="diou", acp="none", icd="none"), {10: 20.0, 40: 51.8}),
        ("tIoU+tND (2b)", ALQA, {10: 21.3, 40: 52.6})]),
    4: ("Table 4: ICD (on +ALQA, no ACP)", (10, 40), [
        ("no ICD", ALQA, {10: 21.3, 40: 52.6}),
        ("EAP", method(acp="none", icd="eap"), {10: 22.1, 40: 53.2}),
        ("MPP", method(acp="none", icd="mpp"), {10: 22.5, 40: 53.3}),
        ("EAP+MPP", ALQA_ICD, {10: 23.3, 40: 53.9})]),
    5: ("Table 5: ACP's contrasts (on +ICD)", (10, 40), [
        ("no ACP", ALQA_ICD, {10: 23.3, 40: 53.9}),
        ("L_conc (coarse)", method(acp="coarse"), {10: 24.1, 40: 54.4}),
        ("L_conf (fine)", method(acp="fine"), {10: 23.8, 40: 54.4}),
        ("L_conc + L_conf", APL, {10: 24.5, 40: 54.8})]),
}
UPPER_BOUND = ("ActF, 100% labeled (upper bound)", ACTF)   # Table 1's last line, no paper figure
# APL's first half, trained for every APL cell anyway: shown on ActivityNet to split APL's gain into
# the supervised part (ALQA + ACP) and the semi-supervised round.
APL_SUPERVISED = ("APL's supervised detector (ALQA + ACP, no round)", method(semi=False))
# Table 1's ActivityNet v1.3 half (I3D features): {ratio: (mAP@0.5, mAP@0.75, mAP@0.95, avg)}. The
# paper's ablations (Tables 2-5) are on THUMOS14 only.
ANET_PAPER = [
    (ACTF, {10: (47.8, 24.2, 1.7, 25.6), 20: (51.2, 34.3, 3.8, 32.9),
            40: (53.2, 35.7, 3.8, 34.2), 60: (53.9, 36.1, 5.7, 35.0)}),
    (APL, {10: (52.2, 33.9, 6.7, 33.5), 20: (53.5, 36.1, 7.1, 34.5),
           40: (53.8, 36.7, 8.2, 35.5), 60: (54.4, 36.7, 8.4, 36.0)}),
]
QUALITY_RATIO = 10                                         # Fig. 3(c): pseudo labels of the 10% detector


def cells(tables):
    """The (ratio, method) pairs the chosen tables need, in the order they will run."""
    todo = []
    for t in tables:
        _, ratios, rows = TABLES[t]
        todo += [(r, m) for r in ratios for _, m, _ in rows]
        if t == 1:
            todo.append((100, UPPER_BOUND[1]))
    if 4 in tables or 2 in tables:  # Fig. 3(c) is read from the +ICD cell's pseudo-label report
        todo.append((QUALITY_RATIO, ALQA_ICD))
    unique = []
    for c in todo:
        if c not in unique:
            unique.append(c)
    return sorted(unique, key=lambda c: (c[1]["acp"] != "none", c[0], c[1]["semi"]))


# ---------------------------------------------------------------- tables (runs on disk: harness.run_dirs)

def read_cell(out, seed, ratio, m):
    _, sup, semi = run_dirs(out, seed, ratio, m)
    path = os.path.join(semi or sup, "metrics.json")
    return json.load(open(path)) if os.path.exists(path) else None


def read_quality(out, seed):
    """Fig. 3(c)'s rows from the +ICD cell's pseudo-label report: {selection: [#PL, Class Acc, ...]}."""
    _, _, semi = run_dirs(out, seed, QUALITY_RATIO, ALQA_ICD)
    path = os.path.join(semi, "pseudo_label.log")
    if not os.path.exists(path):
        return None
    rows = {}
    for line in open(path):
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(parts) == 7 and re.match(r"^[\d.]+$", parts[1]):
            rows[parts[0]] = [float(p) for p in parts[1:]]
    return rows or None


def fmt(values):
    mean, std = mean_std(values)
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def table_lines(title, entries, out, seeds, records, anet=False, paper_header=("paper avg (THUMOS14)",)):
    """One Markdown table of (ratio, row name, method, paper figures) entries: our mAP per threshold
    shown and average over the seeds found, and the paper's figures (a tuple, one per paper column)."""
    lines, columns = [f"### {title}", ""], None
    for ratio, name, m, paper in entries:
        found = [(s, read_cell(out, s, ratio, m)) for s in seeds]
        found = [(s, c) for s, c in found if c]
        if not found:
            continue
        if columns is None:
            columns = shown_columns(found[0][1]["thresholds"], anet)
            lines += ["| labeled | method | " + " | ".join(label for label, _ in columns)
                      + " | avg | seeds | " + " | ".join(paper_header) + " |",
                      "|---" * (len(columns) + 4 + len(paper_header)) + "|"]
        per_thr = [fmt([100 * c["mAP"][i] for _, c in found]) for _, i in columns]
        avg = [100 * c["average"] for _, c in found]
        lines.append(f"| {ratio}% | {name} | " + " | ".join(per_thr) + f" | **{fmt(avg)}** | "
                     f"{len(found)} | " + " | ".join("" if v is None else f"{v}" for v in paper) + " |")
        records.append({"table": title, "ratio": ratio, "method": name, "seeds": [s for s, _ in found],
                        "average": avg, "mAP": [[100 * x for x in c["mAP"]] for _, c in found]})
    return lines + [""] if columns else []


def anet_paper(ratio, m):
    """The paper's ActivityNet v1.3 (mAP@0.5, @0.75, @0.95, avg) of Table 1's row, or four blanks."""
    return next((row[ratio] for method_, row in ANET_PAPER if method_ == m and ratio in row), (None,) * 4)


def gain_lines(out, seeds, ratios):
    """APL's gain over ActF* at 0.5 / 0.75 / 0.95 / avg, seed by seed (seeds where both runs finished),
    mean +- std over those seeds, beside the paper's; and its two parts: ALQA + ACP in the supervised
    detector, then the semi-supervised round (no paper figure: the paper does not split them)."""
    parts = [("APL - ActF*", ACTF, APL), ("supervised: ALQA + ACP", ACTF, APL_SUPERVISED[1]),
             ("the round", APL_SUPERVISED[1], APL)]
    lines = []
    for ratio in ratios:
        for label, base, m in parts:
            pairs = [(read_cell(out, s, ratio, base), read_cell(out, s, ratio, m)) for s in seeds]
            pairs = [(a, b) for a, b in pairs if a and b]
            if not pairs:
                continue
            columns = shown_columns(pairs[0][0]["thresholds"], True)
            gains = [[100 * (b["mAP"][i] - a["mAP"][i]) for a, b in pairs] for _, i in columns]
            gains.append([100 * (b["average"] - a["average"]) for a, b in pairs])
            paper = zip(anet_paper(ratio, m), anet_paper(ratio, base))
            paper = [None if p is None or q is None else f"{p - q:+.1f}" for p, q in paper]
            lines.append(f"| {ratio}% | {label} | " + " | ".join(fmt(g) for g in gains) + f" | {len(pairs)} | "
                         + " | ".join(p or "" for p in paper) + " |")
    if not lines:
        return []
    return ["### Table 1: APL's gain over ActF* (same seed), and its two parts", "",
            "| labeled | gain | mAP@0.5 | mAP@0.75 | mAP@0.95 | avg | seeds | paper @0.5 | paper @0.75 "
            "| paper @0.95 | paper avg |", "|---" * 11 + "|"] + lines + [""]


def quality_lines(out, seeds):
    per_seed = [q for q in (read_quality(out, s) for s in seeds) if q]
    if not per_seed:
        return []
    names = ["#PL", "Class Acc", "Avg tIoU", "Pos Acc", "P@0.5", "R@0.5"]
    lines = [f"### Fig. 3(c): pseudo-label quality on the unlabeled videos, {QUALITY_RATIO}% labeled "
             "(ALQA detector, no ACP)", "", "| selection | " + " | ".join(names) + " | seeds |",
             "|---" * (len(names) + 2) + "|"]
    for name in per_seed[0]:
        vals = [q[name] for q in per_seed if name in q]
        lines.append(f"| {name} | " + " | ".join(fmt([v[i] for v in vals]) for i in range(len(names)))
                     + f" | {len(vals)} |")
    return lines + [""]


def write_tables(args, wall):
    anet = is_anet(load_config(args.config, args.set)["dataset"]["tiou_thresholds"])
    figures = ("Table 1's figures are its ActivityNet v1.3 (I3D) columns, the others' its THUMOS14 (I3D) "
               "averages (its ablations are on THUMOS14 only)" if anet
               else "the paper's figures are THUMOS14 (I3D) averages")
    records, lines = [], [f"# Reproduction on {args.config}", "",
                          f"Seeds {' '.join(map(str, args.seeds))}; cells give mean ± sample std over the seeds "
                          f"that finished; {figures}. Runs in {args.out}.", ""]
    for t in args.tables:
        title, ratios, rows = TABLES[t]
        if t == 1 and anet:
            rows = [rows[0], APL_SUPERVISED + ({},), rows[1]]
        entries = [(ratio, name, m, (paper.get(ratio),)) for ratio in ratios for name, m, paper in rows]
        if t == 1:
            entries.append((100, UPPER_BOUND[0], UPPER_BOUND[1], (None,)))
        if t == 1 and anet:
            entries = [(ratio, name, m, anet_paper(ratio, m)) for ratio, name, m, _ in entries]
            header = tuple(f"paper {c} (ActivityNet)" for c in ("@0.5", "@0.75", "@0.95", "avg"))
            lines += table_lines(title, entries, args.out, args.seeds, records, anet, header)
            lines += gain_lines(args.out, args.seeds, ratios)
        else:
            lines += table_lines(title, entries, args.out, args.seeds, records, anet)
    if 2 in args.tables or 4 in args.tables:
        lines += quality_lines(args.out, args.seeds)
    if wall is not None:
        lines.append(f"Wall time of this invocation: {wall / 60:.1f} min (finished runs reused).")
    text = "\n".join(lines) + "\n"
    atomic_write_text(os.path.join(args.out, "tables.md"), text)
    atomic_write_text(os.path.join(args.out, "cells.json"), json.dumps(records, indent=1) + "\n")
    return text


# ---------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--splits", default=None,
                        help="folder of labeled_<pct>pct.txt files (default: beside the config's annotation file)")
    parser.add_argument("--tables", type=int, nargs="+", choices=sorted(TABLES), default=sorted(TABLES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="Table 1 with seed 0 only (the main rows)")
    parser.add_argument("--out", default="outputs/reproduce")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (part of no run's name: use a new --out)")
    parser.add_argument("--ratios", type=int, nargs="+", help="only the cells at these labeled percentages")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the estimate, run nothing")
    parser.add_argument("--report", action="store_true", help="write the tables from the runs found, run nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.tables, args.seeds = [1], [0]
    return args


def dataset_sizes(cfg, splits):
    """ratio -> (labeled, unlabeled, test) video counts, for the estimate; also checks the split files."""
    videos, _ = load_data(cfg)
    dcfg = cfg["dataset"]
    n_train = len(subset_ids(videos, dcfg["train_subset"], dcfg["annotation_file"]))
    n_eval = len(subset_ids(videos, dcfg["eval_subset"], dcfg["annotation_file"]))

    def sizes(ratio):
        if ratio == 100:
            return n_train, 0, n_eval
        n_lab = len(read_split(os.path.join(splits, f"labeled_{ratio}pct.txt"), videos))
        return n_lab, len(read_split(os.path.join(splits, f"unlabeled_{ratio}pct.txt"), videos)), n_eval
    return videos, sizes


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.set)
    make_data(cfg)  # the embedded dataset, as python -m synthetic makes it (nothing for one's own data)
    args.splits = args.splits or os.path.join(os.path.dirname(cfg["dataset"]["annotation_file"]), "splits")
    videos, sizes = dataset_sizes(cfg, args.splits)
    labeled_ids(cfg, videos)  # the features exist
    todo = [(seed, ratio, m) for seed in args.seeds for ratio, m in cells(args.tables)
            if not args.ratios or ratio in args.ratios]
    for _, ratio, _ in todo:
        sizes(ratio)  # every split file is there before hours of training start

    if args.report:
        text = write_tables(args, None)
        print("\n" + text)
        return text

    # 1. The plan: steps not yet done (shared steps counted once) and their estimated cost.
    runner = Runner(args, cfg, sizes)
    pending, seen = [], set()
    for seed, ratio, m in todo:
        for step in runner.steps(seed, ratio, m):
            if step[3] not in seen and not os.path.exists(step[3]):
                seen.add(step[3])
                pending.append((ratio, step))
    estimate = sum(runner.estimate_seconds(step[1], ratio) for ratio, step in pending)
    runner.total_runs = len(pending)
    print(f"tables {args.tables}, seeds {args.seeds}: {len(todo)} cells, {len(pending)} steps to run "
          f"(finished ones in {args.out} are reused); estimated {estimate / 3600:.1f} h on a 2-core CPU "
          f"like the one in the README", flush=True)
    if args.dry_run:
        return None

    # 2. The runs (a cell's steps depend on the previous ones).
    runner.run_cells([runner.steps(seed, ratio, m) for seed, ratio, m in todo])

    # 3. The tables.
    text = write_tables(args, time.time() - runner.started)
    print("\n" + text + f"\nwrote {os.path.join(args.out, 'tables.md')}")
    return text


if __name__ == "__main__":
    run_main(main)
