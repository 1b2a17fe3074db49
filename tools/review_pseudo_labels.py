"""Look at the pseudo labels before training on them: one static review page, and a round-to-round diff.

Reads a pseudo-label file (pseudo_label.py's, possibly edited by hand) with the checks train_semi.py
makes, and writes OUT/index.html: one self-contained file (no server, nothing fetched) that opens
from disk. It shows
  - a summary: the accepted pseudo labels by origin (positive, mined by MPP, oracle, hand-added:
    no origin), the rejected predictions by reason (candidate, eap, duplicate,
    previous_round), a histogram of tau_pos over the videos and the settings in the file's `meta`; with --config, when the unlabeled
    videos carry ground truth (benchmarks), the pseudo-label quality of Fig. 3(c);
  - one timeline per video: lanes for the ground truth, the accepted pseudo labels coloured by
    origin and the rejected predictions by reason; hover a segment for its label and scores (score =
    joint score, cls_score, tiou, tnd, icd, class_scores, the detector's class where pseudo.relabel
    changed it); zoom and scroll long videos; sort and filter the videos
    by pseudo labels, tau_pos, disagreement with the ground truth (a pseudo label that matches no
    ground truth of its class at tIoU >= 0.5, or a ground truth that none matches) and changes;
  - with --previous: what this round added, removed, relabelled or moved, per video and in total.

Two rounds are matched video by video: the pairs of a new entry and an old one with tIoU >= 0.5 are
taken greedily, largest tIoU first (the same label first on a tie), each entry in one pair at most.
A pair with the same label is unchanged at tIoU >= 0.95 and moved below; a pair with different
labels is relabelled; a new entry left unpaired is added, an old one removed.
--diff A B prints the same comparison of B against A, per video and in total, as a table (--json:
as JSON) for shell scripts, and writes nothing.

Without --config the class list is the files' own: their labels placed at their label_id.

The page's HTML template, CSS and script are the files in tools/review_page/, inlined into each page.

Examples:
  python tools/review_pseudo_labels.py outputs/main/round2/pseudo_labels.json --config configs/default.yaml \\
      --previous outputs/main/round1/pseudo_labels.json --out outputs/main/round2/review
  python tools/review_pseudo_labels.py --diff outputs/main/round1/pseudo_labels.json \\
      outputs/main/round2/pseudo_labels.json --json
"""
import dataclasses
import html
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import pseudo_file  # noqa: E402
from common.config import atomic_write_text  # noqa: E402
from common.data import is_number  # noqa: E402
from common.metrics import segment_tiou  # noqa: E402
from common.stage import config_from_args, labeled_ids, load_data, make_parser, run_main  # noqa: E402

SCORE_KEYS = pseudo_file.SCORE_KEYS
MATCH_TIOU, SAME_TIOU = 0.5, 0.95          # a pair of two rounds' entries; a pair that did not move
DIFF_KINDS = ("added", "removed", "relabelled", "moved", "unchanged")
ORIGINS = {"positive": "positive (>= tau_pos)", "mined": "mined by MPP", "oracle": "oracle",
           "previous_round": "kept from the previous round (carry_over)", "hand": "hand-added (no origin)"}
REASONS = {"candidate": "candidate (tau_neg < score < tau_pos)", "eap": "removed by EAP",
           "previous_round": "the previous round's (carry_over)",
           "duplicate": "duplicate of a relabelled pseudo label (relabel)"}


def parse_args(argv=None):
    parser = make_parser(__doc__)
    parser.add_argument("pseudo_labels", nargs="?", help="the pseudo-label JSON to review")
    parser.add_argument("--previous", help="the previous round's pseudo-label JSON: show what this round changed")
    parser.add_argument("--config", help="the run's YAML config: checks the file exactly as train_semi.py does "
                                         "and draws the ground truth where the dataset has it")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, as for the stages (repeatable)")
    parser.add_argument("--out", help="folder for index.html")
    parser.add_argument("--diff", nargs=2, metavar=("A", "B"),
                        help="print what B changed relative to A; writes nothing")
    parser.add_argument("--json", action="store_true", help="with --diff: JSON instead of a table")
    args = parser.parse_args(argv)
    if args.diff and (args.pseudo_labels or args.previous or args.out):
        parser.error("--diff A B takes no other pseudo-label file, --previous or --out")
    if not args.diff and not (args.pseudo_labels and args.out):
        parser.error("give a pseudo-label file and --out DIR (or --diff A B)")
    if args.json and not args.diff:
        parser.error("--json goes with --diff")
    if args.set and not args.config:
        parser.error("--set overrides a --config")
    return args


