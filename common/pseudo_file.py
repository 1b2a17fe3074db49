"""The pseudo-label file: pseudo_label.py writes it, train_semi.py trains on it, a person reads and edits it.

It is the annotation file's schema (common/data.py), so the annotation reader reads it, plus per
accepted entry its scores and how it was selected, per video the predictions that were not taken,
and a top-level `meta` (the settings, the counts and each video's tau_pos):
    {"version": SCHEMA, "meta": {...},
     "database": {video_id: {"subset", "duration", "fps",
                             "annotations": [{"label", "segment", "label_id", "score", "cls_score",
                                              "tiou", "tnd", "icd", "origin", "class_scores",
                                              "detector_label" (where pseudo.relabel changed it)}],
                             "rejected": [the same, with "reason" for "origin"]}}}
Written with stable ordering, indent 2 and rounded floats, so a diff of two rounds is readable.

`read` is the one reader of the file: the round (train_semi.py), a later round's carry-over
(previous_round), the review page and the benchmarks all take it through here, so a hand edit is
judged the same everywhere. Every problem is one line naming the file, the video and the field.
The quality measures of Fig. 3(c) score pseudo labels against the unlabeled videos' ground truth.
"""
import dataclasses
import json

import numpy as np

from common.config import atomic_write_text
from common.data import check_segment, data_error, is_number, parse_database, read_json
from common.metrics import segment_tiou

SCHEMA = "apl-pseudo-labels-v1"
DIGITS = 4                                            # of every score in the file
SCORE_KEYS = ("score", "cls_score", "tiou", "tnd", "icd")  # per entry: a number or null


# ---------------------------------------------------------------- writing

def entry(pred, i, classes, icd, origin_key, origin, duration):
    """Prediction i of a video's predictions as a file entry; origin_key "origin" (accepted) or "reason"."""
    seg = pred["segments"][i]
    num = lambda x: None if not np.isfinite(x) else round(float(x), DIGITS)  # noqa: E731
    end = min(round(float(seg[1]), 3), duration)  # rounding must not carry an end past the video
    out = {"label": classes[int(pred["labels"][i])], "segment": [round(float(seg[0]), 3), end],
           "label_id": int(pred["labels"][i]), "score": num(pred["scores"][i]),
           "cls_score": num(pred["cls_score"][i]), "tiou": num(pred["tiou"][i]), "tnd": num(pred["tnd"][i]),
           "icd": num(icd[i]), origin_key: str(origin),
           "class_scores": {classes[int(c)]: num(p) for c, p in zip(pred["topk_labels"][i], pred["topk_probs"][i])}}
    old = pred.get("detector_labels")
    if old is not None and old[i] != pred["labels"][i]:  # pseudo.relabel changed it
        out["detector_label"] = classes[int(old[i])]
    return out


def ordered(entries):  # a carried-over entry may be hand-written: no label_id
    return sorted(entries, key=lambda e: (e["segment"][0], e["segment"][1], e.get("label_id", -1), e["label"]))


def file_dict(meta, database):
    return {"version": SCHEMA, "meta": meta, "database": database}


def build_file(results, decisions, videos, classes, meta, train_subset):
    """The file's content: per video its accepted predictions and the rejected ones above tau_neg.
    decisions: {video: (accepted mask, origin / reason per prediction, ICD scores)}."""
    database = {}
    for vid in sorted(results):
        pred, (accepted, reason, icd) = results[vid], decisions[vid]
        duration = videos[vid].duration
        keep = [entry(pred, i, classes, icd, "origin", reason[i], duration) for i in np.flatnonzero(accepted)]
        rejected = [entry(pred, i, classes, icd, "reason", reason[i], duration)
                    for i in np.flatnonzero(~accepted & (reason != "below_tau_neg"))]
        database[vid] = {"subset": train_subset, "duration": videos[vid].duration, "fps": videos[vid].fps,
                         "annotations": ordered(keep), "rejected": ordered(rejected)}
    return file_dict(meta, database)


def write(path, content):
    atomic_write_text(path, json.dumps(content, indent=2) + "\n")


# ---------------------------------------------------------------- reading

@dataclasses.dataclass
class PseudoLabels:
    """A pseudo-label file, read and checked."""
    path: str
    videos: dict          # {video_id: Video}: the accepted entries as the annotation reader gives them
    database: dict        # the file's "database" as written (every entry checked)
    meta: dict            # the file's "meta" ({} where it has none)


