"""Table 1's BMN rows beside ActionFormer's, on the embedded data, over seeds.

For each seed, at --ratio % labeled (default 10), chains the stage scripts as benchmarks/reproduce.py
does (its Runner: one process a step, finished steps under --out reused, a lock per step so several
copies share the work, each step's wall time and peak memory in a .usage.json beside its log):
  ActionFormer (the --dataset's ActF config): reproduce.py's Table 1 cells, ActF* (labeled videos
    only, no ALQA, no ACP) and APL (ActF) (ACP -> ALQA detector -> pseudo labels -> one round),
    under --actf-out in reproduce.py's layout, so a reproduce.py --out of the same config is reused;
  BMN (the --dataset's BMN config, model.arch bmn): ACP -> BMN* (the labeled videos only, from ACP:
    APL (BMN)'s own supervised detector) -> pseudo labels -> one round per --backgrounds value
    (semi.background, from the same BMN* and the same pseudo labels) -> evaluation.
Prints and writes OUT/bmn.md and OUT/bmn.json: avg mAP and mAP at the dataset's usual thresholds,
AR@100 and AUC, as mean ± sample std over the seeds that finished, beside the paper's Table 1 rows
(its BMN rows are TSN features, its ActF rows I3D); the round's gain paired by seed; and per stage
the training seconds per iteration, the wall time and the peak resident memory (max RSS).

  python benchmarks/bench_bmn.py                                  # ActivityNet-like, seeds 0 1 2
  python benchmarks/bench_bmn.py --actf-out outputs/repro_anet_clip --backgrounds all rejected
  python benchmarks/bench_bmn.py --dataset thumos                # THUMOS-like: BMN with sliding windows
  python benchmarks/bench_bmn.py --report                         # the tables from the runs found
"""
import argparse
import json
import os
import sys
import time
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common.config import atomic_write_text, load_config  # noqa: E402
from harness import ACTF, APL, Runner, is_anet, mean_std, method, run_dirs, shown_columns, usage_path  # noqa: E402
from synthetic.make import make_data  # noqa: E402

