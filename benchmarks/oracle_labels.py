"""The oracle's pseudo-label file: the unlabeled videos' true annotations, in pseudo_label.py's schema.

A benchmark tool, for data whose unlabeled videos carry ground truth (the embedded presets, a
held-out benchmark): train_semi.py on this file gives the ceiling of one semi-supervised round,
so "how much of the possible gain did APL take" becomes a number (benchmarks/bench_presets.py).
Segments are those the annotation reader keeps (clipped to their video, past-the-end ones dropped),
each with score 1 and origin "oracle".

  python benchmarks/oracle_labels.py --config configs/default.yaml --out outputs/oracle_pl.json
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common.config import atomic_write_text  # noqa: E402
from common.stage import add_common_args, config_from_args, load_data, make_parser, run_main, unlabeled_ids  # noqa: E402


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
    return {"version": "apl-pseudo-labels-v1", "meta": meta, "database": database}


def main(argv=None):
    parser = add_common_args(make_parser(__doc__))
    parser.add_argument("--out", required=True, help="the pseudo-label JSON to write")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    videos, classes = load_data(cfg)
    ids = unlabeled_ids(cfg, videos)
    data = oracle_file(videos, classes, ids, cfg["dataset"]["train_subset"])
    atomic_write_text(args.out, json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out}: the true labels of {len(ids)} unlabeled videos "
          f"({data['meta']['counts']['positive']} actions)")
    return args.out


if __name__ == "__main__":
    run_main(main)
