"""Channel-A: teacher forcing on the ground truth with soft self-context (openspec/specs/stage2-ab-training;
docs/stage2.md).

Iterations m = 0..N-1 (``stage2_ab.n_softctx_iter``) over one packed row:

- m = 0: ``inputs_embeds = Embed(input_ids)``, calling the embedding *module* so that its
  forward hooks (the coord-offset adapter) apply; logits z^(0).
- m >= 1: fresh ``Embed(input_ids)``, then only the coord-slot rows p are overwritten with
  the expected coord embedding under the previous iteration's belief about that slot:
  ``ē_p = Σ_k softmax(z^(m-1)_{p-1}[coord] / τ)_k · Embed(coord_k)`` (causal shift: the
  logits at p-1 predict the token at p). The forward then gets ``inputs_embeds`` only, no
  ``input_ids``, ``use_cache=False`` and no cache.

Every other row keeps ``Embed(input_ids)`` bitwise: without ``input_ids`` Qwen3-VL finds
where to scatter the vision features by comparing each row with the image-token embedding,
so a perturbed placeholder row would silently lose its image (or fail the count check).

Gradient modes (``softctx_grad_mode``): ``unroll`` lets gradients flow through the whole
loop; ``em_detach`` detaches ē and runs the iterations other than the first and the last
under ``no_grad``. The first keeps its graph in both modes: the CE anchor is read from it.

Losses read CE from z^(0) (the A1 anchor: the GT context, no soft rows) and geometry and
coord regularizers from z^(N-1). N = 1 is plain teacher forcing.

Only the rows the losses and the next iteration read are projected onto the vocabulary
(``logits_to_keep`` with explicit positions): a 12k-token packed row times 152k logits
would not fit otherwise.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from coordexp.errors import CoordExpError
from coordexp.stage2.losses import COORD_BINS
from coordexp.training.packing import model_inputs

GRAD_MODES = ("unroll", "em_detach")


class ChannelAError(CoordExpError, ValueError):
    """The soft self-context forward cannot run as configured."""


@dataclass(frozen=True)
class SoftContextConfig:
    n_iter: int = 2
    grad_mode: str = "unroll"
    temperature: float = 1.0

    def __post_init__(self):
        if isinstance(self.n_iter, bool) or not isinstance(self.n_iter, int) or self.n_iter < 1:
            raise ChannelAError(f"stage2_ab.n_softctx_iter must be an int >= 1, got {self.n_iter!r}")
        if self.grad_mode not in GRAD_MODES:
            raise ChannelAError(f"stage2_ab.softctx_grad_mode must be one of {GRAD_MODES}, got {self.grad_mode!r}")
        if not self.temperature > 0:
            raise ChannelAError(f"stage2_ab.softctx_temperature must be > 0, got {self.temperature!r}")


@dataclass
class SoftContextOutput:
    """Logit rows of the first and last iteration at the positions the losses read.

    ``first[i]`` are the logits at row position ``first_positions[i]`` (they predict the
    token at that position + 1); likewise ``last`` / ``last_positions``.
    """

    first: torch.Tensor  # [K0, V], from z^(0)
    first_positions: torch.Tensor
    last: torch.Tensor  # [K1, V], from z^(N-1)
    last_positions: torch.Tensor
    iterations: int
    inputs_embeds: list = field(default_factory=list)  # per iteration, detached (only when asked)

    def first_rows(self, positions) -> torch.Tensor:
        return _rows(self.first, self.first_positions, positions)

    def last_rows(self, positions) -> torch.Tensor:
        return _rows(self.last, self.last_positions, positions)


def _rows(logits: torch.Tensor, kept: torch.Tensor, positions) -> torch.Tensor:
    pos = torch.as_tensor(positions, dtype=torch.long, device=kept.device).view(-1)
    if not pos.numel():
        return logits[:0]
    idx = torch.searchsorted(kept, pos)
    if int(idx.max()) >= kept.numel() or not bool((kept[idx.clamp(max=kept.numel() - 1)] == pos).all()):
        raise ChannelAError(f"logits were not kept for positions {pos.tolist()}")
    return logits[idx]


def _keep(*groups) -> torch.Tensor:
    pos = sorted({int(p) for g in groups for p in g})
    return torch.tensor(pos, dtype=torch.long)


def soft_context_forward(
    model,
    batch: dict,
    *,
    slot_positions,
    ce_positions,
    coord_start: int,
    config: SoftContextConfig = SoftContextConfig(),
    record_embeds: bool = False,
) -> SoftContextOutput:
    """Run the N iterations over one packed row (``coordexp.training.packing.collate_packed`` output).

    ``slot_positions``: the coord-slot positions p of the row (each must hold a coord id);
    ``ce_positions``: the positions t whose logits the CE reads (t predicts token t + 1).
    """
    ids = batch["input_ids"]
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ChannelAError(f"soft self-context runs on one packed row [1, L], got input_ids {list(ids.shape)}")
    length = ids.shape[1]
    slots = torch.as_tensor(list(slot_positions), dtype=torch.long, device=ids.device).view(-1)
    if slots.numel():
        if int(slots.min()) < 1 or int(slots.max()) >= length:
            raise ChannelAError(f"coord slot positions must be in 1..{length - 1}, got {slots.tolist()}")
        rel = ids[0, slots] - coord_start
        if bool(((rel < 0) | (rel >= COORD_BINS)).any()):
            raise ChannelAError(
                "a coord slot position does not hold a coord token id: the soft context would "
                "overwrite a text or placeholder row"
            )
    prev = (slots - 1).tolist()
    ce = [int(t) for t in ce_positions]
    n = config.n_iter
    fwd = {k: v for k, v in model_inputs(batch).items() if k != "input_ids"}
    embed = getattr(model, "module", model).get_input_embeddings()  # DDP wraps the model

    def run(inputs_embeds, keep):
        out = model(inputs_embeds=inputs_embeds, **fwd, use_cache=False, logits_to_keep=keep.to(ids.device))
        return out.logits[0]

    # m = 0: the GT context (the module call applies the adapter's hooks)
    keep0 = _keep(ce, prev)
    e0 = embed(ids)
    embeds = [e0.detach().clone()] if record_embeds else []
    z0 = run(e0, keep0)
    first, first_pos = z0, keep0.to(ids.device)
    z_prev, z_prev_pos = z0, first_pos
    last, last_pos = z0, first_pos
    if n > 1:
        coord_ids = torch.arange(coord_start, coord_start + COORD_BINS, device=ids.device)
        keep_slots = _keep(prev)
        for m in range(1, n):
            is_last = m == n - 1
            grad = config.grad_mode == "unroll" or is_last
            ctx = contextlib.nullcontext() if grad else torch.no_grad()
            with ctx:
                table = embed(coord_ids)  # [1000, H]: hooked coord embeddings
                z_slots = _rows(z_prev, z_prev_pos, prev)
                probs = torch.softmax(
                    z_slots[:, coord_start : coord_start + COORD_BINS].float() / config.temperature, dim=-1
                )
                ebar = probs.to(table.dtype) @ table
                if config.grad_mode == "em_detach":
                    ebar = ebar.detach()
                e = embed(ids)
                if slots.numel():
                    e = e.index_put((torch.zeros_like(slots), slots), ebar.to(e.dtype))
                if record_embeds:
                    embeds.append(e.detach().clone())
                z = run(e, keep_slots)
            z_prev, z_prev_pos = z, keep_slots.to(ids.device)
        last, last_pos = z_prev, z_prev_pos
    return SoftContextOutput(
        first=first, first_positions=first_pos, last=last, last_positions=last_pos, iterations=n, inputs_embeds=embeds
    )
