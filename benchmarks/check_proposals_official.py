"""Check common.metrics' AR@AN / AUC against the official ActivityNet proposal evaluation, and time it.

Reads: with --official, the folder of the official Evaluation/eval_proposal.py and utils.py of
activitynet/ActivityNet (not a package; Python 2; it needs pandas, which is not a project requirement:
`pip install --target /tmp/anet_deps pandas` and PYTHONPATH=/tmp/anet_deps will do). A temporary,
mechanically rewritten copy is imported (benchmarks/harness.py's PY3_REWRITES, plus np.int and np.trapz,
gone from numpy) and its ANETproposal scores the files, its AUC read from the line it prints.
Without --official, or where that import fails, the reference is the slow line-by-line transcription
of the official algorithm in tests/test_proposals.py, and the output says so.

Generates random ground truth and proposals (videos without proposals, proposals on videos without
ground truth, 1 to 130 a video; every other data set on a coarse grid, with tied scores, which both
rank by numpy's argsort as the official line does), writes them in the official formats and compares
the AR-AN curve, AR@1/5/10/100 and AUC at max_avg_nr_proposals 100 (get_proposal_performance.py's),
at the official default (N / V) and at 10. Exits 1 if any differs by more than 1e-9. Then times
proposal_metrics at ActivityNet's size.

Example:
    PYTHONPATH=/tmp/anet_deps python benchmarks/check_proposals_official.py --official /tmp/ActivityNet/Evaluation
"""
import argparse
import contextlib
import io
import json
import random
import re
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # run as a plain script from anywhere
from common.metrics import PROPOSAL_TIOU, average_recall_curve, proposal_metrics  # noqa: E402
from harness import PY3_REWRITES  # noqa: E402
from test_proposals import official_curve, random_case  # noqa: E402

