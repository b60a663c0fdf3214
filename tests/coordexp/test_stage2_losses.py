import math

import pytest
import torch

from coordexp.stage2.losses import ciou_loss, expectation_decode, pooled_box_losses, smoothl1_sum
from coordexp.stage2.objective import Stage2LossWeights, pack_loss

CS = 10  # a small fake vocabulary: coord ids 10..1009
V = CS + 1000


def peaked(bins):
    """Slot rows (one per slot, the logits at slot - 1) with all mass on each slot's bin."""
    z = torch.full((len(bins), V), -1e4)
    for r, b in enumerate(bins):
        z[r, CS + b] = 1e4
    return z


def dec(rows, **kw):
    return expectation_decode(rows, CS, **kw)[0]


def test_expectation_is_mean_not_argmax():
    z = torch.full((1, V), -1e4)
    z[0, CS + 0] = 0.0
    z[0, CS + 999] = 0.0  # two equal modes: mean 0.5, argmax would give 0
    assert dec(z).item() == pytest.approx(0.5, abs=1e-6)
    assert dec(peaked([999])).item() == pytest.approx(1.0)
    assert dec(peaked([0])).item() == pytest.approx(0.0)


def test_expectation_temperature():
    z = torch.zeros(1, V)
    z[0, CS + 999] = 2.0
    hot = dec(z, temperature=0.1).item()
    cold = dec(z, temperature=10.0).item()
    assert hot > 0.99 and abs(cold - 0.5) < 0.05


def test_sliced_logits_and_bad_shapes_rejected():
    with pytest.raises(ValueError, match="slice"):
        dec(torch.zeros(3, 1000))
    with pytest.raises(ValueError, match="slots, vocabulary"):
        dec(torch.zeros(1, 3, V))
    with pytest.raises(ValueError, match="temperature"):
        dec(torch.zeros(3, V), temperature=0.0)


def test_ciou_values():
    a = torch.tensor([[0.1, 0.1, 0.5, 0.5]])
    assert ciou_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    # disjoint same-shape boxes: IoU 0, v 0, loss = 1 + rho^2 / c^2
    b = torch.tensor([[0.6, 0.1, 1.0, 0.5]])
    rho2, c2 = 0.5**2, 0.9**2 + 0.4**2
    assert ciou_loss(a, b).item() == pytest.approx(1 + rho2 / c2, rel=1e-5)
    # non-canonical and out-of-range corners are canonicalised and clipped
    assert ciou_loss(torch.tensor([[0.5, 0.5, 0.1, 0.1]]), a).item() == pytest.approx(0.0, abs=1e-6)
    assert ciou_loss(
        torch.tensor([[-0.2, 0.1, 0.5, 0.5]]), torch.tensor([[0.0, 0.1, 0.5, 0.5]])
    ).item() == pytest.approx(0.0, abs=1e-6)


def test_ciou_aspect_term():
    p = torch.tensor([[0.2, 0.2, 0.6, 0.4]])  # w/h 2
    g = torch.tensor([[0.3, 0.1, 0.5, 0.5]])  # w/h 0.5, same center
    iou = 0.04 / (0.08 + 0.08 - 0.04)
    v = 4 / math.pi**2 * (math.atan(0.5) - math.atan(2)) ** 2
    alpha = v / (1 - iou + v)
    assert ciou_loss(p, g).item() == pytest.approx(1 - (iou - alpha * v), rel=1e-4)


def test_degenerate_boxes_finite_with_finite_grad():
    p = torch.tensor([[0.3, 0.3, 0.3, 0.3]], requires_grad=True)
    g = torch.tensor([[0.3, 0.3, 0.3, 0.3]])
    loss = ciou_loss(p, g).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(p.grad).all()


def test_smoothl1_is_quadratic_on_unit_range():
    p, g = torch.tensor([[0.0, 0.5]]), torch.tensor([[0.4, 0.5]])
    assert smoothl1_sum(p, g).item() == pytest.approx(0.5 * 0.16)


def _pack(z, target, **w):
    return pack_loss(
        torch.zeros(0, V),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0),
        z,
        torch.tensor(target),
        coord_start=CS,
        weights=Stage2LossWeights(**w),
    )


def test_pooled_geometry_losses_and_gradient():
    z = peaked([100, 200, 300, 400, 0, 0, 999, 999]).requires_grad_(True)
    out = _pack(z, [100, 200, 300, 400, 0, 0, 999, 999])
    assert out.n_boxes == 2 and out.metrics["loss/bbox_smoothl1"] == pytest.approx(0, abs=1e-8)
    assert out.metrics["loss/bbox_ciou"] == pytest.approx(0, abs=1e-5)
    # shift the FN target: pooled = box-count-weighted mean over both sets
    out = _pack(z, [100, 200, 300, 400, 0, 0, 499, 999])
    d = 500 / 999
    assert out.metrics["loss/bbox_smoothl1"] == pytest.approx(0.5 * d * d / 8, rel=1e-4)
    z2 = torch.randn(8, V, requires_grad=True)
    _pack(z2, [100, 200, 300, 400, 0, 0, 499, 999], smoothl1=0.0, ciou=1.0).loss.backward()
    assert z2.grad[:, CS : CS + 1000].abs().sum() > 0 and z2.grad[:, :CS].abs().sum() == 0


def test_pooled_box_losses_divide_by_box_count():
    pred = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]])
    tgt = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 0.5, 1.0]])
    sl1, ci = pooled_box_losses(pred, tgt)
    assert sl1.item() == pytest.approx(smoothl1_sum(pred, tgt).item() / 8)
    assert ci.item() == pytest.approx(ciou_loss(pred, tgt).sum().item() / 2)


def test_no_boxes_gives_zero_with_graph():
    z = torch.zeros(0, V, requires_grad=True)
    out = _pack(z, [])
    assert out.n_boxes == 0 and "loss/bbox_smoothl1" not in out.metrics and out.loss.item() == 0
