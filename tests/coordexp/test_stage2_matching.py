import random

import numpy as np
import pytest


from coordexp.eval.matching import bbox_iou
from coordexp.stage2.matching import (
    MatchConfig, Shape, box_mask_ious, mask_iou, match, rasterize,
)

B = lambda *v: Shape("bbox_2d", tuple(v))  # noqa: E731


def candidates(pred, gts, k):
    """The candidates ``match`` considered for its one prediction, in candidate order."""
    return [j for _i, j in match([pred], gts, MatchConfig(candidate_top_k=k, maskiou_gate=0.0)).mask_iou]


def test_rasterize_box_pixel_count():
    # 0..999 maps to 0..R-1; pixel centers 0.5..R-1.5 lie inside: (R-1)^2 pixels
    assert rasterize(B(0, 0, 999, 999), 256).sum() == 255 * 255
    assert rasterize(B(0, 0, 999, 999), 64).sum() == 63 * 63


def test_rasterize_triangle_is_about_half_its_box():
    tri = Shape("poly", (0, 0, 999, 0, 0, 999))
    n = rasterize(tri, 256).sum()
    assert abs(n - 255 * 255 / 2) < 256


def test_rasterize_degenerate_is_empty_and_iou_zero():
    flat = B(10, 10, 10, 500)
    m = rasterize(flat, 128)
    assert m.sum() == 0
    assert mask_iou(m, m) == 0.0


def test_box_mask_iou_tracks_bbox_iou():
    a, b = B(100, 100, 500, 500), B(300, 300, 700, 700)
    mi = mask_iou(rasterize(a, 256), rasterize(b, 256))
    assert abs(mi - bbox_iou(a.values, b.values)) < 0.03


def test_candidates_ties_by_index_and_nearest_fallback():
    gts = [B(0, 0, 10, 10), B(0, 0, 10, 10), B(500, 500, 600, 600)]
    assert candidates(B(0, 0, 10, 10), gts, 2) == [0, 1]
    # no overlap with anything: nearest centers, ties by index
    far = [B(0, 0, 10, 10), B(900, 900, 910, 910), B(200, 200, 210, 210)]
    assert candidates(B(400, 400, 410, 410), far, 2) == [2, 0]


def test_gate_counts_and_dummies():
    gts = [B(100, 100, 300, 300)]
    # overlapping but below the 0.3 gate: a rejected pair, so pred is FP and GT is FN
    res = match([B(250, 250, 400, 400)], gts, MatchConfig(maskiou_gate=0.3))
    assert res.matched == [] and res.fp == [0] and res.fn == [0] and res.gating_rejections == 1
    res = match([B(110, 110, 300, 300)], gts, MatchConfig(maskiou_gate=0.3))
    assert res.matched == [(0, 0)] and res.gating_rejections == 0


def test_fp_cost_can_beat_a_weak_match():
    # cost of the pair is 1 - maskIoU ~ 0.6; fp 0.1 + fn 0.1 is cheaper: no match
    gts = [B(100, 100, 300, 300)]
    pred = [B(100, 100, 300, 180)]
    assert match(pred, gts, MatchConfig(maskiou_gate=0.0, fp_cost=0.1, fn_cost=0.1)).matched == []
    assert match(pred, gts, MatchConfig(maskiou_gate=0.0, fp_cost=1, fn_cost=1)).matched == [(0, 0)]


def test_one_to_one_and_orders():
    gts = [B(500, 500, 700, 700), B(100, 100, 300, 300), B(800, 0, 900, 100)]
    preds = [B(105, 100, 300, 300), B(500, 505, 700, 700), B(0, 800, 50, 900), B(100, 100, 290, 300)]
    res = match(preds, gts, MatchConfig(fp_cost=0.5, fn_cost=2))
    # pred 0 fits GT 1 better than pred 3 does; each GT takes one prediction
    assert res.matched == [(0, 1), (1, 0)]
    assert res.fn == [2] and res.fp == [2, 3]


