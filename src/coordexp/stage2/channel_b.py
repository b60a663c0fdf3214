"""Channel-B: rollout token ids -> append-ready prefix -> matching -> FN injection ->
per-token CE weights and geometry targets for one teacher-forced assistant target.

Steps (openspec/specs/stage2-ab-training, docs/stage2.md; each is a function below):

1. ``rollout_prefix``: decode each id alone (special tokens kept) and join the pieces: all
   character positions live in this frame. Cut at the first ``<|im_end|>`` (a hard stop,
   even inside a token), salvage-parse, cut just after the last balanced record (or after
   the array-open ``[``), keep the whole tokens before the cut and re-encode the leading
   part of a token the cut falls inside (it must decode back exactly). Strict drops:
   a record whose coord tokens do not line up one-to-one with its values
   (``wrong_arity``), ``poly_unsupported``, ``unknown_geom``, ``bbox_invalid``
   (x2 < x1 or y2 < y1). A rollout with no usable container, or whose prefix does not end
   in ``[`` or ``}``, falls back to the prefix ``{"objects": [`` with ``invalid_rollout``.
2. ``build_target``: match the kept boxes to the GT (``stage2.matching``), then
   ``assistant_ids = prefix_ids + encode(fragment) + [<|im_end|>]`` where the fragment is
   ``coordjson.fn_fragment`` (the FN records, then ``]}``), tokenized on its own so that
   the prefix tokens the model produced are never re-tokenized.
3. CE weights, one per assistant token (the weight of predicting that token):
   - matched records: tokens overlapping the record ``{...}`` get 1, except desc-content
     and coord tokens (the model chose that desc and those coords; its structure is what we
     confirm). A token shared with an FP or invalid record stays 0: an FP is never taught;
   - FP records, invalid records, separators between records, the opening: 0;
   - the tail (fragment and ``<|im_end|>``): 1 for structure, ``desc_ce_weight`` for FN
     desc content, 0 for coord tokens (coords are learned through the geometry losses);
     structure is scaled by ``drop_invalid_struct_ce_multiplier`` when the rollout had
     invalid drops;
   - closure: the container's closing ``}`` is located by the parser's string-aware brace
     scan over the decoded target (never "the last ``}``"; the prefix was read in step 1,
     so only the fragment is read again, from the state the prefix leaves the parser in:
     ``_read_fragment``), and the first ``<|im_end|>`` after it; both are supervised. If either
     cannot be located the sample is dropped (``ClosureError``; counted by the caller under
     ``closure_supervision/N_drop``).
4. Geometry targets: each matched prefix box's 4 coord slots take the matched GT's bins;
   each FN box's slots take its own bins; FP boxes get nothing.

Everything works on token-id lists and the real tokenizer; nothing here needs torch.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field, replace

from coordexp.errors import CoordExpError
from coordexp.format.coord import COORD_BINS, coord_id_start, tokenizer_table
from coordexp.format.coordjson import (
    FALLBACK_PREFIX,
    REASONS,
    ParsedObject,
    ParseResult,
    append_ready_cut,
    fn_fragment,
    parse,
)
from coordexp.format.template import IM_END, piece_table, pieces_from
from coordexp.stage2.matching import MatchConfig, MatchResult, Shape, match
from coordexp.stage2.token_spans import JSON_WS, char_offsets, desc_content_span, overlapping

# Drop reasons on top of the parser's (coordjson.REASONS).
STRICT_REASONS = ("poly_unsupported", "unknown_geom", "bbox_invalid")
ALL_REASONS = (*REASONS, *STRICT_REASONS)
# The parser's truncation bucket is reported but is not an "invalid" prediction: a rollout
# cut by max_new_tokens loses its unfinished tail, which says nothing about validity.
NOT_INVALID = ("dropped_incomplete_tail",)


class ChannelBError(CoordExpError, ValueError):
    """A rollout cannot be turned into a target without changing the objective."""


class PrefixCutError(ChannelBError):
    """The cut falls inside a token whose leading part does not re-encode exactly."""


class ClosureError(ChannelBError):
    """The container's closing brace or the ``<|im_end|>`` after it cannot be located."""


@dataclass(frozen=True)
class ChannelBConfig:
    field_order: str
    desc_ce_weight: float = 1.0
    drop_invalid_struct_ce_multiplier: float = 1.0
    match: MatchConfig = field(default_factory=MatchConfig)

    def __post_init__(self):
        if not self.desc_ce_weight >= 0:
            raise ValueError(f"stage2_ab.desc_ce_weight must be >= 0, got {self.desc_ce_weight!r}")
        if not 1 <= self.drop_invalid_struct_ce_multiplier <= 4:
            raise ValueError(
                "stage2_ab.channel_b.drop_invalid_struct_ce_multiplier must be in [1, 4], "
                f"got {self.drop_invalid_struct_ce_multiplier!r}"
            )


