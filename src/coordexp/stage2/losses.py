"""Stage-2 geometry losses: expectation decoding, SmoothL1 and CIoU, pooled over boxes.

- Expectation decoding (``expectation_decode``): for a coord slot at row position p, the
  logits that predict it sit at p - 1 (causal shift); the caller passes those rows
  (``stage2.objective.pack_loss`` gets them from the forward). Restricted to the 1000 coord
  ids (bin order) and divided by the temperature tau, ĉ = sum_k k * softmax(s / tau)_k / 999,
  a differentiable value in [0, 1] (an argmax would have no gradient). Target g = k* / 999.
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
  mean(matched) + mean(FN) (``pooled_box_losses``).

``stage2.objective.pack_loss`` runs these on every pack; nothing else computes them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

COORD_BINS = 1000
COORD_MAX = COORD_BINS - 1
EPS = 1e-7


def expectation_decode(slot_rows: torch.Tensor, coord_start: int, temperature: float = 1.0):
    """(ĉ in [0, 1], p) per coord slot from ``slot_rows`` (n, V): the full-vocabulary logits at
    slot - 1, one row per slot. p = softmax(s / tau) over the 1000 coord ids (bin order)."""
    if slot_rows.dim() != 2:
        raise ValueError(f"slot logits must be (slots, vocabulary), got shape {tuple(slot_rows.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if slot_rows.shape[-1] < coord_start + COORD_BINS:
        raise ValueError(
            f"logits have {slot_rows.shape[-1]} columns but the coord ids end at "
            f"{coord_start + COORD_BINS}: pass full-vocabulary logits, not a slice"
        )
    s = slot_rows[:, coord_start : coord_start + COORD_BINS].float() / temperature
    p = torch.softmax(s, dim=-1)
    k = torch.arange(COORD_BINS, dtype=p.dtype, device=p.device)
    return (p * k).sum(-1) / COORD_MAX, p


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


def pooled_box_losses(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(SmoothL1, CIoU) over (n, 4) boxes in [0, 1], pooled: sums over all n boxes / (4 n) and / n."""
    n = pred.shape[0]
    return smoothl1_sum(pred, target) / (4 * n), ciou_loss(pred, target).sum() / n