# The embedded datasets: the BMN config, the ActionFormer config it is compared with, their splits.
DATASETS = {
    "anet": {"bmn": "configs/anet_synthetic_bmn.yaml", "actf": "configs/anet_synthetic.yaml",
             "splits": "data/synthetic_anet/splits", "paper": "ActivityNet v1.3"},
    # BMN with sliding windows on the THUMOS-like data (common/windows.py), ActF on configs/default.yaml
    "thumos": {"bmn": "configs/thumos_synthetic_bmn.yaml", "actf": "configs/default.yaml",
               "splits": "data/synthetic_small/splits", "paper": "THUMOS14"},
}
# The paper's Table 1 (mAP %): {dataset: {ratio: {row: values}}}, ActivityNet v1.3 at 0.5 / 0.75 /
# 0.95 / avg, THUMOS14 at 0.3 / 0.4 / 0.5 / 0.6 / 0.7 / avg. The paper has no BMN* row; NPL (BMN)
# is the semi-supervised BMN it compares with.
PAPER = {
    "anet": {
        10: {"ActF*": (47.8, 24.2, 1.7, 25.6), "APL (ActF)": (52.2, 33.9, 6.7, 33.5),
             "NPL (BMN)": (50.9, 32.0, 7.9, 32.6), "APL (BMN)": (51.5, 32.4, 8.2, 33.0)},
        20: {"ActF*": (51.2, 34.3, 3.8, 32.9), "APL (ActF)": (53.5, 36.1, 7.1, 34.5),
             "NPL (BMN)": (52.1, 32.9, 7.9, 32.9), "APL (BMN)": (52.4, 33.3, 8.3, 33.4)},
        40: {"ActF*": (53.2, 35.7, 3.8, 34.2), "APL (ActF)": (53.8, 36.7, 8.2, 35.5),
             "NPL (BMN)": (53.4, 33.9, 8.1, 33.8), "APL (BMN)": (53.5, 33.8, 8.5, 34.1)},
        60: {"ActF*": (53.9, 36.1, 5.7, 35.0), "APL (ActF)": (54.4, 36.7, 8.4, 36.0),
             "NPL (BMN)": (53.9, 35.8, 8.5, 35.7), "APL (BMN)": (54.2, 36.2, 8.6, 35.9)},
    },
    "thumos": {
        10: {"ActF*": (28.5, 22.9, 14.1, 8.2, 4.1, 15.6), "APL (ActF)": (35.1, 31.7, 25.6, 19.1, 11.0, 24.5),
             "NPL (BMN)": (50.0, 41.7, 33.5, 23.6, 13.4, 32.4), "APL (BMN)": (51.5, 42.5, 34.6, 24.4, 13.5, 33.3)},
        20: {"ActF*": (49.1, 41.6, 32.6, 21.5, 12.1, 31.4), "APL (ActF)": (59.2, 54.2, 44.5, 34.2, 22.1, 42.8),
             "NPL (BMN)": (53.9, 45.6, 36.2, 26.9, 16.5, 35.8), "APL (BMN)": (54.8, 45.9, 37.1, 28.5, 16.9, 36.6)},
        40: {"ActF*": (69.0, 60.4, 49.3, 31.5, 19.3, 45.9), "APL (ActF)": (73.2, 68.2, 59.1, 44.9, 28.7, 54.8),
             "NPL (BMN)": (56.2, 46.7, 38.8, 30.3, 19.5, 38.3), "APL (BMN)": (57.0, 47.1, 39.5, 32.7, 20.1, 39.3)},
        60: {"ActF*": (71.5, 65.6, 59.9, 47.3, 32.7, 55.4), "APL (ActF)": (77.3, 73.1, 65.0, 52.4, 37.6, 61.1),
             "NPL (BMN)": (59.0, 51.4, 42.9, 34.3, 23.3, 42.2), "APL (BMN)": (59.7, 51.6, 43.2, 34.9, 23.6, 42.6)},
    },
}
PAPER_COLUMNS = {"anet": ("@0.5", "@0.75", "@0.95", "avg"), "thumos": ("@0.3", "@0.4", "@0.5", "@0.6", "@0.7", "avg")}
APL_SUP = method(semi=False)  # APL (ActF)'s own supervised detector (ALQA + ACP): where its round starts


# ---------------------------------------------------------------- the runs

def runners(args):
    """harness.Runner (reproduce.py's) for each detector, pointed at its config and output folder."""
    spec = DATASETS[args.dataset]
    out = {}
    for name, out_dir in (("actf", args.actf_out), ("bmn", os.path.join(args.out, "bmn"))):
        rargs = SimpleNamespace(config=spec[name], splits=spec["splits"], out=out_dir, device=args.device, set=[])
        out[name] = Runner(rargs, None, None)
    return out


def bmn_methods(args):
    """BMN* and APL (BMN) as reproduce.py methods: ACP on, ALQA as the BMN config sets it (tiou: the
    map's regression channel in the joint score), the project's recipe with the BMN config's own
    thresholds (the paper gives none for BMN; its tau_neg 0.15 is ActionFormer's joint score's)."""
    alqa = load_config(DATASETS[args.dataset]["bmn"])["model"]["alqa"]
    return (method(alqa=alqa, acp="both", semi=False, recipe="project"),
            method(alqa=alqa, acp="both", recipe="project"))


def bmn_dirs(args, seed):
    """BMN*'s run, the folder of its pseudo labels, and {background: the round's run}."""
    star, apl = bmn_methods(args)
    out = os.path.join(args.out, "bmn")
    _, sup, _ = run_dirs(out, seed, args.ratio, star)
    _, _, semi = run_dirs(out, seed, args.ratio, apl)
    return sup, semi, {b: os.path.join(semi, f"bg-{b}") for b in args.backgrounds}


