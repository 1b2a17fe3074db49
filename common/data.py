"""Annotations, labeled/unlabeled splits, features and batches.

Annotation files use ActionFormer's format, which our pseudo-label files share (they add per-instance
keys such as "score" and a top-level "meta"; common/pseudo_file.py reads and writes them):
    {"database": {video_id: {"subset", "duration", "fps",
                             "annotations": [{"label", "segment": [start_s, end_s], "label_id"}]}}}
Features are one array (T, D) per video in `<feature_dir>/<video_id>.npy`. Feature i sees the frames
[i * feat_stride, i * feat_stride + num_frames), so grid point i is the centre of that window; with
dataset.resize_to every video is resized to that many steps, each with its own stride (grid_of).
ActivityNet ids come with and without a "v_" prefix (anet1.3.json has none, the SSTAP split lists and
many feature files have it): split files and feature files may use either form, as long as only one
form matches.

Every problem in the inputs is a one-line DataError "<file>: video <id>: <field>: <problem>",
raised when the data is read, so a bad file fails before training starts, not in the middle of it.
"""
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from common.config import atomic_write_text

_ANNOTATION_KEYS = ("label", "segment", "label_id")     # what we interpret; the rest goes to extra
_VIDEO_KEYS = ("subset", "duration", "fps", "annotations")


class DataError(ValueError):
    """A problem in an input, on one line: "<file>: video <id>: <field>: <problem>"."""


def data_error(path, problem, video=None, where=None):
    """The DataError for `problem`; video and field are left out where they mean nothing."""
    parts = [str(path)] + ([f"video {video}"] if video is not None else []) + ([where] if where else [])
    return DataError(": ".join(parts + [problem]))


def time_to_grid(t, fps, feat_stride, num_frames):
    """Seconds -> feature grid position (may be slightly negative near the start of a video)."""
    return t * fps / feat_stride - 0.5 * num_frames / feat_stride


def grid_to_time(g, fps, feat_stride, num_frames, duration=None):
    """Feature grid position -> seconds, clamped to [0, duration] when the duration is given."""
    t = (g * feat_stride + 0.5 * num_frames) / fps
    return t if duration is None else np.clip(t, 0.0, duration)


def grid_of(dcfg, num_steps):
    """(feat_stride, num_frames) of the grid the detector sees for a video of `num_steps` features.

    Without dataset.resize_to, the config's. With resize_to = N, ActionFormer's force_upsampling
    (libs/datasets/anet.py): the N steps span the frames the T features saw, (T - 1) * feat_stride +
    num_frames, so the stride is that over N frames, and each step is centred on its own window
    (num_frames = stride): t = (g + 0.5) * stride / fps, a stride of its own for every video.
    """
    size = dcfg.get("resize_to")  # a hand-made dataset config may leave it out
    if not size:
        return dcfg["feat_stride"], dcfg["num_frames"]
    stride = ((num_steps - 1) * dcfg["feat_stride"] + dcfg["num_frames"]) / size
    return stride, stride


def resize_features(feats, size):
    """(T, D) -> (size, D) float32 by linear interpolation, ActionFormer's F.interpolate(mode="linear",
    align_corners=False): output step i samples input position (i + 0.5) * T / size - 0.5, held
    inside [0, T - 1]."""
    x = torch.from_numpy(np.array(feats, dtype=np.float32)).T[None]                    # (1, D, T)
    return torch.nn.functional.interpolate(x, size=size, mode="linear", align_corners=False)[0].T.numpy()


def grid_features(dcfg, video_id):
    """A video's features on the detector's grid and that grid: ((T, D) array, feat_stride, num_frames);
    resized to dataset.resize_to steps when set (a copy), else the memory-mapped file."""
    feats = load_features(dcfg, video_id)
    stride, frames = grid_of(dcfg, len(feats))
    size = dcfg.get("resize_to")
    return (resize_features(feats, size) if size else feats), stride, frames


def to_grid(dcfg, video, t):
    """Seconds of `video` -> its grid positions (reads the feature file's length under resize_to)."""
    num_steps = len(load_features(dcfg, video.video_id)) if dcfg.get("resize_to") else 0
    return time_to_grid(t, video.fps, *grid_of(dcfg, num_steps))