# ---------------------------------------------------------------- reading

@dataclasses.dataclass
class Entry:
    """One segment as the page draws it: an accepted pseudo label, a rejected prediction or a truth."""
    start: float
    end: float
    label: str
    kind: str                       # origin (accepted), reason (rejected), "truth"
    scores: tuple = (None,) * len(SCORE_KEYS)
    classes: tuple = ()             # class_scores as (name, probability) pairs, in the file's order
    detector: str | None = None     # detector_label: the detector's class where pseudo.relabel changed it


@dataclasses.dataclass
class Round:
    """One pseudo-label file: its videos as the annotation reader returns them, read strictly."""
    path: str
    videos: dict                    # {video_id: Video}
    rejected: dict                  # {video_id: [Entry]}
    meta: dict


def load_dataset(args):
    """With --config: the dataset's videos (with their ground truth), classes and labeled videos,
    got as train_semi.py gets them."""
    cfg = config_from_args(args)
    videos, classes = load_data(cfg)
    return {"videos": videos, "classes": classes, "labeled": set(labeled_ids(cfg, videos)),
            "train_subset": cfg["dataset"]["train_subset"]}


def sniff(path):
    """The file's JSON, or {} when it does not parse: the strict reader then says why, in its words."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def file_classes(paths):
    """The files' labels placed at their label_id (names without one last, alphabetically).

    The reader's own derivation numbers the labels it sees from 0, which disagrees with the
    label_id of a file that holds only some of the dataset's classes; unused ids get a placeholder.
    """
    first_id = {}
    for path in paths:
        db = sniff(path).get("database")
        for entry in db.values() if isinstance(db, dict) else []:
            anns = entry.get("annotations") if isinstance(entry, dict) else None
            for ann in anns if isinstance(anns, list) else []:
                if isinstance(ann, dict) and isinstance(ann.get("label"), str):
                    lid = ann.get("label_id")
                    lid = int(lid) if is_number(lid) and lid == int(lid) and 0 <= lid < 100000 else math.inf
                    first_id[ann["label"]] = min(first_id.get(ann["label"], math.inf), lid)
    slots, clashes = {}, []
    for name, lid in sorted(first_id.items(), key=lambda item: (item[1], item[0])):
        if lid == math.inf or lid in slots:  # no id, or two names on one id: the reader reports the second
            clashes.append(name)
        else:
            slots[lid] = name
    return [slots.get(i, f"(class {i})") for i in range(max(slots, default=-1) + 1)] + clashes


def read_round(path, classes, dataset=None):
    """A pseudo-label file read by its one strict reader (common/pseudo_file.py), with --config also
    checked against the dataset as train_semi.py checks it; its rejected predictions and meta."""
    labels = pseudo_file.read(path, classes, dataset)
    rejected = {vid: [rejected_entry(e) for e in labels.database[vid].get("rejected", [])] for vid in labels.videos}
    return Round(path, labels.videos, rejected, labels.meta)


def rejected_entry(e):
    """A rejected prediction, checked by the reader: drawn, never trained on, so its label need not
    be a class and a score may be missing."""
    reason = e.get("reason") if isinstance(e.get("reason"), str) and e.get("reason") else "unknown"
    return Entry(float(e["segment"][0]), float(e["segment"][1]), e["label"], reason,
                 tuple(e.get(k) for k in SCORE_KEYS), class_pairs(e), detector_of(e))


def class_pairs(entry):
    """An entry's class_scores as (name, probability) pairs; none where it has none to draw (the
    accepted ones are checked by the reader, a rejected one's are only drawn)."""
    scores = entry.get("class_scores")
    if not isinstance(scores, dict):
        return ()
    return tuple((name, p) for name, p in scores.items() if isinstance(name, str) and is_number(p))


def detector_of(entry):
    label = entry.get("detector_label")
    return label if isinstance(label, str) and label else None


def origin_of(extra):
    origin = extra.get("origin")
    return origin if isinstance(origin, str) and origin else "hand"


def accepted_entries(video, classes):
    """The video's pseudo labels (none when the file does not hold the video)."""
    if video is None:
        return []
    return [Entry(float(s), float(e), classes[label], origin_of(x), tuple(x.get(k) for k in SCORE_KEYS),
                  class_pairs(x), detector_of(x))
            for (s, e), label, x in zip(video.segments, video.labels, video.extra)]


