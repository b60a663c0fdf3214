"""Stage-2 geometry losses: expectation decoding, SmoothL1 and CIoU, pooled over boxes.

- Expectation decoding: for a coord slot at row position p, the logits that predict it
  sit at p - 1 (causal shift). Restricted to the 1000 coord ids (bin order) and divided by
  the temperature tau, ĉ = sum_k k * softmax(s / tau)_k / 999, a differentiable value in
  [0, 1] (an argmax would have no gradient). Target g = k* / 999.
- SmoothL1: PyTorch's smooth_l1_loss with beta = 1, averaged over all 4n coordinates. On
  [0, 1] differences it is 0.5 d^2 (quadratic everywhere): kept for parity with the
  reference, whose weights were tuned on it.
- CIoU: both boxes canonicalised (x_lo = min(x1, x2), x_hi = max) and clipped to [0, 1];
  IoU = inter / max(union, eps); rho^2 = squared center distance; c^2 = squared diagonal
  of the enclosing box; v = 4/pi^2 (atan(w_g/h_g) - atan(w_p/h_p))^2 (heights + eps, so a
  flat box gives a finite gradient); alpha = v / (1 - IoU + v + eps);
  loss = 1 - (IoU - rho^2/c^2 - alpha v), NaN replaced by 0. GIoU is not offered.
- Pooling: matched-prefix boxes and FN boxes are one pool: SmoothL1 = sum / (4 n) and
  CIoU = sum / n over all n boxes (a box-count-weighted mean of the two sets), not
  mean(matched) + mean(FN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

COORD_BINS = 1000
COORD_MAX = COORD_BINS - 1
EPS = 1e-7


@dataclass
class GeometryLoss:
    smoothl1: torch.Tensor  # pooled mean over 4n coordinates (0 when n == 0)
    ciou: torch.Tensor  # pooled mean over n boxes
    smoothl1_sum: torch.Tensor  # for normalising over a whole optimizer step
    ciou_sum: torch.Tensor
    n_boxes: int


def _row_logits(logits: torch.Tensor) -> torch.Tensor:
    if logits.dim() == 3:
        if logits.shape[0] != 1:
            raise ValueError(f"expected one (packed) row of logits, got batch {logits.shape[0]}")
        logits = logits[0]
    if logits.dim() != 2:
        raise ValueError(f"logits must be (T, V) or (1, T, V), got shape {tuple(logits.shape)}")
    return logits


def expectation_decode(
    logits: torch.Tensor, slot_positions, coord_start: int, temperature: float = 1.0
) -> torch.Tensor:
    """ĉ in [0, 1] for each coord slot, from the logits one position before it."""
    logits = _row_logits(logits)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if logits.shape[-1] < coord_start + COORD_BINS:
        raise ValueError(
            f"logits have {logits.shape[-1]} columns but the coord ids end at "
            f"{coord_start + COORD_BINS}: pass full-vocabulary logits, not a slice"
        )
    pos = torch.as_tensor(list(slot_positions), dtype=torch.long, device=logits.device)
    if pos.numel() and (int(pos.min()) < 1 or int(pos.max()) >= logits.shape[0]):
        raise ValueError(
            f"coord slot positions must be in 1..{logits.shape[0] - 1} (the logits at slot-1 "
            f"predict the slot), got {pos.tolist()}"
        )
    s = logits[pos - 1, coord_start : coord_start + COORD_BINS].float() / temperature
    k = torch.arange(COORD_BINS, dtype=s.dtype, device=s.device)
    return (torch.softmax(s, dim=-1) * k).sum(-1) / COORD_MAX


def _canonical(boxes: torch.Tensor):
    x_lo = torch.minimum(boxes[:, 0], boxes[:, 2]).clamp(0, 1)
    x_hi = torch.maximum(boxes[:, 0], boxes[:, 2]).clamp(0, 1)
    y_lo = torch.minimum(boxes[:, 1], boxes[:, 3]).clamp(0, 1)
    y_hi = torch.maximum(boxes[:, 1], boxes[:, 3]).clamp(0, 1)
    return x_lo, y_lo, x_hi, y_hi


def ciou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Per-box CIoU loss for (n, 4) boxes in [0, 1] coordinates (any corner order)."""
    px0, py0, px1, py1 = _canonical(pred)
    gx0, gy0, gx1, gy1 = _canonical(target)
    pw, ph = px1 - px0, py1 - py0
    gw, gh = gx1 - gx0, gy1 - gy0
    iw = (torch.minimum(px1, gx1) - torch.maximum(px0, gx0)).clamp(min=0)
    ih = (torch.minimum(py1, gy1) - torch.maximum(py0, gy0)).clamp(min=0)
    inter = iw * ih
    union = (pw * ph + gw * gh - inter).clamp(min=eps)
    iou = inter / union
    rho2 = ((px0 + px1) - (gx0 + gx1)) ** 2 / 4 + ((py0 + py1) - (gy0 + gy1)) ** 2 / 4
    c2 = (
        (torch.maximum(px1, gx1) - torch.minimum(px0, gx0)) ** 2
        + (torch.maximum(py1, gy1) - torch.minimum(py0, gy0)) ** 2
        + eps
    )
    v = (4 / math.pi**2) * (torch.atan(gw / (gh + eps)) - torch.atan(pw / (ph + eps))) ** 2
    alpha = v / (1 - iou + v + eps)
    loss = 1 - (iou - rho2 / c2 - alpha * v)
    return torch.nan_to_num(loss, nan=0.0)


def smoothl1_sum(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(pred, target, reduction="sum", beta=1.0)


def geometry_losses(logits: torch.Tensor, groups, coord_start: int, temperature: float = 1.0) -> GeometryLoss:
    """Pooled SmoothL1 and CIoU over all boxes of a row (``groups`` carry ``positions`` and
    ``target_bins``, 4 each: matched prefix boxes and FN boxes alike)."""
    logits = _row_logits(logits)
    groups = list(groups)
    zero = logits.sum() * 0.0  # keeps the graph (and device/dtype) when there is no box
    if not groups:
        return GeometryLoss(zero, zero, zero, zero, 0)
    for g in groups:
        if len(g.positions) != 4 or len(g.target_bins) != 4:
            raise ValueError(f"a box group needs 4 slots and 4 target bins, got {g}")
    positions = [p for g in groups for p in g.positions]
    pred = expectation_decode(logits, positions, coord_start, temperature).view(-1, 4)
    target = torch.tensor(
        [[b / COORD_MAX for b in g.target_bins] for g in groups], dtype=pred.dtype, device=pred.device
    )
    n = len(groups)
    sl1 = smoothl1_sum(pred, target)
    ci = ciou_loss(pred, target).sum()
    return GeometryLoss(smoothl1=sl1 / (4 * n), ciou=ci / n, smoothl1_sum=sl1, ciou_sum=ci, n_boxes=n)