def read(path, classes=None, dataset=None):
    """The file read strictly: the annotation reader's checks, and nothing repaired (a segment outside
    its video or empty, a non-numeric score or a bad class_scores is an error); each rejected entry
    drawable (an object with a label name, a segment and numeric scores; its label need not be a
    class: it is never trained on). dataset {"videos", "labeled", "train_subset"}: each video also an
    unlabeled training video of the dataset, of its duration (pseudo labels on an evaluation video
    would leak it into training). classes None: the file's labels ordered by label_id."""
    data = read_json(path)
    videos, classes = parse_database(path, data, classes, as_given=True)
    if not videos:  # a file without videos leaves semi-supervised training nothing
        raise data_error(path, "holds no video", where="database")
    index = {name: i for i, name in enumerate(classes)}
    for vid, video in videos.items():
        for k, ((start, end), extra) in enumerate(zip(video.segments, video.extra)):
            check_accepted(path, vid, f"annotations[{k}]", start, end, video.duration, extra, index)
        rejected = video.video_extra.get("rejected", [])
        if not isinstance(rejected, list):
            raise data_error(path, f"expected a list, got {rejected!r}", vid, "rejected")
        for k, e in enumerate(rejected):
            check_rejected(path, vid, f"rejected[{k}]", e)
        if dataset is not None:
            check_video(path, vid, video, dataset)
    meta = data.get("meta")
    return PseudoLabels(path, videos, data["database"], meta if isinstance(meta, dict) else {})


def check_accepted(path, vid, where, start, end, duration, extra, index):
    """A pseudo label is ours: nothing in it is repaired, everything wrong is an error."""
    if start < 0 or end > duration or end == start:
        raise data_error(path, f"[{start}, {end}] is outside the video [0, {duration}] or empty", vid, where + ".segment")
    for key in SCORE_KEYS:
        if key in extra and extra[key] is not None and not is_number(extra[key]):
            raise data_error(path, f"expected a number, got {extra[key]!r}", vid, f"{where}.{key}")
    scores = extra.get("class_scores")
    if scores is None:
        return
    if not isinstance(scores, dict) or not scores:
        raise data_error(path, f"expected an object {{class name: probability}}, got {scores!r}", vid,
                         where + ".class_scores")
    for name, p in scores.items():
        if name not in index:
            raise data_error(path, f"{name!r} is not in the class list ({len(index)} classes)", vid,
                             where + ".class_scores")
        if not is_number(p) or not 0 <= p <= 1:
            raise data_error(path, f"expected a probability in [0, 1], got {p!r}", vid, f"{where}.class_scores.{name}")


def check_rejected(path, vid, where, e):
    if not isinstance(e, dict):
        raise data_error(path, f"expected an object, got {e!r}", vid, where)
    if not isinstance(e.get("label"), str):
        raise data_error(path, f"expected a label name, got {e.get('label')!r}", vid, where + ".label")
    check_segment(path, vid, where + ".segment", e.get("segment"))
    for key in SCORE_KEYS:
        if e.get(key) is not None and not is_number(e[key]):
            raise data_error(path, f"expected a number, got {e[key]!r}", vid, f"{where}.{key}")


def check_video(path, vid, video, dataset):
    """A pseudo-labeled video is an unlabeled training video of the dataset, of its duration."""
    videos = dataset["videos"]
    if vid not in videos:
        raise data_error(path, "not a video of the dataset's annotation file", vid)
    if vid in dataset["labeled"]:
        raise data_error(path, "is a labeled video; pseudo labels are for unlabeled ones", vid)
    if videos[vid].subset != dataset["train_subset"]:
        raise data_error(path, f"is a {videos[vid].subset!r} video, not a training ({dataset['train_subset']!r}) one",
                         vid)
    if abs(video.duration - videos[vid].duration) > 1e-3:
        raise data_error(path, f"{video.duration} differs from the dataset's {videos[vid].duration}", vid, "duration")