def truth_entries(video, classes):
    return [Entry(float(s), float(e), classes[label], "truth") for (s, e), label in zip(video.segments, video.labels)]


# ---------------------------------------------------------------- matching

def tiou_matrix(a, b):
    """(len(a), len(b)) tIoU of two lists of entries."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    other = np.array([[x.start, x.end] for x in b])
    return np.stack([segment_tiou([x.start, x.end], other) for x in a])


def match_rounds(new, old):
    """Status of each new entry (added / relabelled / moved / unchanged) and of each old one
    (removed / ...): greedy one-to-one pairs at tIoU >= 0.5, largest tIoU first, the same label
    first on a tie, then the entries' order."""
    iou = tiou_matrix(new, old)
    pairs = sorted((-iou[i, j], new[i].label != old[j].label, i, j) for i, j in zip(*np.nonzero(iou >= MATCH_TIOU)))
    new_status, old_status = ["added"] * len(new), ["removed"] * len(old)
    for _, relabelled, i, j in pairs:
        if new_status[i] != "added" or old_status[j] != "removed":
            continue
        new_status[i] = old_status[j] = ("relabelled" if relabelled else
                                         "unchanged" if iou[i, j] >= SAME_TIOU else "moved")
    return new_status, old_status


def diff_rounds(new, old, classes):
    """{video_id: (new entries, their status, old entries, their status)} over both files' videos."""
    out = {}
    for vid in sorted(set(new.videos) | set(old.videos)):
        a, b = accepted_entries(new.videos.get(vid), classes), accepted_entries(old.videos.get(vid), classes)
        new_status, old_status = match_rounds(a, b)
        out[vid] = (a, new_status, b, old_status)
    return out


def diff_counts(new_status, old_status):
    """Counts of each kind of change; a pair counts once (from the new side), a removal from the old."""
    counts = dict.fromkeys(DIFF_KINDS, 0)
    for status in new_status:
        counts[status] += 1
    counts["removed"] = old_status.count("removed")
    return counts


def diff_summary(changes):
    """{"videos": {video_id: counts}, "total": counts}."""
    videos = {vid: diff_counts(c[1], c[3]) for vid, c in changes.items()}
    total = {k: sum(v[k] for v in videos.values()) for k in DIFF_KINDS}
    return {"videos": videos, "total": total}


def diff_table(summary, old_path, new_path):
    """The changes as a fixed-width table: the videos with a change, then the total."""
    changed = {vid: c for vid, c in summary["videos"].items() if any(c[k] for k in DIFF_KINDS[:4])}
    width = max([len("video")] + [len(vid) for vid in changed])
    lines = [f"{new_path} against {old_path}", f"{'video':<{width}}" + "".join(f"  {k:>10}" for k in DIFF_KINDS)]
    for vid, c in list(changed.items()) + [("total", summary["total"])]:
        lines.append(f"{vid:<{width}}" + "".join(f"  {c[k]:>10}" for k in DIFF_KINDS))
    lines.append(f"({len(summary['videos']) - len(changed)} of {len(summary['videos'])} videos without a change)")
    return "\n".join(lines)


def disagreement(accepted, truth):
    """Which pseudo labels match a ground truth of their class at tIoU >= 0.5, and which ground
    truths a pseudo label of their class matches (not one-to-one: this is about finding videos)."""
    same = np.array([a.label for a in accepted], dtype=object)[:, None] == np.array([g.label for g in truth],
                                                                                    dtype=object)[None, :]
    hit = same & (tiou_matrix(accepted, truth) >= MATCH_TIOU)
    return hit.any(axis=1), hit.any(axis=0)


# ---------------------------------------------------------------- the summary

def quality_rows(current, dataset):
    """Fig. 3(c) measures of the accepted pseudo labels, all of them and by origin."""
    origins = sorted({origin_of(x) for v in current.videos.values() for x in v.extra})
    rows = {}
    for name in ["all accepted"] + origins:
        selected = {}
        for vid, v in current.videos.items():
            keep = np.array([name == "all accepted" or origin_of(x) == name for x in v.extra], dtype=bool)
            # a hand-added label without score: a person vouched for it, so it is matched first
            scores = np.array([x.get("score") if x.get("score") is not None else 1.0 for x in v.extra], dtype=float)
            selected[vid] = (v.segments[keep], v.labels[keep], scores[keep])
        rows[ORIGINS.get(name, name)] = pseudo_file.quality(selected, dataset["videos"])
    return rows


