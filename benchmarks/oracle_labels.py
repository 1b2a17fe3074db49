"""The oracle's pseudo-label file: the unlabeled videos' true annotations, in pseudo_label.py's schema.

A benchmark tool, for data whose unlabeled videos carry ground truth (the embedded presets, a
held-out benchmark): train_semi.py on this file gives the ceiling of one semi-supervised round,
so "how much of the possible gain did APL take" becomes a number (benchmarks/bench_presets.py).
Segments are those the annotation reader keeps (clipped to their video, past-the-end ones dropped),
each with score 1 and origin "oracle".

Degraded oracles tell which shortfall of the real pseudo labels costs the round most: --keep F
keeps a random share F of each video's true actions and lists the others as rejected (left out of
the classification loss under semi.background: rejected, as missed actions are where the selection
rejected them): fewer labels, none wrong. --class-accuracy P keeps every segment but each action's
label only with probability P, else another class of its group (the generator's class_groups in
the dataset's meta.json, where there is one; else any other class): every action found, its class
as unsure as the detector's. Both draw from --seed.

Against a real pseudo-label file FILE (pseudo_label.py's), two oracles tell its selection from its
boundaries: --found-by FILE keeps only the true actions that one of FILE's pseudo labels overlaps at
tIoU >= 0.5 (the truth of what the selection found); --boundaries-of FILE gives every true action
the boundaries of FILE's best-overlapping listed prediction, accepted or rejected (what the best
selection from that detector could give: the truth picks, the detector draws), an action no entry
overlaps dropped. Neither reads labels: a class-agnostic file's are the classifier's.

  python benchmarks/oracle_labels.py --config configs/default.yaml --out outputs/oracle_pl.json
  python benchmarks/oracle_labels.py --config configs/default.yaml --keep 0.36 --out outputs/oracle36.json
  python benchmarks/oracle_labels.py --config configs/default.yaml --boundaries-of outputs/main/round1/pseudo_labels.json \\
      --dropped background --out outputs/teacher_bounds.json
"""
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common import pseudo_file  # noqa: E402
from common.metrics import segment_tiou  # noqa: E402
from common.stage import add_common_args, config_from_args, load_data, make_parser, run_main, unlabeled_ids  # noqa: E402
from synthetic.make import make_data  # noqa: E402


def oracle_file(videos, classes, ids, train_subset):
    """{"version", "meta", "database"} holding every listed video's ground truth as accepted labels."""
    database = {}
    for vid in sorted(ids):
        v = videos[vid]
        anns = [{"label": classes[int(c)], "segment": [round(float(s), 3), round(float(e), 3)],
                 "label_id": int(c), "score": 1.0, "origin": "oracle"}
                for (s, e), c in zip(v.segments, v.labels)]
        anns.sort(key=lambda a: (a["segment"][0], a["segment"][1], a["label_id"]))
        database[vid] = {"subset": train_subset, "duration": v.duration, "fps": v.fps,
                         "annotations": anns, "rejected": []}
    meta = {"selection": "oracle", "counts": {"videos": len(ids),
                                              "positive": sum(len(d["annotations"]) for d in database.values())}}
    return pseudo_file.file_dict(meta, database)


def dropped_entries(lost, dropped):
    """Where an oracle's dropped actions go: its rejected list, reason "dropped" (left out of the
    classification loss), or, with dropped="background", nowhere (trained as background)."""
    return [{**a, "reason": "dropped"} for a in lost] if dropped == "rejected" else []


def degrade(data, classes, groups, keep, class_accuracy, rng, dropped="rejected"):
    """The oracle file with a share `keep` of each video's actions kept (the rest moved to its
    rejected list, reason "dropped", or, with dropped="background", left out of the file) and each
    kept label right with probability class_accuracy (else another class of its group, origin
    "relabelled"); groups: lists of class names."""
    group_of = {name: [c for c in g if c != name] for g in groups for name in g}
    for video in data["database"].values():
        anns = video["annotations"]
        kept = rng.rand(len(anns)) < keep
        video["rejected"] = dropped_entries([a for a, k in zip(anns, kept) if not k], dropped)
        video["annotations"] = [a for a, k in zip(anns, kept) if k]
        for a in video["annotations"]:
            if rng.rand() >= class_accuracy:
                others = group_of.get(a["label"]) or [c for c in classes if c != a["label"]]
                a["label"] = others[rng.randint(len(others))]
                a["label_id"], a["origin"] = classes.index(a["label"]), "relabelled"
    data["meta"].update({"keep": keep, "class_accuracy": class_accuracy, "dropped": dropped})
    positive = sum(len(v["annotations"]) for v in data["database"].values())
    data["meta"]["counts"].update(positive=positive, dropped=data["meta"]["counts"]["positive"] - positive)
    return data


