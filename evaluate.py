"""Score a detector on the evaluation subset with the ActivityNet detection mAP.

Either runs a checkpoint (EMA weights) over the evaluation videos and writes its predictions in
the ActivityNet results format, or scores an existing results file from any detector. A
class-agnostic detector (dataset.class_agnostic, ActivityNet's recipe) gives proposals: each is
copied for its video's test.video_topk most likely classes of the video-level classifier
(dataset.video_scores), score = proposal score x class probability; BMN (model.arch bmn) is such a
detector, its proposals those of its published inference (common/bmn_detector.py). Prints the mAP per tIoU
threshold, their average, and a per-class table; --json writes the figures.
For a class-agnostic detector or config, and for any file with --proposals, it also prints the
proposal quality of the official Evaluation/eval_proposal.py: AR@1, AR@5, AR@10, AR@100 (recall
averaged over tIoU 0.5:0.05:0.95 at that many proposals a video, on average over the videos) and
the AUC of that curve. The proposals are a class-agnostic checkpoint's own, before the classifier
labels them; otherwise every prediction, its label ignored.
The ground truth is every segment of the evaluation subset as the annotation file gives it, as the
official Evaluation/eval_detection.py reads it: the clipping and dropping training does is not done here.

Examples:
  python evaluate.py --config configs/default.yaml --checkpoint outputs/sup10/last.pt \\
      --out outputs/sup10/predictions.json --json outputs/sup10/metrics.json
  python evaluate.py --config configs/default.yaml --predictions other_detector.json
  python evaluate.py --config configs/default.yaml --predictions other_detector.json --proposals
"""
import json
import time

from common.checkpoint import load_checkpoint
from common.config import atomic_write_text
from common.data import DataError, VideoDataset, id_forms, is_number, load_annotations
from common.detect import to_results_json
from common.distributed import is_main
from common.metrics import compute_map, format_map_table, format_proposal_table, proposal_metrics
from common.stage import (add_common_args, build_detector, class_namer, config_from_args, config_with_model_of,
                          device_of, eval_ids, load_data, load_weights, make_parser, predict, run_main, subset_ids)


def parse_args(argv=None):
    parser = add_common_args(make_parser(__doc__))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint of train_supervised.py / train_semi.py")
    source.add_argument("--predictions", help="an ActivityNet-format results file to score")
    parser.add_argument("--out", help="where to write the predictions (with --checkpoint)")
    parser.add_argument("--json", help="write {thresholds, mAP, average, per_class(, proposals)} here")
    parser.add_argument("--proposals", action="store_true",
                        help="also score every prediction as a class-agnostic proposal: AR@AN and AUC of the "
                             "official ActivityNet proposal evaluation (always on with dataset.class_agnostic)")
    parser.add_argument("--no-per-class", action="store_true", help="print only the per-threshold table")
    args = parser.parse_args(argv)
    if args.checkpoint and not args.out:
        parser.error("--checkpoint needs --out PRED.json")
    return args