def quality_html(rows):
    keys = ["class_acc", "avg_tiou", "pos_acc", "precision@0.5", "recall@0.5"]
    head = "".join(f"<th>{k}</th>" for k in ["accepted", "#PL", "Class Acc", "Avg tIoU", "Pos Acc",
                                             "P@0.5", "R@0.5"])
    body = "".join(f"<tr><td>{html.escape(name)}</td><td>{q['pseudo_labels']}</td>"
                   + "".join(f"<td>{100 * q[k]:.1f}</td>" for k in keys) + "</tr>" for name, q in rows.items())
    return (f'<table id="quality"><tr>{head}</tr>{body}</table><p class="note">Against the ground truth of the '
            "unlabeled videos (common/pseudo_file.py quality): Class Acc, Avg tIoU and Pos Acc (right class, tIoU &gt; 0.5) "
            "against each pseudo label's best-overlapping ground truth; precision / recall at tIoU 0.5, one-to-one. "
            "Recall by origin counts all ground truth.</p>")


def tau_values(meta, vid):
    """(known, value): meta.tau_pos of the video; null means no prediction above tau_neg."""
    taus = meta.get("tau_pos")
    if not isinstance(taus, dict) or vid not in taus:
        return False, None
    return True, taus[vid] if is_number(taus[vid]) else None


def histogram_svg(values, bins=20, width=340, height=70):
    """A small histogram of tau_pos over the videos."""
    lo, hi = min(values), max(values)
    step = (hi - lo) / bins or 1.0
    counts = np.bincount(np.minimum(((np.array(values) - lo) / step).astype(int), bins - 1), minlength=bins)
    bar = width / bins
    parts = [f'<svg class="hist" width="{width}" height="{height + 16}" role="img">']
    for i, n in enumerate(counts):
        h = (height - 2) * n / counts.max()
        parts.append(f'<rect x="{i * bar + 1:.1f}" y="{height - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}">'
                     f"<title>tau_pos {lo + i * step:.3f} to {lo + (i + 1) * step:.3f}: {n} videos</title></rect>")
    parts.append(f'<text x="0" y="{height + 13}">{lo:.3f}</text>'
                 f'<text x="{width}" y="{height + 13}" text-anchor="end">{hi:.3f}</text></svg>')
    return "".join(parts)


def tau_html(meta, vids):
    known = [tau_values(meta, vid) for vid in vids]
    values = [v for k, v in known if k and v is not None]
    none = sum(1 for k, v in known if k and v is None)
    if not values and not none:
        return '<p class="note">meta.tau_pos: not in the file (an oracle or hand-made file)</p>'
    text = (f"median {np.median(values):.3f}, range {min(values):.3f} to {max(values):.3f} over {len(values)} videos"
            if values else "no video has one")
    note = f"; {count(none, 'video')} without one (no prediction above tau_neg)" if none else ""
    return (histogram_svg(values) if values else "") + f'<p class="note">tau_pos per video: {text}{note}</p>'


def counts_html(views):
    """Accepted by origin and rejected by reason, each with its colour."""
    rows = []
    for side, key, titles in (("accepted", "accepted", ORIGINS), ("rejected", "rejected", REASONS)):
        kinds = {}
        for view in views:
            for e in view[key]:
                kinds[e.kind] = kinds.get(e.kind, 0) + 1
        order = [k for k in titles if k in kinds] + sorted(k for k in kinds if k not in titles)
        rows.append(f'<tr class="total"><td>{side}</td><td data-count="{side}">{sum(kinds.values())}</td></tr>')
        rows += [f'<tr><td><i class="sw {side[:3]}" data-e="{html.escape(k)}"></i>{html.escape(titles.get(k, k))}'
                 f'</td><td data-count="{side}:{html.escape(k)}">{kinds[k]}</td></tr>' for k in order]
    return f'<table id="counts">{"".join(rows)}</table>'


def meta_html(meta):
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(json.dumps(v))}</td></tr>"
                   for k, v in meta.items() if k != "tau_pos")
    return f'<table id="meta">{rows}</table>' if rows else '<p class="note">the file has no meta</p>'


