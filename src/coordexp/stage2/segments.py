"""Stage-2 teacher-forced segments (one per raw sample) and their packed collation.

A segment is what post-rollout packing moves around: the full row (prompt + assistant),
per-position CE weights (``ce_weights[p]`` = weight of predicting the token at p), the
coord-slot groups (4 positions per box with their target bins) and the image tensors.

- Channel-A (``channel_a_segment``): the GT target of ``template.encode_sample``: every
  non-coord assistant token weight 1 (structure, the closing ``}`` and ``<|im_end|>``),
  desc-content tokens ``desc_ce_weight``, coord tokens 0 (learned through geometry), every
  GT box a group whose targets are its own bins.
- Channel-B (``channel_b_segment``): ``channel_b.teacher_forced_row`` plus the sample's
  image tensors and its Channel-B counters.

``collate_segments`` packs segments into one row with ``packing.collate_packed`` and shifts
weights and groups by each segment's offset; the first token of every segment gets weight
0 (nothing predicts it across a segment boundary).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coordexp.errors import CoordExpError
from coordexp.format.coord import COORD_BINS, coord_id_start
from coordexp.format.coordjson import parse
from coordexp.format.template import IM_END, IMAGE_TOKEN_ID, DecodeFrameError, decode_frame
from coordexp.stage2.channel_b import GeometryGroup
from coordexp.stage2.schedule import CHANNEL_A, CHANNEL_B
from coordexp.stage2.token_spans import desc_content_span, overlapping

IGNORE_INDEX = -100


class SegmentError(CoordExpError, ValueError):
    """A sample cannot be turned into a Stage-2 segment."""


@dataclass
class Stage2Segment:
    channel: str
    input_ids: list[int]
    labels: list[int]  # -100 where the CE weight is 0
    ce_weights: list[float]
    groups: list[GeometryGroup]  # positions inside this segment
    pixel_values: Any = None
    image_grid_thw: Any = None
    sample: str = "sample"
    counters: dict = field(default_factory=dict)  # Channel-B per-sample counters

    def __len__(self) -> int:
        return len(self.input_ids)


def channel_a_segment(
    enc, tokenizer, *, field_order: str, desc_ce_weight: float = 1.0, sample: str = "sample"
) -> Stage2Segment:
    """A Channel-A segment from a ``template.EncodedSample`` of the GT target."""
    ids = list(enc.input_ids)
    plen = enc.prompt_len
    assistant = ids[plen:]
    # The GT target's spans are character offsets in the per-token frame; decode_frame refuses a frame whose
    # pieces do not join to the text (a token splitting a multi-byte character would shift every offset).
    try:
        frame = decode_frame(tokenizer, assistant)
    except DecodeFrameError as exc:
        raise SegmentError(f"{sample}: {exc}") from exc
    offsets = list(frame.offsets)
    text = frame.text
    stop = text.find(IM_END)
    body = text if stop < 0 else text[:stop]
    res = parse(body, "strict", field_order)
    first = coord_id_start(tokenizer)
    is_coord = [first <= i < first + COORD_BINS for i in assistant]
    desc: set[int] = set()
    groups: list[GeometryGroup] = []
    for j, obj in enumerate(res.objects):
        if obj.geometry != "bbox_2d":
            raise SegmentError(f"{sample}: objects[{j}] is {obj.geometry}; Stage-2 trains bbox_2d only")
        desc.update(overlapping(offsets, desc_content_span(body, obj)))
        slots = tuple(t for t in overlapping(offsets, obj.geometry_span) if is_coord[t])
        if len(slots) != 4 or tuple(assistant[t] - first for t in slots) != tuple(obj.values):
            raise SegmentError(f"{sample}: objects[{j}] does not tokenize to its 4 coord tokens")
        groups.append(GeometryGroup("gt", tuple(p + plen for p in slots), tuple(obj.values), j))
    weights = [0.0] * plen
    for t in range(len(assistant)):
        weights.append(0.0 if is_coord[t] else (desc_ce_weight if t in desc else 1.0))
    labels = [i if w > 0 else IGNORE_INDEX for i, w in zip(ids, weights, strict=True)]
    return Stage2Segment(CHANNEL_A, ids, labels, weights, groups, enc.pixel_values, enc.image_grid_thw, sample)


def channel_b_segment(row, enc, target, *, sample: str = "sample") -> Stage2Segment:
    """A Channel-B segment from a ``channel_b.TeacherForcedRow`` and the sample's encoding (images)."""
    return Stage2Segment(
        CHANNEL_B,
        list(row.input_ids),
        list(row.labels),
        list(row.ce_weights),
        list(row.groups),
        enc.pixel_values,
        enc.image_grid_thw,
        sample,
        dict(target.counters),
    )


@dataclass
class PackedRow:
    batch: dict  # collate_packed output (input_ids [1, L], position_ids [4, 1, L], ...)
    ce_positions: list[int]  # t: the logits at t predict input_ids[t + 1]
    ce_targets: list[int]
    ce_weights: list[float]
    slot_positions: list[int]  # row positions of coord slots, 4 per box, box order
    target_bins: list[int]
    segments: list[Stage2Segment]


def collate_segments(
    segments, *, image_token_id: int = IMAGE_TOKEN_ID, spatial_merge_size: int = 2, rope=None
) -> PackedRow:
    from coordexp.training.packing import collate_packed

    segments = list(segments)
    channels = {s.channel for s in segments}
    if len(channels) > 1:
        raise SegmentError(f"a pack mixes channels {sorted(channels)}: A and B segments are never packed together")
    batch = collate_packed(segments, image_token_id=image_token_id, spatial_merge_size=spatial_merge_size, rope=rope)
    ce_pos, ce_tgt, ce_w, slots, bins = [], [], [], [], []
    off = 0
    for seg in segments:
        if len(seg.ce_weights) != len(seg.input_ids):
            raise SegmentError(f"{seg.sample}: {len(seg.ce_weights)} CE weights for {len(seg.input_ids)} tokens")
        for p in range(1, len(seg.input_ids)):  # p = 0: nothing in this segment predicts it
            w = seg.ce_weights[p]
            if w > 0:
                ce_pos.append(off + p - 1)
                ce_tgt.append(seg.input_ids[p])
                ce_w.append(float(w))
        for g in seg.groups:
            slots.extend(off + p for p in g.positions)
            bins.extend(g.target_bins)
        off += len(seg.input_ids)
    return PackedRow(batch, ce_pos, ce_tgt, ce_w, slots, bins, segments)
