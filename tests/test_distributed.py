"""Several processes (torchrun, gloo on the CPU) give what one process gives."""
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import stage_args as _args

import train_supervised
from common.config import ConfigError, load_config
from common.distributed import ShardSampler
from common.engine import autocast, iters_per_epoch
from synthetic.make import make_data

TINY = ["model.embd_dim=16", "model.head_dim=16", "model.n_head=2", "model.attn_window=5",
        "dataset.max_seq_len=128", "train.epochs=2", "train.warmup_epochs=1", "train.batch_size=4",
        "acp.mode=none",
        # Only the random draws differ between one and two processes: stochastic depth and the ICD
        # partners come from each process's own stream. Without them the runs must agree.
        "model.path_drop=0.0", "loss.icd_weight=0.0"]


def test_shard_sampler_keeps_the_single_process_shuffle():
    # One process: exactly the order a shuffling DataLoader seeded the same way gives (the order
    # every earlier run trained on).
    for n, seed in ((16, 0), (17, 300016), (5, 7)):
        loader = torch.utils.data.DataLoader(list(range(n)), batch_size=2, shuffle=True,
                                             generator=torch.Generator().manual_seed(seed))
        assert list(ShardSampler(n, seed, 0, 1)) == [int(i) for b in loader for i in b]


def test_shards_make_up_the_global_batches():
    # Global batch 4 over 2 processes (2 each): batch k of the processes together is positions
    # 4k..4k+3 of the single-process order.
    order = list(ShardSampler(12, 5, 0, 1))
    shards = [list(ShardSampler(12, 5, r, 2)) for r in range(2)]
    for k in range(3):
        together = shards[0][2 * k: 2 * k + 2] + shards[1][2 * k: 2 * k + 2]
        assert sorted(together) == sorted(order[4 * k: 4 * k + 4])
    # 5 videos on 2 processes: 3 each, the first video of the order dealt again to pad.
    shards = [list(ShardSampler(5, 5, r, 2)) for r in range(2)]
    order = list(ShardSampler(5, 5, 0, 1))
    assert shards == [[order[0], order[2], order[4]], [order[1], order[3], order[0]]]


def test_iters_per_epoch_in_one_process():
    assert iters_per_epoch(16, 2) == 8 and iters_per_epoch(17, 2) == 9 and iters_per_epoch(1, 4) == 1


def test_autocast_choices():
    cpu = torch.device("cpu")
    assert not autocast(cpu, "auto")._enabled  # fp32 on the CPU unless asked
    assert autocast(cpu, "bf16")._enabled
    with pytest.raises(ConfigError, match="train.precision"):
        autocast(cpu, "fp16")


def test_bf16_training_step_gives_a_finite_loss(tmp_path, tiny):
    out = str(tmp_path / "bf16")
    train_supervised.main(_args(tiny + ["train.precision=bf16", "train.epochs=0"]) + ["--out", out])
    losses = [json.loads(line)["loss"] for line in open(os.path.join(out, "log.jsonl"))]
    assert losses and all(0 < x < 100 for x in losses)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data") / "tiny")
    data = ["dataset.synthetic_size=tiny", f"dataset.annotation_file={root}/annotations.json",
            f"dataset.feature_dir={root}/features"]
    make_data(load_config(None, data))  # the dataset and its splits, as python -m synthetic makes them
    splits = f"{root}/splits/%s_60pct.txt"  # pseudo labels need unlabeled videos
    return data + [f"dataset.labeled_split={splits % 'labeled'}", f"dataset.unlabeled_split={splits % 'unlabeled'}"] + TINY


def _run(script, args, processes):
    """A stage as its own process(es), one thread each, as a user would start it."""
    launch = [] if processes == 1 else ["-m", "torch.distributed.run", "--standalone",
                                        f"--nproc_per_node={processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable] + launch + [script] + args, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):
    """The supervised stage trained by one process and by two."""
    root = tmp_path_factory.mktemp("dist")
    out = {n: str(root / f"sup{n}") for n in (1, 2)}
    for n, path in out.items():
        _run("train_supervised.py", _args(tiny) + ["--out", path], n)
    return out


def test_two_processes_train_the_weights_of_one(runs):
    one, two = (torch.load(os.path.join(runs[n], "last.pt"), weights_only=True) for n in (1, 2))
    assert one["step"] == two["step"]
    for key in ("model", "ema"):
        diff = max((one[key][k].float() - two[key][k].float()).abs().max().item() for k in one[key])
        assert diff < 1e-5, (key, diff)  # the same steps, summed in another order
    logs = [[json.loads(line) for line in open(os.path.join(runs[n], "log.jsonl"))] for n in (1, 2)]
    assert [l["loss"] for l in logs[0]] == pytest.approx([l["loss"] for l in logs[1]], rel=1e-5)


@pytest.fixture(scope="module")
def pseudo(runs, tiny, tmp_path_factory):
    """Pseudo-label files and predictions of the one-process checkpoint, written by one and by two processes."""
    root = tmp_path_factory.mktemp("pl")
    ckpt = os.path.join(runs[1], "last.pt")
    sets = _args(tiny + ["pseudo.tau_neg=0.0"])  # an untrained detector's scores are all small
    files = {}
    for n in (1, 2):
        pl, pred = str(root / f"pl{n}.json"), str(root / f"pred{n}.json")
        _run("pseudo_label.py", sets + ["--checkpoint", ckpt, "--out", pl], n)
        _run("evaluate.py", sets + ["--checkpoint", ckpt, "--out", pred], n)
        files[n] = (pl, pred)
    return root, files


def test_two_processes_write_the_pseudo_labels_and_predictions_of_one(pseudo):
    root, files = pseudo
    text = {n: [open(f).read() for f in files[n]] for n in (1, 2)}
    assert json.loads(text[1][0])["meta"]["counts"]["positive"] > 0
    assert text[1] == text[2]  # byte for byte: every video predicted once, merged in order
    assert not [f for f in os.listdir(root) if f.startswith(".tmp")]


def test_two_processes_train_the_semi_round_of_one(runs, pseudo, tiny, tmp_path):
    # Labeled and pseudo-labeled batches both sharded, two loss normalisers on global counts.
    ckpt, pl = os.path.join(runs[1], "last.pt"), pseudo[1][1][0]
    out = {n: str(tmp_path / f"semi{n}") for n in (1, 2)}
    for n in (1, 2):
        _run("train_semi.py", _args(tiny + ["semi.epochs=1", "semi.warmup_epochs=1"])
             + ["--init", ckpt, "--pseudo-labels", pl, "--out", out[n]], n)
    one, two = (torch.load(os.path.join(out[n], "last.pt"), weights_only=True)["model"] for n in (1, 2))
    assert max((one[k].float() - two[k].float()).abs().max().item() for k in one) < 1e-5


def test_a_batch_the_processes_cannot_share_is_refused(tiny, tmp_path):
    with pytest.raises(AssertionError, match="not divisible by the 2 processes"):
        _run("train_supervised.py", _args(tiny + ["train.batch_size=3"]) + ["--out", str(tmp_path / "x")], 2)
