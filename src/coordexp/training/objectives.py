"""Stage-1 objective: CE on non-coord targets plus the coord distribution losses (one forward pass).

Notation (openspec/specs/stage1-objective, docs/stage1.md): logits ``z_t`` at position t predict label ``y_{t+1}``; S
= supervised
positions, C = those whose target is a coord id, T = S minus C. For t in C, ``s_t`` = z_t
restricted to the 1000 coord ids (bin order), ``p_t = softmax(s_t / tau)``, ``k*`` the target bin.

* CE over T only (full vocabulary); coord targets never get a CE gradient.
* softCE_t = -sum_k q(k) log p_t(k), q a Gaussian around k* (sigma, cut at radius R), normalised.
* W1_t = (1/999) sum_k |CDF_p(k) - CDF_q(k)|, in [0, 1].
* gate_t = max(0, logsumexp(z_t / tau) - logsumexp(s_t / tau)) = -log(mass on the coord vocabulary).
* optional hard CE_t = CE(s_t, k*) on the coord slice, without tau.

Normalisation is by token counts, never by rows: the loss is
``sum_T CE / N_T + sum_C coord / N_C`` where N_T and N_C are the counts over the whole
optimizer step (all micro-batches, and all ranks times ``world_size`` to cancel DDP's gradient
averaging). So a packed row, a padded batch, or the same tokens split over accumulation
steps give the same loss and the same gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

COORD_BINS = 1000
IGNORE_INDEX = -100
LOGIT_CLAMP = 1e4


@dataclass(frozen=True)
class CoordLossWeights:
    """Stage-1 coord loss knobs; the defaults are the reference's "unset" defaults."""

    soft_ce: float = 1.0
    w1: float = 1.0
    gate: float = 1.0
    ce: float = 0.0  # hard CE on the coord slice
    temperature: float = 1.0
    sigma: float = 2.0
    radius: int | None = None  # None: no cut-off

    def __post_init__(self):
        for name in ("soft_ce", "w1", "gate", "ce"):
            v = getattr(self, name)
            if not v >= 0:
                raise ValueError(f"coord loss weight {name} must be >= 0, got {v!r}")
        if not self.temperature > 0:
            raise ValueError(f"coord loss temperature must be > 0, got {self.temperature!r}")
        if not self.sigma > 0:
            raise ValueError(f"coord loss sigma must be > 0, got {self.sigma!r}")
        if self.radius is not None and (
            isinstance(self.radius, bool) or not isinstance(self.radius, int) or self.radius < 0
        ):
            raise ValueError(f"coord loss radius must be a non-negative int or None, got {self.radius!r}")


def coord_loss_weights(section) -> CoordLossWeights:
    """The weights ``custom.coord_soft_ce_w1`` states, read as written (``enabled`` is the caller's to apply)."""
    return CoordLossWeights(
        soft_ce=section.soft_ce_weight,
        w1=section.w1_weight,
        gate=section.gate_weight,
        ce=section.ce_weight,
        temperature=section.temperature,
        sigma=section.target_sigma,
        radius=section.target_truncate,
    )


@dataclass
class Stage1Loss:
    """The loss to backpropagate, and detached per-term means for logging."""

    loss: object  # torch scalar with grad
    ce_sum: object  # detached sums over this micro-batch
    coord_sum: object
    num_text: int  # local counts (this micro-batch)
    num_coord: int
    soft_ce: float
    w1: float
    gate: float
    hard_ce: float
    token_acc: float  # over all supervised targets, coord and non-coord
    coord_acc: float  # argmax over the coord slice == k*


def soft_targets(target_bins, *, sigma: float, radius: int | None, dtype=None):
    """q(k) for each target bin: Gaussian exp(-(k-k*)^2 / (2 sigma^2)), zero beyond radius, normalised."""
    import torch

    k = torch.arange(COORD_BINS, device=target_bins.device, dtype=dtype or torch.float32)
    d = k.view(1, -1) - target_bins.view(-1, 1).to(k.dtype)
    q = torch.exp(-(d * d) / (2.0 * sigma * sigma))
    if radius is not None:
        q = q * (d.abs() <= radius).to(q.dtype)
    return q / q.sum(dim=-1, keepdim=True)


def coord_terms(logits_c, target_bins, coord_start: int, w: CoordLossWeights):
    """Per-position coord terms for rows of full-vocab logits whose target is a coord.

    Returns (soft_ce, w1, gate, hard_ce), each of shape [n].
    """
    import torch
    import torch.nn.functional as F

    s = logits_c[:, coord_start : coord_start + COORD_BINS]
    tau = w.temperature
    log_p = F.log_softmax(s / tau, dim=-1)
    q = soft_targets(target_bins, sigma=w.sigma, radius=w.radius, dtype=log_p.dtype)
    soft_ce = -(q * log_p).sum(dim=-1)
    cdf_gap = torch.cumsum(log_p.exp(), dim=-1) - torch.cumsum(q, dim=-1)
    w1 = cdf_gap.abs().sum(dim=-1) / (COORD_BINS - 1)
    gate = (torch.logsumexp(logits_c / tau, dim=-1) - torch.logsumexp(s / tau, dim=-1)).clamp_min(0.0)
    hard_ce = F.cross_entropy(s, target_bins, reduction="none")
    return soft_ce, w1, gate, hard_ce