@dataclass
class Video:
    video_id: str
    subset: str
    duration: float
    fps: float
    segments: np.ndarray                                # (N, 2) float64, seconds
    labels: np.ndarray                                  # (N,) int64, index into the class list
    extra: list = field(default_factory=list)           # per annotation: keys we don't interpret
    video_extra: dict = field(default_factory=dict)     # per video: keys we don't interpret
    uncertain: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (M, 2) seconds; see below
    label_weights: np.ndarray | None = None             # (N, C) class targets; None: one-hot labels


def unannotated(video):
    """The video as a stage that must not see its labels gets it: subset, duration and fps, no action
    (ACP's pre-training on every video; the unlabeled videos pseudo_label.py predicts on)."""
    return Video(video.video_id, video.subset, video.duration, video.fps, np.zeros((0, 2)), np.zeros(0, dtype=np.int64))


# ---------------------------------------------------------------- annotation files

def is_number(x):
    """A finite int or float (not a bool): every number a JSON input may hold."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _unique_keys(pairs):
    # json silently keeps the last of two equal keys: a duplicated video id would vanish unnoticed
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def read_json(path):
    """A JSON file whose every object has unique keys; a one-line error naming the file otherwise."""
    try:
        with open(path) as f:
            return json.load(f, object_pairs_hook=_unique_keys)
    except OSError as e:
        raise data_error(path, f"cannot read: {e.strerror}") from None
    except ValueError as e:                             # JSONDecodeError, UnicodeDecodeError, duplicates
        raise data_error(path, f"broken JSON: {e}") from None


def _derive_classes(db):
    """Label names ordered by label_id (names without one go last, alphabetically).

    A name seen with several ids takes the smallest; the per-annotation check then reports the others.
    """
    first_id = {}
    for entry in db.values():
        anns = entry.get("annotations") if isinstance(entry, dict) else None
        for ann in anns if isinstance(anns, list) else []:
            if isinstance(ann, dict) and isinstance(ann.get("label"), str):
                lid = ann.get("label_id")
                lid = lid if is_number(lid) else math.inf
                first_id[ann["label"]] = min(first_id.get(ann["label"], math.inf), lid)
    return sorted(first_id, key=lambda name: (first_id[name], name))


def _positive(path, vid, key, value):
    if not is_number(value) or value <= 0:
        raise data_error(path, f"expected a positive number, got {value!r}", vid, key)
    return float(value)


def _parse_annotation(path, vid, k, ann, index):
    """One annotation -> (start, end, label index, extra keys); DataError naming annotations[k]."""
    where = f"annotations[{k}]"
    if not isinstance(ann, dict):
        raise data_error(path, f"expected an object, got {ann!r}", vid, where)
    label = ann.get("label")
    if not isinstance(label, str) or label not in index:
        raise data_error(path, f"{label!r} is not in the class list ({len(index)} classes)",
                         vid, where + ".label")
    if "label_id" in ann and ann["label_id"] != index[label]:
        raise data_error(path, f"{ann['label_id']!r} disagrees with {label!r}, class {index[label]} "
                               "of the class list", vid, where + ".label_id")
    start, end = check_segment(path, vid, where + ".segment", ann.get("segment"))
    extra = {key: value for key, value in ann.items() if key not in _ANNOTATION_KEYS}
    return start, end, index[label], extra


def check_segment(path, vid, where, seg):
    """[start, end] in seconds -> (start, end) floats; DataError naming `where` otherwise."""
    if not (isinstance(seg, (list, tuple)) and len(seg) == 2 and all(map(is_number, seg))):
        raise data_error(path, f"expected [start, end] in seconds, got {seg!r}", vid, where)
    if seg[1] < seg[0]:
        raise data_error(path, f"reversed: end {seg[1]} < start {seg[0]}", vid, where)
    return float(seg[0]), float(seg[1])


# Repairs of real files (THUMOS14 has segments lying wholly past their video's end, ActivityNet has
# zero-length ones and ones ending past the end): counted per video and printed once per file.
_REPAIRS = {"clipped": "clipped {n} segments that end past their video's duration",
            "past": "dropped {n} segments that start at or past their video's duration",
            "empty": "dropped {n} empty segments (end == start)"}


def _repair(start, end, duration, repairs):
    """The segment as training sees it, or None where it is dropped; counted in `repairs`."""
    if start >= duration or end == start:
        # no feature covers it, or it has no extent: nothing to learn, nothing to find
        repairs["past" if start >= duration else "empty"] += 1
        return None
    if end > duration:
        repairs["clipped"] += 1
    return start, min(end, duration)


def _parse_video(path, vid, entry, index, default_fps, as_given=False):
    """One database entry -> (Video, {repair: count}); as_given: no repair at all."""
    if not isinstance(entry, dict):
        raise data_error(path, f"expected an object, got {entry!r}", vid)
    if not isinstance(entry.get("subset"), str):
        raise data_error(path, f"expected a string, got {entry.get('subset')!r}", vid, "subset")
    duration = _positive(path, vid, "duration", entry.get("duration"))
    fps = entry.get("fps", default_fps)
    if fps is None:
        raise data_error(path, "missing, and the config sets no default_fps", vid, "fps")
    fps = _positive(path, vid, "fps", fps)
    anns = entry.get("annotations", [])
    if not isinstance(anns, list):
        raise data_error(path, f"expected a list, got {anns!r}", vid, "annotations")
    segments, labels, extra, repairs = [], [], [], dict.fromkeys(_REPAIRS, 0)
    for k, ann in enumerate(anns):
        start, end, label, ann_extra = _parse_annotation(path, vid, k, ann, index)
        segment = (start, end) if as_given else _repair(start, end, duration, repairs)
        if segment is None:
            continue
        segments.append(segment)
        labels.append(label)
        extra.append(ann_extra)
    video = Video(vid, entry["subset"], duration, fps,
                  np.asarray(segments, dtype=np.float64).reshape(-1, 2),
                  np.asarray(labels, dtype=np.int64), extra,
                  {key: value for key, value in entry.items() if key not in _VIDEO_KEYS})
    return video, repairs


def _print_repairs(path, per_video):
    """One line per kind of repair; the rare drops name their first few videos."""
    for kind, text in _REPAIRS.items():
        counts = {vid: repairs[kind] for vid, repairs in per_video.items() if repairs[kind]}
        if not counts:
            continue
        names = ", ".join(f"{vid}: {n}" for vid, n in list(counts.items())[:5])
        names = "" if kind == "clipped" else f" ({names}{', ...' if len(counts) > 5 else ''})"
        print(f"{path}: {text.format(n=sum(counts.values()))}{names}")


def load_annotations(path, classes=None, default_fps=None, as_given=False):
    """Read and check an annotation file -> ({video_id: Video}, class names).

    `classes` None: the file's labels ordered by label_id. Segments ending past their video's
    duration are clipped to it; empty ones and those starting at or past it are dropped (printed).
    as_given=True keeps every segment as the file gives it, as the official ActivityNet evaluator
    reads ground truth: evaluation must count the segments training cannot use. Pseudo-label files
    are read by common/pseudo_file.py, through parse_database, and strictly.
    """
    return parse_database(path, read_json(path), classes, default_fps, as_given)


def parse_database(path, data, classes=None, default_fps=None, as_given=False):
    """load_annotations on the file's JSON `data`, already read."""
    db = data.get("database") if isinstance(data, dict) else None
    if not isinstance(db, dict):
        raise data_error(path, 'missing "database" object')
    classes = _derive_classes(db) if classes is None else list(classes)
    if len(set(classes)) != len(classes):
        raise data_error(path, f"the class list names a class twice: {classes}", where="classes")
    index = {name: i for i, name in enumerate(classes)}
    videos, per_video = {}, {}
    for vid, entry in db.items():
        videos[vid], per_video[vid] = _parse_video(path, vid, entry, index, default_fps, as_given)
    _print_repairs(path, per_video)
    return videos, classes


