"""Video-level classifier scores, which label an ActivityNet detector's class-agnostic proposals.

ActivityNet detectors (BMN, G-TAD, ActionFormer) find actions class-agnostically and take each
video's class from an external video classifier. Its scores come as the JSON distributed with those
detectors (CUHK's ActivityNet 2017 classifier, "cuhk_val_simp_share.json"):
    {"class": [name_0, ..., name_{C-1}], "results": {video_id: [p_0, ..., p_{C-1}]}}
the probabilities in the order of "class". A video's value may also be {class name: probability}.
Ids may carry ActivityNet's "v_" prefix or not, whatever the annotation file does (as split files).

Reading is strict: every problem is a one-line DataError "<file>: video <id>: <field>: <problem>".
"""
import json
import math

import numpy as np

from common.config import atomic_write_text
from common.data import data_error, id_forms, is_number, read_json


def load_video_scores(path, classes, video_ids=None):
    """{video_id: (C,) float64 probabilities in the order of `classes`} from a scores file.

    classes: the dataset's class list; the file must name exactly these classes, in any order.
    video_ids: the videos that need scores (ids as the annotation file writes them), each found
    with or without the "v_" prefix; None returns every video of the file under the file's ids.
    Every entry of the file is checked, also those of videos not asked for.
    """
    data = read_json(path)
    results = data.get("results") if isinstance(data, dict) else None
    if results is None:
        raise data_error(path, 'missing "results" object (video id -> class probabilities)')
    if not isinstance(results, dict):
        raise data_error(path, f"expected an object (video id -> class probabilities), got {_short(results)}",
                         where="results")
    names = _file_classes(path, data, classes) if "class" in data else None
    index = {name: i for i, name in enumerate(classes)}
    probs = {key: _parse_entry(path, key, value, names, index) for key, value in results.items()}
    _check_unambiguous(path, results)
    if video_ids is None:
        return probs
    return {vid: probs[_find(path, vid, results)] for vid in video_ids}


def _file_classes(path, data, classes):
    """The file's "class" list, checked to be the dataset's classes in some order."""
    names = data["class"]
    if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        raise data_error(path, f"expected a list of class names, got {_short(names)}", where="class")
    first = {}
    for i, name in enumerate(names):
        if name in first:
            raise data_error(path, f"{name!r} appears twice (first as class[{first[name]}])", where=f"class[{i}]")
        if name not in classes:
            raise data_error(path, f"{name!r} is not a class of the dataset ({len(classes)} classes)",
                             where=f"class[{i}]")
        first[name] = i
    missing = [name for name in classes if name not in first]
    if missing:
        raise data_error(path, f"lacks the dataset's class {missing[0]!r} ({len(missing)} of its "
                               f"{len(classes)} classes missing)", where="class")
    return names


def _parse_entry(path, key, value, names, index):
    """One video's probabilities, as a list in the file's class order or a dict by name."""
    if isinstance(value, dict):
        pairs = list(value.items())
        for name, _ in pairs:
            if name not in index:
                raise data_error(path, f"{name!r} is not a class of the dataset ({len(index)} classes)",
                                 key, "results")
        missing = [name for name in index if name not in value]
        if missing:
            raise data_error(path, f"no probability for class {missing[0]!r} ({len(missing)} of "
                                   f"{len(index)} classes missing)", key, "results")
    elif isinstance(value, list):
        if names is None:
            raise data_error(path, 'a list of probabilities needs the top-level "class" list to name '
                                   "them", key, "results")
        if len(value) != len(names):
            raise data_error(path, f"expected {len(names)} probabilities (one per entry of \"class\"), "
                                   f"got {len(value)}", key, "results")
        pairs = list(zip(names, value))
    else:
        raise data_error(path, f"expected a list of class probabilities, got {_short(value)}", key, "results")
    out = np.zeros(len(index), dtype=np.float64)
    for name, p in pairs:
        if not (is_number(p) and p >= 0):  # json reads NaN and Infinity; is_number refuses them
            raise data_error(path, f"expected a probability >= 0, got {p!r}", key, f"score of {name!r}")
        out[index[name]] = p
    return out


def _check_unambiguous(path, results):
    """A video must not appear both with and without the "v_" prefix: which one would be meant?"""
    for key in results:
        other = id_forms(key)[1]
        if key.startswith("v_") and other in results:
            raise data_error(path, f"ambiguous: both {key} and {other} are in the file", other, "results")


def _find(path, video_id, results):
    """The file's key for a video of the annotation file, written with or without "v_"."""
    # id_forms, and "v_" + id for the two ActivityNet ids that themselves start with "v_"
    forms = dict.fromkeys(id_forms(video_id) + ("v_" + video_id,))
    found = [form for form in forms if form in results]
    if len(found) > 1:
        raise data_error(path, f"ambiguous: both {found[0]} and {found[1]} are in the file", video_id, "results")
    if not found:
        raise data_error(path, f"no scores (nor under {' or '.join(list(forms)[1:])})", video_id, "results")
    return found[0]


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def label_proposals(segments, scores, video_probs, top_k=2):
    """Class-agnostic proposals of one video -> a detection per proposal and top-k class.

    The published ActivityNet recipe: each proposal is copied for each of the video's top_k classes
    (by the video-level probabilities, equal ones lower class id first), with score = proposal
    score x class probability. Returns segments (k*N, 2), scores (k*N,), labels (k*N,) int64, all N
    proposals with the top class first, then all with the second; k = min(top_k, C).
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    video_probs = np.asarray(video_probs, dtype=np.float64).reshape(-1)
    if len(segments) != len(scores):
        raise ValueError(f"{len(segments)} segments but {len(scores)} scores")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    top = np.argsort(-video_probs, kind="stable")[:top_k]  # stable: ties keep class order
    return (np.tile(segments, (len(top), 1)),
            (video_probs[top][:, None] * scores[None, :]).reshape(-1),
            np.repeat(top, len(scores)).astype(np.int64))


def write_video_scores(path, probs, classes):
    """Write {video_id: (C,) probabilities in the order of `classes`} in the format above, atomically.

    Videos sorted, one a line, probabilities rounded to 6 decimals, so two files diff readably.
    """
    lines = []
    for vid in sorted(probs):
        p = np.asarray(probs[vid], dtype=np.float64).reshape(-1)
        if len(p) != len(classes) or not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError(f"video {vid}: expected {len(classes)} finite probabilities >= 0, got {p}")
        lines.append(f"    {json.dumps(vid)}: {json.dumps([round(float(x), 6) for x in p])}")
    text = '{\n  "class": ' + json.dumps(list(classes)) + ',\n  "results": {\n' + ",\n".join(lines) + "\n  }\n}\n"
    atomic_write_text(path, text)


def top_k_accuracy(probs, true_class, k):
    """Fraction of videos whose true class is among the k most probable (ties: lower id first)."""
    hits = [true_class[vid] in np.argsort(-p, kind="stable")[:k] for vid, p in probs.items()]
    return float(np.mean(hits)) if hits else math.nan
