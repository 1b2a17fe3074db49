"""semi.background = rejected for BMN (common/bmn.py uncertain_ignore, the ignore masks through its
losses, common/bmn_detector.py outputs_loss): masks and losses against values worked out by hand,
`all` (and rejected without rejected predictions) giving exactly the published loss."""
import math
from types import SimpleNamespace

import pytest
import torch

from common.bmn import (CLS, REG, balanced_bce, batch_targets, bmn_loss, pem_reg_weights, proposal_mask,
                        uncertain_ignore)
from common.bmn_detector import outputs_loss
from common.config import load_config

CONFIG = "configs/anet_synthetic_bmn.yaml"


# ---------------------------------------------------------------- the masks

def test_uncertain_ignore_rule_on_hand_made_labels():
    # T = 4, D = 2: labels written out, one entry per branch of the rule.
    valid = proposal_mask(4, 2)                       # (d=1, t=3) does not exist
    targets = {"start": torch.tensor([[0.0, 0.2, 1.0, 0.0]]), "end": torch.tensor([[0.0, 0.0, 0.0, 1.0]]),
               "iou_map": torch.tensor([[[0.0, 0.3, 0.5, 0.0], [0.95, 0.0, 0.0, 0.0]]])}
    rejected = {"start": torch.tensor([[1.0, 1.0, 1.0, 0.5]]), "end": torch.tensor([[0.6, 0.0, 0.0, 1.0]]),
                "iou_map": torch.tensor([[[0.31, 0.95, 0.95, 0.3], [1.0, 1.0, 0.2, 1.0]]])}
    got = uncertain_ignore(targets, rejected, valid)
    # start: snippet 0 (rejected 1 > 0.5, pseudo 0); 1 keeps (pseudo IoA 0.2 > 0: near a pseudo
    # boundary); 2 is a pseudo positive; 3: 0.5 is not > 0.5
    assert got["start"].tolist() == [[True, False, False, False]]
    assert got["end"].tolist() == [[True, False, False, False]]   # 3: the pseudo label's own end
    # cls: rejected tIoU > 0.9 where the pseudo tIoU <= 0.3: (0,1) (pseudo 0.3 is still the low
    # group) and (1,1); (0,2) has pseudo 0.5, (1,0) 0.95; (1,3) does not exist
    assert got["cls"].tolist() == [[[False, True, False, False], [False, True, False, False]]]
    # reg: rejected tIoU > 0.3 there: (0,0) 0.31 too, (0,3) 0.3 is not
    assert got["reg"].tolist() == [[[True, True, False, False], [False, True, False, False]]]


def test_uncertain_ignore_from_segments_by_hand():
    # T = 10, D = 4, proposal (d, t) = [t / 10, (t + d + 1) / 10]. Pseudo label [0.1, 0.3]; rejected
    # [0.6, 0.9], far from it (every proposal near it has pseudo tIoU 0).
    T, D = 10, 4
    valid = proposal_mask(T, D)
    targets = batch_targets([torch.tensor([[0.1, 0.3]])], T, D)
    rejected = batch_targets([torch.tensor([[0.6, 0.9]])], T, D)
    got = uncertain_ignore(targets, rejected, valid)
    # cls: only (d=2, t=6) = [0.6, 0.9] itself has tIoU > 0.9 (next best 0.75)
    assert torch.nonzero(got["cls"][0]).tolist() == [[2, 6]]
    # reg: tIoU > 0.3 with [0.6, 0.9]: d=0 t=6,7,8 (0.1 / 0.3 = 0.33); d=1 t=6,7 (0.67; t=5, 8: 0.25);
    # d=2 t=5,6,7 (0.5, 1, 0.5; t=4: 0.2); d=3 t=4,5,6 (0.4, 0.75, 0.75; t=3: 0.17)
    assert torch.nonzero(got["reg"][0]).tolist() == [[0, 6], [0, 7], [0, 8], [1, 6], [1, 7], [2, 5], [2, 6],
                                                     [2, 7], [3, 4], [3, 5], [3, 6]]
    # TEM, a rejected [0.65, 0.85]: its start region [0.5, 0.8] covers snippets 5-7 whole, its end
    # region [0.7, 1.0] snippets 7-9; the pseudo label's regions ([0, 0.25], [0.15, 0.45]) are apart
    got = uncertain_ignore(targets, batch_targets([torch.tensor([[0.65, 0.85]])], T, D), valid)
    assert torch.nonzero(got["start"][0]).flatten().tolist() == [5, 6, 7]
    assert torch.nonzero(got["end"][0]).flatten().tolist() == [7, 8, 9]
    # a rejected near-duplicate of the pseudo label, [0.1, 0.4]: cells that overlap the pseudo
    # label by more than 0.3 keep their labels; its end region [0.25, 0.55] leaves out the snippets
    # apart from the pseudo label's end region [0.15, 0.45]: snippet 5 only (4 overlaps it)
    dup = uncertain_ignore(targets, batch_targets([torch.tensor([[0.1, 0.4]])], T, D), valid)
    assert not dup["start"].any() and torch.nonzero(dup["end"][0]).flatten().tolist() == [5]
    assert not (dup["cls"] & (targets["iou_map"] > 0.3)).any()
    assert torch.nonzero(dup["cls"][0]).tolist() == []   # [0.1, 0.4] itself has pseudo tIoU 0.67