def cell_steps(args, run, seed):
    """Every step of one seed: BMN's chain, then ActF* and APL (ActF) as reproduce.py's cells."""
    star, apl = bmn_methods(args)
    bmn = run["bmn"]
    steps = bmn.steps(seed, args.ratio, star)                       # ACP, BMN*, its evaluation
    sup, semi, rounds = bmn_dirs(args, seed)
    sets = bmn.sets(seed, args.ratio, apl)
    label = f"seed {seed}, {args.ratio}%, BMN"
    pl = os.path.join(semi, "pseudo_labels.json")
    steps.append((label, "pseudo_label.py", sets + ["--checkpoint", os.path.join(sup, "last.pt"), "--out", pl],
                  pl, os.path.join(semi, "pseudo_label.log")))
    for background, rnd in rounds.items():
        rsets = sets + ["--set", f"semi.background={background}"]
        steps += [(f"{label} background {background}", "train_semi.py",
                   rsets + ["--init", os.path.join(sup, "last.pt"), "--pseudo-labels", pl, "--out", rnd, "--resume"],
                   os.path.join(rnd, "done"), os.path.join(rnd, "stage.log")),
                  bmn._evaluation(f"{label} background {background}", rsets, rnd)]
    return steps + run["actf"].steps(seed, args.ratio, ACTF) + run["actf"].steps(seed, args.ratio, APL)


# ---------------------------------------------------------------- the report

def read_json(path):
    return json.load(open(path)) if os.path.exists(path) else None


def rows_of(args, seed):
    """{row name: run folder} of one seed, in the table's order."""
    actf_out = args.actf_out
    sup, _, rounds = bmn_dirs(args, seed)
    rows = {"ActF*": run_dirs(actf_out, seed, args.ratio, ACTF)[1],
            "APL (ActF)'s supervised detector (ALQA + ACP)": run_dirs(actf_out, seed, args.ratio, APL_SUP)[1],
            "APL (ActF)": run_dirs(actf_out, seed, args.ratio, APL)[2],
            "BMN* (from ACP)": sup}
    rows.update({f"APL (BMN), background {b}": rnd for b, rnd in rounds.items()})
    return rows


def figures(metrics, columns):
    """The figures of one run's metrics.json: mAP at the shown thresholds, avg, AR@100, AUC (%)."""
    values = [100 * metrics["mAP"][i] for _, i in columns] + [100 * metrics["average"]]
    proposals = metrics.get("proposals") or {}
    return values + [100 * proposals["AR@100"] if "AR@100" in proposals else None, proposals.get("AUC")]


def fmt(values, sign=""):
    values = [v for v in values if v is not None]
    if not values:
        return ""
    mean, std = mean_std(values)
    return f"{mean:{sign}.2f}" if len(values) < 2 else f"{mean:{sign}.2f} ± {std:.2f}"


def paper_row(args, name):
    rows = PAPER["anet" if args.anet else "thumos"].get(args.ratio, {})
    key = {"APL (BMN), background all": "APL (BMN)"}.get(name, name)  # the paper's round: background all
    return rows.get(key)


def per_iteration(run):
    """Training seconds per iteration of a run (its log.jsonl: seconds and iters per epoch)."""
    path = os.path.join(run, "log.jsonl")
    if not os.path.exists(path):
        return None
    epochs = [json.loads(line) for line in open(path) if line.strip()]
    iters = sum(e.get("iters", 0) for e in epochs)
    return sum(e.get("seconds", 0.0) for e in epochs) / iters if iters else None


def stage_runs(args, seed):
    """(detector, stage, run folder, log name) of every stage whose cost the report shows."""
    acp_actf, sup_actf, semi_actf = run_dirs(args.actf_out, seed, args.ratio, APL)
    star, apl = bmn_methods(args)
    acp_bmn = run_dirs(os.path.join(args.out, "bmn"), seed, args.ratio, apl)[0]
    sup, semi, rounds = bmn_dirs(args, seed)
    out = [("ActF", "ACP pre-training", acp_actf, "stage"),
           ("ActF", "supervised (ActF*)", run_dirs(args.actf_out, seed, args.ratio, ACTF)[1], "stage"),
           ("ActF", "supervised (APL's, ALQA + ACP)", sup_actf, "stage"),
           ("ActF", "pseudo labels", semi_actf, "pseudo_label"),
           ("ActF", "round (APL)", semi_actf, "stage"),
           ("ActF", "evaluation (APL)", semi_actf, "evaluate"),
           ("BMN", "ACP pre-training", acp_bmn, "stage"),
           ("BMN", "supervised (BMN*)", sup, "stage"),
           ("BMN", "pseudo labels", semi, "pseudo_label")]
    out += [("BMN", f"round (background {b})", rnd, "stage") for b, rnd in rounds.items()]
    return out + [("BMN", f"evaluation (background {b})", rnd, "evaluate") for b, rnd in rounds.items()]


