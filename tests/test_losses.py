"""The APL formulas against values worked out by hand, and ActionFormer's label assignment."""
import math

import numpy as np
import pytest
import torch

from common.config import ConfigError
from common.losses import (LossNormalizer, assign_targets, diou_loss, focal_loss, joint_score, pseudo_class_targets,
                           quality_targets, soft_label, tiou_tnd)


def test_tiou_tnd_by_hand():
    # From the same point: pred [-2, 2], gt [-1, 3]. Intersection [-1, 2] = 3, union [-2, 3] = 5,
    # tIoU = 0.6; centres 0 and 1, enclosing length 5: tND = 1 / 25 = 0.04 (Eq. 1).
    tiou, tnd = tiou_tnd(torch.tensor([2.0, 2.0]), torch.tensor([1.0, 3.0]))
    assert tiou.item() == pytest.approx(0.6)
    assert tnd.item() == pytest.approx(0.04)
    # DIoU loss = 1 - 0.6 + 0.04 = 0.44
    assert diou_loss(torch.tensor([[2.0, 2.0]]), torch.tensor([[1.0, 3.0]])).item() == pytest.approx(0.44)


def test_tiou_tnd_invariants():
    seg = torch.tensor([[1.5, 4.0], [0.2, 0.1]])
    tiou, tnd = tiou_tnd(seg, seg)
    assert torch.allclose(tiou, torch.ones(2)) and torch.allclose(tnd, torch.zeros(2))
    # A prediction nested in its ground truth: pred [-1, 1] in gt [-1, 3]: tIoU 2/4, centres 0 and 1,
    # enclosing 4: tND 1/16.
    tiou, tnd = tiou_tnd(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 3.0]))
    assert (tiou.item(), tnd.item()) == pytest.approx((0.5, 0.0625))


def test_soft_label_eq5():
    tiou, tnd = torch.tensor([0.6, 0.1]), torch.tensor([0.04, 0.2])
    # max(0.6 - 0.04, eps) = 0.56; max(0.1 - 0.2, eps) = eps
    assert soft_label(tiou, tnd, "tiou_tnd", 0.01).tolist() == pytest.approx([0.56, 0.01])
    assert soft_label(tiou, tnd, "tiou", 0.01).tolist() == pytest.approx([0.6, 0.1])
    assert soft_label(tiou, tnd, "diou", 0.01).tolist() == pytest.approx([0.56, 0.01])
    assert soft_label(tiou, tnd, "none", 0.01).tolist() == [1.0, 1.0]
    assert quality_targets(tiou, tnd, "tiou_tnd").flatten().tolist() == pytest.approx([0.6, 0.04, 0.1, 0.2])
    assert quality_targets(tiou, tnd, "diou").flatten().tolist() == pytest.approx([0.56, 0.0])


def test_joint_score_eq4():
    # P_cls = sigmoid(0) = 0.5; P_tiou = sigmoid(ln 4) = 0.8, P_tnd = sigmoid(-ln 4) = 0.2:
    # joint = (0.8 - 0.2) * 0.5 = 0.3. Second point: P_tiou 0.2, P_tnd 0.8 -> max(-0.6, 0.01) * 0.5.
    cls = torch.zeros(2, 1)
    q = torch.tensor([[math.log(4), -math.log(4)], [-math.log(4), math.log(4)]])
    assert joint_score(cls, q, "tiou_tnd", 0.01).flatten().tolist() == pytest.approx([0.3, 0.005])
    assert joint_score(cls, None, "none", 0.01).flatten().tolist() == pytest.approx([0.5, 0.5])
    assert joint_score(cls, q[:, :1], "tiou", 0.01).flatten().tolist() == pytest.approx([0.4, 0.1])


def _focal(p, t):
    p, t = torch.tensor([p], dtype=torch.float64), torch.tensor([t], dtype=torch.float64)
    return focal_loss(p.log(), (1 - p).log(), t, 0.25, 2.0).item()


def test_focal_loss_by_hand():
    # p = 0.5, t = 1: alpha_t 0.25 * (1 - 0.5)^2 * ln 2 = 0.0433217
    assert _focal(0.5, 1.0) == pytest.approx(0.25 * 0.25 * math.log(2))
    # p = 0.1, t = 0: 0.75 * 0.1^2 * -ln 0.9 = 0.000790204
    assert _focal(0.1, 0.0) == pytest.approx(0.75 * 0.01 * -math.log(0.9))
    # soft t = 0.6, p = 0.5: p_t = 0.5, alpha_t = 0.25*0.6 + 0.75*0.4 = 0.45, ce = ln 2 -> 0.0779791
    assert _focal(0.5, 0.6) == pytest.approx(0.45 * 0.25 * math.log(2))