@dataclass(frozen=True)
class KeptPrediction:
    obj: ParsedObject
    coord_positions: tuple[int, ...]  # indices into the rollout ids (== prefix ids: before the cut)


@dataclass
class RolloutPrefix:
    text: str  # the rollout decoded in the per-token frame, cut at the first <|im_end|>
    prefix_text: str
    prefix_ids: list[int]
    invalid_rollout: bool
    fallback_reason: str | None
    parse: ParseResult | None
    kept: list[KeptPrediction]
    drops: dict[str, int]  # every reason in ALL_REASONS, counts
    truncated: bool  # the rollout ended inside the container (no closing "]}")
    cut: int | None  # character position of the cut in ``text``; None for the fallback

    @property
    def n_valid_pred(self) -> int:
        return len(self.kept)

    @property
    def n_drop_invalid(self) -> int:
        return sum(v for k, v in self.drops.items() if k not in NOT_INVALID)


@dataclass(frozen=True)
class GeometryGroup:
    kind: str  # "matched" or "fn"
    positions: tuple[int, int, int, int]  # coord slots in the assistant ids
    target_bins: tuple[int, int, int, int]
    gt_index: int


@dataclass
class ChannelBTarget:
    assistant_ids: list[int]  # prefix + fragment + <|im_end|>
    ce_weights: list[float]  # one per assistant token
    groups: list[GeometryGroup]
    prefix: RolloutPrefix
    match: MatchResult
    fragment: str
    prefix_len: int  # tokens of the prefix inside assistant_ids
    closure: tuple[int, int]  # (closing-brace token, <|im_end|> token) indices in assistant_ids
    text: str  # assistant_ids decoded per token

    @property
    def counters(self) -> dict[str, float]:
        """This sample's Channel-B counters (metric keys of stage2.metrics)."""
        p = self.prefix
        out = {
            "stage2/raw_rollouts": 1,
            "stage2/invalid_rollout": int(p.invalid_rollout),
            "stage2_ab/channel_b/invalid_rollout": int(p.invalid_rollout),
            "stage2_ab/channel_b/strict_drop/N_valid_pred": p.n_valid_pred,
            "stage2_ab/channel_b/strict_drop/N_drop_invalid": p.n_drop_invalid,
            "stage2/drop_poly": p.drops["poly_unsupported"],
            "stage2/drop_unknown": p.drops["unknown_geom"],
            "stage2/drop_bbox_invalid": p.drops["bbox_invalid"],
            "rollout/parse_truncated": int(p.truncated),
            "rollout/gating_rejections": self.match.gating_rejections,
            "rollout/matched": len(self.match.matched),
            "rollout/fp": len(self.match.fp),
            "rollout/fn": len(self.match.fn),
        }
        for reason in ALL_REASONS:
            out[f"stage2_ab/channel_b/strict_drop/reason/{reason}"] = p.drops[reason]
        return out


# ----------------------------------------------------------------------------- frame


@dataclass(frozen=True)
class _Vocab:
    """What Channel-B reads from a tokenizer, looked up once per tokenizer (coord.tokenizer_table)."""

    pieces: dict  # template.piece_table: id -> piece, filled on demand
    coord_start: int  # <|coord_0|>
    im_end_id: int

    @classmethod
    def of(cls, tokenizer) -> _Vocab:
        return tokenizer_table(
            tokenizer,
            "channel_b_vocab",
            lambda tok: cls(piece_table(tok), coord_id_start(tok), tok.convert_tokens_to_ids(IM_END)),
        )


# ----------------------------------------------------------------------------- step 1


def _empty_drops() -> dict[str, int]:
    return {r: 0 for r in ALL_REASONS}


def _fallback(tokenizer, text: str, reason: str, res: ParseResult | None, drops: dict[str, int]) -> RolloutPrefix:
    ids = list(tokenizer.encode(FALLBACK_PREFIX, add_special_tokens=False))
    return RolloutPrefix(
        text=text,
        prefix_text=FALLBACK_PREFIX,
        prefix_ids=ids,
        invalid_rollout=True,
        fallback_reason=reason,
        parse=res,
        kept=[],
        drops=drops,
        truncated=bool(res is not None and res.truncated),
        cut=None,
    )