FOUND_TIOU = 0.5  # --found-by: an action counts as found when a pseudo label overlaps it this much


def against_file(data, database, part, dropped="rejected"):
    """The oracle file measured against a pseudo-label file's `database`: part "found" keeps the
    actions one of its accepted entries overlaps at tIoU >= FOUND_TIOU; part "boundaries" gives
    each action the segment of its best-overlapping listed entry (accepted or rejected; the first
    of equals), dropping one that no entry overlaps (dropped_entries)."""
    kept_total = dropped_total = 0
    for vid, video in data["database"].items():
        theirs = database.get(vid, {})
        listed = theirs.get("annotations", []) + (theirs.get("rejected", []) if part == "boundaries" else [])
        segments = pseudo_file.segments_of(listed)
        keep, lost = [], []
        for a in video["annotations"]:
            tiou = segment_tiou(a["segment"], segments)
            best = tiou.max() if tiou.size else 0.0
            if part == "found" and best >= FOUND_TIOU:
                keep.append(a)
            elif part == "boundaries" and best > 0:
                keep.append({**a, "segment": [float(x) for x in segments[int(tiou.argmax())]]})
            else:
                lost.append(a)
        video["annotations"] = pseudo_file.ordered(keep)
        video["rejected"] = dropped_entries(lost, dropped)
        kept_total, dropped_total = kept_total + len(keep), dropped_total + len(lost)
    data["meta"].update({part: True, "dropped": dropped})
    data["meta"]["counts"].update(positive=kept_total, dropped=dropped_total)
    return data


def class_groups(cfg):
    """The generator's class groups from the dataset's meta.json beside its annotation file; [] when
    there is none."""
    path = os.path.join(os.path.dirname(cfg["dataset"]["annotation_file"]), "meta.json")
    return json.load(open(path)).get("class_groups", []) if os.path.exists(path) else []


def main(argv=None):
    parser = add_common_args(make_parser(__doc__))
    parser.add_argument("--out", required=True, help="the pseudo-label JSON to write")
    parser.add_argument("--keep", type=float, default=1.0, help="share of each video's true actions kept (default 1)")
    parser.add_argument("--class-accuracy", type=float, default=1.0,
                        help="probability that a kept action keeps its label (default 1)")
    parser.add_argument("--dropped", choices=("rejected", "background"), default="rejected",
                        help="where the actions --keep, --found-by or --boundaries-of drop go: the rejected "
                        "list (left out of the loss, default) or nowhere (trained as background, as actions no "
                        "prediction found)")
    parser.add_argument("--seed", type=int, default=0, help="of the degradation's draws")
    against = parser.add_mutually_exclusive_group()
    against.add_argument("--found-by", metavar="FILE", help="keep only the true actions FILE's pseudo labels find")
    against.add_argument("--boundaries-of", metavar="FILE",
                         help="each true action with the boundaries of FILE's best-overlapping listed prediction")
    args = parser.parse_args(argv)
    if (args.found_by or args.boundaries_of) and (args.keep < 1.0 or args.class_accuracy < 1.0):
        parser.error("--found-by / --boundaries-of: not with --keep or --class-accuracy (one shortfall at a time)")
    for name, value in (("--keep", args.keep), ("--class-accuracy", args.class_accuracy)):
        if not 0.0 <= value <= 1.0:
            parser.error(f"{name}: expected a share in [0, 1], got {value}")
    cfg = config_from_args(args)
    make_data(cfg)
    videos, classes = load_data(cfg)
    ids = unlabeled_ids(cfg, videos)
    data = oracle_file(videos, classes, ids, cfg["dataset"]["train_subset"])
    if args.found_by or args.boundaries_of:
        part, path = ("found", args.found_by) if args.found_by else ("boundaries", args.boundaries_of)
        data = against_file(data, pseudo_file.read(path, classes).database, part, args.dropped)
        data["meta"]["against"] = os.path.abspath(path)
    if args.keep < 1.0 or args.class_accuracy < 1.0:
        data = degrade(data, classes, class_groups(cfg), args.keep, args.class_accuracy,
                       np.random.RandomState(args.seed), args.dropped)
    pseudo_file.write(args.out, data)
    counts = data["meta"]["counts"]
    print(f"wrote {args.out}: the true labels of {len(ids)} unlabeled videos ({counts['positive']} actions"
          + (f", {counts['dropped']} dropped ({args.dropped})" if "dropped" in counts else "")
          + (f", class accuracy {args.class_accuracy}" if args.class_accuracy < 1.0 else "")
          + ")")
    return args.out


if __name__ == "__main__":
    run_main(main)
