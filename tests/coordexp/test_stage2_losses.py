import math

import pytest
import torch

from coordexp.stage2.channel_b import GeometryGroup
from coordexp.stage2.losses import ciou_loss, expectation_decode, geometry_losses, smoothl1_sum

CS = 10  # a small fake vocabulary: coord ids 10..1009
V = CS + 1000


def peaked(bins, T=None):
    """Logits whose slot p (predicted from p-1) puts all mass on bins[p-1]."""
    T = T or len(bins) + 1
    z = torch.full((T, V), -1e4)
    for p, b in enumerate(bins, start=1):
        z[p - 1, CS + b] = 1e4
    return z


def test_expectation_is_mean_not_argmax():
    z = torch.full((2, V), -1e4)
    z[0, CS + 0] = 0.0
    z[0, CS + 999] = 0.0  # two equal modes: mean 0.5, argmax would give 0
    assert expectation_decode(z, [1], CS).item() == pytest.approx(0.5, abs=1e-6)
    assert expectation_decode(peaked([999]), [1], CS).item() == pytest.approx(1.0)
    assert expectation_decode(peaked([0]), [1], CS).item() == pytest.approx(0.0)


def test_expectation_temperature_and_shift():
    z = torch.zeros(3, V)
    z[1, CS + 999] = 2.0  # only the logits at position 1 predict slot 2
    hot = expectation_decode(z, [2], CS, temperature=0.1).item()
    cold = expectation_decode(z, [2], CS, temperature=10.0).item()
    assert hot > 0.99 and abs(cold - 0.5) < 0.05
    assert expectation_decode(z, [1], CS).item() == pytest.approx(0.5)


def test_sliced_logits_and_bad_positions_rejected():
    with pytest.raises(ValueError, match="slice"):
        expectation_decode(torch.zeros(3, 1000), [1], CS)
    with pytest.raises(ValueError, match="positions"):
        expectation_decode(torch.zeros(3, V), [0], CS)


def test_ciou_values():
    a = torch.tensor([[0.1, 0.1, 0.5, 0.5]])
    assert ciou_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    # disjoint same-shape boxes: IoU 0, v 0, loss = 1 + rho^2 / c^2
    b = torch.tensor([[0.6, 0.1, 1.0, 0.5]])
    rho2, c2 = 0.5 ** 2, 0.9 ** 2 + 0.4 ** 2
    assert ciou_loss(a, b).item() == pytest.approx(1 + rho2 / c2, rel=1e-5)
    # non-canonical and out-of-range corners are canonicalised and clipped
    assert ciou_loss(torch.tensor([[0.5, 0.5, 0.1, 0.1]]), a).item() == pytest.approx(0.0, abs=1e-6)
    assert ciou_loss(torch.tensor([[-0.2, 0.1, 0.5, 0.5]]), torch.tensor([[0.0, 0.1, 0.5, 0.5]])).item() == \
        pytest.approx(0.0, abs=1e-6)


def test_ciou_aspect_term():
    p = torch.tensor([[0.2, 0.2, 0.6, 0.4]])  # w/h 2
    g = torch.tensor([[0.3, 0.1, 0.5, 0.5]])  # w/h 0.5, same center
    iou = 0.04 / (0.08 + 0.08 - 0.04)
    v = 4 / math.pi ** 2 * (math.atan(0.5) - math.atan(2)) ** 2
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


def test_pooled_geometry_losses_and_gradient():
    bins = [100, 200, 300, 400, 0, 0, 999, 999]
    z = peaked(bins).requires_grad_(True)
    groups = [GeometryGroup("matched", (1, 2, 3, 4), (100, 200, 300, 400), 0),
              GeometryGroup("fn", (5, 6, 7, 8), (0, 0, 999, 999), 1)]
    out = geometry_losses(z, groups, CS)
    assert out.n_boxes == 2 and out.smoothl1.item() == pytest.approx(0, abs=1e-8)
    assert out.ciou.item() == pytest.approx(0, abs=1e-5)
    # shift the FN target: pooled = box-count-weighted mean over both sets
    groups[1] = GeometryGroup("fn", (5, 6, 7, 8), (0, 0, 499, 999), 1)
    out = geometry_losses(z, groups, CS)
    d = 500 / 999
    assert out.smoothl1.item() == pytest.approx(0.5 * d * d / 8, rel=1e-4)
    z2 = torch.randn(9, V, requires_grad=True)
    geometry_losses(z2, groups, CS).ciou.backward()
    assert z2.grad[:, CS:CS + 1000].abs().sum() > 0 and z2.grad[:, :CS].abs().sum() == 0
    assert z2.grad[8].abs().sum() == 0  # the last position predicts nothing


def test_no_boxes_gives_zero_with_graph():
    z = torch.randn(3, V, requires_grad=True)
    out = geometry_losses(z, [], CS)
    out.smoothl1.backward()
    assert out.n_boxes == 0 and out.smoothl1.item() == 0
