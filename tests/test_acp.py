"""ACP (Sec. 3.3): Eq. (11) by hand, frame sampling, k-means, labels from ground truth, the
pre-training -> detector hand-over, and the whole chain with pre-training."""
import json
import math
import os

import pytest
from conftest import embedded, stage_args
import torch

import evaluate
import pretrain_acp
import pseudo_label
import train_semi
import train_supervised
from common.acp import info_nce, kmeans, pyramid_representation, sample_frames, truth_labels
from common.checkpoint import load_checkpoint, load_pretrained
from common.config import load_config
from common.model import HEAD_PREFIXES, PRETRAINED_PREFIXES, build_model


def test_info_nce_by_hand():
    # f1 = (1, 0), f2 = (0.6, 0.8), f3 = (0, 1); classes 0, 0, 1; temperature 1.
    # s12 = 0.6, s13 = 0, s23 = 0.8. P1 = {2}, N1 = {3}; P2 = {1}, N2 = {3}; P3 = {} -> N_c = 2.
    # term(1,2) = log((e^.6 + e^0) / e^.6) = 0.437488; term(2,1) = log((e^.6 + e^.8) / e^.6) = 0.798138
    f = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    expected = (math.log((math.exp(0.6) + 1) / math.exp(0.6)) +
                math.log((math.exp(0.6) + math.exp(0.8)) / math.exp(0.6))) / 2
    assert expected == pytest.approx(0.617813, abs=1e-6)
    assert info_nce(f, torch.tensor([0, 0, 1]), 1.0).item() == pytest.approx(expected, abs=1e-6)
    # temperature 0.5 doubles the similarities; scaling a vector changes nothing (cosine)
    e = math.exp
    t = (math.log((e(1.2) + 1) / e(1.2)) + math.log((e(1.2) + e(1.6)) / e(1.2))) / 2
    scaled = f * torch.tensor([[3.0], [1.0], [2.0]])
    assert info_nce(scaled, torch.tensor([0, 0, 1]), 0.5).item() == pytest.approx(t, abs=1e-6)
    # frames labeled -1 take no part; no positive pair at all gives 0
    extra = torch.cat([f, torch.randn(2, 2)])
    assert info_nce(extra, torch.tensor([0, 0, 1, -1, -1]), 1.0).item() == pytest.approx(expected, abs=1e-6)
    assert info_nce(f, torch.tensor([0, 1, 2]), 1.0).item() == 0.0


def test_sample_frames_one_per_equal_segment():
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[0, :40] = True
    mask[1, :13] = True
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        idx = sample_frames(mask, 5, gen)
        assert idx.shape == (2, 5)
        for b, length in enumerate((40, 13)):
            for i in range(5):  # segment i covers [i * L / 5, (i + 1) * L / 5)
                assert math.floor(i * length / 5) <= idx[b, i] < math.ceil((i + 1) * length / 5)


def test_kmeans_separates_a_toy_case():
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(20, 3, generator=gen) * 0.1 + torch.tensor([5.0, 0, 0]),
                   torch.randn(15, 3, generator=gen) * 0.1 - torch.tensor([5.0, 0, 0]),
                   torch.randn(10, 3, generator=gen) * 0.1 + torch.tensor([0, 5.0, 0])])
    labels = kmeans(x, 3, generator=torch.Generator().manual_seed(1))
    groups = [set(labels[:20].tolist()), set(labels[20:35].tolist()), set(labels[35:].tolist())]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3


def test_truth_labels_and_pyramid_upsampling():
    # actions [2, 5] class 3 and [4, 9] class 1 (grid units); frames 0, 3, 4, 8, 12
    coarse, fine = truth_labels([torch.tensor([[2.0, 5.0], [4.0, 9.0]])], [torch.tensor([3, 1])],
                                torch.tensor([[0, 3, 4, 8, 12]]))
    assert coarse.tolist() == [[0, 1, 1, 1, 0]]
    assert fine.tolist() == [[-1, 3, 3, 1, -1]]  # frame 4 is in both: the shorter action's class
    rep = pyramid_representation([torch.arange(4.0).view(1, 1, 4), torch.tensor([[[10.0, 20.0]]])], 4)
    assert rep.tolist() == [[[0, 1, 2, 3], [10, 10, 20, 20]]]


def _cfg():
    return load_config(None, ["model.embd_dim=16", "model.head_dim=16", "model.n_head=2", "dataset.feature_dim=8"])


def test_pretrained_parts_hand_over_strictly_with_fresh_heads():
    cfg = _cfg()
    pre = build_model(cfg, 3)
    state = {k: v for k, v in pre.state_dict().items() if k.startswith(PRETRAINED_PREFIXES)}
    det = build_model(cfg, 3)
    fresh = load_pretrained(det, state, "acp.pt", HEAD_PREFIXES)
    assert set(fresh) == {k for k in det.state_dict() if k.startswith(HEAD_PREFIXES)}
    assert set(fresh) | set(state) == set(det.state_dict())  # nothing else is missing
    assert all(torch.equal(det.state_dict()[k], v) for k, v in state.items())