TOLERANCE = 1e-9
REWRITES = PY3_REWRITES + [(r"\bnp\.int\b", "int")]  # np.int was the builtin int
if not hasattr(np, "trapz"):  # renamed in numpy 2.0, then removed
    REWRITES.append((r"\bnp\.trapz\b", "np.trapezoid"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, help="folder holding the official eval_proposal.py and utils.py")
    parser.add_argument("--seeds", type=int, default=5, help="random data sets compared")
    parser.add_argument("--videos", type=int, default=40, help="videos with (possibly no) ground truth per data set")
    parser.add_argument("--bench-videos", type=int, default=4926,
                        help="videos in the timing (ActivityNet v1.3 validation: 4,926 with ground truth)")
    return parser.parse_args(argv)


def load_official(folder, tmp):
    """ANETproposal from a Python-3 rewrite of the official files written into tmp; None if it cannot run."""
    for name in ("eval_proposal.py", "utils.py"):
        text = (folder / name).read_text()
        for pattern, repl in REWRITES:
            text = re.sub(pattern, repl, text, flags=re.MULTILINE)
        (tmp / name).write_text(text)
    if "joblib" not in sys.modules:  # imported, never used by the proposal evaluation
        sys.modules["joblib"] = types.SimpleNamespace(Parallel=None, delayed=None)
    sys.path.insert(0, str(tmp))
    try:
        import eval_proposal
    except ImportError as e:
        print(f"cannot import the official code ({e})")
        return None
    return eval_proposal.ANETproposal


def official_run(ANETproposal, truth, proposals, max_avg, tmp):
    """(recall, avg_recall, proposals_per_video, AUC) of the official code on files in the official formats."""
    database = {v: {"subset": "validation", "annotations": items} for v, items in truth.items()}
    (tmp / "gt.json").write_text(json.dumps({"version": "check", "taxonomy": [], "database": database}))
    (tmp / "prop.json").write_text(json.dumps({"version": "check", "results": proposals, "external_data": {}}))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # evaluate() prints the AUC and keeps it nowhere
        anet = ANETproposal(str(tmp / "gt.json"), str(tmp / "prop.json"), tiou_thresholds=PROPOSAL_TIOU,
                            max_avg_nr_proposals=max_avg, subset="validation", verbose=True, check_status=False)
        anet.evaluate()
    auc = float(re.search(r"Area Under the AR vs AN curve: (\S+)%", printed.getvalue()).group(1))
    return anet.recall, anet.avg_recall, anet.proposals_per_video, auc


def compare(reference, truth, proposals, max_avg):
    """Largest absolute difference between the reference's curve (and, at 100, AR@AN and AUC) and ours."""
    recall, avg, x, auc = reference(truth, proposals, max_avg)
    ours = average_recall_curve(truth, proposals, max_avg_nr_proposals=max_avg)
    worst = max(np.abs(ours["recall"] - recall).max(), np.abs(ours["average_recall"] - avg).max(),
                np.abs(ours["proposals_per_video"] - x).max())
    line = f"  max_avg {str(max_avg):>4}: {ours['num_kept']:5d} of {ours['num_proposals']} proposals kept"
    if max_avg == 100:
        metrics = proposal_metrics(truth, proposals)
        figures = [(f"AR@{an}", 100 * avg[an - 1], 100 * metrics[f"AR@{an}"]) for an in (1, 5, 10, 100)]
        figures.append(("AUC", auc, metrics["AUC"]))
        worst = max(worst, *(abs(a - b) / (1 if name == "AUC" else 100) for name, a, b in figures))
        line += "  " + "  ".join(f"{name} {a:.4f}/{b:.4f}" for name, a, b in figures)
    print(f"{line}  max |diff| {worst:.1e}")
    return worst


def timing_data(rng, n_videos):
    """ActivityNet-like: 1-3 ground truths and 100 proposals a video, some near a ground truth."""
    truth, proposals = {}, {}
    for v in range(n_videos):
        duration = rng.uniform(30, 300)
        starts = rng.uniform(0, 0.8 * duration, rng.integers(1, 4))
        truth[f"v{v}"] = [{"segment": [s, s + rng.uniform(0.05, 0.2) * duration]} for s in starts]
        s = rng.uniform(0, 0.9 * duration, 100)
        proposals[f"v{v}"] = [{"score": p, "segment": [a, a + d]}
                              for p, a, d in zip(rng.random(100), s, rng.uniform(1, 0.5 * duration, 100))]
    return truth, proposals


def main(argv=None):
    args = parse_args(argv)
    # 1. The reference: the official code if it runs here, else the transcription of the tests.
    tmp_dir = tempfile.TemporaryDirectory(prefix="anet_prop_")
    tmp = Path(tmp_dir.name)
    ANETproposal = load_official(args.official, tmp) if args.official else None
    if ANETproposal is None:
        print("reference: the slow transcription in tests/test_proposals.py, NOT the official code "
              "(pass --official with pandas importable to run it)")
        reference = official_curve
    else:
        print(f"reference: the official {args.official / 'eval_proposal.py'} (Python-3 rewrite)")
        def reference(truth, proposals, max_avg):
            return official_run(ANETproposal, truth, proposals, max_avg, tmp)

    # 2. Reference vs ours on random data; figures in percent (official / ours).
    worst = 0.0
    for seed in range(args.seeds):
        truth, proposals = random_case(random.Random(seed), integer=seed % 2 == 1, n_videos=args.videos)
        print(f"seed {seed}: {sum(map(bool, truth.values()))} videos with ground truth"
              f"{', tied scores' if seed % 2 else ''}")
        for max_avg in (100, None, 10):  # 10: a cut that bites (about 30 a video here)
            worst = max(worst, compare(reference, truth, proposals, max_avg))
    tmp_dir.cleanup()

    # 3. Speed of proposal_metrics alone at ActivityNet's size.
    truth, proposals = timing_data(np.random.default_rng(0), args.bench_videos)
    wall, cpu = time.perf_counter(), time.process_time()
    proposal_metrics(truth, proposals)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"\nproposal_metrics: {args.bench_videos} videos, {100 * args.bench_videos} proposals: "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU")

    print(f"max |reference - ours|: {worst:.2e} (tolerance {TOLERANCE:.0e})")
    if worst > TOLERANCE:
        sys.exit(1)


if __name__ == "__main__":
    main()