def rejected_segments(labels, vid):
    """(M, 2) seconds of a video's rejected predictions, clipped to the video: the regions
    semi.background = rejected leaves out of the classification loss."""
    duration = labels.videos[vid].duration
    out = [(min(max(s, 0.0), duration), min(max(e, 0.0), duration))
           for s, e in (map(float, r["segment"]) for r in labels.database[vid].get("rejected", []))]
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def previous_round(path, classes):
    """A previous round's file for pseudo.carry_over: {video: tau_pos} from its meta (inf where it
    selected nothing) and {video: (accepted, rejected) entries as written}. A hand-edited file keeps
    working as long as its meta still holds the thresholds pseudo_label.py wrote."""
    labels = read(path, classes)
    taus = labels.meta.get("tau_pos")
    if not isinstance(taus, dict):
        raise data_error(path, "expected {video: tau_pos}, as pseudo_label.py writes it", where="meta.tau_pos")
    for vid, tau in taus.items():
        if tau is not None and not is_number(tau):
            raise data_error(path, f"expected a number or null, got {tau!r}", vid, "meta.tau_pos")
    entries = {vid: (v.get("annotations", []), v.get("rejected", [])) for vid, v in labels.database.items()}
    return {vid: (float("inf") if t is None else float(t)) for vid, t in taus.items()}, entries


def segments_of(entries):
    return np.array([e["segment"] for e in entries], dtype=float).reshape(-1, 2)


# ---------------------------------------------------------------- quality, Fig. 3(c)

def quality(selected, videos):
    """Class Acc, Avg tIoU, Pos Acc (right class and tIoU > 0.5) against each pseudo label's
    best-overlapping ground truth; precision / recall at tIoU 0.5 with one-to-one matching.
    selected: {video: (segments (N, 2), labels (N,), scores (N,))}; videos: with their ground truth."""
    best_iou, same_class, matched, n_gt, n_pl = [], [], 0, 0, 0
    for vid, (segs, labels, scores) in selected.items():
        gt_segs, gt_labels = videos[vid].segments, videos[vid].labels
        n_gt, n_pl = n_gt + len(gt_labels), n_pl + len(labels)
        taken = np.zeros(len(gt_labels), dtype=bool)
        for i in np.argsort(-scores, kind="stable"):
            iou = segment_tiou(segs[i], gt_segs) if len(gt_labels) else np.zeros(0)
            j = int(np.argmax(iou)) if iou.size else -1
            best_iou.append(iou[j] if j >= 0 else 0.0)
            same_class.append(j >= 0 and gt_labels[j] == labels[i])
            ok = (~taken) & (gt_labels == labels[i]) & (iou >= 0.5)
            if ok.any():
                taken[np.flatnonzero(ok)[np.argmax(iou[ok])]] = True
                matched += 1
    best_iou, same_class = np.asarray(best_iou), np.asarray(same_class, dtype=bool)
    n = max(len(best_iou), 1)
    return {"pseudo_labels": n_pl, "class_acc": same_class.sum() / n, "avg_tiou": best_iou.sum() / n,
            "pos_acc": (same_class & (best_iou > 0.5)).sum() / n,
            "precision@0.5": matched / max(n_pl, 1), "recall@0.5": matched / max(n_gt, 1)}


def quality_table(selections, videos, written=None, classes=()):
    """{row name: quality} of each selection ({name: selected}, as `quality` takes them), and of the
    file as written (its database) where given: a round that carried labels over or relabelled them."""
    rows = {name: quality(selected, videos) for name, selected in selections.items()}
    if written is not None:  # entries by class name: a carried one may be hand-written
        index = {c: i for i, c in enumerate(classes)}
        rows["as written (the file)"] = quality({vid: (
            segments_of(v["annotations"]), np.array([index[e["label"]] for e in v["annotations"]], dtype=np.int64),
            np.array([e.get("score") or 0.0 for e in v["annotations"]], dtype=float))
            for vid, v in written.items()}, videos)
    return rows


def format_quality(rows):
    keys = ["pseudo_labels", "class_acc", "avg_tiou", "pos_acc", "precision@0.5", "recall@0.5"]
    lines = ["| selection | #PL | Class Acc | Avg tIoU | Pos Acc | P@0.5 | R@0.5 |", "|---" * 7 + "|"]
    for name, q in rows.items():
        lines.append(f"| {name} | {q['pseudo_labels']} | " + " | ".join(f"{100 * q[k]:.1f}" for k in keys[1:]) + " |")
    return "\n".join(lines)