def test_deterministic():
    rng = np.random.default_rng(0)

    def boxes(n):
        out = []
        for _ in range(n):
            x, y = rng.integers(0, 900, 2)
            w, h = rng.integers(5, 99, 2)
            out.append(B(int(x), int(y), int(x + w), int(y + h)))
        return out

    p, g = boxes(30), boxes(20)
    a, b = match(p, g), match(list(p), list(g))
    assert a.matched == b.matched and a.fp == b.fp and a.fn == b.fn


def test_empty_sides():
    assert match([], [B(0, 0, 5, 5)]).fn == [0]
    assert match([B(0, 0, 5, 5)], []).fp == [0]


@pytest.mark.parametrize(
    "bad", [("bbox_2d", (1, 2, 3)), ("poly", (1, 2, 3, 4)), ("circle", (1, 2, 3, 4)), ("bbox_2d", (1, 2, 3, 1000))]
)
def test_bad_shapes(bad):
    with pytest.raises(ValueError):
        Shape(*bad)


def test_bad_config():
    with pytest.raises(ValueError, match="candidate_top_k"):
        MatchConfig(candidate_top_k=0)
    with pytest.raises(ValueError, match="fp_cost"):
        MatchConfig(fp_cost=1e6)


def _random_box(rng):
    kind = rng.random()
    if kind < 0.1:  # degenerate on one axis
        x, y = rng.randrange(1000), rng.randrange(1000)
        return (x, y, x, rng.randrange(1000)) if rng.random() < 0.5 else (x, y, rng.randrange(1000), y)
    if kind < 0.2:  # inverted (the rasterizer still defines a mask for it)
        return tuple(rng.randrange(1000) for _ in range(4))
    if kind < 0.3:  # on the canvas edges
        return (rng.choice((0, 1, 998)), rng.choice((0, 1)), rng.choice((998, 999)), 999)
    x1, y1 = rng.randrange(1000), rng.randrange(1000)
    return (x1, y1, min(999, x1 + rng.randrange(1, 200)), min(999, y1 + rng.randrange(1, 200)))


@pytest.mark.parametrize("resolution", [8, 13, 64, 100, 255, 256, 999, 1000])
def test_box_mask_ious_equal_the_rasterizer_exactly(resolution):
    """The closed form is the rasterizer's result, bit for bit, for many random box pairs
    (near pairs too, so that the intersection is rarely empty)."""
    rng = random.Random(resolution)
    pairs = []
    for _ in range(150):
        a = _random_box(rng)
        b = tuple(min(999, max(0, v + rng.randrange(-15, 16))) for v in a) if rng.random() < 0.6 else _random_box(rng)
        pairs.append((a, b))
    got = box_mask_ious(np.array([a for a, _ in pairs]), np.array([b for _, b in pairs]), resolution).tolist()
    want = [mask_iou(rasterize(B(*a), resolution), rasterize(B(*b), resolution)) for a, b in pairs]
    assert got == want
    assert sum(0 < w < 1 for w in want) > (50 if resolution >= 64 else 0) and 0.0 in want


def _reference_candidates(pred, gts, k):
    """The per-pair definition: top-k by bbox_iou, ties by index; nearest centers if none overlaps."""
    pe = pred.extent()
    ious = [bbox_iou(pe, g.extent()) for g in gts]
    if max(ious) > 0:
        return sorted(range(len(gts)), key=lambda j: (-ious[j], j))[:k]
    cx, cy = (pe[0] + pe[2]) / 2, (pe[1] + pe[3]) / 2
    dist = [((e[0] + e[2]) / 2 - cx) ** 2 + ((e[1] + e[3]) / 2 - cy) ** 2 for e in (g.extent() for g in gts)]
    return sorted(range(len(gts)), key=lambda j: (dist[j], j))[:k]


def test_candidates_equal_the_per_pair_definition():
    rng = random.Random(7)
    for _ in range(300):
        gts = [B(*_random_box(rng)) for _ in range(rng.randrange(1, 12))]
        gts += [gts[0]] * rng.randrange(0, 2)  # exact ties
        pred = B(*_random_box(rng)) if rng.random() < 0.8 else B(990, 990, 999, 999)
        k = rng.choice((1, 3, 5, 20))
        assert candidates(pred, gts, k) == _reference_candidates(pred, gts, k)