def report(args):
    """The three tables (accuracy, paired gains, cost) as Markdown, and their figures as a record."""
    per_seed = {s: {name: read_json(os.path.join(run, "metrics.json")) for name, run in rows_of(args, s).items()}
                for s in args.seeds}
    some = next((m for rows in per_seed.values() for m in rows.values() if m), None)
    record = {"dataset": args.dataset, "ratio": args.ratio, "seeds": args.seeds, "rows": {}, "gains": {}, "cost": []}
    if some is None:
        return f"no finished run under {args.out} / {args.actf_out}\n", record
    args.anet = is_anet(some["thresholds"])
    columns = shown_columns(some["thresholds"], args.anet)
    names = [label for label, _ in columns] + ["avg", "AR@100", "AUC"]
    paper_cols = PAPER_COLUMNS["anet" if args.anet else "thumos"]
    lines = [f"# BMN and ActionFormer on the embedded {DATASETS[args.dataset]['paper']}-like data, "
             f"{args.ratio}% labeled", "",
             f"mAP, AR@100 and AUC (%), mean ± sample std over the seeds that finished (of "
             f"{' '.join(map(str, args.seeds))}); the paper's Table 1 ({DATASETS[args.dataset]['paper']}; its "
             f"BMN rows on TSN features, its ActF rows on I3D) beside them. Runs in {args.out} (BMN) and "
             f"{args.actf_out} (ActionFormer).", "",
             "| method | " + " | ".join(names) + " | seeds | " + " | ".join(f"paper {c}" for c in paper_cols) + " |",
             "|---" * (len(names) + 2 + len(paper_cols)) + "|"]
    for name in rows_of(args, args.seeds[0]):
        found = {s: figures(per_seed[s][name], columns) for s in args.seeds if per_seed[s][name]}
        record["rows"][name] = found
        paper = paper_row(args, name)
        if not found and not paper:
            continue
        cells = [fmt([v[i] for v in found.values()]) for i in range(len(names))]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(found)} | "
                     + " | ".join("" if paper is None else f"{p}" for p in (paper or paper_cols)) + " |")
    npl = PAPER["anet" if args.anet else "thumos"].get(args.ratio, {}).get("NPL (BMN)")
    if npl:
        lines.append("| NPL (BMN) (the paper's) | " + " | " * len(names) + " | "
                     + " | ".join(f"{p}" for p in npl) + " |")
    lines += [""] + gain_lines(args, record, names) + [""] + cost_lines(args, record)
    return "\n".join(lines) + "\n", record


GAINS = [("APL (ActF) - ActF*", "ActF*", "APL (ActF)"),
         ("the ActF round (APL (ActF) - its supervised detector)", "APL (ActF)'s supervised detector (ALQA + ACP)",
          "APL (ActF)"),
         ("the BMN round, background {b} (APL (BMN) - BMN*)", "BMN* (from ACP)", "APL (BMN), background {b}")]


def gain_lines(args, record, names):
    """Each gain paired by seed (the seeds where both runs finished): mean ± std of the differences."""
    lines = ["Gains paired by seed (points):", "", "| gain | " + " | ".join(names) + " | seeds |",
             "|---" * (len(names) + 2) + "|"]
    pairs = [(g, a, b) for g, a, b in GAINS if "{b}" not in g]
    pairs += [(g.format(b=bg), a, b.format(b=bg)) for g, a, b in GAINS if "{b}" in g for bg in args.backgrounds]
    if len(args.backgrounds) > 1:
        first = args.backgrounds[0]
        pairs += [(f"background {bg} - background {first} (same BMN*, same pseudo labels)",
                   f"APL (BMN), background {first}", f"APL (BMN), background {bg}") for bg in args.backgrounds[1:]]
    for gain, base, top in pairs:
        a, b = record["rows"].get(base, {}), record["rows"].get(top, {})
        seeds = [s for s in args.seeds if s in a and s in b]
        if not seeds:
            continue
        diffs = [[None if b[s][i] is None or a[s][i] is None else b[s][i] - a[s][i] for s in seeds]
                 for i in range(len(names))]
        record["gains"][gain] = {"seeds": seeds, "diffs": diffs}
        lines.append(f"| {gain} | " + " | ".join(fmt(d, "+") for d in diffs) + f" | {len(seeds)} |")
    return lines


