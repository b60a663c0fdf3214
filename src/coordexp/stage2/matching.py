"""Matching predicted boxes to ground-truth objects (Channel-B and Stage-2 eval).

For each prediction:
1. candidates: the ``candidate_top_k`` GT objects with the highest bbox IoU (ties by GT
   index); if the best IoU is <= 0 (the prediction overlaps nothing), the k GT objects with
   the nearest centers instead (ties by index), so a badly placed box can still be matched
   and taught where to go;
2. each candidate pair gets a maskIoU on a virtual R x R canvas (coordinates k*(R-1)/999,
   a bbox is its 4-corner polygon); below ``maskiou_gate`` the pair is gated out (cost
   1e6, counted in ``gating_rejections``), otherwise its cost is 1 - maskIoU;
3. a square (P+G) x (G+P) cost matrix with dummies, blocks [[cost, fp_cost], [fn_cost, 0]]:
   a prediction may go to a dummy column (it is a false positive, cost fp_cost) and a GT
   to a dummy row (it is missed, cost fn_cost);
4. ``scipy.optimize.linear_sum_assignment``; a pair is matched only if it is a real
   prediction on a real GT with cost < 5e5 (a gated pair the solver was forced into is
   not a match).

FN = unmatched GT in GT order; FP = unmatched predictions in prediction order.
Pure numpy/scipy, deterministic: the same inputs give the same assignment.

The rasterizer is ours (pycocotools is not a dependency): a pixel (i, j) of the canvas
belongs to a polygon when its center (i + 0.5, j + 0.5) is inside it under the even-odd
rule. maskIoU is then |A and B| / |A or B| in pixels; two empty masks have IoU 0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from coordexp.format.coord import COORD_MAX

GATED_COST = 1e6
_INT = {int}
_BINS = frozenset(range(COORD_MAX + 1))
MATCH_COST_LIMIT = 5e5


@dataclass(frozen=True)
class MatchConfig:
    candidate_top_k: int = 5
    maskiou_gate: float = 0.3
    maskiou_resolution: int = 256
    fp_cost: float = 1.0
    fn_cost: float = 1.0

    def __post_init__(self):
        if (
            isinstance(self.candidate_top_k, bool)
            or not isinstance(self.candidate_top_k, int)
            or self.candidate_top_k < 1
        ):
            raise ValueError(f"rollout_matching.candidate_top_k must be an int >= 1, got {self.candidate_top_k!r}")
        if not 0 <= self.maskiou_gate <= 1:
            raise ValueError(f"rollout_matching.maskiou_gate must be in [0, 1], got {self.maskiou_gate!r}")
        if (
            isinstance(self.maskiou_resolution, bool)
            or not isinstance(self.maskiou_resolution, int)
            or self.maskiou_resolution < 8
        ):
            raise ValueError(
                f"rollout_matching.maskiou_resolution must be an int >= 8, got {self.maskiou_resolution!r}"
            )
        for name in ("fp_cost", "fn_cost"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < MATCH_COST_LIMIT):
                raise ValueError(f"rollout_matching.{name} must be in [0, {MATCH_COST_LIMIT:g}), got {v!r}")


@dataclass(frozen=True)
class Shape:
    """A geometry in norm1000 bins: ``bbox_2d`` [x1, y1, x2, y2] or a flat ``poly``."""

    geometry: str
    values: tuple[int, ...]

    def __post_init__(self):
        n = len(self.values)
        if self.geometry == "bbox_2d":
            if n != 4:
                raise ValueError(f"bbox_2d needs 4 values, got {n}")
        elif self.geometry == "poly":
            if n % 2 or n < 6:
                raise ValueError(f"poly needs an even count >= 6 of values, got {n}")
        else:
            raise ValueError(f"unknown geometry {self.geometry!r} (bbox_2d or poly)")
        if set(map(type, self.values)) == _INT and _BINS.issuperset(self.values):  # the common case, at once
            return
        for v in self.values:
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= COORD_MAX:
                raise ValueError(f"{self.geometry} values must be int bins 0..999, got {list(self.values)}")

    @classmethod
    def of(cls, obj) -> Shape:
        """From a Shape, a parsed object (``.geometry``/``.values``) or a record dict."""
        if isinstance(obj, Shape):
            return obj
        if isinstance(obj, dict):
            keys = [k for k in ("bbox_2d", "poly") if k in obj]
            if len(keys) != 1:
                raise ValueError(f"object needs exactly one of bbox_2d/poly, has keys {sorted(obj)}")
            return cls(keys[0], tuple(obj[keys[0]]))
        return cls(obj.geometry, tuple(obj.values))

    def extent(self) -> tuple[int, int, int, int]:
        if self.geometry == "bbox_2d":
            return tuple(self.values)  # type: ignore[return-value]
        xs, ys = self.values[0::2], self.values[1::2]
        return min(xs), min(ys), max(xs), max(ys)

    def polygon(self) -> list[tuple[int, int]]:
        if self.geometry == "bbox_2d":
            x1, y1, x2, y2 = self.values
            return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        return [(self.values[i], self.values[i + 1]) for i in range(0, len(self.values), 2)]


@dataclass
class MatchResult:
    matched: list[tuple[int, int]]  # (pred index, gt index), ascending by pred index
    fp: list[int]  # unmatched predictions, in prediction order
    fn: list[int]  # unmatched GT, in GT order
    gating_rejections: int = 0
    n_candidate_pairs: int = 0
    # every candidate pair: keys prediction-major, each prediction's candidates in candidate order
    mask_iou: dict[tuple[int, int], float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- geometry


def _center(e) -> tuple[float, float]:
    return (e[0] + e[2]) / 2, (e[1] + e[3]) / 2


def rasterize(shape: Shape, resolution: int) -> np.ndarray:
    """Boolean (R, R) mask, indexed [row (y), column (x)]: pixel centers inside the polygon
    (even-odd rule) after mapping bins to canvas units with k*(R-1)/999."""
    scale = (resolution - 1) / COORD_MAX
    pts = [(x * scale, y * scale) for x, y in shape.polygon()]
    centers = np.arange(resolution, dtype=np.float64) + 0.5
    px = centers[None, :]
    py = centers[:, None]
    inside = np.zeros((resolution, resolution), dtype=bool)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        if y0 == y1:
            continue  # a horizontal edge never crosses a scanline through pixel centers
        crosses = (y0 > py) != (y1 > py)  # (R, 1)
        x_at = x0 + (py - y0) * (x1 - x0) / (y1 - y0)  # (R, 1)
        inside ^= crosses & (px < x_at)
    return inside


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0


# ----------------------------------------------------------------------------- candidates


def _candidate_table(pe: np.ndarray, ge: np.ndarray, k: int) -> np.ndarray:
    """The candidates of every prediction at once: (P, min(k, G)) GT indices, each row the
    prediction's top-k GT by bbox IoU (ties by index), or its k nearest centers (ties by index)
    when its best IoU is <= 0. ``match`` records them, in this order, as ``MatchResult.mask_iou``'s keys.

    The same integer and float operations as ``eval.matching.bbox_iou`` and ``_center`` (all values are
    small ints or halves of them, so every product and sum is exact) and a stable sort
    (ties keep GT order), so the order equals the per-pair Python one."""
    px1, py1, px2, py2 = (pe[:, c : c + 1] for c in range(4))  # (P, 1)
    gx1, gy1, gx2, gy2 = (ge[None, :, c] for c in range(4))  # (1, G)
    iw = np.minimum(px2, gx2) - np.maximum(px1, gx1)
    ih = np.minimum(py2, gy2) - np.maximum(py1, gy1)
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0)
    union = (px2 - px1) * (py2 - py1) + (gx2 - gx1) * (gy2 - gy1) - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    key = -iou
    far = np.flatnonzero(iou.max(axis=1) <= 0)  # overlaps nothing: nearest centers instead
    if far.size:
        fx1, fy1, fx2, fy2 = (pe[far, c : c + 1] for c in range(4))
        key[far] = ((gx1 + gx2) / 2 - (fx1 + fx2) / 2) ** 2 + ((gy1 + gy2) / 2 - (fy1 + fy2) / 2) ** 2
    return np.argsort(key, axis=1, kind="stable")[:, :k]


# ----------------------------------------------------------------------------- mask IoU


@functools.lru_cache(maxsize=8)
def _centers(resolution: int) -> np.ndarray:
    out = np.arange(resolution, dtype=np.float64) + 0.5
    out.flags.writeable = False
    return out


def _box_ranges(boxes: np.ndarray, resolution: int) -> np.ndarray:
    """(N, 4) [x start, x stop, y start, y stop] pixel ranges of (N, 4) bbox bins: on each
    axis the rows (or columns) whose centers c satisfy min(a, b)*s <= c < max(a, b)*s,
    s = (R-1)/999, which are the scanlines ``rasterize`` finds between a box's two edges
    on that axis (equal bins: none)."""
    scaled = np.asarray(boxes, dtype=np.int64).reshape(-1, 4) * ((resolution - 1) / COORD_MAX)
    x1, y1, x2, y2 = scaled.T
    bounds = np.stack([np.minimum(x1, x2), np.maximum(x1, x2), np.minimum(y1, y2), np.maximum(y1, y2)], axis=1)
    # searchsorted "left" counts the centers < v: the same strict comparisons as rasterize
    return np.searchsorted(_centers(resolution), bounds.ravel(), side="left").reshape(-1, 4)


def _range_ious(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    area_a = (ra[:, 1] - ra[:, 0]) * (ra[:, 3] - ra[:, 2])
    area_b = (rb[:, 1] - rb[:, 0]) * (rb[:, 3] - rb[:, 2])
    inter = np.clip(np.minimum(ra[:, 1], rb[:, 1]) - np.maximum(ra[:, 0], rb[:, 0]), 0, None) * np.clip(
        np.minimum(ra[:, 3], rb[:, 3]) - np.maximum(ra[:, 2], rb[:, 2]), 0, None
    )
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def box_mask_ious(a: np.ndarray, b: np.ndarray, resolution: int) -> np.ndarray:
    """maskIoU of bbox pairs ``a[n]`` and ``b[n]`` ((N, 4) bins) on the R x R canvas, equal
    to ``mask_iou(rasterize(a), rasterize(b))``: a rasterized box is the product of a row
    range and a column range, so its pixel counts are products of range lengths, and the
    IoU is the same int / int division."""
    return _range_ious(_box_ranges(a, resolution), _box_ranges(b, resolution))


def _pair_ious(
    preds: list[Shape], gts: list[Shape], pe: np.ndarray, ge: np.ndarray, rows: np.ndarray, cols: np.ndarray, r: int
) -> list[float]:
    """maskIoU of each (preds[rows[n]], gts[cols[n]]): boxes by their pixel ranges (each
    box's once; ``pe``/``ge`` are the extents, a box's own values), any pair with a polygon
    through ``rasterize`` (each shape rasterized once)."""
    if all(p.geometry == "bbox_2d" for p in preds) and all(g.geometry == "bbox_2d" for g in gts):
        ranges = _box_ranges(np.concatenate([pe, ge]), r)
        return _range_ious(ranges[rows], ranges[len(preds) + cols]).tolist()
    masks: dict[tuple[str, int], np.ndarray] = {}

    def mask(side: str, idx: int, shape: Shape) -> np.ndarray:
        if (side, idx) not in masks:
            masks[(side, idx)] = rasterize(shape, r)
        return masks[(side, idx)]

    return [
        mask_iou(mask("p", i, preds[i]), mask("g", j, gts[j]))
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
    ]


# ----------------------------------------------------------------------------- assignment


def match(preds, gts, config: MatchConfig = MatchConfig()) -> MatchResult:
    """Hungarian matching with maskIoU gating and FP/FN dummies (see the module docstring)."""
    preds = [Shape.of(p) for p in preds]
    gts = [Shape.of(g) for g in gts]
    n_p, n_g = len(preds), len(gts)
    res = MatchResult(matched=[], fp=[], fn=[])
    if n_p == 0 or n_g == 0:
        res.fp = list(range(n_p))
        res.fn = list(range(n_g))
        return res

    pe = np.array([p.extent() for p in preds], dtype=np.int64)
    ge = np.array([g.extent() for g in gts], dtype=np.int64)
    cands = _candidate_table(pe, ge, config.candidate_top_k)
    rows = np.repeat(np.arange(n_p), cands.shape[1])  # pred-major, candidates in order
    cols = cands.ravel()
    ious = _pair_ious(preds, gts, pe, ge, rows, cols, config.maskiou_resolution)
    res.mask_iou = dict(zip(zip(rows.tolist(), cols.tolist(), strict=True), ious, strict=True))
    res.n_candidate_pairs = len(ious)
    iou = np.array(ious, dtype=np.float64)
    passed = ~(iou < config.maskiou_gate)
    res.gating_rejections = len(ious) - int(passed.sum())
    cost = np.full((n_p, n_g), GATED_COST, dtype=np.float64)
    cost[rows[passed], cols[passed]] = 1.0 - iou[passed]  # (pred, gt) pairs are distinct

    n = n_p + n_g
    full = np.zeros((n, n), dtype=np.float64)
    full[:n_p, :n_g] = cost
    full[:n_p, n_g:] = config.fp_cost
    full[n_p:, :n_g] = config.fn_cost
    rows, cols = linear_sum_assignment(full)
    real = (rows < n_p) & (cols < n_g)
    rows, cols = rows[real], cols[real]
    ok = full[rows, cols] < MATCH_COST_LIMIT  # a gated pair the solver was forced into is no match
    res.matched = sorted(zip(rows[ok].tolist(), cols[ok].tolist(), strict=True))
    matched_pred, matched_gt = {i for i, _ in res.matched}, {j for _, j in res.matched}
    res.fp = [i for i in range(n_p) if i not in matched_pred]
    res.fn = [j for j in range(n_g) if j not in matched_gt]
    return res