def rollout_prefix(tokenizer, rollout_ids, field_order: str) -> RolloutPrefix:
    """Step 1: the append-ready prefix of one rollout, its kept predictions and drops."""
    return _rollout_prefix(tokenizer, _Vocab.of(tokenizer), rollout_ids, field_order)


def _rollout_prefix(tokenizer, vocab: _Vocab, rollout_ids, field_order: str) -> RolloutPrefix:
    ids = list(map(int, rollout_ids))
    pieces = pieces_from(tokenizer, vocab.pieces, ids)
    offsets = char_offsets(pieces)
    full = "".join(pieces)
    stop = full.find(IM_END)
    text = full if stop < 0 else full[:stop]
    drops = _empty_drops()

    res = parse(text, "salvage", field_order)
    for reason, n in res.drops.items():
        drops[reason] += n
    if res.parse_failed:
        return _fallback(tokenizer, text, f"parse failed: {res.error}", res, drops)
    cut = append_ready_cut(res)
    if cut is None:
        return _fallback(tokenizer, text, "no append-ready cut", res, drops)

    # whole tokens before the cut (offsets only grow: they are a head of the ids); a token
    # straddling the cut is re-encoded up to the cut
    t = bisect_right(offsets, cut) - 1  # tokens 0..t-1 end at or before the cut
    prefix_ids = ids[:t]
    if t < len(ids) and offsets[t] < cut:
        tid = ids[t]
        head = pieces[t][: cut - offsets[t]]
        head_ids = list(tokenizer.encode(head, add_special_tokens=False))
        if "".join(pieces_from(tokenizer, vocab.pieces, head_ids)) != head:
            raise PrefixCutError(
                f"rollout token {t} (id {tid}, piece {pieces[t]!r}) is cut at {head!r}, "
                "which does not re-encode to the same text"
            )
        prefix_ids.extend(head_ids)
    prefix_text = text[:cut]
    if prefix_text.rstrip(JSON_WS)[-1:] not in ("[", "}"):
        return _fallback(tokenizer, text, "prefix does not end in '[' or '}'", res, drops)

    first_coord = vocab.coord_start
    stop_coord = first_coord + COORD_BINS
    kept: list[KeptPrediction] = []
    for obj in res.objects:
        slots = tuple(t for t in overlapping(offsets, obj.geometry_span) if first_coord <= ids[t] < stop_coord)
        if tuple(ids[t] - first_coord for t in slots) != obj.values:
            drops["wrong_arity"] += 1  # coord tokens do not line up with the values: ambiguous
            continue
        if obj.geometry == "poly":
            drops["poly_unsupported"] += 1
            continue
        if obj.geometry != "bbox_2d":
            drops["unknown_geom"] += 1
            continue
        x1, y1, x2, y2 = obj.values
        if x2 < x1 or y2 < y1:
            drops["bbox_invalid"] += 1
            continue
        kept.append(KeptPrediction(obj, slots))
    return RolloutPrefix(
        text=text,
        prefix_text=prefix_text,
        prefix_ids=prefix_ids,
        invalid_rollout=False,
        fallback_reason=None,
        parse=res,
        kept=kept,
        drops=drops,
        truncated=res.truncated,
        cut=cut,
    )


# ----------------------------------------------------------------------------- closure


def closure_char(text: str, field_order: str) -> int | None:
    """Position of the container's closing ``}`` in an assistant text: the string-aware
    brace scan of the parser (braces inside quoted descs do not count). None when the
    container never closes (e.g. a target truncated by a length limit)."""
    return _closure_pos(parse(text, "salvage", field_order))


def _closure_pos(res: ParseResult) -> int | None:
    return None if res.parse_failed or res.container_end is None else res.container_end - 1


_SCAN = object()  # locate_closure: no parsed tail, scan the text


def locate_closure(
    assistant_ids: list[int], text: str, offsets: list[int], field_order: str, im_end_id: int, tail_closing=_SCAN
) -> tuple[int, int]:
    """(closing-brace token, first <|im_end|> token after it), indices into ``assistant_ids``.

    ``text`` is the ids' decoded text and ``offsets`` each token's start in it (plus the end).
    The brace is the parser's string-aware closure over the text before the first
    ``<|im_end|>``; when that is the target's final token and the caller already parsed the
    tail (``build_target`` reads the appended fragment), ``tail_closing`` is that parse's
    closing position (None: it never closes). Raises ClosureError when either token is missing.
    """
    stop = text.find(IM_END)
    if tail_closing is not _SCAN and stop == len(text) - len(IM_END):
        pos = tail_closing
    else:
        pos = closure_char(text if stop < 0 else text[:stop], field_order)
    return _closure_tokens(assistant_ids, offsets, pos, im_end_id)


