"""tools/review_pseudo_labels.py used as a person would: a pseudo-label file written by hand for three
videos of the tiny embedded dataset, the review page it gives, the diff of two rounds (on the page,
as a table, as JSON), broken inputs, and the page opened in headless Chromium where it is installed."""
import html
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import embedded

from common.config import load_config
from common.stage import load_data, run_main, unlabeled_ids
from tools import review_pseudo_labels as review

TOOL = os.path.join("tools", "review_pseudo_labels.py")
# Three unlabeled videos of the tiny dataset (its 40% split) and their ground truth:
#   V1 video_train_0000002, 60 s: 4 x CricketBowling [1.27, 4.32] [12.01, 13.04] [17.85, 22.54] [56.69, 59.85]
#   V2 video_train_0000011, 15 s: 1 x Diving [10.15, 12.89]
#   V3 video_train_0000007, 25.38 s: 4 x CricketBowling
V1, V2, V3 = "video_train_0000002", "video_train_0000011", "video_train_0000007"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "tiny"
    sets = embedded(["dataset.synthetic_size=tiny", f"dataset.annotation_file={root}/annotations.json",
                     f"dataset.feature_dir={root}/features", f"dataset.labeled_split={root}/splits/labeled_40pct.txt",
                     f"dataset.unlabeled_split={root}/splits/unlabeled_40pct.txt"])
    cfg = load_config("configs/default.yaml", sets)
    videos, classes = load_data(cfg)
    assert {V1, V2, V3} <= set(unlabeled_ids(cfg, videos))
    return {"sets": sets, "videos": videos, "classes": classes, "dir": tmp_path_factory.mktemp("files")}


def _config(tiny):
    out = ["--config", "configs/default.yaml"]
    for s in tiny["sets"]:
        out += ["--set", s]
    return out


def _ann(label, segment, origin=None, score=0.5, label_id=None, key="origin"):
    """An entry as pseudo_label.py writes it; origin None: hand-added (label and segment only)."""
    ann = {"label": label, "segment": segment}
    if label_id is not None:
        ann["label_id"] = label_id
    if origin is not None:
        ann.update(score=score, cls_score=score + 0.1, tiou=0.9, tnd=0.01, icd=0.8, **{key: origin},
                   class_scores={label: min(score + 0.1, 1.0), "Diving": 0.05})
    return ann


def _video(tiny, vid, annotations, rejected=()):
    v = tiny["videos"][vid]
    return {"subset": "train", "duration": v.duration, "fps": v.fps, "annotations": list(annotations),
            "rejected": list(rejected)}


def hand_file(tiny):
    """V1: a positive and a mined label on its first two truths, a hand-added Diving where it has
    none, 4 rejected (2 candidates, 1 EAP, 1 other_class: a reason of older files, which the page
    shows by its name); V2: an oracle label on its truth; V3: no pseudo label, 1 candidate."""
    rej = lambda label, seg, reason: _ann(label, seg, reason, 0.2, key="reason")  # noqa: E731
    return {"version": "apl-pseudo-labels-v1",
            "meta": {"icd": "both", "tau_neg": 0.15, "counts": {"videos": 3},
                     "tau_pos": {V1: 0.31, V2: 0.42, V3: None}},
            "database": {
                V1: _video(tiny, V1, [_ann("CricketBowling", [1.27, 4.32], "positive", 0.6, 2),
                                      _ann("CricketBowling", [12.01, 13.04], "mined", 0.3, 2),
                                      _ann("Diving", [30.0, 35.0])],
                           [rej("CricketBowling", [17.0, 23.0], "candidate"), rej("CricketShot", [40.0, 42.0], "eap"),
                            rej("BaseballPitch", [50.0, 52.0], "other_class"),
                            rej("CricketBowling", [56.0, 59.0], "candidate")]),
                V2: _video(tiny, V2, [_ann("Diving", [10.15, 12.89], "oracle", 1.0, 4)]),
                V3: _video(tiny, V3, [], [rej("CricketBowling", [2.5, 3.6], "candidate")])}}


def write(tiny, name, data):
    path = tiny["dir"] / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return str(path)


def sections(page):
    """{video_id: the HTML of its timeline}."""
    found = re.finditer(r'<section class="video" id="([^"]+)".*?</section>', page, re.S)
    return {m.group(1): m.group(0) for m in found}


