"""Make the embedded dataset a config names (dataset.synthetic_size), where the config reads it.

The stages only read data; this writes what they read, with the same --config and --set:
- the dataset in the folder of dataset.annotation_file: a THUMOS-like size or preset
  (synthetic/thumos_like.py SIZES) or `anet` / `anet_hard` (synthetic/anet_like.py ANET_PRESETS);
- its stratified labeled/unlabeled splits beside it, splits/labeled_<P>pct.txt and
  unlabeled_<P>pct.txt for P = 10, 20, 40, 60 (seeded by dataset.synthetic_seed; a ratio too small
  to hold every class is skipped);
- with dataset.class_agnostic, the THUMOS-like dataset's video-level scores, when the config names
  them beside it (video_scores.json; the ActivityNet-like dataset comes with its own).
What exists is kept, so a second run only checks (runs/main.sh and the benchmarks make the data
before their stages). It writes into an absent or empty folder only: a folder holding other files
means a mistyped path.

    python -m synthetic --config configs/default.yaml
    python -m synthetic --config configs/anet_synthetic.yaml
"""
import os

from common.data import DataError, load_annotations, make_split, write_split
from common.stage import config_from_args, make_parser, run_main
from synthetic.anet_like import ANET_PRESETS, SPLIT_RATIOS, ensure_anet_dataset
from synthetic.thumos_like import SCORES_FILE, SIZES, ensure_dataset, ensure_video_scores

# What dataset.synthetic_size may name (common/config.py keeps the same list, as common/ does not import this).
SYNTHETIC_SIZES = (*SIZES, *ANET_PRESETS)


def make_data(cfg):
    """Write the embedded dataset cfg names, its splits and its scores file where they are missing;
    return the annotation file (None when the config names no embedded dataset: nothing to make)."""
    dcfg = cfg["dataset"]
    if not dcfg["synthetic_size"]:
        print(f"{dcfg['annotation_file']}: not an embedded dataset (dataset.synthetic_size: null), nothing to make")
        return None
    if not os.path.exists(dcfg["annotation_file"]):
        generate_into(dcfg)
    videos, classes = load_annotations(dcfg["annotation_file"], dcfg["classes"], dcfg["default_fps"])
    ensure_splits(videos, classes, dcfg)
    ensure_scores(dcfg)
    return dcfg["annotation_file"]


def generate_into(dcfg):
    """Generate the embedded dataset where the annotation file should be, but only into an absent or
    empty folder: a folder holding other files means a mistyped path, not a place to write."""
    path = dcfg["annotation_file"]
    root = os.path.dirname(os.path.abspath(path))
    empty = os.path.isdir(root) and not os.listdir(root)
    if os.path.exists(root) and not empty:
        if not os.path.exists(path):  # unless a concurrent run has just generated it there
            raise DataError(f"{path}: no such annotation file (its folder {root} holds other files, so the "
                            "embedded dataset is not generated there)")
        return
    if dcfg["synthetic_size"] in ANET_PRESETS:
        ensure_anet_dataset(root, dcfg["synthetic_seed"], ANET_PRESETS[dcfg["synthetic_size"]])
    else:
        ensure_dataset(root, dcfg["synthetic_size"], dcfg["synthetic_seed"])


def ensure_scores(dcfg):
    """The THUMOS-like embedded dataset's video-level classifier (synthetic/thumos_like.py), written
    beside it when a class-agnostic config names it there and it is missing (the ActivityNet-like one
    comes with its own)."""
    root = os.path.dirname(os.path.abspath(dcfg["annotation_file"]))
    path = dcfg["video_scores"]
    if (dcfg["class_agnostic"] and dcfg["synthetic_size"] not in ANET_PRESETS and path
            and os.path.abspath(path) == os.path.join(root, SCORES_FILE)):
        ensure_video_scores(root)


def ensure_splits(videos, classes, dcfg):
    """Write the embedded dataset's stratified splits (seeded) when they are missing."""
    folder = os.path.join(os.path.dirname(os.path.abspath(dcfg["annotation_file"])), "splits")
    for pct in SPLIT_RATIOS:
        labeled = os.path.join(folder, f"labeled_{pct}pct.txt")
        if os.path.exists(labeled):
            continue
        try:
            lab, unlab = make_split(videos, dcfg["train_subset"], pct / 100, dcfg["synthetic_seed"], classes)
        except DataError:  # a tiny dataset cannot cover every class at 10%: no such split
            continue
        write_split(os.path.join(folder, f"unlabeled_{pct}pct.txt"), unlab)
        write_split(labeled, lab)


def parse_args(argv=None):
    parser = make_parser(__doc__)
    parser.prog = "python -m synthetic"
    parser.add_argument("--config", required=True, help="YAML config whose dataset.synthetic_size names the "
                                                        "embedded dataset (configs/default.yaml: small)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value (repeatable): the same as the stages that read the data")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    path = make_data(config_from_args(args))
    if path:
        print(f"embedded dataset ready: {os.path.dirname(os.path.abspath(path))}")
    return path


if __name__ == "__main__":
    run_main(main)