def _closure_tokens(ids: list[int], offsets: list[int], pos: int | None, im_end_id: int) -> tuple[int, int]:
    """The token holding character ``pos`` (the closing brace) and the first <|im_end|> after it."""
    if pos is None:
        raise ClosureError("the assistant target's closing '}' cannot be located (container never closes)")
    brace = bisect_right(offsets, pos) - 1  # the one token with offsets[t] <= pos < offsets[t + 1]
    try:
        im_end = ids.index(im_end_id, brace + 1)
    except ValueError:
        raise ClosureError(f"no {IM_END} after the assistant target's closing '}}'") from None
    return brace, im_end


# ----------------------------------------------------------------------------- step 2-4


def _read_fragment(prefix_text: str, fragment: str, field_order: str) -> tuple[list[ParsedObject], int | None]:
    """The records the fragment adds and the container's closing ``}``, in target-text
    positions: what ``parse(prefix_text + fragment)`` reads after the cut, without
    re-reading the prefix.

    The parser reads a record array left to right, and at the cut its state is one of two:
    just after the array-open ``[`` (a prefix ending in ``[``: no record yet), or just
    after a record (a prefix ending in ``}``). ``{"objects": [`` and ``{"objects": [{}``
    leave it in the same state, so the fragment after either reads the same, shifted by
    the length difference (record indices, which the target does not use, differ).
    """
    head = FALLBACK_PREFIX + ("{}" if prefix_text.endswith("}") else "")
    res = parse(head + fragment, "salvage", field_order)
    shift = len(prefix_text) - len(head)

    def moved(o: ParsedObject) -> ParsedObject:
        return replace(
            o,
            span=(o.span[0] + shift, o.span[1] + shift),
            geometry_span=(o.geometry_span[0] + shift, o.geometry_span[1] + shift),
            value_spans=tuple((a + shift, b + shift) for a, b in o.value_spans),
        )

    closing = _closure_pos(res)
    return [moved(o) for o in res.objects if o.span[0] >= len(head)], None if closing is None else closing + shift


def _gt_shape(obj, i: int) -> Shape:
    if not isinstance(obj, dict) or "poly" in obj:
        raise ChannelBError(
            f"gt objects[{i}]: Channel-B trains bbox_2d GT only, got "
            f"{sorted(obj) if isinstance(obj, dict) else type(obj).__name__}"
        )
    return Shape.of(obj)