# ---------------------------------------------------------------- labeled / unlabeled splits

def id_forms(video_id):
    """The id and its other ActivityNet form: "v_" prefix added, or taken off."""
    if video_id.startswith("v_") and len(video_id) > 2:
        return video_id, video_id[2:]
    return video_id, "v_" + video_id


def _resolve_id(path, vid, videos, where):
    """The annotation file's form of a split id written with or without the "v_" prefix."""
    found = [form for form in id_forms(vid) if form in videos]
    if len(found) == 2:
        raise data_error(path, f"ambiguous: both {found[0]} and {found[1]} are videos of the annotation "
                               "file", vid, where)
    if not found:
        raise data_error(path, "not in the annotation file", vid, where)
    return found[0]


def read_split(path, videos=None):
    """Video ids of a split file, one a line (blank lines and # comments ignored), in file order.

    Given the annotation's videos, each id is checked against them and returned in their form.
    """
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise data_error(path, f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise data_error(path, "not a text file") from None
    ids, first = [], {}
    for n, line in enumerate(lines, 1):
        vid = line.split("#", 1)[0].strip()
        if not vid:
            continue
        if videos is not None:
            vid = _resolve_id(path, vid, videos, f"line {n}")
        if vid in first:
            raise data_error(path, f"listed twice (first on line {first[vid]})", vid, f"line {n}")
        first[vid] = n
        ids.append(vid)
    return ids


def write_split(path, video_ids):
    """Write the ids sorted, one a line; atomically, so a reader never sees half a split."""
    atomic_write_text(path, "".join(f"{vid}\n" for vid in sorted(set(video_ids))))


def _greedy_cover(order, videos):
    """A few videos holding every class of `order` between them; ties go to the earlier in `order`."""
    classes_of = {vid: set(videos[vid].labels.tolist()) for vid in order}
    missing = set().union(*classes_of.values())
    cover = []
    while missing:
        best = max(order, key=lambda vid: len(classes_of[vid] & missing))   # first of the maxima
        cover.append(best)
        missing -= classes_of[best]
    return cover


def _stratified_order(order, videos, taken):
    """The videos of `order` not in `taken`, arranged so that every prefix draws each stratum (a
    video's most frequent class) in proportion to its size; `taken` counts toward its strata."""
    strata = {}
    for vid in order:
        labels = videos[vid].labels
        strata.setdefault(int(np.bincount(labels).argmax()) if len(labels) else -1, []).append(vid)
    key = {}
    for members in strata.values():
        free = [vid for vid in members if vid not in taken]
        for j, vid in enumerate(free):
            key[vid] = (len(members) - len(free) + j + 0.5) / len(members)
    rank = {vid: r for r, vid in enumerate(order)}          # seeded tie-break
    return sorted(key, key=lambda vid: (key[vid], rank[vid]))


def make_split(videos, subset, ratio, seed, classes):
    """Seeded, stratified labeled/unlabeled split of the videos of `subset` -> (labeled, unlabeled).

    round(ratio * n) videos are labeled: first a greedy cover of the classes occurring in the subset,
    so that none is left without a labeled example, then a stratified draw fills the rest.
    """
    ids = sorted(vid for vid, video in videos.items() if video.subset == subset)
    if not ids:
        raise DataError(f"make_split: subset {subset!r}: no videos")
    if not 0 < ratio <= 1:
        raise DataError(f"make_split: subset {subset!r}: ratio: {ratio} is not in (0, 1]")
    n_labeled = int(round(ratio * len(ids)))
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    cover = _greedy_cover(order, videos)
    if len(cover) > n_labeled:
        present = {int(c) for vid in ids for c in videos[vid].labels}
        raise DataError(f"make_split: subset {subset!r}: ratio {ratio} gives {n_labeled} labeled videos, "
                        f"but covering the {len(present)} classes that occur in it (of {len(classes)}) "
                        f"takes {len(cover)}; raise the ratio")
    fill = _stratified_order(order, videos, set(cover))[: n_labeled - len(cover)]
    labeled = set(cover) | set(fill)
    return sorted(labeled), [vid for vid in ids if vid not in labeled]


# ---------------------------------------------------------------- features and the dataset

def feature_path(dcfg, video_id):
    """`<feature_dir>/<id>.npy`, `v_<id>.npy` or, for an id with the prefix, the file without it.

    Both prefixed forms are tried for an id that starts with "v_": two ActivityNet ids do
    (v_UmAH95xls), and ActionFormer's file_prefix names their files v_v_<...>.npy.
    """
    names = [video_id, "v_" + video_id]
    if video_id.startswith("v_") and len(video_id) > 2:
        names.append(video_id[2:])
    paths = [os.path.join(dcfg["feature_dir"], f"{name}.npy") for name in names]
    found = [p for p in paths if os.path.isfile(p)]
    if len(found) > 1:
        others = " and ".join(os.path.basename(p) for p in found[1:])
        raise data_error(found[0], f"ambiguous: there is {others} too; keep one of them", video_id, "features")
    if not found:
        others = " or ".join(os.path.basename(p) for p in paths[1:])
        raise data_error(paths[0], f"file is missing (nor is there {others})", video_id, "features")
    return found[0]


def load_features(dcfg, video_id):
    """The memory-mapped (T, D) features of one video, checked against the config."""
    return _read_features(dcfg, feature_path(dcfg, video_id), video_id)


def _read_features(dcfg, path, video_id):
    try:
        feats = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise data_error(path, f"cannot read as .npy: {e}", video_id, "features") from None
    if (not isinstance(feats, np.ndarray) or feats.ndim != 2 or len(feats) == 0
            or not np.issubdtype(feats.dtype, np.number)):
        got = f"{feats.shape} {feats.dtype}" if isinstance(feats, np.ndarray) else type(feats).__name__
        raise data_error(path, f"expected a non-empty numeric (T, D) array, got {got}", video_id, "features")
    if feats.shape[1] != dcfg["feature_dim"]:
        raise data_error(path, f"the array has D={feats.shape[1]}, the config says "
                               f"{dcfg['feature_dim']}", video_id, "feature_dim")
    return feats


def _check_finite(path, video_id, feats, rows=4096):
    """A NaN or Inf would only show up later as a NaN loss naming no file; reads the array once,
    a block of rows at a time so that a long video never needs a second copy in memory."""
    if not np.issubdtype(feats.dtype, np.inexact):
        return
    for start in range(0, len(feats), rows):
        bad = ~np.isfinite(feats[start: start + rows])
        if bad.any():
            t, d = np.argwhere(bad)[0]
            raise data_error(path, f"non-finite value {feats[start + t, d]} at step {start + t}, dim {d}",
                             video_id, "features")


# Feature files already read whole and found sound, by (path, size, mtime, D): every stage checks
# its videos before training, and each dataset checks again, which then costs only a lookup and a stat.
_CHECKED = set()


def check_features(dcfg, video_ids):
    """Fail now, naming file and video, rather than at some step of training: shape, dtype, and that
    every value is finite (each file is read whole once per process, then again only if it changes)."""
    for vid in video_ids:
        path = feature_path(dcfg, vid)
        stat = os.stat(path)
        key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns, dcfg["feature_dim"])
        if key not in _CHECKED:
            _check_finite(path, vid, _read_features(dcfg, path, vid))
            _CHECKED.add(key)