def test_focal_matches_torchvision_formula_on_logits():
    logits = torch.randn(50, 3, dtype=torch.float64)
    target = (torch.rand(50, 3) > 0.7).double()
    p = torch.sigmoid(logits)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    ref = ((0.25 * target + 0.75 * (1 - target)) * (1 - p_t) ** 2 * ce).sum()
    got = focal_loss(torch.nn.functional.logsigmoid(logits), torch.nn.functional.logsigmoid(-logits), target)
    assert got.item() == pytest.approx(ref.item(), rel=1e-9)


def _points():
    # level 0: stride 1, range [0, 4], positions 0..11; level 1: stride 2, range [4, 8], positions 0, 2, .., 10
    lvl0 = torch.tensor([[float(i), 0, 4, 1] for i in range(12)])
    lvl1 = torch.tensor([[float(2 * i), 4, 8, 2] for i in range(6)])
    return torch.cat([lvl0, lvl1])


def test_assign_targets_small_cases():
    pts = _points()
    # gt [2, 5] (class 0): centre 3.5, region [2, 5]; level-0 points 3 and 4 are inside with reach
    # max(1, 2) = 2 <= 4. Level 1's point 4 reaches 2 < 4: outside its range.
    # gt [0, 10] (class 1): level 1 region 5 +- 3 -> points 4 and 6 (reach 6 in [4, 8]);
    # level 0's point 4 reaches 6 > 4.
    cls_t, reg_t = assign_targets(pts, torch.tensor([[2.0, 5.0], [0.0, 10.0]]), torch.tensor([0, 1]), 2, 1.5)
    pos = {i: cls_t[i].tolist() for i in range(len(pts)) if cls_t[i].sum() > 0}
    assert pos == {3: [1, 0], 4: [1, 0], 12 + 2: [0, 1], 12 + 3: [0, 1]}
    assert reg_t[3].tolist() == [1, 2] and reg_t[4].tolist() == [2, 1]
    assert reg_t[14].tolist() == [2, 3] and reg_t[15].tolist() == [3, 2]  # (4, 6) and (6, 4) over stride 2


def test_assign_targets_same_interval_sets_both_classes():
    # THUMOS14 annotates CliffDiving also as Diving on the same interval: both classes are targets.
    cls_t, _ = assign_targets(_points(), torch.tensor([[2.0, 5.0], [2.0, 5.0]]), torch.tensor([0, 1]), 2, 1.5)
    assert cls_t[3].tolist() == [1, 1]


def test_assign_targets_shortest_wins_and_empty():
    # gt [1, 7] and [3, 5] both cover point 4 at level 0 (reach 3 and 1): the shorter one wins.
    cls_t, reg_t = assign_targets(_points(), torch.tensor([[1.0, 7.0], [3.0, 5.0]]), torch.tensor([0, 1]), 2, 1.5)
    assert cls_t[4].tolist() == [0, 1] and reg_t[4].tolist() == [1, 1]
    cls_t, reg_t = assign_targets(_points(), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 2, 1.5)
    assert cls_t.sum() == 0 and reg_t.shape == (18, 2)


def test_assign_targets_with_class_targets_takes_the_largest_per_class():
    # The same interval twice (as two pseudo labels of one point): soft [0.75, 0.25] and one-hot
    # [1, 0] -> per class the largest, [1, 0.25]; alone, the soft one is its own target.
    seg = torch.tensor([[2.0, 5.0], [2.0, 5.0]])
    cls_t, _ = assign_targets(_points(), seg, torch.tensor([[0.75, 0.25], [1.0, 0.0]]), 2, 1.5)
    assert cls_t[3].tolist() == [1.0, 0.25]
    cls_t, _ = assign_targets(_points(), seg[:1], torch.tensor([[0.75, 0.25]]), 2, 1.5)
    assert cls_t[3].tolist() == [0.75, 0.25] and cls_t[4].tolist() == [0.75, 0.25] and cls_t[5].sum() == 0
    # one-hot rows give exactly what class ids give
    gt = torch.tensor([[2.0, 5.0], [0.0, 10.0]])
    ids, _ = assign_targets(_points(), gt, torch.tensor([0, 1]), 2, 1.5)
    rows, _ = assign_targets(_points(), gt, torch.eye(2), 2, 1.5)
    assert torch.equal(ids, rows)


def test_pseudo_class_targets_by_hand():
    classes = ["A", "B", "C"]
    extra = [{"cls_score": 0.6, "class_scores": {"B": 0.6, "C": 0.2}},   # label B listed: 0.6 / 0.8, 0.2 / 0.8
             {"cls_score": 0.7},                                        # no class_scores: one-hot
             {"cls_score": 0.5, "class_scores": {"A": 0.5, "B": 0.5}},   # label C not listed: one-hot
             {"cls_score": 0.3, "class_scores": {"A": 0.3, "B": 0.1, "C": 0.1}},  # label A: 0.6, 0.2, 0.2
             {"cls_score": 0.3, "class_scores": {"A": 0.3, "B": 0.1, "C": 0.1}},  # relabelled A -> B by hand:
             {"class_scores": {"A": 0.3, "C": 0.1}}]                    # B's 0.1 is not its cls_score; no cls_score
    labels = np.array([1, 0, 2, 0, 1, 0])
    soft = pseudo_class_targets(labels, extra, 3, classes, "soft")
    assert np.allclose(soft, [[0, 0.75, 0.25], [1, 0, 0], [0, 0, 1], [0.6, 0.2, 0.2], [0, 1, 0], [1, 0, 0]])
    assert pseudo_class_targets(labels, extra, 3, classes, "hard").tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1],
                                                                                [1, 0, 0], [0, 1, 0], [1, 0, 0]]
    with pytest.raises(ConfigError, match="semi.class_target"):
        pseudo_class_targets(labels, extra, 3, classes, "sharp")