def diff_html(summary, previous, views):
    """Totals of the changes since the previous round, and the videos it held that are gone."""
    total = summary["total"]
    # the swatches are the colours of the previous round's lane (its entries never show as added)
    swatch = {k: "" if k == "added" else f'<i class="sw" data-p="{k}"></i>' for k in DIFF_KINDS}
    cells = "".join(f'<td>{swatch[k]}{k}</td><td data-total="{k}">{total[k]}</td>' for k in DIFF_KINDS)
    shown = {view["vid"] for view in views}
    gone = [f"{html.escape(vid)} ({c['removed']} removed)" for vid, c in summary["videos"].items() if vid not in shown]
    note = f"<p>videos no longer in the file: {', '.join(gone)}</p>" if gone else ""
    return (f'<section id="diff"><h2>Changes since the previous round</h2><p class="note">against '
            f"{html.escape(previous.path)}: per pair of entries at tIoU &ge; {MATCH_TIOU} (greedy, largest "
            f"tIoU first): same label and tIoU &ge; {SAME_TIOU} unchanged, same label otherwise moved, other "
            f"label relabelled; unpaired new entries added, old ones removed.</p>"
            f"<table><tr>{cells}</tr></table>{note}</section>")


# ---------------------------------------------------------------- the timelines

ROW_H, ROW_GAP, LANE_GAP = 10, 2, 8     # pixels
MAX_ROWS = {"truth": 4, "accepted": 6, "rejected": 8, "previous": 6}


def pack_rows(entries, max_rows):
    """A row per entry so that overlapping entries sit in different rows (first fit by start); past
    max_rows an entry goes to the row that frees first, over the others (their outlines still show)."""
    ends, rows = [], [0] * len(entries)
    for i in sorted(range(len(entries)), key=lambda i: (entries[i].start, entries[i].end)):
        free = [r for r, end in enumerate(ends) if end <= entries[i].start]
        r = free[0] if free else len(ends) if len(ends) < max_rows else int(np.argmin(ends))
        if r == len(ends):
            ends.append(0.0)
        ends[r], rows[i] = max(ends[r], entries[i].end), r
    return rows, max(len(ends), 1)


def _num(x, digits=4):
    if x is None:
        return "-"
    return (f"{x:.{digits}f}".rstrip("0").rstrip(".") or "0") if x != int(x) else str(int(x))


def count(n, noun):
    """'1 video', '2 videos'."""
    return f"{n} {noun}{'s' * (n != 1)}"


def entry_rect(e, y, attrs, names, scores):
    """One segment: x and width in seconds (the strip's own unit), label (and scores) for the tooltip.
    Its height is the page's CSS: 40,000 entries make a few MB, every attribute counts."""
    text = " ".join([str(names.setdefault(e.label, len(names)))] + ([_num(s) for s in e.scores] if scores else []))
    if scores and e.classes:  # class_scores: "class:probability ...", classes by their number in `names`
        attrs += ' data-c="' + " ".join(f"{names.setdefault(n, len(names))}:{_num(p)}" for n, p in e.classes) + '"'
    if scores and e.detector:  # relabelled (pseudo.relabel): the detector's own class, by its number
        attrs += f' data-w="{names.setdefault(e.detector, len(names))}"'
    return f'<rect x="{_num(e.start, 3)}" y="{y}" width="{_num(e.end - e.start, 3)}"{attrs} data-s="{text}"/>'


def lanes_svg(view, names):
    """The video's lanes in one strip stretched to its width: (svg, lane names svg)."""
    lanes = [("ground truth", "truth", view.get("truth")), ("accepted", "accepted", view["accepted"]),
             ("rejected", "rejected", view["rejected"]), ("previous round", "previous", view.get("previous"))]
    body, labels, y = [], [], 0
    for title, key, entries in lanes:
        if entries is None:
            continue
        rows, n_rows = pack_rows(entries, MAX_ROWS[key])
        height = n_rows * (ROW_H + ROW_GAP) - ROW_GAP
        body.append(f'<g class="{key}"><rect class="bg" x="0" y="{y}" width="{view["duration"]}" height="{height}"/>')
        body += [entry_rect(e, y + r * (ROW_H + ROW_GAP), lane_attrs(view, key, i, e), names,
                            key in ("accepted", "rejected")) for i, (e, r) in enumerate(zip(entries, rows))]
        body.append("</g>")
        labels.append(f'<text x="0" y="{y + ROW_H / 2:g}">{title} ({len(entries)})</text>')
        y += height + LANE_GAP
    height = y - LANE_GAP
    svg = (f'<svg class="lanes" viewBox="0 0 {view["duration"]} {height}" preserveAspectRatio="none" '
           f'height="{height}">{"".join(body)}</svg>')
    return svg, f'<svg class="names" width="130" height="{height}">{"".join(labels)}</svg>'