class VideoDataset(torch.utils.data.Dataset):
    """Videos as feature sequences (D, T) with their actions in grid units.

    training=True crops a video longer than max_seq_len to a random window whose position depends
    only on (seed, epoch, index), so any number of loader workers gives the same crops: a uniform
    one for a video without actions (ACP's unannotated videos), else the first of max_tries
    uniform draws that keeps an action; training=False returns whole videos.
    """
    max_tries = 20      # windows tried before accepting one without any action

    def __init__(self, dcfg, videos, video_ids, training, seed=0):
        missing = [vid for vid in video_ids if vid not in videos]
        if missing:
            raise data_error(dcfg["annotation_file"], f"not in the annotation file ({len(missing)} "
                             "ids missing)", missing[0])
        check_features(dcfg, video_ids)     # also videos no stage checked, e.g. pseudo-labeled ones
        self.dcfg, self.videos, self.video_ids = dcfg, videos, list(video_ids)
        self.training, self.seed, self.epoch = training, seed, 0

    def __len__(self):
        return len(self.video_ids)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _crop(self, length, segments, i):
        """Start of a max_seq_len window, and which actions it keeps (>= trunc_thresh inside)."""
        size, thresh = self.dcfg["max_seq_len"], self.dcfg["trunc_thresh"]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        for _ in range(self.max_tries):
            start = int(rng.integers(0, length - size + 1))
            inside = np.minimum(segments[:, 1], start + size) - np.maximum(segments[:, 0], start)
            keep = (inside > 0) & (inside >= thresh * (segments[:, 1] - segments[:, 0]))
            if keep.any() or not len(segments):
                break
        return start, keep

    def __getitem__(self, i):
        video = self.videos[self.video_ids[i]]
        feats, stride, frames = grid_features(self.dcfg, video.video_id)
        segments = time_to_grid(video.segments, video.fps, stride, frames)
        uncertain = time_to_grid(video.uncertain, video.fps, stride, frames)
        labels, weights, offset, size = video.labels, video.label_weights, 0, self.dcfg["max_seq_len"]
        index = np.arange(len(labels))
        if self.training and len(feats) > size:
            offset, keep = self._crop(len(feats), segments, i)
            feats = feats[offset: offset + size]        # reads only the window from the memory map
            segments = np.clip(segments[keep], offset, offset + size) - offset
            labels, index = labels[keep], index[keep]
            weights = None if weights is None else weights[keep]
            # a rejected region outside the window is none of the crop's (clipped, it would become
            # [0, 0] or [size, size] and take point 0 out of the classification loss)
            uncertain = uncertain[(uncertain[:, 1] >= offset) & (uncertain[:, 0] < offset + size)]
            uncertain = np.clip(uncertain, offset, offset + size) - offset
        extra = {} if weights is None else {"label_weights": torch.from_numpy(weights.astype(np.float32))}  # (N, C)
        return {
            "video_id": video.video_id,
            "feats": torch.from_numpy(np.array(feats.T, dtype=np.float32, order="C")),    # (D, T)
            "segments": torch.from_numpy(segments.astype(np.float32)),                    # (N, 2)
            "labels": torch.from_numpy(labels.astype(np.int64)),                          # (N,)
            "instances": torch.from_numpy(index.astype(np.int64)),   # (N,) each action's index in the video's list
            "uncertain": torch.from_numpy(uncertain.astype(np.float32)),                  # (M, 2)
            "fps": video.fps, "duration": video.duration,
            "feat_stride": stride, "num_frames": frames, "offset": offset, **extra,
        }