def count_targets(labels, coord_start: int) -> tuple[int, int]:
    """(non-coord, coord) supervised targets after the causal shift: the normalisers' local share."""
    tgt = labels[..., 1:]
    valid = tgt != IGNORE_INDEX
    is_coord = valid & (tgt >= coord_start) & (tgt < coord_start + COORD_BINS)
    return int((valid & ~is_coord).sum()), int(is_coord.sum())


def supervised_positions(labels):
    """Positions t whose next label is supervised (in any row): the only logits the loss reads.

    Pass them as ``logits_to_keep`` so the model projects just these rows onto the vocabulary
    (most of a stage-1 row is prompt and image tokens), then score with ``stage1_loss_targets``
    against ``labels[:, idx + 1]``.
    """
    valid = (labels[:, 1:] != IGNORE_INDEX).any(dim=0)
    return valid.nonzero().view(-1)


def stage1_loss(
    logits,
    labels,
    *,
    coord_start: int,
    weights: CoordLossWeights = CoordLossWeights(),
    num_text: int | None = None,
    num_coord: int | None = None,
    world_size: int = 1,
    positions=None,
) -> Stage1Loss:
    """The stage-1 loss of one micro-batch (labels [B, L], ms-swift alignment: position t predicts label t + 1).

    ``logits`` is [B, L, V], or [B, len(positions), V] when ``positions`` (``supervised_positions(labels)``,
    passed to the model as ``logits_to_keep``) says which rows the model projected; either way only the
    positions whose next label is supervised are scored, so the two give the same loss.
    ``num_text`` / ``num_coord`` are the normalisers over the whole optimizer step and all
    ranks; unset, the local counts (a per-batch token mean) are used.
    """
    if positions is None:
        if logits.shape[:-1] != labels.shape:
            raise ValueError(f"logits {list(logits.shape)} and labels {list(labels.shape)} do not align")
        positions = supervised_positions(labels)
        logits = logits[:, positions]
    elif logits.shape[:-1] != (labels.shape[0], positions.numel()):
        raise ValueError(
            f"logits {list(logits.shape)} do not hold the {positions.numel()} kept positions "
            f"of labels {list(labels.shape)}"
        )
    return stage1_loss_targets(
        logits,
        labels[:, positions + 1],
        coord_start=coord_start,
        weights=weights,
        num_text=num_text,
        num_coord=num_coord,
        world_size=world_size,
    )


def stage1_loss_targets(
    logits,
    targets,
    *,
    coord_start: int,
    weights: CoordLossWeights = CoordLossWeights(),
    num_text: int | None = None,
    num_coord: int | None = None,
    world_size: int = 1,
) -> Stage1Loss:
    """As ``stage1_loss`` with the shift already applied: ``logits[b, i]`` predicts ``targets[b, i]``."""
    import torch
    import torch.nn.functional as F

    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {list(logits.shape)} and targets {list(targets.shape)} do not align")
    if logits.shape[-1] < coord_start + COORD_BINS:
        raise ValueError(f"vocabulary of {logits.shape[-1]} has no room for coord ids {coord_start}..")
    # Reference guard: a NaN/Inf logit must not poison the whole step.
    z = torch.nan_to_num(logits.float(), nan=0.0, posinf=LOGIT_CLAMP, neginf=-LOGIT_CLAMP)
    z = z.clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
    tgt = targets
    valid = tgt != IGNORE_INDEX
    is_coord = valid & (tgt >= coord_start) & (tgt < coord_start + COORD_BINS)
    is_text = valid & ~is_coord

    z_text = z[is_text]
    ce_sum = F.cross_entropy(z_text, tgt[is_text], reduction="sum") if z_text.numel() else z.sum() * 0.0
    z_coord = z[is_coord]
    bins = tgt[is_coord] - coord_start
    if z_coord.shape[0]:
        soft, w1, gate, hard = (torch.nan_to_num(t) for t in coord_terms(z_coord, bins, coord_start, weights))
        per_pos = weights.soft_ce * soft + weights.w1 * w1 + weights.gate * gate + weights.ce * hard
        coord_sum = per_pos.sum()
    else:
        soft = w1 = gate = hard = z.new_zeros(0)
        coord_sum = z.sum() * 0.0  # keeps the graph connected on batches without coords

    n_text, n_coord = int(is_text.sum()), int(is_coord.sum())
    den_text = num_text if num_text is not None else n_text
    den_coord = num_coord if num_coord is not None else n_coord
    loss = z.sum() * 0.0
    if den_text:
        loss = loss + ce_sum / den_text
    if den_coord:
        loss = loss + coord_sum / den_coord
    loss = loss * world_size

    with torch.no_grad():
        pred = z.argmax(dim=-1)
        acc = (pred[valid] == tgt[valid]).float().mean().item() if bool(valid.any()) else 0.0
        cacc = (
            (z_coord[:, coord_start : coord_start + COORD_BINS].argmax(-1) == bins).float().mean().item()
            if n_coord
            else 0.0
        )

    def mean(t):
        return float(t.detach().mean()) if t.numel() else 0.0

    return Stage1Loss(
        loss=loss,
        ce_sum=ce_sum.detach(),
        coord_sum=coord_sum.detach(),
        num_text=n_text,
        num_coord=n_coord,
        soft_ce=mean(soft),
        w1=mean(w1),
        gate=mean(gate),
        hard_ce=mean(hard),
        token_acc=acc,
        coord_acc=cacc,
    )
