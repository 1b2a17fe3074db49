"""A tiny chain of the stages on the embedded dataset, and their command-line behaviour on bad input."""
import json
import os

import pytest
from conftest import stage_args as _args

import evaluate
import train_supervised
from synthetic.thumos_like import ensure_dataset

TINY = ["model.embd_dim=16", "model.head_dim=16", "model.n_head=2", "model.attn_window=5",
        "dataset.max_seq_len=128", "train.epochs=2", "train.warmup_epochs=1", "train.batch_size=4",
        "dataset.labeled_split=null", "dataset.unlabeled_split=null"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data") / "tiny")
    ensure_dataset(root, "tiny", 0)
    return ["dataset.synthetic_size=tiny", f"dataset.annotation_file={root}/annotations.json",
            f"dataset.feature_dir={root}/features"] + TINY


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run") / "sup")
    train_supervised.main(_args(tiny) + ["--out", out])
    return out


def test_train_writes_checkpoint_config_and_log(trained):
    assert sorted(os.listdir(trained)) == ["config.yaml", "last.pt", "log.jsonl"]
    lines = [json.loads(l) for l in open(os.path.join(trained, "log.jsonl"))]
    assert [l["epoch"] for l in lines] == [0, 1, 2]
    assert all(l["loss"] > 0 for l in lines)


def test_interrupted_run_resumes_to_the_same_numbers(tiny, trained, tmp_path, monkeypatch):
    # Stop a run after its first two epochs, as a crash would, then --resume it: the CPU run is
    # deterministic, so every epoch's loss equals the uninterrupted run's.
    out = str(tmp_path / "again")
    real = train_supervised.train_one_epoch

    def crash_at_epoch_2(*args, **kwargs):
        if args[7] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_supervised, "train_one_epoch", crash_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_supervised.main(_args(tiny) + ["--out", out])
    monkeypatch.setattr(train_supervised, "train_one_epoch", real)
    train_supervised.main(_args(tiny) + ["--out", out, "--resume"])
    first = [json.loads(l)["loss"] for l in open(os.path.join(trained, "log.jsonl"))]
    again = [json.loads(l)["loss"] for l in open(os.path.join(out, "log.jsonl"))]
    assert again == first


def test_evaluate_checkpoint_then_predictions_file(tiny, trained, tmp_path):
    pred, metrics = str(tmp_path / "pred.json"), str(tmp_path / "m.json")
    got = evaluate.main(_args(tiny) + ["--checkpoint", os.path.join(trained, "last.pt"),
                                       "--out", pred, "--json", metrics])
    results = json.load(open(pred))
    assert set(results) == {"version", "results", "external_data"}
    assert len(results["results"]) == 8  # every test video, even those without predictions
    saved = json.load(open(metrics))
    assert saved["thresholds"] == [0.3, 0.4, 0.5, 0.6, 0.7] and len(saved["mAP"]) == 5
    assert 0.0 <= saved["average"] <= 1.0
    again = evaluate.main(_args(tiny) + ["--predictions", pred])
    assert again["mAP"] == got["mAP"]  # the file holds exactly what was scored


def test_init_from_a_checkpoint(tiny, trained, tmp_path, capsys):
    out = str(tmp_path / "init")
    train_supervised.main(_args(tiny + ["train.epochs=0"]) + ["--out", out, "--init",
                                                            os.path.join(trained, "last.pt")])
    assert "all weights loaded" in capsys.readouterr().out


def _exit_message(fn, argv, capsys):
    with pytest.raises(SystemExit) as info:
        train_supervised.run_main(fn, argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_bad_predictions_file_is_one_line_error(tiny, tmp_path, capsys):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"results": {"video_test_0000001": [{"label": "Diving", "score": "x",
                                                                     "segment": [1, 2]}]}}))
    err = _exit_message(evaluate.main, _args(tiny) + ["--predictions", str(bad)], capsys)
    assert "p.json: video video_test_0000001: prediction 0: score" in err
    bad.write_text("{broken")
    assert "broken JSON" in _exit_message(evaluate.main, _args(tiny) + ["--predictions", str(bad)], capsys)


def test_missing_feature_file_stops_before_training_and_keeps_outputs(tiny, trained, tmp_path, capsys):
    root = tmp_path / "broken"
    ensure_dataset(str(root), "tiny", 0)
    missing = [f for f in sorted(os.listdir(root / "features")) if "train" in f][0]
    os.remove(root / "features" / missing)
    overrides = tiny + [f"dataset.annotation_file={root}/annotations.json", f"dataset.feature_dir={root}/features"]
    before = open(os.path.join(trained, "last.pt"), "rb").read()
    err = _exit_message(train_supervised.main, _args(overrides) + ["--out", trained, "--resume"], capsys)
    assert missing in err and missing.replace(".npy", "") in err
    assert open(os.path.join(trained, "last.pt"), "rb").read() == before


def test_existing_output_is_not_overwritten_without_resume(tiny, trained):
    with pytest.raises(SystemExit, match="exists; pass --resume"):
        train_supervised.main(_args(tiny) + ["--out", trained])