def cost_lines(args, record):
    """Per stage: training seconds per iteration (log.jsonl), wall seconds and peak RSS (.usage.json)."""
    lines = ["Cost per stage, mean ± std over seeds (one thread each; other jobs may share the machine, "
             "see the wall times): training seconds per iteration, the stage's wall time, its peak "
             "resident memory (max RSS). A blank: not measured (a run reused from before the measurement).", "",
             "| detector | stage | s / iteration | wall s | max RSS MB | seeds |", "|---|---|---|---|---|---|"]
    table = {}
    for seed in args.seeds:
        for detector, stage, run, log in stage_runs(args, seed):
            usage = read_json(usage_path(os.path.join(run, log + ".log"))) or {}
            if log == "stage" and not os.path.exists(os.path.join(run, "done")):
                continue  # a training run still going (or stopped): its figures are partial
            speed = per_iteration(run) if log == "stage" else None
            if usage or speed is not None:
                table.setdefault((detector, stage), []).append((speed, usage.get("wall_s"), usage.get("max_rss_mb")))
    for (detector, stage), values in table.items():
        cols = [fmt([v[i] for v in values]) for i in range(3)]
        record["cost"].append({"detector": detector, "stage": stage, "values": values})
        lines.append(f"| {detector} | {stage} | " + " | ".join(cols) + f" | {len(values)} |")
    return lines


# ---------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="anet")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ratio", type=int, default=10, help="labeled percentage (a split file must exist)")
    parser.add_argument("--backgrounds", nargs="+", default=["all"], choices=["all", "rejected"],
                        help="semi.background of BMN's round, one round each from the same BMN* and pseudo labels")
    parser.add_argument("--out", default=None, help="output folder (default outputs/bench_bmn_<dataset>)")
    parser.add_argument("--actf-out", default=None,
                        help="ActionFormer's runs, reproduce.py's layout (default OUT/actf); a reproduce.py --out "
                             "of the same config and ratio is reused")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--report", action="store_true", help="the tables from the runs found, run nothing")
    args = parser.parse_args(argv)
    args.out = args.out or f"outputs/bench_bmn_{args.dataset}"
    args.actf_out = args.actf_out or os.path.join(args.out, "actf")
    return args


def main(argv=None):
    args = parse_args(argv)
    if not args.report:
        spec = DATASETS[args.dataset]
        for b in args.backgrounds:  # every config is valid before an hour of training starts
            load_config(spec["bmn"], [f"semi.background={b}"])
        make_data(load_config(spec["actf"]))  # the embedded dataset, its splits
        make_data(load_config(spec["bmn"]))  # and the scores file BMN's config names
        run = runners(args)
        cells = [cell_steps(args, run, s) for s in args.seeds]
        total = len({step[3] for c in cells for step in c if not os.path.exists(step[3])})
        run["bmn"].total_runs = total
        print(f"{args.dataset}, {args.ratio}% labeled, seeds {args.seeds}, BMN backgrounds {args.backgrounds}: "
              f"{total} steps to run (finished ones in {args.out} and {args.actf_out} are reused)", flush=True)
        started = time.time()
        run["bmn"].run_cells(cells)  # a step carries its whole command: one Runner runs both detectors' steps
        print(f"finished in {(time.time() - started) / 60:.1f} min")
    text, record = report(args)
    atomic_write_text(os.path.join(args.out, "bmn.md"), text)
    atomic_write_text(os.path.join(args.out, "bmn.json"), json.dumps(record, indent=1) + "\n")
    print("\n" + text + f"\nwrote {os.path.join(args.out, 'bmn.md')}")
    return text


if __name__ == "__main__":
    main()
