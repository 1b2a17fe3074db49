"""The semi-supervised round on every difficulty preset of the embedded generator, over seeds.

For each preset (synthetic/thumos_like.py's small, scenes, blurry, confusable, hard, relu, lean, unseen,
varied, mirror, fuzzy with --config; synthetic/anet_like.py's anet, anet_hard with configs/anet_synthetic.yaml) and seed,
chains the stage scripts with the config's defaults:
  ACP pre-training -> supervised detector (10% labeled) -> evaluation
  per variant: pseudo labels -> semi-supervised round 1 -> evaluation -> pseudo labels from
               round 1 -> round 2 -> evaluation -> ... (--rounds, default 3 as runs/main.sh)
  oracle:      the round trained on the unlabeled videos' true labels (benchmarks/oracle_labels.py)
               from the same supervised detector -> evaluation: the ceiling of one full round
               (--oracle-epochs, 10 whatever the config's semi.epochs)
and, with --plain, the plain ActionFormer settings (alqa none, acp none) on the labeled videos and
on every training video (100% labeled, the preset's full-label regime). Each preset also reports
the nearest-prototype probe (harness.probe_accuracy, as benchmarks/probe_classes.py): how often the
labeled actions' raw features name an unlabeled action's class, the ground a rule on the features'
geometry stands on.
Presets in HELD_OUT are reported apart: no default is chosen on them (pick on the others' worst,
then read the held-out row).
A variant is a name and the overrides of its pseudo-label and semi-supervised steps ("default"
has none; "paper" is the paper's recipe, `recipe=paper`: every point outside the pseudo labels is
background, a pseudo label's class target is its label alone, beta 2, tau_neg 0.15, tau_pos = mean
+ 1 std, each round selected afresh, the detector's own classes, MPP by the ICD's S_i;
`round_init=supervised` among a variant's overrides starts each of its rounds from the supervised
weights, `round_init=acp` from the ACP pre-trained ones). Finished steps under --out are reused,
and several copies of the command share the work through lock files (OMP_NUM_THREADS=1 each on
the CPU).

Prints per preset: avg mAP (%) as mean ± sample std over the seeds that finished, the share of the
supervised -> oracle gap each round closed, and writes OUT/presets.md and OUT/presets.json.
The check: exits with status 1, naming them, when a variant's round ends below its supervised
start on any preset (the change paired by seed, averaged over the seeds found); --check names
the variants checked (default: default).

  python benchmarks/bench_presets.py                                # every preset, seeds 0 1 2
  python benchmarks/bench_presets.py --presets hard --seeds 0 1 2 --variants default paper
  python benchmarks/bench_presets.py --variant dense=pseudo.tau_neg=0.05,pseudo.pos_std=0.0
  python benchmarks/bench_presets.py --report                       # tables from the runs found
  python benchmarks/bench_presets.py --presets anet_hard --plain --plain-only   # calibrate a preset
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common.config import atomic_write_text, load_config  # noqa: E402
from harness import ALL_PRESETS, PRESET_NAMES, Runner, mean_std, preset_config, preset_sets, probe_by_parts  # noqa: E402
from synthetic.make import make_data  # noqa: E402
from synthetic.thumos_like import HELD_OUT  # noqa: E402

# The paper's reading of the round, next to whatever the defaults are now.
VARIANTS = {
    "default": [],
    "paper": ["recipe=paper"],  # common/config.py RECIPES
}
PLAIN = ["model.alqa=none", "acp.mode=none"]


def args_of(args, preset, seed, extra=()):
    sets = preset_sets(preset, args.ratio) + [f"seed={seed}"] + list(extra) + args.set
    return (["--config", preset_config(preset, args.config), "--device", args.device, "--no-progress"]
            + sum((["--set", s] for s in sets), []))


def evaluation(label, sets, run):
    metrics = os.path.join(run, "metrics.json")
    return (label, "evaluate.py", sets + ["--checkpoint", os.path.join(run, "last.pt"), "--out",
                                          os.path.join(run, "predictions.json"), "--json", metrics,
                                          "--no-per-class"], metrics, os.path.join(run, "evaluate.log"))


ROUND_INITS = ("previous", "supervised", "acp")


def variant_overrides(sets):
    """A variant's config overrides, and where its rounds start: `round_init=previous` (from the
    round before's detector, the default), `supervised` (each round from the supervised weights, on
    the pseudo labels of the round before's detector) or `acp` (a fresh student: each round from
    the ACP pre-trained weights, heads from scratch, on labeled and pseudo-labeled videos)."""
    inits = [s.partition("=")[2] for s in sets if s.startswith("round_init=")]
    if any(i not in ROUND_INITS for i in inits):
        raise SystemExit(f"round_init: expected one of {', '.join(ROUND_INITS)}, got {inits}")
    return [s for s in sets if not s.startswith("round_init=")], (inits or ["previous"])[-1]


def semi_steps(label, sets, init, pl, run, pl_script="pseudo_label.py", start=None, previous=None):
    """Pseudo labels from `init`'s detector (`previous`: the round before's file, for
    pseudo.carry_over), the round from `start` (default: `init`), evaluation."""
    pl_args = sets + (["--checkpoint", init] if pl_script == "pseudo_label.py" else []) + ["--out", pl]
    pl_args += ["--previous", previous] if previous else []
    start = init if start is None else start
    return [(label, pl_script, pl_args, pl, os.path.join(run, "pseudo_label.log")),
            (label, "train_semi.py", sets + ["--init", start, "--pseudo-labels", pl, "--out", run, "--resume"],
             os.path.join(run, "done"), os.path.join(run, "stage.log")),
            evaluation(label, sets, run)]


def cell_steps(args, preset, seed):
    """Every step of one (preset, seed), in an order that runs the shared ones first."""
    base = os.path.join(args.out, preset, f"seed{seed}")
    label = f"{preset}, seed {seed}"
    sets = args_of(args, preset, seed)
    acp, sup = os.path.join(base, "acp"), os.path.join(base, "supervised")
    init = os.path.join(sup, "last.pt")
    steps = [] if args.plain_only else [
             (label, "pretrain_acp.py", sets + ["--out", acp, "--resume"], os.path.join(acp, "done"),
              os.path.join(acp, "stage.log")),
             (label, "train_supervised.py", sets + ["--init", os.path.join(acp, "last.pt"), "--out", sup, "--resume"],
              os.path.join(sup, "done"), os.path.join(sup, "stage.log")),
             evaluation(label, sets, sup)]
    for name in [] if args.plain_only else args.variants:
        overrides, round_init = variant_overrides(args.variant_sets[name])
        start = {"supervised": init, "acp": os.path.join(acp, "last.pt")}.get(round_init)
        vsets = args_of(args, preset, seed, overrides)
        prev, prev_pl = init, None
        for r in range(1, args.rounds + 1):
            run = os.path.join(base, name, f"round{r}")
            steps += semi_steps(f"{label}, {name} round {r}", vsets, prev, os.path.join(run, "pseudo_labels.json"), run,
                                start=start or prev, previous=prev_pl)
            prev, prev_pl = os.path.join(run, "last.pt"), os.path.join(run, "pseudo_labels.json")
    if args.oracle and not args.plain_only:
        run = os.path.join(base, "oracle")
        osets = sets + ["--set", f"semi.epochs={args.oracle_epochs}"]
        steps += semi_steps(f"{label}, oracle", osets, init, os.path.join(run, "pseudo_labels.json"), run,
                            pl_script="benchmarks/oracle_labels.py")
    if args.plain is not None:
        full = PLAIN + ["dataset.labeled_split=null", "dataset.unlabeled_split=null"]
        wanted = set(args.plain or ["labeled", "full"])
        for sub, extra in (("plain", PLAIN), ("plain_full", full)):
            if {"plain": "labeled", "plain_full": "full"}[sub] not in wanted:
                continue
            run, psets = os.path.join(base, sub), args_of(args, preset, seed, extra)
            steps += [(f"{label}, {sub}", "train_supervised.py", psets + ["--out", run, "--resume"],
                       os.path.join(run, "done"), os.path.join(run, "stage.log")), evaluation(f"{label}, {sub}", psets, run)]
    return steps


# ---------------------------------------------------------------- the report

def read_avg(path):
    path = os.path.join(path, "metrics.json")
    return 100 * json.load(open(path))["average"] if os.path.exists(path) else None


def rows_of(args, preset):
    """{row name: {seed: avg mAP}} for the runs of a preset found on disk."""
    runs = {"supervised": "supervised", "plain ActionFormer (alqa none, acp none)": "plain",
            "plain ActionFormer, 100% labeled": "plain_full", "oracle round": "oracle"}
    for name in args.variants:
        for r in range(1, args.rounds + 1):
            runs[f"{name} round {r}"] = os.path.join(name, f"round{r}")
    rows = {}
    for row, sub in runs.items():
        found = {s: read_avg(os.path.join(args.out, preset, f"seed{s}", sub)) for s in args.seeds}
        rows[row] = {s: v for s, v in found.items() if v is not None}
    return rows


def fmt(values):
    if not values:
        return ""
    mean, std = mean_std(values)
    return f"{mean:.2f}" if len(values) < 2 else f"{mean:.2f} ± {std:.2f}"


def change(rows, row):
    """Paired change over supervised, mean ± std over the seeds that have both: the seeds share
    their supervised start, so this is surer than the difference of the two means."""
    diffs = [rows[row][s] - rows["supervised"][s] for s in rows[row] if s in rows["supervised"]]
    if not diffs:
        return ""
    mean, std = mean_std(diffs)
    return f"{mean:+.2f}" if len(diffs) < 2 else f"{mean:+.2f} ± {std:.2f}"


def gap_closed(rows, row):
    """Mean over seeds of (round - supervised) / (oracle - supervised), in %."""
    shares = [(rows[row][s] - rows["supervised"][s]) / (rows["oracle round"][s] - rows["supervised"][s])
              for s in rows[row] if s in rows["supervised"] and s in rows["oracle round"]
              and rows["oracle round"][s] > rows["supervised"][s]]
    return f"{100 * sum(shares) / len(shares):.0f}%" if shares else ""


def probe(args, preset):
    """{parts: accuracy (%)} of the nearest-prototype probe on a preset's split, pooling each action
    whole and, where the config's pseudo.prototype_parts is more, in that many pieces as the rule
    does; None before the data exists."""
    cfg = load_config(preset_config(preset, args.config), preset_sets(preset, args.ratio) + args.set)
    if not os.path.exists(cfg["dataset"]["annotation_file"]):
        return None
    return {parts: 100 * got["accuracy"] for parts, got in probe_by_parts(cfg).items()}


def report(args):
    lines = [f"Avg mAP (%) at {args.ratio}% labeled, mean ± sample std over the seeds found (of "
             f"{' '.join(map(str, args.seeds))}); 'change' = the round minus its own supervised start, "
             "paired by seed; 'gap' = share of the supervised -> oracle gap closed; 'probe' = the share of "
             "the unlabeled actions the labeled actions' raw-feature prototypes name right. Held-out "
             "presets (no default is chosen on them) come last, apart.", "",
             "| preset | run | avg mAP | seeds | change | gap |", "|---|---|---|---|---|---|"]
    record, failures = {}, []
    chosen = [p for p in args.presets if p not in HELD_OUT]
    for preset in chosen + [p for p in args.presets if p in HELD_OUT]:
        rows = rows_of(args, preset)
        record[preset] = dict(rows)
        accuracy = probe(args, preset)
        shown = f"{preset} (held out)" if preset in HELD_OUT else preset
        for parts, value in (accuracy or {}).items():
            record[preset]["probe" if parts == 1 else f"probe_{parts}_parts"] = value
            pooled = "raw features" if parts == 1 else f"raw features in {parts} parts"
            lines.append(f"| {shown} | probe (nearest prototype, {pooled}) | {value:.1f}% | | | |")
        for row, found in rows.items():
            if found:
                semi = "round" in row and row != "supervised"
                gap = gap_closed(rows, row) if semi and row != "oracle round" else ""
                lines.append(f"| {shown} | {row} | {fmt(list(found.values()))} | {len(found)} | "
                             f"{change(rows, row) if semi else ''} | {gap} |")
        for name in args.check:
            for r in range(1, args.rounds + 1):
                got = rows.get(f"{name} round {r}", {})
                diffs = [got[s] - rows["supervised"][s] for s in got if s in rows["supervised"]]
                if diffs and sum(diffs) < 0:
                    failures.append(f"{preset}: {name} round {r} changed supervised by {sum(diffs) / len(diffs):+.2f} "
                                    f"points on average over seeds {sorted(got)}")
    text = "\n".join(lines) + "\n"
    atomic_write_text(os.path.join(args.out, "presets.md"), text)
    atomic_write_text(os.path.join(args.out, "presets.json"), json.dumps(record, indent=1) + "\n")
    return text, failures


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--presets", nargs="+", choices=ALL_PRESETS, default=PRESET_NAMES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ratio", type=int, default=10, help="labeled percentage (10, 20, 40 or 60)")
    parser.add_argument("--variants", nargs="+", default=["default", "paper"],
                        help="variants to run (default and paper are built in; others via --variant)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE,KEY=VALUE",
                        help="define a variant by its overrides of the pseudo-label and semi steps (repeatable)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per variant (default 3: runs/main.sh's)")
    parser.add_argument("--no-oracle", dest="oracle", action="store_false")
    parser.add_argument("--oracle-epochs", type=int, default=10,
                        help="semi.epochs of the oracle round (default 10, one full round whatever the config's "
                             "round length: a round of 4 epochs on the true labels reaches 10 points less on relu, "
                             "and a ceiling that falls with the round would flatter its gap)")
    parser.add_argument("--plain", nargs="*", choices=["labeled", "full"], default=None,
                        help="also the plain ActionFormer detector: on the labeled videos, on every training "
                             "video (100%% labeled), or both (the flag alone)")
    parser.add_argument("--plain-only", action="store_true",
                        help="only the plain detector's runs (--plain's), to calibrate a preset")
    parser.add_argument("--check", nargs="+", default=["default"], help="variants whose rounds must beat supervised")
    parser.add_argument("--out", default="outputs/presets")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every run (part of no run's name: use a new --out)")
    parser.add_argument("--report", action="store_true", help="the tables from the runs found, run nothing")
    args = parser.parse_args(argv)
    if args.plain_only and args.plain is None:  # calibrating: both plain runs unless --plain names one
        args.plain = []
    args.variant_sets = dict(VARIANTS)
    for text in args.variant:
        name, _, sets = text.partition("=")
        if not name or not sets:
            parser.error(f"--variant expects NAME=KEY=VALUE[,KEY=VALUE...], got {text!r}")
        args.variant_sets[name] = sets.split(",")
    unknown = [v for v in args.variants + args.check if v not in args.variant_sets]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; define it with --variant {unknown[0]}=KEY=VALUE,...")
    return args


def main(argv=None):
    args = parse_args(argv)
    for preset in args.presets:  # every override is valid before hours of training start
        load_config(preset_config(preset, args.config), preset_sets(preset, args.ratio) + args.set
                    + sum((variant_overrides(v)[0] for v in args.variant_sets.values()), []))
    if not args.report:
        for preset in args.presets:  # each preset's dataset and splits, where the stages read them
            make_data(load_config(preset_config(preset, args.config), preset_sets(preset, args.ratio) + args.set))
        runner = Runner(args, None, None)
        cells = [cell_steps(args, p, s) for s in args.seeds for p in args.presets]
        runner.total_runs = len({step[3] for c in cells for step in c if not os.path.exists(step[3])})
        print(f"presets {args.presets}, seeds {args.seeds}, variants {args.variants}: {runner.total_runs} "
              f"steps to run (finished ones in {args.out} are reused)", flush=True)
        runner.run_cells(cells)
        print(f"finished in {(time.time() - runner.started) / 60:.1f} min")
    text, failures = report(args)
    print("\n" + text + f"\nwrote {os.path.join(args.out, 'presets.md')}")
    if failures:
        print("CHECK FAILED: the semi-supervised round ended below its supervised start:\n  "
              + "\n  ".join(failures), file=sys.stderr)
        raise SystemExit(1)
    return text


if __name__ == "__main__":
    main()
