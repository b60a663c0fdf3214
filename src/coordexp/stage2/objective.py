"""The Stage-2 loss of one packed forward (both channels):

    loss = CE + w_sl1 · SmoothL1 + w_ciou · CIoU + Σ regularizers

- CE = Σ w·ce / Σ w over the supervised positions (per-token weights: Channel-B's
  matched-structure / FN-desc / closure weights, Channel-A's desc_ce_weight), read from the
  *first* iteration's logits (the A1 anchor; Channel-B has one iteration). No clamp on the
  denominator; a pack with no weighted token has CE 0.
- geometry (``stage2.losses``): expectation decoding at τ_A from the *last* iteration's
  logits at slot - 1, pooled over all boxes of the pack (matched prefix and FN alike).
- regularizers over all coord slots of the pack (a slot-count-weighted mean): soft-CE and
  W1 (``custom.coord_soft_ce_w1``: σ, τ, weights), gate at τ_A (``coord_gate_weight``),
  hard ``coord_ce``, ``coord_el1`` = |ĉ - g|, ``coord_ehuber`` (δ = ``coord_huber_delta``),
  ``coord_entropy`` of softmax(s/τ_A).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from coordexp.stage2.losses import COORD_BINS, COORD_MAX, expectation_decode, pooled_box_losses
from coordexp.training.objectives import CoordLossWeights, coord_loss_weights, coord_terms


@dataclass(frozen=True)
class Stage2LossWeights:
    desc_ce_weight: float = 1.0
    smoothl1: float = 1.0
    ciou: float = 1.0
    soft_ce: float = 0.0
    w1: float = 0.0
    gate: float = 0.0
    coord_ce: float = 0.0
    el1: float = 0.0
    ehuber: float = 0.0
    entropy: float = 0.0
    huber_delta: float = 0.001
    temperature: float = 1.0  # τ_A: expectation decoding, gate, entropy
    reg_temperature: float = 1.0  # soft-CE / W1 (custom.coord_soft_ce_w1.temperature)
    sigma: float = 2.0
    radius: int | None = None

    @classmethod
    def from_config(cls, cfg) -> Stage2LossWeights:
        s2, sc = cfg.stage2_ab, cfg.custom.coord_soft_ce_w1
        reg = coord_loss_weights(sc)  # stage_2 takes soft-CE / W1 from there, its gate and hard CE from stage2_ab
        return cls(
            desc_ce_weight=s2.desc_ce_weight,
            smoothl1=s2.bbox_smoothl1_weight,
            ciou=s2.bbox_ciou_weight,
            soft_ce=reg.soft_ce if sc.enabled else 0.0,
            w1=reg.w1 if sc.enabled else 0.0,
            gate=s2.coord_gate_weight,
            coord_ce=s2.coord_ce_weight,
            el1=s2.coord_el1_weight,
            ehuber=s2.coord_ehuber_weight,
            entropy=s2.coord_entropy_weight,
            huber_delta=s2.coord_huber_delta,
            temperature=s2.softctx_temperature,
            reg_temperature=reg.temperature,
            sigma=reg.sigma,
            radius=reg.radius,
        )


@dataclass
class PackLoss:
    loss: torch.Tensor
    metrics: dict  # loss/* (floats)
    n_boxes: int
    n_slots: int
    ce_weight_sum: float


def pack_loss(
    first_rows: torch.Tensor,
    ce_targets: torch.Tensor,
    ce_weights: torch.Tensor,
    last_slot_rows: torch.Tensor,
    target_bins: torch.Tensor,
    *,
    coord_start: int,
    weights: Stage2LossWeights,
) -> PackLoss:
    """``first_rows[i]`` predicts ``ce_targets[i]`` with weight ``ce_weights[i]``;
    ``last_slot_rows`` are the last iteration's logits at slot - 1 for the pack's slots, in
    box order (4 per box), ``target_bins`` their target bins."""
    zero = (first_rows.sum() + last_slot_rows.sum()) * 0.0
    # CE (full vocabulary) from the first iteration
    w = ce_weights.to(first_rows.device, torch.float32)
    den = float(w.sum())
    if first_rows.shape[0] and den > 0:
        ce_tok = F.cross_entropy(first_rows.float(), ce_targets.to(first_rows.device), reduction="none")
        ce = (ce_tok * w).sum() / w.sum()
    else:
        ce = zero
    # geometry + regularizers from the last iteration
    n_slots = int(last_slot_rows.shape[0])
    if n_slots % 4:
        raise ValueError(f"coord slots come 4 per box, got {n_slots}")
    metrics = {"loss/ce": float(ce.detach())}
    total = ce
    if n_slots:
        z = last_slot_rows.float()
        s = z[:, coord_start : coord_start + COORD_BINS]
        bins = target_bins.to(z.device, torch.long)
        tau = weights.temperature
        c_hat, p = expectation_decode(z, coord_start, tau)
        g = bins.to(p.dtype) / COORD_MAX
        pred, tgt = c_hat.view(-1, 4), g.view(-1, 4)
        n_boxes = pred.shape[0]
        sl1, ciou = pooled_box_losses(pred, tgt)
        reg_w = CoordLossWeights(
            soft_ce=weights.soft_ce,
            w1=weights.w1,
            gate=0.0,
            ce=weights.coord_ce,
            temperature=weights.reg_temperature,
            sigma=weights.sigma,
            radius=weights.radius,
        )
        soft, w1, _, hard = (torch.nan_to_num(t) for t in coord_terms(z, bins, coord_start, reg_w))
        gate = (torch.logsumexp(z / tau, -1) - torch.logsumexp(s / tau, -1)).clamp_min(0.0)
        d = (c_hat - g).abs()
        el1 = d
        delta = weights.huber_delta
        ehuber = torch.where(d < delta, 0.5 * d * d / delta, d - 0.5 * delta)
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)
        terms = {
            "coord_soft_ce": (weights.soft_ce, soft),
            "coord_w1": (weights.w1, w1),
            "coord_gate": (weights.gate, gate),
            "coord_ce": (weights.coord_ce, hard),
            "coord_el1": (weights.el1, el1),
            "coord_ehuber": (weights.ehuber, ehuber),
            "coord_entropy": (weights.entropy, entropy),
        }
        reg = zero
        for name, (wt, t) in terms.items():
            m = torch.nan_to_num(t).mean()
            metrics[f"loss/{name}"] = float(m.detach())
            if wt:
                reg = reg + wt * m
        total = total + weights.smoothl1 * sl1 + weights.ciou * ciou + reg
        metrics.update(
            {
                "loss/bbox_smoothl1": float(sl1.detach()),
                "loss/bbox_ciou": float(ciou.detach()),
                "loss/coord_reg": float(reg.detach()),
            }
        )
    else:
        n_boxes = 0
        total = total + zero
    metrics["loss/total"] = float(total.detach())
    return PackLoss(loss=total, metrics=metrics, n_boxes=n_boxes, n_slots=n_slots, ce_weight_sum=den)