# ---------------------------------------------------------------- the losses with them

def test_balanced_bce_leaves_ignored_entries_out_of_sums_and_counts():
    prob = torch.tensor([0.5, 0.25, 0.8, 0.9])
    positive = torch.tensor([True, False, False, True])
    ignore = torch.tensor([False, False, True, True])
    got = balanced_bce(prob, positive, ~positive, ignore=ignore)
    # positives: {0} of 1, -log 0.5; negatives: {1} of 1, -log 0.75
    assert got.item() == pytest.approx(0.5 * (math.log(2) + math.log(4 / 3)), abs=1e-5)
    assert got.item() == pytest.approx(balanced_bce(prob[:2], positive[:2], ~positive[:2]).item())
    # ignoring nothing is the published loss, bit for bit
    assert balanced_bce(prob, positive, ~positive, ignore=torch.zeros(4, dtype=torch.bool)).item() \
        == balanced_bce(prob, positive, ~positive).item()


def test_reg_sampling_counts_leave_ignored_proposals_out():
    # one high proposal, two low ones: keep_lo = 1 / 2 without ignore, 1 / 1 when one low is ignored
    gt = torch.tensor([[[0.8, 0.0, 0.1]]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    ignore = torch.tensor([[[False, True, False]]])
    for seed in range(5):
        w = pem_reg_weights(gt, valid, torch.Generator().manual_seed(seed), ignore=ignore)
        assert w.tolist() == [[[1.0, 0.0, 1.0]]]                    # the low one left is always drawn
    kept = sum(pem_reg_weights(gt, valid, torch.Generator().manual_seed(s))[0, 0, 2].item() for s in range(400))
    assert 150 < kept < 250                                         # p = 1 / 2 without the mask


def _batch_and_outputs(T=10, D=4, uncertain=((0.6, 0.9),)):
    """One pseudo-labeled video on a T-step grid (segments in grid units, as the dataset gives them:
    normalised time x T - 0.5) and fixed outputs that need gradients."""
    torch.manual_seed(0)
    to_grid = lambda segs: torch.tensor(segs, dtype=torch.float32).reshape(-1, 2) * T - 0.5  # noqa: E731
    batch = {"feats": torch.zeros(1, 4, T), "segments": [to_grid([[0.1, 0.3]])], "uncertain": [to_grid(uncertain)]}
    valid = proposal_mask(T, D)
    outputs = {"start": torch.rand(1, T, requires_grad=True), "end": torch.rand(1, T, requires_grad=True),
               "confidence": (torch.rand(1, 2, D, T) * valid).requires_grad_(), "feats": []}
    model = SimpleNamespace(temporal_scale=T, max_duration=D, valid=valid)
    return model, batch, outputs


def _cfg(background):
    return load_config(CONFIG, [f"semi.background={background}"])


def test_all_is_the_published_loss_and_rejected_leaves_out_the_masks():
    model, batch, outputs = _batch_and_outputs()
    targets = batch_targets([torch.tensor([[0.1, 0.3]], dtype=torch.float64)], 10, 4)
    plain = {k: v for k, v in outputs.items() if k != "feats"}
    torch.manual_seed(1)  # L_R's draw (no generator in training): the same in every call below
    published = bmn_loss(plain, targets, model.valid)
    for cfg, pseudo in ((_cfg("all"), True), (_cfg("rejected"), False)):  # all; a labeled video
        torch.manual_seed(1)
        got = outputs_loss(model, outputs, batch, cfg, pseudo=pseudo)
        for key in ("loss", "tem_loss", "pem_cls_loss", "pem_reg_loss"):
            assert got[key].item() == published[key].item()
        assert got["num_ignored"] == 0.0
    no_rejected = dict(batch, uncertain=[torch.zeros(0, 2)])
    torch.manual_seed(1)
    assert outputs_loss(model, outputs, no_rejected, _cfg("rejected"), pseudo=True)["loss"].item() \
        == published["loss"].item()

    torch.manual_seed(1)
    got = outputs_loss(model, outputs, batch, _cfg("rejected"), pseudo=True)
    ignore = uncertain_ignore(targets, batch_targets([torch.tensor([[0.6, 0.9]], dtype=torch.float64)], 10, 4), model.valid)
    torch.manual_seed(1)
    expect = bmn_loss(plain, targets, model.valid, ignore=ignore)
    assert got["loss"].item() == pytest.approx(expect["loss"].item(), rel=1e-6)
    assert got["pem_cls_loss"].item() != pytest.approx(published["pem_cls_loss"].item())
    assert got["num_ignored"] == 11.0          # the 11 proposals of the hand case (cls's one among them)
    got["loss"].backward()
    grad = outputs["confidence"].grad[0]
    assert grad[CLS, 2, 6].item() == 0.0 and grad[REG, 2, 6].item() == 0.0
    assert grad[CLS, 0, 6].item() != 0.0      # tIoU 0.33 with the rejected: still a negative of L_C
    assert outputs["start"].grad[0, 6].item() == 0.0 and outputs["start"].grad[0, 1].item() != 0.0


# ---------------------------------------------------------------- config

def test_config_takes_rejected_for_bmn():
    assert load_config(CONFIG, ["semi.background=rejected"])["semi"]["background"] == "rejected"