TINY = ["model.embd_dim=16", "model.head_dim=16", "model.n_head=2", "model.attn_window=5", "dataset.max_seq_len=128",
        "train.epochs=1", "train.warmup_epochs=1", "semi.epochs=1", "semi.warmup_epochs=0", "acp.epochs=1",
        "acp.warmup_epochs=1", "acp.segments=8", "pseudo.tau_neg=0.0", "pseudo.pos_std=0.0"]


def test_chain_with_pretraining(tmp_path, capsys):
    root = str(tmp_path / "tiny")
    sets = embedded(TINY + ["dataset.synthetic_size=tiny", f"dataset.annotation_file={root}/annotations.json",
                            f"dataset.feature_dir={root}/features",
                            f"dataset.labeled_split={root}/splits/labeled_40pct.txt",
                            f"dataset.unlabeled_split={root}/splits/unlabeled_40pct.txt"])
    args = stage_args(sets)
    out = tmp_path / "run"
    pretrain_acp.main(args + ["--out", str(out / "acp")])
    ckpt = load_checkpoint(str(out / "acp" / "last.pt"))
    assert ckpt["stage"] == "acp" and all(k.startswith(PRETRAINED_PREFIXES) for k in ckpt["model"])
    train_supervised.main(args + ["--out", str(out / "sup"), "--init", str(out / "acp" / "last.pt")])
    sup = load_checkpoint(str(out / "sup" / "last.pt"))
    assert sup["parents"]["init"] == str(out / "acp" / "last.pt")
    pseudo_label.main(args + ["--checkpoint", str(out / "sup" / "last.pt"), "--out", str(out / "pl.json")])
    train_semi.main(args + ["--init", str(out / "sup" / "last.pt"), "--pseudo-labels", str(out / "pl.json"),
                            "--out", str(out / "semi")])
    metrics = evaluate.main(args + ["--checkpoint", str(out / "semi" / "last.pt"), "--out", str(out / "pred.json")])
    assert 0.0 <= metrics["average"] <= 1.0
    logs = [json.loads(l) for l in open(out / "semi" / "log.jsonl")]
    assert "acp_loss" in logs[0] and "u_acp_loss" in logs[0]  # L_acp^s and L_acp^u of Eq. (12)
    # A fresh student: the round from the pre-trained parts, heads and ICD from scratch (listed)
    train_semi.main(args + ["--init", str(out / "acp" / "last.pt"), "--pseudo-labels", str(out / "pl.json"),
                            "--out", str(out / "student")])
    inits = [line for line in capsys.readouterr().out.splitlines() if line.startswith("init from")]
    assert inits[-1].endswith("start fresh (cls_out, cls_trunk, icd, quality_out, reg_out, reg_scale, reg_trunk)")
    student = load_checkpoint(str(out / "student" / "last.pt"))
    assert student["parents"]["init"] == os.path.abspath(out / "acp" / "last.pt")


def test_tsne_pictures(tmp_path, capsys):
    import tools.plot_tsne as plot_tsne
    root = str(tmp_path / "tiny")
    sets = embedded(["model.embd_dim=16", "model.head_dim=16", "model.n_head=2", "dataset.synthetic_size=tiny",
                     f"dataset.annotation_file={root}/annotations.json", f"dataset.feature_dir={root}/features",
                     "dataset.labeled_split=null", "dataset.unlabeled_split=null"])
    plot_tsne.main(["--config", "configs/default.yaml", "--checkpoint", "random", "--out", str(tmp_path / "png"),
                    "--frames", "16"] + sum((["--set", s] for s in sets), []))
    pngs = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert pngs == ["random_action_background.png", "random_classes.png"]
    assert "5-NN accuracy" in capsys.readouterr().out


def test_centering_makes_fine_clusters_follow_actions_not_videos():
    # Two videos with very different backgrounds (offsets +-10 on dimension 0), each holding frames
    # of two actions (+-1 on dimension 1). Without centering, 2 fine clusters split the videos;
    # with each video's mean removed they split the actions.
    from common.acp import cluster_labels
    gen = torch.Generator().manual_seed(0)
    action = torch.tensor([1.0, -1.0]).repeat_interleave(8)                   # (16,) per video
    videos = []
    for offset in (10.0, -10.0):
        x = torch.zeros(16, 2)
        x[:, 0], x[:, 1] = offset, action
        videos.append(x + 0.05 * torch.randn(16, 2, generator=gen))
    inputs = torch.stack(videos).transpose(1, 2)                               # (B=2, D=2, T=16)
    idx = torch.arange(16).repeat(2, 1)
    _, plain = cluster_labels(inputs, idx, 2, False, torch.Generator().manual_seed(0))
    _, centred = cluster_labels(inputs, idx, 2, True, torch.Generator().manual_seed(0))
    assert len(set(plain[0].tolist())) == 1 and plain[0, 0] != plain[1, 0]   # one cluster per video
    assert centred[0].tolist() == centred[1].tolist()                         # same action, same cluster
    assert centred[0, 0] != centred[0, 8]