def lane_attrs(view, key, i, e):
    """The data attributes tests and the page's script count and colour by."""
    kind = html.escape(e.kind)
    if key == "truth":
        return ' data-gt=""' + ("" if view["gt_ok"][i] else ' class="x"')
    if key == "previous":
        return f' data-p="{view["old_status"][i]}"'
    attrs = f' data-e="{kind}"'
    if key == "accepted" and "truth" in view and not view["pl_ok"][i]:
        attrs += ' class="x"'
    if key == "accepted" and "new_status" in view:
        attrs += f' data-d="{view["new_status"][i]}"'
    return attrs


def timeline_html(view, names):
    """A video's header (its counts) and its strip, with the values the page sorts and filters by."""
    svg, lane_names = lanes_svg(view, names)
    n = len(view["accepted"])
    facts = [f"{view['duration']:g} s", count(n, "pseudo label"), f"{len(view['rejected'])} rejected"]
    tau_known, tau = view["tau"]
    if tau_known:
        facts.append(f"tau_pos {_num(tau, 3) if tau is not None else 'none'}")
    data = {"vid": view["vid"], "n": n, "tau": "" if tau is None else tau}
    if "truth" in view:
        fp, miss = int((~view["pl_ok"]).sum()), int((~view["gt_ok"]).sum())
        facts.append(f"ground truth {len(view['truth'])}: {count(fp, 'pseudo label')} unmatched, {miss} missed")
        data["dis"] = fp + miss
    if "new_status" in view:
        c = diff_counts(view["new_status"], view["old_status"])
        facts.append("vs previous: " + ", ".join(f"{c[k]} {k}" for k in DIFF_KINDS[:4]))
        data.update({k: c[k] for k in DIFF_KINDS[:4]}, changes=sum(c[k] for k in DIFF_KINDS[:4]))
    attrs = "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in data.items())
    vid = html.escape(view["vid"])
    return (f'<section class="video" id="{vid}"{attrs}><h3><a href="#{vid}">{vid}</a> <span>{" · ".join(facts)}'
            '</span> <button data-zoom="0.5" title="zoom out">&minus;</button><button data-zoom="2" title="zoom in">'
            '+</button><button data-zoom="0" title="fit the width">fit</button></h3><div class="tl">'
            f'{lane_names}<div class="scroll"><div class="inner">{svg}<div class="axis" '
            f'data-dur="{view["duration"]}"></div></div></div></div></section>')


# ---------------------------------------------------------------- the page

def video_views(current, previous, dataset, classes):
    """What each video's timeline shows, in video id order."""
    truth_known = dataset is not None and any(len(dataset["videos"][vid].labels) for vid in current.videos)
    changes = diff_rounds(current, previous, classes) if previous is not None else {}
    views = []
    for vid in sorted(current.videos):
        view = {"vid": vid, "duration": current.videos[vid].duration, "rejected": current.rejected[vid],
                "accepted": accepted_entries(current.videos[vid], classes), "tau": tau_values(current.meta, vid)}
        if truth_known:
            view["truth"] = truth_entries(dataset["videos"][vid], classes)
            view["pl_ok"], view["gt_ok"] = disagreement(view["accepted"], view["truth"])
        if previous is not None:
            _, view["new_status"], view["previous"], view["old_status"] = changes[vid]
        views.append(view)
    return views, changes


def render_page(current, previous, dataset, classes):
    views, changes = video_views(current, previous, dataset, classes)
    names = {}                      # label -> index into the page's label list, for data-s
    timelines = "".join(timeline_html(view, names) for view in views)
    label_list = json.dumps(sorted(names, key=names.get)).replace("<", "\\u003c")
    return PAGE.format(title=html.escape(os.path.basename(current.path)), path=html.escape(current.path),
                       css=CSS, row_h=ROW_H, summary=summary_html(views, changes, current, previous, dataset),
                       controls=controls_html(views, previous), timelines=timelines, names=label_list, script=SCRIPT)


