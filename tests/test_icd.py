"""ICD (Sec. 3.2): instance pooling, balanced pair sampling, the BCE of Eq. (8), the score of Eq. (10)."""
import math

import pytest
import torch

from common.icd import Discriminator, icd_loss, pool_instances, sample_pairs, similarity_scores


class _Bank:
    def __init__(self, feats, labels):
        self.feats, self.labels = feats, labels


def test_pool_instances_is_a_max_over_the_segment():
    feats = torch.tensor([[0.0, 5.0], [1.0, 0.0], [3.0, 1.0], [2.0, 9.0]])
    # [0.6, 2.2] covers steps 1..2 -> max (3, 1); [2.9, 3.1] is shorter than a step -> step 3 only;
    # [-2, 0.2] starts before the video -> step 0.
    got = pool_instances(feats, torch.tensor([[0.6, 2.2], [2.9, 3.1], [-2.0, 0.2]]))
    assert got.tolist() == [[3.0, 1.0], [2.0, 9.0], [0.0, 5.0]]


def test_pairs_are_balanced_and_of_the_right_kind():
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 2])
    bank = torch.tensor([0, 0, 1, 1, 1, 2])
    a, b, t = sample_pairs(labels, bank, num_same=3, num_diff=3, generator=gen)
    assert len(a) == 18 and t.sum() == 9  # 3 anchors x (3 same + 3 different)
    same = labels[a] == bank[b]
    assert torch.equal(same, t.bool())
    # an anchor whose class has no bank instance gets only different-class partners
    a, b, t = sample_pairs(torch.tensor([5]), bank, 2, 2, gen)
    assert t.tolist() == [0.0, 0.0]


class _FixedDisc(torch.nn.Module):
    """logit = <a, b>: a discriminator whose outputs are worked out by hand."""

    def forward(self, a, b):
        return (a * b).sum(-1)


def test_icd_loss_is_the_bce_of_eq8():
    # one anchor x = [1, 0] of class 0; bank: [2, 0] (class 0) and [0, 3] (class 1).
    # same pair: logit 2 -> -log sigmoid(2); different pair: logit 0 -> -log(1 - 0.5).
    bank = _Bank(torch.tensor([[2.0, 0.0], [0.0, 3.0]]), torch.tensor([0, 1]))
    loss = icd_loss(_FixedDisc(), torch.tensor([[1.0, 0.0]]), torch.tensor([0]), bank, 1, 1,
                    torch.Generator().manual_seed(0))
    expected = 0.5 * (-math.log(1 / (1 + math.exp(-2))) - math.log(0.5))
    assert loss.item() == pytest.approx(expected)


def test_similarity_is_the_mean_over_labeled_instances_of_the_class():
    # x = [1, 1] predicted as class 0, against class-0 instances [1, 0] and [0, 2]:
    # S = (sigmoid(1) + sigmoid(2)) / 2 (Eq. 10); class 7 has no labeled instance -> NaN.
    bank = _Bank(torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]), torch.tensor([0, 0, 1]))
    s = similarity_scores(_FixedDisc(), torch.tensor([[1.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 7]), bank)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    assert s[0].item() == pytest.approx((sig(1) + sig(2)) / 2)
    assert math.isnan(s[1].item())


def test_discriminator_learns_same_versus_different():
    torch.manual_seed(0)
    centres = torch.randn(4, 8) * 2
    labels = torch.arange(4).repeat_interleave(25)
    feats = centres[labels] + 0.5 * torch.randn(100, 8)
    bank = _Bank(feats, labels)
    disc = Discriminator(8, hidden=32)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        loss = icd_loss(disc, feats, labels, bank, 4, 4, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    s_same = similarity_scores(disc, feats, labels, bank)
    s_other = similarity_scores(disc, feats, (labels + 1) % 4, bank)
    assert s_same.mean() > 0.8 and s_other.mean() < 0.2
    assert torch.allclose(disc(feats[:5], feats[5:10]), disc(feats[5:10], feats[:5]))  # symmetric


def test_a_segment_between_two_step_centres_pools_its_nearest_step():
    # Step i is centred on grid position i. [2.3, 2.6] holds no centre; its centre 2.45 is nearest
    # step 2 (ceil of its start would give 3); [2.6, 2.9] -> 2.75 -> step 3; [3.55, 3.9] -> step 4.
    feats = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])
    got = pool_instances(feats, torch.tensor([[2.3, 2.6], [2.6, 2.9], [3.55, 3.9]]))
    assert got[:, 0].tolist() == [2.0, 3.0, 4.0]


class _RecordingDisc(torch.nn.Module):
    """Records every pair it is shown; logit 0."""

    def __init__(self):
        super().__init__()
        self.pairs = []

    def forward(self, a, b):
        self.pairs.append((a.detach().clone(), b.detach().clone()))
        return a.new_zeros(len(a))


def test_no_anchor_is_its_own_same_class_partner(tmp_path):
    # The ICD's "same" partners of a labeled instance are other instances of its class (Eq. 7): the
    # bank holds every labeled instance, the batch's own included. Pooled from the same input features
    # without a crop, an instance and its bank copy are equal vectors, and no two distinct instances
    # of continuous random features are: a same-class pair of equal vectors is an anchor with itself.
    import types

    from common.config import load_config
    from common.data import VideoDataset, collate, load_annotations
    from common.icd import InstanceBank, feature_source
    from common.losses import with_icd
    from synthetic.thumos_like import ensure_dataset
    root = tmp_path / "tiny"
    ensure_dataset(str(root), "tiny", 0)
    cfg = load_config("configs/default.yaml", ["dataset.synthetic_size=null", f"dataset.annotation_file={root}/annotations.json",
                                               f"dataset.feature_dir={root}/features", "loss.icd_same=32"])
    videos, _ = load_annotations(cfg["dataset"]["annotation_file"])
    ids = sorted(v for v in videos if videos[v].subset == "train" and len(videos[v].labels))[:4]
    bank = InstanceBank(cfg["dataset"], videos, ids).build(feature_source(cfg["dataset"], "cpu"))
    batch = collate([VideoDataset(cfg["dataset"], videos, ids, training=False)[i] for i in range(len(ids))])
    model = types.SimpleNamespace(icd=_RecordingDisc())
    torch.manual_seed(0)
    with_icd(model, {}, batch, cfg, bank, {"loss": torch.zeros(())})
    (a, b), = model.icd.pairs
    equal = (a == b).all(dim=1)
    assert not equal.any(), f"{int(equal.sum())} of {len(a)} pairs join an instance with itself"
    # the only instance of its class in the bank has no same-class partner, and is no partner of its own
    a, b, t = sample_pairs(torch.tensor([1, 0]), torch.tensor([0, 1, 0]), 3, 3, torch.Generator().manual_seed(0),
                           own=torch.tensor([1, 0]))
    assert t[a == 0].tolist() == [0.0] * 3 and (b[a == 0] != 1).all()
    assert (b[(a == 1) & (t == 1)] == 2).all() and (t[a == 1] == 1).sum() == 3  # row 0 is anchor 1 itself