def test_loss_normalizer_moving_average():
    norm = LossNormalizer(100.0, 0.9)
    assert norm.update(10) == pytest.approx(91.0)  # 0.9 * 100 + 0.1 * 10
    assert norm.update(0) == pytest.approx(82.0)   # an empty batch counts as 1


def _semi_cfg(background, alqa="none"):
    from common.config import load_config
    return load_config(None, [f"semi.background={background}", f"model.alqa={alqa}"])


def _outputs(probs, quality_logits=None):
    """One video, one level, one class: raw outputs whose class probabilities are `probs`."""
    p = torch.tensor(probs, dtype=torch.float64)
    logits = (p.log() - (1 - p).log()).float()[None, :, None]
    out = {"masks": [torch.ones(1, len(probs), dtype=torch.bool)], "cls_logits": [logits],
           "offsets": [torch.ones(1, len(probs), 2)]}
    if quality_logits is not None:
        out["quality_logits"] = [torch.tensor(quality_logits)[None]]
    return out


def test_uncertain_background_all_leaves_nothing_out():
    from common.losses import uncertain_background
    targets = torch.tensor([[[1.0], [0.0]]])
    points = [torch.tensor([[float(i), 0.0, 4.0, 1.0] for i in range(2)])]
    assert uncertain_background(targets, _semi_cfg("all"), points, [torch.tensor([[0.5, 1.0]])]) is None
    with pytest.raises(ValueError, match="semi.background"):
        uncertain_background(targets, _semi_cfg("sometimes"))


def test_detection_loss_leaves_ignored_points_out_by_hand():
    from common.losses import detection_loss
    # alqa none, one class. Point 0: positive, p 0.9 -> 0.25 * 0.1^2 * -ln 0.9; point 1: ignored
    # (p 0.6); point 2: background, p 0.2 -> 0.75 * 0.2^2 * -ln 0.8. One positive: the moving
    # average of positives is 0.9 * 100 + 0.1 * 1 = 90.1.
    cfg = _semi_cfg("rejected")
    targets = torch.tensor([[[1.0], [0.0], [0.0]]])
    reg = torch.ones(1, 3, 2)  # the positive's prediction equals its target: no regression loss
    ignore = torch.tensor([[False, True, False]])
    parts = detection_loss(_outputs([0.9, 0.6, 0.2]), targets, reg, cfg, LossNormalizer(), ignore)
    by_hand = (0.25 * 0.01 * -math.log(0.9) + 0.75 * 0.04 * -math.log(0.8)) / 90.1
    assert parts["cls_loss"].item() == pytest.approx(by_hand, rel=1e-5)
    assert parts["num_ignored"] == 1 and parts["num_pos"] == 1
    # without the mask, point 1 adds 0.75 * 0.6^2 * -ln 0.4
    parts = detection_loss(_outputs([0.9, 0.6, 0.2]), targets, reg, cfg, LossNormalizer())
    assert parts["cls_loss"].item() == pytest.approx(by_hand + 0.75 * 0.36 * -math.log(0.4) / 90.1, rel=1e-5)
    assert parts["num_ignored"] == 0


def test_rejected_regions_are_left_out_by_hand():
    from common.losses import uncertain_background
    # One level of stride 1, points at grid positions 0..5; a pseudo label's positive at point 1,
    # one rejected prediction over [2.5, 4]: points 3 and 4 inside it are left out, point 2 (before
    # it) and point 5 (after) stay background, and so would a positive inside it.
    points = [torch.tensor([[float(i), 0.0, 4.0, 1.0] for i in range(6)])]
    targets = torch.tensor([[[0.0], [1.0], [0.0], [0.0], [0.0], [0.0]]])
    got = uncertain_background(targets, _semi_cfg("rejected"), points, [torch.tensor([[2.5, 4.0]])])
    assert got.tolist() == [[False, False, False, True, True, False]]
    targets[0, 3, 0] = 1.0
    got = uncertain_background(targets, _semi_cfg("rejected"), points, [torch.tensor([[2.5, 4.0]])])
    assert got.tolist() == [[False, False, False, False, True, False]]
    # no rejected prediction: every point outside the pseudo labels is background
    got = uncertain_background(targets, _semi_cfg("rejected"), points, [torch.zeros(0, 2)])
    assert not got.any()
    assert uncertain_background(targets, _semi_cfg("rejected"), points, None) is None