def summary_html(views, changes, current, previous, dataset):
    """Counts and quality | tau_pos and settings, then the changes since the previous round."""
    quality = ""
    if views and "truth" in views[0]:
        dis = sum(1 for v in views if (~v["pl_ok"]).any() or (~v["gt_ok"]).any())
        quality = (f"<h3>Quality against the ground truth</h3>{quality_html(quality_rows(current, dataset))}"
                   f"<p>{dis} of {len(views)} videos disagree with the ground truth: a pseudo label matches no "
                   f"ground truth of its class at tIoU &ge; {MATCH_TIOU} (outlined red), or a ground truth "
                   "is matched by none.</p>")
    return (f"<h2>Summary</h2><p>{count(len(views), 'video')}, "
            f"{count(sum(len(v['accepted']) for v in views), 'pseudo label')}, "
            f"{count(sum(len(v['rejected']) for v in views), 'rejected prediction')}</p><div class='cols'><div>"
            f"<h3>Entries</h3>{counts_html(views)}{quality}</div><div><h3>tau_pos</h3>"
            f"{tau_html(current.meta, [v['vid'] for v in views])}<h3>Settings (meta)</h3>"
            f"{meta_html(current.meta)}</div></div>"
            + (diff_html(diff_summary(changes), previous, views) if previous is not None else ""))


def controls_html(views, previous):
    sorts = [("vid", "video id"), ("n-desc", "most pseudo labels"), ("n-asc", "fewest pseudo labels"),
             ("tau-desc", "highest tau_pos"), ("tau-asc", "lowest tau_pos")]
    checks = []
    if views and "truth" in views[0]:
        sorts.append(("dis-desc", "most disagreement with ground truth"))
        checks.append('<label><input type="checkbox" id="only-dis"> only videos that disagree with the ground '
                      'truth</label><label><input type="checkbox" id="dim-ok"> dim matched pseudo labels</label>')
    if previous is not None:
        sorts.append(("changes-desc", "most changes since the previous round"))
        checks.append('<label><input type="checkbox" id="only-changed"> only changed videos</label><label>'
                      '<input type="checkbox" id="dim-same"> dim unchanged pseudo labels</label>')
    options = "".join(f'<option value="{k}">{t}</option>' for k, t in sorts)
    return (f'<div id="controls">sort by <select id="sort">{options}</select> <label>at least <input type="number" '
            'id="min-n" value="0" min="0"> pseudo labels</label> <label>video id contains <input id="find" '
            f'size="14"></label> {"".join(checks)} <span id="shown"></span> zoom all <button data-zoom-all="0.5">'
            '&minus;</button><button data-zoom-all="2">+</button><button data-zoom-all="0">fit</button></div>')


PAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "review_page")


def page_part(name):
    """A part of the page kept beside this script: the HTML template (str.format fields, braces
    doubled), its CSS and its script, inlined so that the written page stays one file."""
    with open(os.path.join(PAGE_DIR, name), encoding="utf-8") as f:
        return f.read()


PAGE, CSS, SCRIPT = page_part("page.html"), page_part("review.css"), page_part("review.js")


def main(argv=None):
    args = parse_args(argv)
    # 1. The files, checked as train_semi.py checks them; with --config, the dataset and its ground truth.
    dataset = load_dataset(args) if args.config else None
    paths = args.diff or [p for p in (args.previous, args.pseudo_labels) if p]
    classes = dataset["classes"] if dataset else file_classes(paths)
    rounds = [read_round(path, classes, dataset) for path in paths]

    # 2. --diff: the changes on stdout, nothing written.
    if args.diff:
        summary = diff_summary(diff_rounds(rounds[1], rounds[0], classes))
        print(json.dumps({"old": args.diff[0], "new": args.diff[1], **summary}, indent=2) if args.json
              else diff_table(summary, *args.diff))
        return summary

    # 3. The page, written whole or not at all.
    current, previous = rounds[-1], rounds[0] if args.previous else None
    page = render_page(current, previous, dataset, classes)
    path = os.path.join(args.out, "index.html")
    atomic_write_text(path, page)
    print(f"wrote {path}: {count(len(current.videos), 'video')}, "
          f"{count(sum(len(v.labels) for v in current.videos.values()), 'pseudo label')}, "
          f"{sum(map(len, current.rejected.values()))} rejected ({len(page.encode()) / 1e6:.2f} MB)")
    return path


if __name__ == "__main__":
    run_main(main)