def collate(batch, pad_multiple=1):
    """Stack features zero-padded to a multiple of pad_multiple, with mask True on real steps;
    segments, labels and the other keys stay lists (their lengths differ between videos)."""
    lengths = [item["feats"].shape[1] for item in batch]
    t_pad = -(-max(lengths) // pad_multiple) * pad_multiple
    feats = batch[0]["feats"].new_zeros(len(batch), batch[0]["feats"].shape[0], t_pad)
    mask = torch.zeros(len(batch), t_pad, dtype=torch.bool)
    for b, (item, length) in enumerate(zip(batch, lengths)):
        feats[b, :, :length] = item["feats"]
        mask[b, :length] = True
    out = {"feats": feats, "mask": mask}
    out.update({key: [item[key] for item in batch] for key in batch[0] if key != "feats"})
    return out


def main(argv=None):
    """Write a seeded, stratified labeled/unlabeled split of a config's training subset."""
    import argparse

    from common.config import load_config
    parser = argparse.ArgumentParser(
        description="Write labeled_<P>pct.txt / unlabeled_<P>pct.txt for a config's training subset "
                    "(every class present in the labeled part). Example: python -m common.data "
                    "--config configs/thumos_i3d.yaml --ratio 0.1 --out-dir data/thumos/splits")
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ratio", type=float, required=True, help="labeled fraction, e.g. 0.1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    dcfg = load_config(args.config, args.set)["dataset"]
    try:
        videos, classes = load_annotations(dcfg["annotation_file"], dcfg["classes"], dcfg["default_fps"])
        labeled, unlabeled = make_split(videos, dcfg["train_subset"], args.ratio, args.seed, classes)
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    pct = f"{100 * args.ratio:g}"
    write_split(os.path.join(args.out_dir, f"labeled_{pct}pct.txt"), labeled)
    write_split(os.path.join(args.out_dir, f"unlabeled_{pct}pct.txt"), unlabeled)
    print(f"wrote {len(labeled)} labeled and {len(unlabeled)} unlabeled video ids to {args.out_dir}")


if __name__ == "__main__":
    main()
