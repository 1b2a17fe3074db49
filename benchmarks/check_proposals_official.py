"""Check common.metrics' AR@AN / AUC against the official ActivityNet proposal evaluation, and time it.

Reads: with --official, the folder of the official Evaluation/eval_proposal.py and utils.py of
activitynet/ActivityNet (not a package; Python 2; it needs pandas, which is not a project requirement:
`pip install --target /tmp/anet_deps pandas` and PYTHONPATH=/tmp/anet_deps will do). A temporary,
mechanically rewritten copy is imported (benchmarks/harness.py's PY3_REWRITES, plus np.int and np.trapz,
gone from numpy) and its ANETproposal scores the files, its AUC read from the line it prints.
Without --official, or where that import fails, the reference is the slow line-by-line transcription
of the official algorithm below (official_curve, which tests/test_proposals.py holds our code
to as well), and the output says so.

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
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # run as a plain script from anywhere
from common.metrics import PROPOSAL_TIOU, average_recall_curve, proposal_metrics  # noqa: E402
from harness import PY3_REWRITES, exit_on_mismatch, rewrite_official, timed  # noqa: E402

TOLERANCE = 1e-9
REWRITES = PY3_REWRITES + [(r"\bnp\.int\b", "int")]  # np.int was the builtin int
if not hasattr(np, "trapz"):  # renamed in numpy 2.0, then removed
    REWRITES.append((r"\bnp\.trapz\b", "np.trapezoid"))
ANET_TIOU = np.linspace(0.5, 0.95, 10)  # the official default, 0.8999999999999999 included


# ---------------------------------------------------------------- the official algorithm, slowly
# (tests/test_proposals.py holds common.metrics to it too)

def official_tiou(proposal, truth):
    """utils.segment_iou for one pair, numpy's division included: 0 / 0 is NaN, recalled nowhere."""
    inter = max(min(proposal[1], truth[1]) - max(proposal[0], truth[0]), 0.0)
    union = (truth[1] - truth[0]) + (proposal[1] - proposal[0]) - inter
    return inter / union if union else float("nan")


def official_curve(ground_truth, proposals, max_avg_nr_proposals=None, tiou_thresholds=ANET_TIOU):
    """average_recall_vs_avg_nr_proposals and evaluate()'s AUC, line by line, lists for DataFrames.
    Returns (recall, avg_recall, proposals_per_video, auc); raises ZeroDivisionError where it does."""
    video_lst = [v for v, items in ground_truth.items() if items]  # ground_truth['video-id'].unique()
    n_all = sum(len(items) for items in proposals.values())  # proposals.shape[0]: every video's
    if not max_avg_nr_proposals:
        max_avg_nr_proposals = float(n_all) / len(video_lst)
    ratio = max_avg_nr_proposals * float(len(video_lst)) / n_all
    score_lst, total_nr_proposals = [], 0
    for videoid in video_lst:
        truths = [g["segment"] for g in ground_truth[videoid]]
        mine = proposals.get(videoid, [])
        if not mine:  # get_group fails: one column of tIoU 0
            score_lst.append(np.zeros((len(truths), 1)))
            continue
        sort_idx = np.argsort(np.array([p["score"] for p in mine], dtype=float))[::-1]  # the official line
        ranked = [mine[i]["segment"] for i in sort_idx]
        nr_proposals = np.minimum(int(len(ranked) * ratio), len(ranked))
        total_nr_proposals += nr_proposals
        ranked = ranked[:nr_proposals]
        score_lst.append(np.array([[official_tiou(p, t) for p in ranked] for t in truths]).reshape(len(truths), -1))
    with np.errstate(all="ignore"):  # total_nr_proposals an np.int64 0: inf and NaN, as the official
        pcn_lst = np.arange(1, 101) / 100.0 * (max_avg_nr_proposals * float(len(video_lst)) / total_nr_proposals)
        matches = np.empty((len(video_lst), 100))
        positives = np.empty(len(video_lst))
        recall = np.empty((len(tiou_thresholds), 100))
        for ridx, tiou in enumerate(tiou_thresholds):
            for i, score in enumerate(score_lst):
                positives[i] = score.shape[0]
                true_positives_tiou = score >= tiou
                pcn_proposals = np.minimum((score.shape[1] * pcn_lst).astype(int), score.shape[1])
                for j, nr_proposals in enumerate(pcn_proposals):
                    matches[i, j] = np.count_nonzero((true_positives_tiou[:, :nr_proposals]).sum(axis=1))
            recall[ridx, :] = matches.sum(axis=0) / positives.sum()
        avg_recall = recall.mean(axis=0)
        proposals_per_video = pcn_lst * (float(total_nr_proposals) / len(video_lst))
        area_under_curve = np.trapezoid(avg_recall, proposals_per_video)
        auc = 100. * float(area_under_curve) / proposals_per_video[-1]
    return recall, avg_recall, proposals_per_video, auc


def random_case(rng, integer, n_videos=None):
    """Videos with 0-5 ground truths, 0-130 proposals each (jittered from a ground truth or anywhere), two
    videos without ground truth that have proposals. integer=True puts segments and scores on a coarse
    grid so that scores and tIoUs tie and tIoUs meet thresholds exactly."""
    num = (lambda lo, hi: float(rng.randint(lo, hi))) if integer else rng.uniform
    n_videos = n_videos or rng.randint(2, 7)
    truth, proposals = {}, {}
    for v in range(n_videos):
        truth[f"v{v}"] = []
        for _ in range(rng.choice([0, 1, 1, 2, 3, 5])):
            start = num(0, 60)
            truth[f"v{v}"].append({"label": "A", "segment": [start, start + num(1, 30)]})
    for v in range(n_videos + 2):
        if rng.random() < 0.2:
            continue  # a video without proposals
        anchors, items = truth.get(f"v{v}", []), []
        for _ in range(rng.choice([1, 2, 5, 20, 60, 130])):
            if anchors and rng.random() < 0.5:
                s, e = rng.choice(anchors)["segment"]
                s, e = s + num(-4, 4), e + num(-4, 4)
            else:
                s = num(0, 80)
                e = s + num(1, 30)
            score = float(rng.randint(0, 6)) if integer else rng.random()
            items.append({"label": "A", "score": score, "segment": [s, max(e, s + 1)]})
        proposals[f"v{v}"] = items
    return truth, proposals


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
    rewrite_official(folder, tmp, ("eval_proposal.py", "utils.py"), REWRITES)
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
    # 1. The reference: the official code if it runs here, else its transcription above.
    tmp_dir = tempfile.TemporaryDirectory(prefix="anet_prop_")
    tmp = Path(tmp_dir.name)
    ANETproposal = load_official(args.official, tmp) if args.official else None
    if ANETproposal is None:
        print("reference: the slow transcription official_curve, NOT the official code "
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
    wall, cpu = timed(proposal_metrics, truth, proposals)
    print(f"\nproposal_metrics: {args.bench_videos} videos, {100 * args.bench_videos} proposals: "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU")

    exit_on_mismatch(worst, TOLERANCE, "reference")


if __name__ == "__main__":
    main()