def build_target(tokenizer, rollout_ids, gt_objects, config: ChannelBConfig) -> ChannelBTarget:
    """One Channel-B sample: the teacher-forced assistant ids with CE weights and geometry
    targets (see the module docstring). Raises ClosureError when the closure cannot be
    located (the caller drops the sample and counts it)."""
    fo = config.field_order
    gts = [_gt_shape(o, i) for i, o in enumerate(gt_objects)]
    vocab = _Vocab.of(tokenizer)
    prefix = _rollout_prefix(tokenizer, vocab, rollout_ids, fo)
    result = match([k.obj for k in prefix.kept], gts, config.match)

    fn_objects = [gt_objects[j] for j in result.fn]
    # fn_fragment reads the prefix's last non-space character; given the whole prefix it
    # would re-parse it to refuse a closed container, which an append-ready cut never is
    fragment = fn_fragment(prefix.prefix_text.rstrip(JSON_WS)[-1:], fn_objects, fo)
    fragment_ids = list(tokenizer.encode(fragment, add_special_tokens=False))
    im_end_id = vocab.im_end_id
    assistant_ids = prefix.prefix_ids + fragment_ids + [im_end_id]
    n_prefix = len(prefix.prefix_ids)

    pieces = pieces_from(tokenizer, vocab.pieces, assistant_ids)
    offsets = char_offsets(pieces)
    text = "".join(pieces)
    cut = len(prefix.prefix_text)
    if text[:cut] != prefix.prefix_text or text[cut:] != fragment + IM_END:
        raise ChannelBError(
            "the target's decoded text is not prefix + fragment + <|im_end|>: "
            "the prefix ids do not reproduce the rollout text"
        )
    if offsets[n_prefix] != cut:
        raise ChannelBError("the prefix ids do not end exactly at the cut")

    first_coord = vocab.coord_start
    stop_coord = first_coord + COORD_BINS
    weights = [0.0] * len(assistant_ids)

    # -- matched prefix records: structure only
    matched_pred = {i: j for i, j in result.matched}
    neutral: set[int] = set()
    if prefix.parse is not None and not prefix.invalid_rollout:
        matched_records = {prefix.kept[i].obj.index for i in matched_pred}
        for obj in prefix.parse.objects:
            if obj.index not in matched_records:  # FP, or dropped by a strict rule
                neutral.update(overlapping(offsets, obj.span))
        for d in prefix.parse.dropped:  # parser-invalid records (the incomplete tail lies past the cut)
            neutral.update(overlapping(offsets, (d.span[0], min(d.span[1], cut))))
        for i in sorted(matched_pred):
            obj = prefix.kept[i].obj
            desc = overlapping(offsets, desc_content_span(text, obj))  # a range: O(1) membership
            for t in overlapping(offsets, obj.span):
                if (
                    t < n_prefix
                    and t not in neutral
                    and t not in desc
                    and not first_coord <= assistant_ids[t] < stop_coord
                ):
                    weights[t] = 1.0

    # -- tail: fragment + <|im_end|>
    struct_w = config.drop_invalid_struct_ce_multiplier if prefix.n_drop_invalid > 0 else 1.0
    fn_objs, closing = _read_fragment(prefix.prefix_text, fragment, fo)
    if len(fn_objs) != len(fn_objects):
        raise ChannelBError(f"the appended fragment parses to {len(fn_objs)} records, expected {len(fn_objects)}")
    fn_desc = set()
    for o in fn_objs:
        fn_desc.update(overlapping(offsets, desc_content_span(text, o)))
    for t in range(n_prefix, len(assistant_ids)):
        if first_coord <= assistant_ids[t] < stop_coord:
            continue
        weights[t] = config.desc_ce_weight if t in fn_desc else struct_w

    # -- closure: located (the fragment's parse already holds it, unless the prefix holds an
    # <|im_end|> of its own), then supervised
    brace, im_end = locate_closure(assistant_ids, text, offsets, fo, im_end_id, tail_closing=closing)
    weights[brace] = max(weights[brace], struct_w)
    weights[im_end] = max(weights[im_end], struct_w)

    # -- geometry targets
    groups: list[GeometryGroup] = []
    for i in sorted(matched_pred):
        j = matched_pred[i]
        groups.append(GeometryGroup("matched", prefix.kept[i].coord_positions, tuple(gts[j].values), j))
    for o, j in zip(fn_objs, result.fn, strict=True):
        slots = tuple(t for t in overlapping(offsets, o.geometry_span) if first_coord <= assistant_ids[t] < stop_coord)
        if len(slots) != 4 or [assistant_ids[t] - first_coord for t in slots] != list(gts[j].values):
            raise ChannelBError(f"FN record for gt {j} does not tokenize to its 4 coord tokens")
        groups.append(GeometryGroup("fn", slots, tuple(gts[j].values), j))

    return ChannelBTarget(
        assistant_ids=assistant_ids,
        ce_weights=weights,
        groups=groups,
        prefix=prefix,
        match=result,
        fragment=fragment,
        prefix_len=n_prefix,
        closure=(brace, im_end),
        text=text,
    )


# ----------------------------------------------------------------------------- full row


@dataclass
class TeacherForcedRow:
    """prompt + assistant ids with labels, CE weights and coord slots in row positions."""

    input_ids: list[int]
    labels: list[int]  # -100 where the CE weight is 0
    ce_weights: list[float]
    groups: list[GeometryGroup]  # positions shifted by prompt_len
    prompt_len: int


def teacher_forced_row(
    learner_prompt_ids, server_prompt_ids, target: ChannelBTarget, *, sample: str = "sample"
) -> TeacherForcedRow:
    """Join the learner's prompt ids with a Channel-B target, after requiring the server's
    ``prompt_token_ids`` to equal them exactly (the rollout was generated from this prompt)."""
    from coordexp.stage2.alignment import check_prompt_alignment

    plen = check_prompt_alignment(learner_prompt_ids, server_prompt_ids, sample=sample)
    ids = [int(i) for i in learner_prompt_ids] + target.assistant_ids
    weights = [0.0] * plen + target.ce_weights
    labels = [i if w > 0 else -100 for i, w in zip(ids, weights, strict=True)]
    groups = [
        GeometryGroup(g.kind, tuple(p + plen for p in g.positions), g.target_bins, g.gt_index) for g in target.groups
    ]
    return TeacherForcedRow(input_ids=ids, labels=labels, ce_weights=weights, groups=groups, prompt_len=plen)
