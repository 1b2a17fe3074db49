"""How well each score of a pseudo-label file ranks its entries, against the unlabeled videos' truth.

Every entry of the file (its pseudo labels and its rejected predictions) is right when a true action
of its video overlaps it at tIoU >= 0.5 ("located", whatever the class) and, stricter, when that
action is also of its class ("located, right class"). For each score the file gives an entry (the
joint score of Eq. 4, ICD's S_i of Eq. 10, P_cls, the predicted tIoU), the ROC AUC says how often a
right entry outscores a wrong one (0.5: no better than chance), and per origin / reason the share
of right entries. EAP and MPP (Sec. 3.2) act on S_i: where its AUC is near 0.5 they remove and
promote entries at random. Needs the truth, so it is a benchmark on the embedded data, not a stage.

  python benchmarks/score_ranking.py outputs/presets_clip/hard/seed0/default/round1/pseudo_labels.json \
      --truth data/synthetic_hard/annotations.json
"""
import argparse
import json
import os
import sys

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import pseudo_file  # noqa: E402
from common.data import load_annotations  # noqa: E402
from common.metrics import segment_tiou  # noqa: E402

SCORES = (("score", "joint score (Eq. 4)"), ("icd", "ICD S_i (Eq. 10)"), ("cls_score", "P_cls"),
          ("tiou", "predicted tIoU"))


def judged(pseudo, truth):
    """Per entry of the pseudo-label database: (kind, {score name: value}, located, right class);
    kind is a pseudo label's origin or a rejected entry's reason."""
    rows = []
    for vid, video in sorted(pseudo.items()):
        actions = truth[vid]["annotations"]
        segments = np.array([a["segment"] for a in actions], dtype=np.float64).reshape(-1, 2)
        labels = np.array([a["label"] for a in actions])
        for entry in video["annotations"] + video.get("rejected", []):
            iou = segment_tiou(np.asarray(entry["segment"], dtype=np.float64), segments) if len(labels) else np.zeros(0)
            located = iou >= 0.5
            rows.append((entry.get("origin", entry.get("reason")), {k: entry.get(k) for k, _ in SCORES},
                         bool(located.any()), bool((located & (labels == entry["label"])).any())))
    return rows


def auc(rows, key, strict):
    """ROC AUC of score `key` for right against wrong entries; None when either is missing."""
    pairs = [(s[key], right) for _, s, located, cls in rows for right in [cls if strict else located]
             if s[key] is not None]
    truth = [r for _, r in pairs]
    if not pairs or all(truth) or not any(truth):
        return None
    return float(roc_auc_score(truth, [v for v, _ in pairs]))


def report(path, truth_path):
    _, classes = load_annotations(truth_path)  # the dataset's class list: a file may hold only some classes
    pseudo = pseudo_file.read(path, classes).database  # checked as the round reads it
    truth = json.load(open(truth_path))["database"]
    missing = sorted(set(pseudo) - set(truth))
    if missing:
        raise SystemExit(f"{truth_path}: video {missing[0]}: not in the truth ({len(missing)} of the file's videos)")
    rows = judged(pseudo, truth)
    fmt = lambda x: "  -  " if x is None else f"{x:.3f}"  # noqa: E731
    lines = [f"{path}: {len(rows)} entries",
             "| score | AUC, located | AUC, located and right class |", "|---|---|---|"]
    lines += [f"| {name} | {fmt(auc(rows, key, False))} | {fmt(auc(rows, key, True))} |" for key, name in SCORES]
    lines += ["", "| entries | n | located | located, right class |", "|---|---|---|---|"]
    for kind in sorted({r[0] for r in rows}):
        sub = [r for r in rows if r[0] == kind]
        lines.append(f"| {kind} | {len(sub)} | {np.mean([r[2] for r in sub]):.2f} | {np.mean([r[3] for r in sub]):.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("files", nargs="+", help="pseudo_label.py's JSON files")
    parser.add_argument("--truth", required=True, help="the dataset's annotation file (the unlabeled videos' truth)")
    args = parser.parse_args(argv)
    for path in args.files:
        print(report(path, args.truth), end="\n\n")


if __name__ == "__main__":
    main()
