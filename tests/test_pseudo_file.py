"""common/pseudo_file.py: the pseudo-label file's writer and its one strict reader, which the round,
the carry-over, the review page and the benchmarks share. Hand-made files of one or two videos."""
import json
import re

import numpy as np
import pytest

import train_semi
from common import pseudo_file
from common.data import DataError, Video
from tools import review_pseudo_labels as review

CLASSES = ["A", "B"]


def _video(vid="v", subset="train", duration=10.0):
    return Video(vid, subset, duration, 30.0, np.zeros((0, 2)), np.zeros(0, dtype=np.int64))


DATASET = {"videos": {"v": _video(), "w": _video("w")}, "labeled": set(), "train_subset": "train"}


def _file():
    """Video v: two pseudo labels and two rejected predictions (one past the video's end, one before
    its start: drawn, and clipped where the round leaves them out of the loss)."""
    ann = lambda label, seg, **kw: {"label": label, "segment": seg, "label_id": CLASSES.index(label), "score": 0.8,  # noqa: E731
                                    "cls_score": 0.7, "tiou": 0.9, "tnd": None, "icd": 0.5, **kw}
    database = {"v": {"subset": "train", "duration": 10.0, "fps": 30.0,
                      "annotations": [ann("A", [1.0, 3.0], origin="positive", class_scores={"A": 0.7, "B": 0.2}),
                                      ann("B", [4.0, 6.0], origin="mined")],
                      "rejected": [ann("B", [-1.0, 2.0], reason="candidate"), ann("A", [8.0, 12.5], reason="eap")]}}
    return pseudo_file.file_dict({"tau_pos": {"v": 0.75}}, database)


def _write(tmp_path, data, name="pl.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_written_file_reads_back(tmp_path):
    path = str(tmp_path / "pl.json")
    pseudo_file.write(path, _file())
    text = open(path).read()
    assert text == json.dumps(_file(), indent=2) + "\n" and json.loads(text)["version"] == pseudo_file.SCHEMA
    labels = pseudo_file.read(path, CLASSES, DATASET)
    assert labels.database == _file()["database"] and labels.meta == {"tau_pos": {"v": 0.75}}
    assert labels.videos["v"].labels.tolist() == [0, 1] and labels.videos["v"].segments.tolist() == [[1, 3], [4, 6]]
    # the rejected regions the round leaves out of its loss, clipped to the video
    assert pseudo_file.rejected_segments(labels, "v").tolist() == [[0.0, 2.0], [8.0, 10.0]]
    taus, entries = pseudo_file.previous_round(path, CLASSES)
    assert taus == {"v": 0.75} and entries["v"] == (_file()["database"]["v"]["annotations"],
                                                    _file()["database"]["v"]["rejected"])


def _break(change):
    data = _file()
    change(data["database"]["v"])
    return data


MALFORMED = {
    "accepted segment past the end": (lambda v: v["annotations"][1].update(segment=[4.0, 11.0]),
                                      "annotations[1].segment", "[4.0, 11.0] is outside the video [0, 10.0] or empty"),
    "accepted score not a number": (lambda v: v["annotations"][0].update(icd="high"), "annotations[0].icd",
                                    "expected a number, got 'high'"),
    "class_scores of an unknown class": (lambda v: v["annotations"][0]["class_scores"].update(C=0.1),
                                         "annotations[0].class_scores", "'C' is not in the class list (2 classes)"),
    "class_scores not a probability": (lambda v: v["annotations"][0]["class_scores"].update(A=1.5),
                                       "annotations[0].class_scores.A", "expected a probability in [0, 1], got 1.5"),
    "unknown label": (lambda v: v["annotations"][1].update(label="C"), "annotations[1].label",
                      "'C' is not in the class list (2 classes)"),
    "rejected not a list": (lambda v: v.update(rejected={"a": 1}), "rejected", "expected a list"),
    "rejected entry not an object": (lambda v: v["rejected"].append(5), "rejected[2]", "expected an object, got 5"),
    "rejected entry without a label": (lambda v: v["rejected"][0].pop("label"), "rejected[0].label",
                                       "expected a label name, got None"),
    "rejected segment reversed": (lambda v: v["rejected"][1].update(segment=[9.0, 8.0]), "rejected[1].segment",
                                  "reversed: end 8.0 < start 9.0"),
    "rejected score not a number": (lambda v: v["rejected"][1].update(score=True), "rejected[1].score",
                                    "expected a number, got True"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_one_reader_names_a_malformed_entry_in_one_line(tmp_path, case):
    change, field, problem = MALFORMED[case]
    path = _write(tmp_path, _break(change))
    line = f"{path}: video v: {field}: {problem}"
    # every reader of the file: the round, the carry-over, the review page (with --config), a benchmark
    for read in (lambda: pseudo_file.read(path, CLASSES),
                 lambda: train_semi.load_pseudo_labels(path, DATASET["videos"], CLASSES, set(), "train", "soft"),
                 lambda: pseudo_file.previous_round(path, CLASSES),
                 lambda: review.read_round(path, CLASSES, DATASET)):
        with pytest.raises(DataError) as info:
            read()
        assert str(info.value).startswith(line) and len(str(info.value).splitlines()) == 1, str(info.value)


@pytest.mark.parametrize("change, dataset_change, message", [
    (lambda db: db.update(u=db.pop("v")), {}, "video u: not a video of the dataset's annotation file"),
    (lambda db: None, {"labeled": {"v"}}, "video v: is a labeled video; pseudo labels are for unlabeled ones"),
    (lambda db: None, {"videos": {"v": _video(subset="test")}}, "video v: is a 'test' video, not a training ('train') one"),
    (lambda db: None, {"videos": {"v": _video(duration=12.0)}}, "video v: duration: 10.0 differs from the dataset's 12.0"),
])
def test_a_file_against_its_dataset(tmp_path, change, dataset_change, message):
    data = _file()
    change(data["database"])
    path = _write(tmp_path, data)
    pseudo_file.read(path, CLASSES)  # without the dataset: a well-formed file
    with pytest.raises(DataError, match=f"^{re.escape(path)}: {re.escape(message)}$"):
        pseudo_file.read(path, CLASSES, {**DATASET, **dataset_change})


def test_file_level_problems(tmp_path):
    for data, message in (({"database": {}}, "database: holds no video"),
                          ({"meta": {}}, 'missing "database" object')):
        path = _write(tmp_path, data)
        with pytest.raises(DataError, match=f"^{re.escape(path)}: {re.escape(message)}$"):
            pseudo_file.read(path, CLASSES)
    # the carry-over needs the thresholds the file's meta holds
    data = _file()
    data["meta"]["tau_pos"]["v"] = "high"
    path = _write(tmp_path, data)
    with pytest.raises(DataError, match=f"^{re.escape(path)}: video v: meta.tau_pos: expected a number or null"):
        pseudo_file.previous_round(path, CLASSES)
    del data["meta"]["tau_pos"]
    path = _write(tmp_path, data)
    with pytest.raises(DataError, match="meta.tau_pos: expected {video: tau_pos}, as pseudo_label.py writes it"):
        pseudo_file.previous_round(path, CLASSES)