def read_predictions(path, videos, classes):
    """An ActivityNet results file, checked entry by entry: {video_id: [{label, score, segment}]}.

    A video the annotation file lacks or a label outside the class list is an error: the official
    code would count the first as false positives and crash on the second, and both mean the file
    belongs to another dataset.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: broken JSON at line {e.lineno}: {e.msg}") from None
    except ValueError as e:  # not text at all
        raise DataError(f"{path}: not a JSON text file ({type(e).__name__})") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise DataError(f"{path}: results: missing (expected {{\"results\": {{video_id: [...]}}}})")
    names = set(classes)
    for vid, preds in results.items():
        if vid not in videos:
            raise DataError(f"{path}: video {vid}: not a video of the annotation file{_other_form(vid, videos)}")
        if not isinstance(preds, list):
            raise DataError(f"{path}: video {vid}: expected a list of predictions")
        for i, p in enumerate(preds):
            _check_prediction(path, vid, i, p, names)
    return results


def _other_form(vid, videos):
    other = id_forms(vid)[1]
    return f" (it has {other}: write the ids as it does)" if other in videos else ""


def _check_prediction(path, vid, i, p, names):
    where = f"{path}: video {vid}: prediction {i}"
    if not isinstance(p, dict) or not {"label", "score", "segment"} <= set(p):
        raise DataError(f"{where}: needs label, score and segment")
    label, score, seg = p["label"], p["score"], p["segment"]
    if not isinstance(label, str) or label not in names:
        raise DataError(f"{where}: label: {label!r} is not in the class list ({len(names)} classes)")
    if not is_number(score):
        raise DataError(f"{where}: score: not a number: {score!r}")
    if not (isinstance(seg, list) and len(seg) == 2 and all(is_number(x) for x in seg)):
        raise DataError(f"{where}: segment: expected [start, end], got {seg!r}")
    if seg[1] < seg[0]:
        raise DataError(f"{where}: segment: reversed {seg}")


def ground_truth(cfg, classes):
    """{video_id: [{label, segment}]} of the evaluation subset, every segment as the file gives it.

    The official evaluator clips and drops nothing, so neither do we here (training does, and says
    so): a segment past its video's end still counts, though no prediction clipped to the video can
    reach it, and an empty one [t, t] has tIoU 0 with every prediction (the official formula gives
    0 / length; only an empty prediction on it would give its 0 / 0).
    """
    dcfg = cfg["dataset"]
    path, subset = dcfg["annotation_file"], dcfg["eval_subset"]
    given, _ = load_annotations(path, classes, dcfg["default_fps"], as_given=True)
    ids = subset_ids(given, subset, path)
    truth = {v: [{"label": classes[int(l)], "segment": [float(a), float(b)]}
                 for (a, b), l in zip(given[v].segments, given[v].labels)] for v in ids}
    count = sum(map(len, truth.values()))
    if count == 0:
        raise DataError(f"{path}: subset {subset!r}: no action to score in its {len(ids)} videos")
    print(f"scoring against {count} ground-truth segments of {len(ids)} {subset!r} videos, as given in {path} "
          "(the official protocol clips and drops none)")
    return truth


def main(argv=None):
    args = parse_args(argv)
    # 1. Config and the ground truth of the evaluation subset, as the official code reads it.
    cfg = config_from_args(args)
    videos, classes = load_data(cfg, scores=False)  # read below where a checkpoint needs it; a results file does not
    truth = ground_truth(cfg, classes)

    # 2. Predictions: run the checkpoint, or read a results file.
    proposals = None  # a class-agnostic detector's own; otherwise every prediction is one
    ids = eval_ids(cfg, videos) if args.checkpoint else None
    namer = class_namer(cfg, classes, ids)  # with a checkpoint, every test video's scores where they name the classes
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        cfg = config_with_model_of(cfg, ckpt, args.checkpoint)  # replaces the model section only
        device = device_of(args)  # under torchrun each process predicts its share of the videos
        model = build_detector(cfg, classes, device)
        load_weights(model, ckpt, args.checkpoint)
        start = time.time()
        dataset = VideoDataset(cfg["dataset"], videos, ids, training=False)
        results, proposals = namer.detections(predict(model, dataset, cfg, device, not args.no_progress))
        if proposals is not None:  # rounded as written; their labels unused
            proposals = to_results_json(proposals, classes)["results"]
        results = to_results_json(results, classes, external=namer.external)
        seconds = time.time() - start
        if not is_main():  # rank 0 holds the merged predictions and does the rest
            return None
        atomic_write_text(args.out, json.dumps(results, indent=1))
        print(f"wrote {args.out}: {len(ids)} videos in {seconds:.1f}s ({len(ids) / seconds:.1f} videos/s)")
        predictions = results["results"]
    else:
        predictions = read_predictions(args.predictions, videos, classes)

    # 3. The mAP and, for proposals, AR@AN and AUC; printed and optionally written.
    metrics = compute_map(truth, predictions, cfg["dataset"]["tiou_thresholds"], classes)
    print(format_map_table(metrics, per_class=not args.no_per_class))
    if args.proposals or namer.proposals:
        metrics["proposals"] = proposal_metrics(truth, predictions if proposals is None else proposals)
        print(format_proposal_table(metrics["proposals"]))
    if args.json:
        atomic_write_text(args.json, json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    run_main(main)
