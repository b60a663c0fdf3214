"""Stage-1 packing: a static packing plan, padding-free collation, and the leak gate.

Three parts, each usable alone:

* ``plan_packs``: a deterministic first-fit-decreasing plan of dataset indices into bins
  of at most ``packing_length`` tokens. Nothing is dropped silently: every sample left
  out (too long, or cut by DDP alignment) is counted in the plan's report by index.
  Underfilled bins are *kept* (the reference dropped every bin below ``min_fill_ratio``,
  losing samples each epoch); they are only counted.
* ``collate_packed``: one pack -> one row ``[1, L]`` with no padding, ``cu_seq_lens``,
  4-row position ids ``[text; t; h; w]`` restarting per sample, labels aligned, and the
  first token of each segment unsupervised.
* ``assert_packing_isolated``: refuses a forward configuration under which transformers
  would let packed samples attend to each other (see ``PackingLeakError``).

Why the gate exists: transformers (5.x) isolates packed samples only when position ids
restart at 0 per sample, ``attention_mask`` is None and no KV cache is built; it then
derives a block-diagonal causal mask from the text position row (sdpa, eager) or varlen
boundaries from it (flash attention). With an all-ones mask, 3-row (mRoPE-only) position
ids or a cache, the samples attend to each other and the objective silently changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from coordexp.errors import CoordExpError
from coordexp.format.template import IMAGE_TOKEN_ID

IGNORE_INDEX = -100

# Attention backends under which transformers' padding-free path isolates packed samples.
# sdpa and eager: measured here (block-diagonal mask built from the text position row).
# flash_attention_2/3: varlen boundaries derived from the same text position row
# (transformers' _is_packed_sequence / prepare_fa_kwargs_from_position_ids); the
# reference trains with flash_attention_2 under packing.
SAFE_ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")


class PackingError(CoordExpError, ValueError):
    """The packing configuration or input cannot produce a correct plan."""


class PackingLeakError(CoordExpError, RuntimeError):
    """A packed forward would let samples attend to each other: refuse to run it."""


# ---------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class PackingPolicy:
    packing_length: int
    # A sample longer than packing_length becomes a pack of its own (True) or is dropped
    # and reported (False).
    allow_single_long: bool = True
    # Bins below this fill are reported as underfilled; never dropped.
    min_fill_ratio: float = 0.0
    world_size: int = 1
    # DDP alignment: the pack count must divide by world_size. True: truncate the tail
    # packs (their samples are reported as dropped). False: repeat the first packs.
    drop_last: bool = False

    def __post_init__(self):
        if not isinstance(self.packing_length, int) or self.packing_length <= 0:
            raise PackingError(f"packing_length must be a positive int, got {self.packing_length!r}")
        if not 0.0 <= self.min_fill_ratio <= 1.0:
            raise PackingError(f"min_fill_ratio must be in [0, 1], got {self.min_fill_ratio!r}")
        if not isinstance(self.world_size, int) or self.world_size <= 0:
            raise PackingError(f"world_size must be a positive int, got {self.world_size!r}")


@dataclass(frozen=True)
class PackingReport:
    num_samples: int
    num_packs: int
    packed_tokens: int  # tokens in the final packs, repeats included
    capacity_tokens: int  # packing_length per pack (a single-long pack: its own length)
    fill_ratio: float  # packed_tokens / capacity_tokens
    single_long_packs: int
    underfilled_packs: int  # below min_fill_ratio, kept
    dropped_too_long: tuple[int, ...] = ()  # indices dropped because allow_single_long is off
    dropped_by_alignment: tuple[int, ...] = ()  # indices in tail packs truncated for DDP
    repeated_packs: int = 0  # packs repeated for DDP alignment

    @property
    def dropped(self) -> tuple[int, ...]:
        return tuple(sorted(self.dropped_too_long + self.dropped_by_alignment))

    def summary(self) -> str:
        """One line for logs; every drop is counted here."""
        return (
            f"packing: {self.num_samples} samples -> {self.num_packs} packs, fill {self.fill_ratio:.3f}, "
            f"single-long {self.single_long_packs}, underfilled {self.underfilled_packs} (kept), "
            f"dropped {len(self.dropped)} (too long {len(self.dropped_too_long)}, "
            f"DDP truncation {len(self.dropped_by_alignment)}), repeated packs {self.repeated_packs}"
        )


@dataclass(frozen=True)
class PackingPlan:
    packs: tuple[tuple[int, ...], ...]  # dataset indices, ascending inside a pack
    lengths: tuple[int, ...]  # per dataset index
    policy: PackingPolicy
    report: PackingReport

    def to_json(self) -> str:
        """Canonical bytes: the same inputs give the same string."""
        doc = {
            "schema_version": 1,
            "policy": asdict(self.policy),
            "lengths": list(self.lengths),
            "packs": [list(p) for p in self.packs],
            "report": asdict(self.report),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


class _MaxTree:
    """Leftmost slot whose value is >= x, in O(log n): first-fit without scanning bins."""

    def __init__(self, n: int, value: int):
        size = 1
        while size < max(n, 1):
            size *= 2
        self.size = size
        self.tree = [0] * (2 * size)
        for i in range(n):
            self.tree[size + i] = value
        for i in range(size - 1, 0, -1):
            self.tree[i] = max(self.tree[2 * i], self.tree[2 * i + 1])

    def leftmost_at_least(self, x: int) -> int:
        if self.tree[1] < x:
            return -1
        i = 1
        while i < self.size:
            i = 2 * i if self.tree[2 * i] >= x else 2 * i + 1
        return i - self.size

    def add(self, slot: int, delta: int) -> None:
        i = self.size + slot
        self.tree[i] += delta
        i //= 2
        while i:
            self.tree[i] = max(self.tree[2 * i], self.tree[2 * i + 1])
            i //= 2


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Bins of indices (each summing to <= capacity), by first-fit decreasing.

    Ties in length are broken by index, so the result depends only on the inputs.
    Every length must be in 1..capacity.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    tree = _MaxTree(len(lengths), capacity)
    bins: list[list[int]] = []
    for i in order:
        n = lengths[i]
        if not 0 < n <= capacity:
            raise PackingError(f"sample {i}: length {n} is outside 1..{capacity}")
        slot = tree.leftmost_at_least(n)
        if slot == len(bins):
            bins.append([])
        bins[slot].append(i)
        tree.add(slot, -n)
    return bins


def plan_packs(lengths: Sequence[int], policy: PackingPolicy) -> PackingPlan:
    """The static packing plan over all dataset indices (a pure function of its inputs)."""
    lengths = tuple(int(n) for n in lengths)
    for i, n in enumerate(lengths):
        if n <= 0:
            raise PackingError(f"sample {i}: empty sample (length {n}); fix the dataset or the encoder")
    cap = policy.packing_length
    fitting = [i for i, n in enumerate(lengths) if n <= cap]
    long_ = [i for i, n in enumerate(lengths) if n > cap]
    bins = first_fit_decreasing([lengths[i] for i in fitting], cap)
    packs = [tuple(sorted(fitting[j] for j in b)) for b in bins]  # stable order inside a pack
    dropped_too_long: tuple[int, ...] = ()
    if policy.allow_single_long:
        packs += [(i,) for i in long_]
    else:
        dropped_too_long = tuple(long_)
    packs.sort(key=lambda p: p[0])  # packs ordered by their smallest index

    dropped_by_alignment: tuple[int, ...] = ()
    repeated = 0
    rem = len(packs) % policy.world_size
    if rem:
        if policy.drop_last:
            cut, packs = packs[len(packs) - rem :], packs[: len(packs) - rem]
            dropped_by_alignment = tuple(sorted(i for p in cut for i in p))
        elif packs:
            repeated = policy.world_size - rem
            packs = packs + [packs[k % len(packs)] for k in range(repeated)]

    if lengths and not packs:
        raise PackingError(
            f"no pack left out of {len(lengths)} samples (too long: {len(dropped_too_long)}, "
            f"cut by DDP alignment to world_size {policy.world_size}: {len(dropped_by_alignment)}); "
            "lower world_size, set drop_last false or raise packing_length"
        )
    sizes = [sum(lengths[i] for i in p) for p in packs]
    single_long = sum(1 for p in packs if len(p) == 1 and lengths[p[0]] > cap)
    underfilled = sum(1 for s in sizes if s < policy.min_fill_ratio * cap)
    packed = sum(sizes)
    capacity = sum(max(cap, n) for n in sizes)  # a single-long pack's capacity is its own length
    report = PackingReport(
        num_samples=len(lengths),
        num_packs=len(packs),
        packed_tokens=packed,
        capacity_tokens=capacity,
        fill_ratio=round(packed / capacity, 6) if capacity else 0.0,
        single_long_packs=single_long,
        underfilled_packs=underfilled,
        dropped_too_long=dropped_too_long,
        dropped_by_alignment=dropped_by_alignment,
        repeated_packs=repeated,
    )
    return PackingPlan(packs=tuple(packs), lengths=lengths, policy=policy, report=report)


# ---------------------------------------------------------------------------- collation


class Segment(Protocol):
    """What collation needs from an encoded sample (``coordexp.format.template.EncodedSample`` fits)."""

    input_ids: Sequence[int]
    labels: Sequence[int]
    pixel_values: Any  # torch.Tensor [patches, dim] or None
    image_grid_thw: Any  # torch.Tensor [images, 3] or None


class RopeIndex:
    """transformers' own Qwen3-VL ``get_rope_index``, bound to a stand-in holding only its config.

    The function reads nothing from the model but ``config.vision_config.spatial_merge_size``
    and the ``get_vision_position_ids`` helper; if a transformers upgrade changes that, the
    call fails loudly (AttributeError) instead of computing positions another way.
    """

    def __init__(self, spatial_merge_size: int):
        from types import SimpleNamespace

        from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLModel

        self.config = SimpleNamespace(vision_config=SimpleNamespace(spatial_merge_size=spatial_merge_size))
        self._cls = Qwen3VLModel  # imported only when a pack holds images (text-only packs need no mRoPE)

    def get_vision_position_ids(self, *args, **kwargs):
        return self._cls.get_vision_position_ids(self, *args, **kwargs)

    def __call__(self, input_ids, mm_token_type_ids, image_grid_thw):
        return self._cls.get_rope_index(
            self, input_ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=image_grid_thw
        )


@dataclass
class PackedCollator:
    """Collates a list of packs (each a list of segments) for a batch size of 1.

    The model forward gets ``model_inputs(batch)``: input_ids, position_ids [4, 1, L],
    pixel_values, image_grid_thw, mm_token_type_ids, and never an attention_mask.
    """

    image_token_id: int = IMAGE_TOKEN_ID
    spatial_merge_size: int = 2
    _rope: Any = field(default=None, repr=False)

    def __call__(self, packs):
        if len(packs) != 1:
            raise PackingError(f"packing needs per_device batch size 1 (one pack per row), got {len(packs)} packs")
        return collate_packed(
            packs[0],
            image_token_id=self.image_token_id,
            spatial_merge_size=self.spatial_merge_size,
            rope=self._get_rope(),
        )

    def _get_rope(self):
        if self._rope is None:
            self._rope = RopeIndex(self.spatial_merge_size)
        return self._rope


def segment_position_ids(
    input_ids, image_grid_thw, *, image_token_id: int = IMAGE_TOKEN_ID, spatial_merge_size: int = 2, rope=None
):
    """Position ids [4, n] of one sample: row 0 = text positions 0..n-1, rows 1..3 = mRoPE t/h/w.

    For a text-only sample all four rows are 0..n-1; with images the t/h/w rows follow the
    image grid (transformers' ``get_rope_index``).
    """
    import torch

    ids = torch.as_tensor(input_ids, dtype=torch.long).view(1, -1)
    n = ids.shape[1]
    text = torch.arange(n, dtype=torch.long).view(1, n)
    if image_grid_thw is None or len(image_grid_thw) == 0:
        return text.expand(4, n).clone()
    mm = (ids == image_token_id).to(torch.int32)
    rope = rope or RopeIndex(spatial_merge_size)
    mrope, _ = rope(ids, mm, torch.as_tensor(image_grid_thw, dtype=torch.long))
    return torch.cat([text, mrope[:, 0, :]], dim=0)


def collate_packed(
    segments: Sequence[Segment], *, image_token_id: int = IMAGE_TOKEN_ID, spatial_merge_size: int = 2, rope=None
) -> dict:
    """One pack -> one padding-free row.

    Returns input_ids/labels/mm_token_type_ids [1, L], position_ids [4, 1, L],
    cu_seq_lens_q/k (int32 [n+1]), max_length_q/k, num_segments, and pixel_values /
    image_grid_thw concatenated in segment order when any segment has images.
    """
    import torch

    if not segments:
        raise PackingError("cannot collate an empty pack")
    ids, labels, pos, bounds, pixels, grids = [], [], [], [0], [], []
    for k, seg in enumerate(segments):
        s_ids = torch.as_tensor(list(seg.input_ids), dtype=torch.long)
        s_lab = torch.as_tensor(list(seg.labels), dtype=torch.long)
        if s_ids.shape != s_lab.shape or s_ids.numel() == 0:
            raise PackingError(
                f"segment {k}: input_ids ({s_ids.numel()}) and labels ({s_lab.numel()}) "
                "must be non-empty and the same length"
            )
        s_lab = s_lab.clone()
        # Nothing predicts a segment's first token: logits of the previous segment's last
        # token would otherwise be trained to predict the next sample's first token.
        s_lab[0] = IGNORE_INDEX
        grid = getattr(seg, "image_grid_thw", None)
        pos.append(
            segment_position_ids(
                s_ids, grid, image_token_id=image_token_id, spatial_merge_size=spatial_merge_size, rope=rope
            )
        )
        ids.append(s_ids)
        labels.append(s_lab)
        bounds.append(bounds[-1] + s_ids.numel())
        if grid is not None and len(grid):
            pv = getattr(seg, "pixel_values", None)
            if pv is None:
                raise PackingError(f"segment {k}: image_grid_thw without pixel_values")
            pixels.append(torch.as_tensor(pv))
            grids.append(torch.as_tensor(grid, dtype=torch.long).view(-1, 3))
    input_ids = torch.cat(ids).view(1, -1)
    cu = torch.tensor(bounds, dtype=torch.int32)
    max_len = int((cu[1:] - cu[:-1]).max())
    batch = {
        "input_ids": input_ids,
        "labels": torch.cat(labels).view(1, -1),
        "position_ids": torch.cat(pos, dim=1).view(4, 1, -1),
        "mm_token_type_ids": (input_ids == image_token_id).to(torch.int32),
        "cu_seq_lens_q": cu,
        "cu_seq_lens_k": cu.clone(),
        "max_length_q": max_len,
        "max_length_k": max_len,
        "num_segments": len(segments),
    }
    if pixels:
        batch["pixel_values"] = torch.cat(pixels, dim=0)
        batch["image_grid_thw"] = torch.cat(grids, dim=0)
    return batch


def collate_padded(segments: Sequence[Segment], *, pad_token_id: int, image_token_id: int = IMAGE_TOKEN_ID) -> dict:
    """The unpacked baseline: right-padded rows with an attention mask (eval, benchmarks).

    Positions are left to the model (it derives mRoPE from mm_token_type_ids and the mask).
    """
    import torch

    if not segments:
        raise PackingError("cannot collate an empty batch")
    width = max(len(s.input_ids) for s in segments)
    ids = torch.full((len(segments), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(segments), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(segments), width), dtype=torch.long)
    pixels, grids = [], []
    for r, seg in enumerate(segments):
        n = len(seg.input_ids)
        ids[r, :n] = torch.as_tensor(list(seg.input_ids), dtype=torch.long)
        labels[r, :n] = torch.as_tensor(list(seg.labels), dtype=torch.long)
        mask[r, :n] = 1
        grid = getattr(seg, "image_grid_thw", None)
        if grid is not None and len(grid):
            pixels.append(torch.as_tensor(seg.pixel_values))
            grids.append(torch.as_tensor(grid, dtype=torch.long).view(-1, 3))
    batch = {
        "input_ids": ids,
        "labels": labels,
        "attention_mask": mask,
        "mm_token_type_ids": ((ids == image_token_id) & mask.bool()).to(torch.int32),
    }
    if pixels:
        batch["pixel_values"] = torch.cat(pixels, dim=0)
        batch["image_grid_thw"] = torch.cat(grids, dim=0)
    return batch


# Collation metadata that is not a model argument (flash attention derives its varlen
# boundaries from the text position row; passing cu_seq_lens into Qwen3-VL's forward would
# also reach its vision tower, which sets its own).
_META_KEYS = ("labels", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k", "num_segments")


def model_inputs(batch: dict) -> dict:
    """The subset of a collated batch that goes into the model's forward."""
    return {k: v for k, v in batch.items() if k not in _META_KEYS}


# ---------------------------------------------------------------------------- gate


def assert_packing_isolated(
    batch: dict, *, attn_implementation: str, use_cache: bool | None, model_use_cache: bool | None = None
) -> None:
    """Raise PackingLeakError unless this packed forward keeps samples isolated.

    ``use_cache`` is the value the forward call passes; None means the model config's
    ``model_use_cache`` decides (transformers builds a cache when it is unset or True).
    """
    import torch

    if attn_implementation not in SAFE_ATTN_IMPLEMENTATIONS:
        raise PackingLeakError(
            f"attention backend {attn_implementation!r} is not known to isolate packed samples; "
            f"use one of {', '.join(SAFE_ATTN_IMPLEMENTATIONS)} or turn packing off"
        )
    effective_cache = use_cache if use_cache is not None else (model_use_cache is not False)
    if effective_cache:
        raise PackingLeakError(
            "packed forward with the KV cache on: transformers then ignores the per-sample "
            "position restarts; pass use_cache=False"
        )
    if batch.get("attention_mask") is not None:
        raise PackingLeakError(
            "packed batch carries an attention_mask: with a mask transformers attends across "
            "packed samples; padding-free packing needs attention_mask=None"
        )
    pos = batch.get("position_ids")
    if pos is None:
        raise PackingLeakError("packed batch has no position_ids: samples would attend to each other")
    if pos.ndim != 3 or pos.shape[0] != 4 or pos.shape[1] != 1:
        raise PackingLeakError(
            f"packed position_ids must be [4, 1, L] ([text; t; h; w]), got {list(pos.shape)}; "
            "3-row mRoPE ids leave the text row (which drives the mask) unset"
        )
    cu = batch.get("cu_seq_lens_q")
    length = batch["input_ids"].shape[-1]
    if cu is None or int(cu[0]) != 0 or int(cu[-1]) != length:
        raise PackingLeakError(f"packed batch cu_seq_lens_q must run from 0 to the row length {length}")
    expected = torch.cat([torch.arange(int(b - a)) for a, b in zip(cu[:-1], cu[1:], strict=True)])
    if not torch.equal(pos[0, 0].cpu(), expected):
        raise PackingLeakError(
            "the text position row does not restart at 0 at each cu_seq_lens boundary "
            "(and count up by 1 inside a sample): packed samples would not be isolated"
        )
    starts = cu[:-1].long()
    if bool((pos[1:, 0, starts] != 0).any()):
        raise PackingLeakError("mRoPE position rows do not restart at 0 at each sample start")
    labels = batch.get("labels")
    if labels is not None and bool((labels[0, starts] != IGNORE_INDEX).any()):
        raise PackingLeakError(
            "a segment's first token is supervised: the previous sample's last token would be trained to predict it"
        )