def drawn(section, attr):
    """(start, width, value) of the rects carrying data-<attr>, as drawn."""
    out = []
    for m in re.finditer(r'<rect x="([^"]+)" y="[^"]+" width="([^"]+)"([^>]*)/>', section):
        value = re.search(rf' data-{attr}="([^"]*)"', m.group(3))
        if value:
            out.append((float(m.group(1)), round(float(m.group(2)), 3), value.group(1)))
    return sorted(out)


def expected(entries, key):
    return sorted((a["segment"][0], round(a["segment"][1] - a["segment"][0], 3), a.get(key) or "hand")
                  for a in entries)


# ---------------------------------------------------------------- the page

def test_page_draws_every_entry_once_with_summary_and_quality(tiny, tmp_path):
    data = hand_file(tiny)
    out = tmp_path / "review"
    review.main([write(tiny, "pl.json", data)] + _config(tiny) + ["--out", str(out)])
    assert os.listdir(out) == ["index.html"]        # no temporary file left beside it
    page = (out / "index.html").read_text()
    secs = sections(page)
    assert sorted(secs) == sorted(data["database"])
    for vid, entry in data["database"].items():     # each entry exactly once, where the file puts it
        assert drawn(secs[vid], "e") == sorted(expected(entry["annotations"], "origin")
                                               + expected(entry["rejected"], "reason"))
        assert len(drawn(secs[vid], "gt")) == len(tiny["videos"][vid].labels)
    counts = dict(re.findall(r'data-count="([^"]+)">(\d+)<', page))
    assert counts == {"accepted": "4", "accepted:positive": "1", "accepted:mined": "1", "accepted:oracle": "1",
                      "accepted:hand": "1", "rejected": "5", "rejected:candidate": "3", "rejected:eap": "1",
                      "rejected:other_class": "1"}
    # Quality of the 4 accepted: 3 lie exactly on a truth of their class, the hand-added Diving on
    # none (its best overlap 0, with a CricketBowling): Class Acc = Avg tIoU = Pos Acc = P@0.5 =
    # 3/4; R@0.5 = 3 of the 4 + 1 + 4 truths.
    row = re.search(r'<table id="quality">.*?<td>all accepted</td>(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r"<td>([\d.]+)</td>", row) == ["4", "75.0", "75.0", "75.0", "75.0", "33.3"]
    # disagreement: V1's hand-added label matches nothing, its last two truths nothing matches
    assert 'data-dis="3"' in secs[V1] and 'data-dis="0"' in secs[V2] and 'data-dis="4"' in secs[V3]
    assert re.findall(r'data-e="(\w+)" class="x"', secs[V1]) == ["hand"]
    assert 'data-tau="0.31"' in secs[V1] and 'data-tau=""' in secs[V3] and "1 video without one" in page
    assert "<td>tau_neg</td><td>0.15</td>" in page and "<td>icd</td><td>&quot;both&quot;</td>" in page  # meta
    assert "<link" not in page and not re.search(r'(src|href)="(https?:)?//', page)   # nothing fetched
    # class_scores ride on the entries that have them, classes by their number in the names list
    names = json.loads(re.search(r'<script[^>]*id="names"[^>]*>(.*?)</script>', page, re.S).group(1))
    positive = re.search(r'<rect [^>]*data-e="positive"[^>]*>', secs[V1]).group(0)
    assert f'data-c="{names.index("CricketBowling")}:0.7 {names.index("Diving")}:0.05"' in positive
    assert "data-c=" not in re.search(r'<rect [^>]*data-e="hand"[^>]*>', secs[V1]).group(0)


def test_relabelled_entries_show_the_detectors_class(tiny, tmp_path):
    # pseudo.relabel prototype: a pseudo label whose class the prototypes changed keeps the
    # detector's as detector_label, and its double is rejected as "duplicate"
    data = hand_file(tiny)
    v1 = data["database"][V1]
    v1["annotations"][0]["detector_label"] = "CricketShot"
    v1["rejected"].append({**v1["annotations"][0], "reason": "duplicate", "detector_label": "Diving"})
    del v1["rejected"][-1]["origin"]
    out = tmp_path / "review"
    review.main([write(tiny, "pl.json", data)] + _config(tiny) + ["--out", str(out)])
    page = (out / "index.html").read_text()
    names = json.loads(re.search(r'<script[^>]*id="names"[^>]*>(.*?)</script>', page, re.S).group(1))
    secs = sections(page)
    positive = re.search(r'<rect [^>]*data-e="positive"[^>]*>', secs[V1]).group(0)
    duplicate = re.search(r'<rect [^>]*data-e="duplicate"[^>]*>', secs[V1]).group(0)
    assert f'data-w="{names.index("CricketShot")}"' in positive and f'data-w="{names.index("Diving")}"' in duplicate
    assert "data-w=" not in re.search(r'<rect [^>]*data-e="mined"[^>]*>', secs[V1]).group(0)
    counts = dict(re.findall(r'data-count="([^"]+)">(\d+)<', page))
    assert counts["rejected:duplicate"] == "1" and "duplicate of a relabelled pseudo label" in page


def test_page_without_config_uses_the_files_own_classes(tiny, tmp_path):
    out = tmp_path / "review"
    review.main([write(tiny, "pl.json", hand_file(tiny)), "--out", str(out)])
    page = (out / "index.html").read_text()
    assert 'id="quality"' not in page and "data-gt" not in page    # no ground truth without the dataset
    assert len(re.findall(r" data-e=", "".join(sections(page).values()))) == 4 + 5
    # the labels keep their ids: CricketBowling is 2 and Diving 4 though 0, 1 and 3 are unused
    assert review.file_classes([str(tiny["dir"] / "pl.json")]) == [
        "(class 0)", "(class 1)", "CricketBowling", "(class 3)", "Diving"]


# ---------------------------------------------------------------- matching two rounds

def E(label, start, end):
    return review.Entry(start, end, label, "positive")


@pytest.mark.parametrize("new,old,new_status,old_status", [
    # identical -> tIoU 1: unchanged; [0, 9.5] against [0, 10]: tIoU 0.95, still unchanged
    ([E("a", 0, 10), E("a", 20, 29.5)], [E("a", 0, 10), E("a", 20, 30)], ["unchanged"] * 2, ["unchanged"] * 2),
    # [0, 5] against [0, 10]: tIoU 0.5 exactly, a pair: moved; [20, 24] against [20, 30]: 0.4, none
    ([E("a", 0, 5), E("a", 20, 24)], [E("a", 0, 10), E("a", 20, 30)], ["moved", "added"], ["moved", "removed"]),
    # two new on one old: the larger tIoU (1 > 0.8) takes it, the other is added
    ([E("a", 0, 8), E("a", 0, 10)], [E("a", 0, 10)], ["added", "unchanged"], ["unchanged"]),
    # tIoU first: B on [0, 10] (tIoU 1) takes the old A before the new A on [0, 9] (0.9)
    ([E("b", 0, 10), E("a", 0, 9)], [E("a", 0, 10)], ["relabelled", "added"], ["relabelled"]),
    # a tie in tIoU goes to the same label
    ([E("b", 0, 10), E("a", 0, 10)], [E("a", 0, 10)], ["added", "unchanged"], ["unchanged"]),
    ([], [E("a", 0, 10)], [], ["removed"]),
    ([E("a", 0, 10)], [], ["added"], []),
])
def test_matching_rules_by_hand(new, old, new_status, old_status):
    assert review.match_rounds(new, old) == (new_status, old_status)


def round_files(tiny):
    """A, then B: one entry unchanged, one moved (tIoU 0.65), one relabelled, one removed, one added."""
    old = _video(tiny, V1, [_ann("CricketBowling", [1.27, 4.32], "positive", 0.6, 2),
                            _ann("CricketBowling", [12.01, 13.04], "positive", 0.5, 2),
                            _ann("CricketBowling", [17.85, 22.54], "mined", 0.3, 2),
                            _ann("CricketBowling", [56.69, 59.85], "positive", 0.4, 2)])
    new = _video(tiny, V1, [_ann("CricketBowling", [1.27, 4.32], "positive", 0.6, 2),
                            _ann("CricketBowling", [12.2, 13.3], "positive", 0.5, 2),
                            _ann("Diving", [17.85, 22.54], "positive", 0.3, 4),
                            _ann("Diving", [30.0, 35.0])])
    return (write(tiny, "round1.json", {"database": {V1: old}}),
            write(tiny, "round2.json", {"database": {V1: new}}))


ONE_EACH = {"added": 1, "removed": 1, "relabelled": 1, "moved": 1, "unchanged": 1}


def test_diff_on_the_page(tiny, tmp_path):
    a, b = round_files(tiny)
    review.main([b, "--previous", a, "--out", str(tmp_path)] + _config(tiny))
    page = (tmp_path / "index.html").read_text()
    totals = dict(re.findall(r'data-total="(\w+)">(\d+)<', page))
    assert {k: int(v) for k, v in totals.items()} == ONE_EACH
    sec = sections(page)[V1]
    assert all(f'data-{k}="1"' in sec for k in ("added", "removed", "relabelled", "moved"))
    assert 'data-changes="4"' in sec
    assert sorted(v for *_, v in drawn(sec, "d")) == ["added", "moved", "relabelled", "unchanged"]
    assert sorted(v for *_, v in drawn(sec, "p")) == ["moved", "relabelled", "removed", "unchanged"]
    assert len(drawn(sec, "e")) == 4           # the previous round's lane is not counted as entries


def test_diff_table_on_the_command_line(tiny):
    a, b = round_files(tiny)
    run = subprocess.run([sys.executable, TOOL, "--diff", a, b], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    header = lines[1].split()
    assert header == ["video", "added", "removed", "relabelled", "moved", "unchanged"]
    rows = {line.split()[0]: dict(zip(header[1:], map(int, line.split()[1:]))) for line in lines[2:-1]}
    assert rows == {V1: ONE_EACH, "total": ONE_EACH}


def test_diff_as_json(tiny, capsys):
    a, b = round_files(tiny)
    review.main(["--diff", a, b, "--json"])
    got = json.loads(capsys.readouterr().out)
    assert got["total"] == ONE_EACH and got["videos"] == {V1: ONE_EACH} and (got["old"], got["new"]) == (a, b)
    # a round against itself changes nothing
    review.main(["--diff", b, b, "--json"])
    assert json.loads(capsys.readouterr().out)["total"] == {**dict.fromkeys(ONE_EACH, 0), "unchanged": 4}


def test_videos_that_come_and_go(tiny, tmp_path, capsys):
    # A holds V1 and V2, B holds V1 (the same) and V3: V2's label is removed, V3's added
    v1 = _video(tiny, V1, [_ann("CricketBowling", [1.27, 4.32], "positive", 0.6, 2)])
    a = write(tiny, "come1.json", {"database": {V1: v1, V2: _video(tiny, V2, [_ann("Diving", [10.0, 13.0], "mined")])}})
    b = write(tiny, "come2.json", {"database": {V1: v1, V3: _video(tiny, V3, [_ann("CricketBowling", [2.6, 3.5])])}})
    review.main(["--diff", a, b, "--json"])
    got = json.loads(capsys.readouterr().out)
    assert got["total"] == {"added": 1, "removed": 1, "relabelled": 0, "moved": 0, "unchanged": 1}
    assert got["videos"][V2]["removed"] == 1 and got["videos"][V3]["added"] == 1
    review.main([b, "--previous", a, "--out", str(tmp_path)])
    page = (tmp_path / "index.html").read_text()
    assert sorted(sections(page)) == [V1, V3] and f"videos no longer in the file: {V2} (1 removed)" in page


# ---------------------------------------------------------------- bad inputs

def _break(change):
    def build(tiny):
        data = hand_file(tiny)
        change(data["database"])
        return json.dumps(data)
    return build


LABELED = "video_train_0000001"
BAD = {
    "broken_json": (lambda tiny: '{"database": {', ["broken JSON"]),
    "unknown_label": (_break(lambda d: d[V1]["annotations"][0].update(label="Dancing")),
                      [f"video {V1}", "annotations[0].label", "'Dancing' is not in the class list"]),
    "reversed": (_break(lambda d: d[V2]["annotations"][0].update(segment=[5.0, 2.0])),
                 [f"video {V2}", "annotations[0].segment", "reversed"]),
    "rejected_segment": (_break(lambda d: d[V1]["rejected"][3].update(segment="late")),
                         [f"video {V1}", "rejected[3].segment", "expected [start, end]"]),
    "rejected_entry": (_break(lambda d: d[V3]["rejected"].append(7)),
                       [f"video {V3}", "rejected[1]", "expected an object"]),
    "labeled_video": (_break(lambda d: d.update({LABELED: dict(d[V1], duration=60.0)})),
                      [f"video {LABELED}", "is a labeled video"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("form", ["page", "previous", "diff"])
def test_bad_input_is_one_line_and_writes_nothing(tiny, tmp_path, capsys, case, form):
    build, fragments = BAD[case]
    bad, good = write(tiny, f"{case}.json", build(tiny)), write(tiny, "good.json", hand_file(tiny))
    out = tmp_path / "review"
    argv = {"page": [bad, "--out", str(out)], "previous": [good, "--previous", bad, "--out", str(out)],
            "diff": ["--diff", good, bad]}[form] + _config(tiny)
    with pytest.raises(SystemExit) as info:
        run_main(review.main, argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {bad}: ") and all(f in err for f in fragments), err
    assert not out.exists() and "added" not in captured.out


def test_bad_input_from_the_shell(tiny, tmp_path):
    bad = write(tiny, "shell.json", BAD["rejected_segment"][0](tiny))
    run = subprocess.run([sys.executable, TOOL, bad, "--out", str(tmp_path / "r")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0
    assert f"video {V1}: rejected[3].segment" in run.stderr and not (tmp_path / "r").exists()


# ---------------------------------------------------------------- in a browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]


def chromium(tmp_path, *args):
    profile = tmp_path / f"profile{len(os.listdir(tmp_path))}"   # a fresh profile per run
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


# Uses the page as a person would, from a page beside it that frames it (same folder; Chromium lets a
# file:// page script its frame with --allow-file-access-from-files): hover, zoom, sort, filter.
HARNESS = """<!DOCTYPE html><iframe id="f" src="index.html" width="1400" height="800"></iframe><script>
document.getElementById('f').onload = function () {
  var d = this.contentDocument, out = document.body;
  d.querySelector('rect[data-e="hand"]').dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
  out.setAttribute('data-tip', d.getElementById('tip').textContent);
  d.querySelector('rect[data-e="positive"]').dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
  out.setAttribute('data-tip2', d.getElementById('tip').textContent);
  d.querySelector('section.video button[data-zoom="2"]').click();
  out.setAttribute('data-zoom', d.querySelector('.inner').style.width);
  var sort = d.getElementById('sort');
  sort.value = 'n-asc';
  sort.dispatchEvent(new Event('change', {bubbles: true}));
  var ids = Array.from(d.querySelectorAll('section.video')).map(function (s) { return s.id; });
  out.setAttribute('data-order', ids.join(' '));
  d.getElementById('only-dis').click();
  out.setAttribute('data-shown', d.getElementById('shown').textContent);
};
</script>"""


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install -y chromium): "
                                                         "the review page is not opened in a browser")
def test_page_in_headless_chromium(tiny, tmp_path):
    import matplotlib.image

    a, b = round_files(tiny)
    data = hand_file(tiny)
    data["database"][V1] = json.load(open(b))["database"][V1]   # a round after round1.json, three videos
    review.main([write(tiny, "browser.json", data), "--previous", a, "--out", str(tmp_path / "r")] + _config(tiny))
    url = "file://" + str((tmp_path / "r" / "index.html").resolve())
    run = chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", url)
    assert 'data-rendered="3 timelines"' in run.stdout, run.stderr[-2000:]
    assert not re.search(r"<body[^>]* data-error=", run.stdout) and "Uncaught" not in run.stderr

    png = tmp_path / "page.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1400,1000", url)
    image = matplotlib.image.imread(str(png))
    assert image.shape[:2] == (1000, 1400)
    colours = np.unique(image[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 20, "the screenshot is blank"

    (tmp_path / "r" / "harness.html").write_text(HARNESS)
    run = chromium(tmp_path, "--allow-file-access-from-files", "--dump-dom", url.replace("index.html", "harness.html"))
    body = re.search(r"<body([^>]*)>", run.stdout).group(1)
    got = {k: html.unescape(v) for k, v in re.findall(r' data-(\w+)="([^"]*)"', body)}
    # V1's hand-added Diving on [30, 35]: no score, new in this round, no Diving truth there
    assert got["tip"].splitlines() == ["accepted: hand-added  Diving", "30 to 35 s (5.00 s)",
                                       "score -  cls_score -  tiou -  tnd -  icd -", "vs previous round: added",
                                       "no ground truth of its class at tIoU >= 0.5"]
    assert "class_scores: CricketBowling 0.7  Diving 0.05" in got["tip2"].splitlines()
    assert got["zoom"] == "200%"
    assert got["order"] == f"{V3} {V2} {V1}"          # 0, 1 and 4 pseudo labels
    assert got["shown"] == "2 of 3 videos shown"      # V2's one label sits on its one truth
