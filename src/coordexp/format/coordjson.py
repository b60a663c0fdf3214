"""CoordJSON: the assistant text format and its strict/salvage parser.

CoordJSON looks like JSON but is not: geometry arrays hold bare ``<|coord_k|>`` tokens.
So nothing may ``json.loads`` model text; it is read with ``parse`` only (the inventory
gate ``scripts/tools/inventory.py`` enforces that over ``src/``).

    {"objects": [{"desc": "cat", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]}]}

Pure Python (no torch/transformers). Character positions are ``str`` indices into the
text given to ``parse``; every span is half-open ``(start, end)``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from json.decoder import scanstring  # decodes one JSON string literal, nothing more

from coordexp.errors import CoordExpError
from coordexp.format.coord import COORD_MAX, parse_coord_value

FIELD_ORDERS = ("desc_first", "geometry_first")
GEOMETRY_KEYS = ("bbox_2d", "poly")
RECORD_KEYS = frozenset(("desc", *GEOMETRY_KEYS))
MODES = ("strict", "salvage")

# Drop reasons, in the order they are checked for one record (the first that applies wins);
# `dropped_incomplete_tail` is the unclosed last record of a truncated output.
REASONS = ("other", "wrong_arity", "unexpected_keys", "missing_desc", "order_violation", "dropped_incomplete_tail")

_WS = " \t\n\r"
_CONTAINER_OPEN = re.compile(r'\{[ \t\n\r]*"objects"[ \t\n\r]*:[ \t\n\r]*\[')
_COORD_LITERAL = re.compile(r"<\|coord_(0|[1-9][0-9]{0,3})\|>")
_COORD_PREFIX = "<|coord_"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_LITERALS = ("true", "false", "null")
_BRACE_SCAN = re.compile(r'[{}"]')
_STRING_SCAN = re.compile(r'["\\]')


class CoordJSONError(CoordExpError, ValueError):
    """Invalid CoordJSON. ``reason`` is a drop bucket (see REASONS) for a record, or one of
    no_container / truncated / junk_after / extra_top_level_key / other for the container;
    ``pos`` is the character position where the problem was found."""

    def __init__(self, reason: str, pos: int, detail: str):
        self.reason = reason
        self.pos = pos
        self.detail = detail
        super().__init__(f"CoordJSON {reason} at char {pos}: {detail}")


@dataclass(frozen=True)
class ParsedObject:
    desc: str  # stripped
    geometry: str  # "bbox_2d" or "poly"
    values: tuple[int, ...]  # int bins 0..999
    span: tuple[int, int]  # the record, "{" .. "}"
    geometry_span: tuple[int, int]  # the geometry array, "[" .. "]"
    value_spans: tuple[tuple[int, int], ...]  # each coord literal
    index: int  # position among all balanced records (valid or not), in order of appearance

    def to_dict(self, field_order: str) -> dict:
        _check_field_order(field_order)
        if field_order == "desc_first":
            return {"desc": self.desc, self.geometry: list(self.values)}
        return {self.geometry: list(self.values), "desc": self.desc}


@dataclass(frozen=True)
class DroppedRecord:
    reason: str
    pos: int
    detail: str
    span: tuple[int, int]  # end is len(text) for the incomplete tail


@dataclass
class ParseResult:
    objects: list[ParsedObject] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=lambda: {r: 0 for r in REASONS})
    dropped: list[DroppedRecord] = field(default_factory=list)
    truncated: bool = False
    parse_failed: bool = False
    error: str | None = None  # why the parse failed, or where salvage stopped reading
    container_start: int | None = None  # the container's "{"
    container_end: int | None = None  # just after its closing "}" (None while unclosed)
    objects_array_open_cut: int | None = None  # just after the array-open "["
    record_end_cuts: list[int] = field(default_factory=list)  # after each balanced record
    # salvage: containers rejected before this one (start, error, records they held): counted, never used
    rejected_containers: list[tuple[int, str, int]] = field(default_factory=list)
    rejected_records: int = 0  # when this container was rejected: the records it held

    @property
    def container_closed(self) -> bool:
        return self.container_end is not None

    @property
    def n_dropped(self) -> int:
        return sum(self.drops.values())


def _check_field_order(field_order) -> None:
    if field_order not in FIELD_ORDERS:
        raise ValueError(
            f"field_order must be one of {FIELD_ORDERS} (custom.object_field_order is "
            f"required, no default), got {field_order!r}"
        )


# ----------------------------------------------------------------------------- render


def _render_record(obj, field_order: str, where: str) -> str:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: an object must be a dict, got {type(obj).__name__}")
    # poly_points is JSONL bookkeeping that is never shown to the model.
    keys = [k for k in obj if k != "poly_points"]
    extra = [k for k in keys if k not in RECORD_KEYS]
    if extra:
        raise ValueError(f"{where}: unexpected key(s) {extra} (a record has desc and one of bbox_2d/poly)")
    geoms = [k for k in keys if k in GEOMETRY_KEYS]
    if len(geoms) != 1 or "desc" not in obj:
        raise ValueError(f"{where}: needs desc and exactly one of bbox_2d/poly, got keys {keys}")
    desc = obj["desc"]
    if not isinstance(desc, str) or not desc.strip():
        raise ValueError(f"{where}.desc: must be a non-empty string, got {desc!r}")
    gkey = geoms[0]
    raw = obj[gkey]
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"{where}.{gkey}: must be a flat list of coord values, got {type(raw).__name__}")
    n = len(raw)
    if (gkey == "bbox_2d" and n != 4) or (gkey == "poly" and (n % 2 or n < 6)):
        need = "4 values" if gkey == "bbox_2d" else "an even count >= 6"
        raise ValueError(f"{where}.{gkey}: needs {need}, got {n}")
    bins = []
    for i, v in enumerate(raw):
        try:
            bins.append(parse_coord_value(v))
        except ValueError as e:
            raise ValueError(f"{where}.{gkey}[{i}]: {e}") from None
    d = '"desc": ' + json.dumps(desc.strip(), ensure_ascii=False)
    g = f'"{gkey}": [' + ", ".join(f"<|coord_{k}|>" for k in bins) + "]"
    return "{" + (f"{d}, {g}" if field_order == "desc_first" else f"{g}, {d}") + "}"


def render(objects, field_order: str) -> str:
    """Objects -> the one-line CoordJSON assistant text, in the given field order.

    Values may be int bins or "<|coord_k|>" strings; desc is stripped. The result is
    strict-parsed before it is returned, so a rendering drift fails here, not in training.
    """
    _check_field_order(field_order)
    if not isinstance(objects, (list, tuple)):
        raise ValueError(f"objects must be a list, got {type(objects).__name__}")
    records = [_render_record(o, field_order, f"objects[{i}]") for i, o in enumerate(objects)]
    text = '{"objects": [' + ", ".join(records) + "]}"
    if len(parse(text, "strict", field_order).objects) != len(records):  # pragma: no cover - drift guard
        raise AssertionError("render produced text that does not strict-parse to the same objects")
    return text


# ----------------------------------------------------------------------------- scanning


class _Fail(Exception):
    def __init__(self, reason: str, pos: int, detail: str):
        self.reason, self.pos, self.detail = reason, pos, detail


def _skip_ws(text: str, i: int, end: int) -> int:
    while i < end and text[i] in _WS:
        i += 1
    return i


def _balanced_end(text: str, start: int) -> int | None:
    """Position just after the "}" that closes the "{" at ``start``; None if never closed.

    String-aware: braces inside quoted strings do not count; backslash escapes are honoured.
    """
    fast = _fast_record_end(text, start)
    if fast is not None:
        return fast
    depth = 0
    i = start
    n = len(text)
    while i < n:
        m = _BRACE_SCAN.search(text, i)
        if m is None:
            return None
        c = m.group()
        i = m.end()
        if c == '"':
            while True:  # skip to the closing quote
                s = _STRING_SCAN.search(text, i)
                if s is None:
                    return None
                if s.group() == "\\":
                    i = s.end() + 1
                    continue
                i = s.end()
                break
        elif c == "{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return i
    return None


@dataclass
class _Value:
    kind: str  # string | coord | number | literal | array | object
    span: tuple[int, int]
    payload: object = None  # str for string, int for coord, list[_Value] for array


def _scan_string(text: str, i: int, end: int) -> tuple[str, int]:
    try:
        s, j = scanstring(text, i + 1, True)
    except ValueError as e:  # unterminated, bad escape, raw control character
        raise _Fail("other", i, f"invalid string: {getattr(e, 'msg', e)}") from None
    if j > end:
        raise _Fail("other", i, "unterminated string")
    return s, j


_MAX_DEPTH = 32  # nesting inside one record; deeper is junk, not a reason to hit the recursion limit


def _scan_value(text: str, i: int, end: int, depth: int = 0) -> _Value:
    if depth > _MAX_DEPTH:
        raise _Fail("other", i, f"values nested deeper than {_MAX_DEPTH}")
    if i >= end:
        raise _Fail("other", i, "expected a value")
    c = text[i]
    if c == '"':
        s, j = _scan_string(text, i, end)
        return _Value("string", (i, j), s)
    if c == "<":
        if text.startswith(_COORD_PREFIX, i):
            m = _COORD_LITERAL.match(text, i, end)
            if m is None or int(m.group(1)) > COORD_MAX:
                bad = text[i : min(end, i + 16)]
                raise _Fail("wrong_arity", i, f"malformed or out-of-range coord literal {bad!r}")
            return _Value("coord", (i, m.end()), int(m.group(1)))
        raise _Fail("other", i, "unexpected '<' (not a coord literal)")
    if c == "[":
        items = []
        j = _skip_ws(text, i + 1, end)
        if j < end and text[j] == "]":
            return _Value("array", (i, j + 1), items)
        while True:
            v = _scan_value(text, j, end, depth + 1)
            items.append(v)
            j = _skip_ws(text, v.span[1], end)
            if j < end and text[j] == ",":
                j = _skip_ws(text, j + 1, end)
                continue
            if j < end and text[j] == "]":
                return _Value("array", (i, j + 1), items)
            raise _Fail("other", j, "expected ',' or ']' in array")
    if c == "{":
        pairs = _scan_pairs(text, i, end, depth + 1)
        return _Value("object", (i, pairs[1]), pairs[0])
    m = _NUMBER.match(text, i, end)
    if m:
        return _Value("number", (i, m.end()))
    for lit in _LITERALS:
        if text.startswith(lit, i) and i + len(lit) <= end:
            return _Value("literal", (i, i + len(lit)))
    raise _Fail("other", i, f"unexpected character {c!r}")


def _scan_pairs(text: str, i: int, end: int, depth: int = 0):
    """Scan "{ key: value, ... }" starting at ``i``; returns ([(key, key_pos, _Value)], end)."""
    pairs = []
    j = _skip_ws(text, i + 1, end)
    if j < end and text[j] == "}":
        return pairs, j + 1
    while True:
        if j >= end or text[j] != '"':
            raise _Fail("other", j, "expected a quoted key")
        key, j2 = _scan_string(text, j, end)
        k = _skip_ws(text, j2, end)
        if k >= end or text[k] != ":":
            raise _Fail("other", k, f"missing ':' after key {key!r}")
        v = _scan_value(text, _skip_ws(text, k + 1, end), end, depth)
        pairs.append((key, j, v))
        j = _skip_ws(text, v.span[1], end)
        if j < end and text[j] == ",":
            j = _skip_ws(text, j + 1, end)
            continue
        if j < end and text[j] == "}":
            return pairs, j + 1
        raise _Fail("other", j, "expected ',' or '}' between fields")


# A well-formed record in one field order, as the scanner below would read it: quoted desc
# (escapes allowed, no raw control characters; written unrolled, which `re` matches fast), a
# geometry key, an array of coord literals.
# Matching it is a shortcut only; any other text, or a value this pattern cannot vouch for,
# goes through the full scanner, which decides.
_W = r"[ \t\n\r]*"
_DESC = rf'"desc"{_W}:{_W}(?P<desc>"[^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*")'
_GEOM = rf'"(?P<geom>bbox_2d|poly)"{_W}:{_W}(?P<arr>\[{_W}<\|coord_[0-9]+\|>(?:{_W},{_W}<\|coord_[0-9]+\|>)*{_W}\])'
# the common case, a bbox_2d of 4 literals 0..999 spelled as the vocabulary spells them
_LIT = r"(?P<l{k}><\|coord_(?P<v{k}>0|[1-9][0-9]{{0,2}})\|>)"
_BOX = (
    rf'"(?P<geom>bbox_2d)"{_W}:{_W}(?P<arr>\[{_W}' + f"{_W},{_W}".join(_LIT.format(k=k) for k in range(4)) + rf"{_W}\])"
)


def _record_patterns(geom: str) -> dict:
    return {
        "desc_first": re.compile(rf"\{{{_W}{_DESC}{_W},{_W}{geom}{_W}\}}"),
        "geometry_first": re.compile(rf"\{{{_W}{geom}{_W},{_W}{_DESC}{_W}\}}"),
    }


_FAST_RECORD = _record_patterns(_GEOM)
_FAST_BOX = _record_patterns(_BOX)
_D, _G = (re.sub(r"\?P<\w+>", "", p) for p in (_DESC, _GEOM))  # unnamed: one pattern holds both orders
_FAST_EITHER = re.compile(rf"\{{{_W}(?:{_D}{_W},{_W}{_G}|{_G}{_W},{_W}{_D}){_W}\}}")


def _fast_record_end(text: str, start: int) -> int | None:
    """``_balanced_end`` of a record the shortcut pattern matches (in either field order):
    its strings hold no unescaped quote, its array no brace, so the brace that closes it
    is the pattern's last character."""
    m = _FAST_EITHER.match(text, start)
    return None if m is None else m.end()


def _classify_fast(text: str, start: int, end: int, field_order: str, index: int) -> ParsedObject | None:
    """``_classify`` for a record that is valid as written, or None to use the scanner."""
    box = _FAST_BOX[field_order]
    m = box.match(text, start, end)
    if m is not None and m.end() == end:
        g, regs, at = m.groups(), m.regs, box.groupindex  # regs[k]: the span of group k
        values = (int(g[at["v0"] - 1]), int(g[at["v1"] - 1]), int(g[at["v2"] - 1]), int(g[at["v3"] - 1]))
        spans = (regs[at["l0"]], regs[at["l1"]], regs[at["l2"]], regs[at["l3"]])
    else:
        m = _FAST_RECORD[field_order].match(text, start, end)
        if m is None or m.end() != end:
            return None
        lits = list(_COORD_LITERAL.finditer(text, m.start("arr"), m.end("arr")))
        values = tuple(int(x.group(1)) for x in lits)
        spans = tuple(x.span() for x in lits)
        gkey, n = m.group("geom"), len(values)
        if (
            len(lits) != text.count("<", m.start("arr"), m.end("arr"))
            or max(values) > COORD_MAX
            or (gkey == "bbox_2d" and n != 4)
            or (gkey == "poly" and (n % 2 or n < 6))
        ):
            return None
    raw = m.group("desc")
    if "\\" in raw:
        try:
            desc, _ = scanstring(text, m.start("desc") + 1, True)  # the pattern ends where the string does
        except ValueError:  # a bad escape: the scanner reports it
            return None
    else:  # no escape (and the pattern admits no control character): the text between the quotes
        desc = raw[1:-1]
    desc = desc.strip()
    if not desc:
        return None
    return ParsedObject(
        desc=desc,
        geometry=m.group("geom"),
        values=values,
        span=(start, end),
        geometry_span=m.span("arr"),
        value_spans=spans,
        index=index,
    )


def _classify(text: str, start: int, end: int, field_order: str, index: int) -> ParsedObject:
    """One balanced record text[start:end] -> ParsedObject, or _Fail with the first reason
    in precedence order (see REASONS)."""
    fast = _classify_fast(text, start, end, field_order, index)
    if fast is not None:
        return fast
    pairs, stop = _scan_pairs(text, start, end)  # 0. syntax (other) / coord literal (wrong_arity)
    if stop != end:  # cannot happen for a balanced record; keep the invariant loud
        raise _Fail("other", stop, "record does not end at its closing brace")
    keys = [k for k, _, _ in pairs]
    for k, pos, _ in pairs:  # 1.
        if k not in RECORD_KEYS:
            raise _Fail("unexpected_keys", pos, f"unexpected key {k!r} (allowed: desc, bbox_2d, poly)")
    if keys.count("desc") != 1:  # 2.
        raise _Fail("missing_desc", start, f"record needs exactly one desc, has {keys.count('desc')}")
    geoms = [(k, pos, v) for k, pos, v in pairs if k in GEOMETRY_KEYS]
    if len(geoms) != 1 or len(pairs) != 2:  # 3.
        raise _Fail("unexpected_keys", start, f"record needs desc and exactly one of bbox_2d/poly, has {keys}")
    expected = ["desc", geoms[0][0]] if field_order == "desc_first" else [geoms[0][0], "desc"]
    if keys != expected:  # 4.
        raise _Fail("order_violation", pairs[0][1], f"keys {keys} violate {field_order} (expected {expected})")
    desc_v = next(v for k, _, v in pairs if k == "desc")
    if desc_v.kind != "string" or not desc_v.payload.strip():  # 5.
        raise _Fail("missing_desc", desc_v.span[0], "desc must be a non-empty string")
    gkey, _, gv = geoms[0]
    if gv.kind != "array":  # 6.
        raise _Fail("wrong_arity", gv.span[0], f"{gkey} must be an array of coord literals")
    non_coord = [v for v in gv.payload if v.kind != "coord"]
    if non_coord:
        raise _Fail(
            "wrong_arity",
            non_coord[0].span[0],
            f"{gkey} holds a non-coord value {text[non_coord[0].span[0] : non_coord[0].span[1]]!r}",
        )
    n = len(gv.payload)
    if (gkey == "bbox_2d" and n != 4) or (gkey == "poly" and (n % 2 or n < 6)):
        need = "4" if gkey == "bbox_2d" else "an even count >= 6"
        raise _Fail("wrong_arity", gv.span[0], f"{gkey} needs {need} coords, has {n}")
    return ParsedObject(
        desc=desc_v.payload.strip(),
        geometry=gkey,
        values=tuple(v.payload for v in gv.payload),
        span=(start, end),
        geometry_span=gv.span,
        value_spans=tuple(v.span for v in gv.payload),
        index=index,
    )


# ----------------------------------------------------------------------------- parse


def parse(text: str, mode: str = "strict", field_order: str | None = None) -> ParseResult:
    """Parse CoordJSON. ``strict`` raises CoordJSONError on anything invalid; ``salvage``
    keeps the valid records of the first container that is not rejected and counts every drop
    by reason.

    Salvage continues past a rejected container (a second top-level key, or anything but "}"
    after its array), as the reference's salvage parser does: the scan resumes at the next
    ``{"objects": [`` after the rejection point. Each rejected container is reported in
    ``rejected_containers`` with the records it held; none of its records is used.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    _check_field_order(field_order)
    if not isinstance(text, str):
        raise TypeError(f"CoordJSON text must be str, got {type(text).__name__}")
    if mode == "strict":
        return _parse_from(text, True, field_order, 0)[0]
    rejected: list[tuple[int, str, int]] = []
    search_from = 0
    while True:
        res, resume = _parse_from(text, False, field_order, search_from)
        if resume is None or _CONTAINER_OPEN.search(text, resume) is None:
            res.rejected_containers = rejected + res.rejected_containers
            return res
        rejected.append((res.container_start, res.error, res.rejected_records))
        search_from = resume


def _parse_from(text: str, strict: bool, field_order: str | None, search_from: int) -> tuple[ParseResult, int | None]:
    """One container from ``search_from``; the second value is where salvage may resume when
    the container was rejected (None otherwise)."""
    res = ParseResult()
    n = len(text)

    def fail(reason: str, pos: int, detail: str, rejected: bool = False) -> tuple[ParseResult, int | None]:
        if strict:
            raise CoordJSONError(reason, pos, detail)
        res.parse_failed = True
        res.rejected_records = len(res.objects) + res.n_dropped
        res.objects = []
        res.error = f"{reason} at char {pos}: {detail}"
        return res, (pos if rejected else None)

    # -- container start
    if strict:
        i = _skip_ws(text, 0, n)
        m = _CONTAINER_OPEN.match(text, i)
        if m is None:
            return fail("no_container", i, 'text must start with {"objects": [')
    else:
        m = _CONTAINER_OPEN.search(text, search_from)
        if m is None:
            return fail("no_container", search_from, 'no {"objects": [ container found')
    res.container_start = m.start()
    res.objects_array_open_cut = m.end()

    # -- records
    j = _skip_ws(text, m.end(), n)
    index = 0
    expect_record = False  # True right after a ","
    while True:
        if j >= n:
            res.truncated = True
            if strict:
                raise CoordJSONError("truncated", j, "text ends inside the objects array")
            return res, None
        c = text[j]
        if c == "]" and not expect_record:
            break
        if c != "{":
            what = "a record '{'" if expect_record or index == 0 else "',' or ']'"
            if strict:
                raise CoordJSONError("other", j, f"expected {what} in the objects array, got {c!r}")
            # salvage: cannot resync reliably; keep what was read, count the rest once
            res.drops["other"] += 1
            res.dropped.append(DroppedRecord("other", j, f"unreadable array content (expected {what})", (j, n)))
            res.error = f"other at char {j}: expected {what}; stopped reading"
            return res, None
        end = _balanced_end(text, j)
        if end is None:
            res.truncated = True
            if strict:
                raise CoordJSONError("truncated", j, "unclosed record at end of text")
            res.drops["dropped_incomplete_tail"] += 1
            res.dropped.append(DroppedRecord("dropped_incomplete_tail", j, "unclosed record", (j, n)))
            return res, None
        res.record_end_cuts.append(end)
        try:
            res.objects.append(_classify(text, j, end, field_order, index))
        except _Fail as f:
            if strict:
                raise CoordJSONError(f.reason, f.pos, f.detail) from None
            res.drops[f.reason] += 1
            res.dropped.append(DroppedRecord(f.reason, f.pos, f.detail, (j, end)))
        index += 1
        j = _skip_ws(text, end, n)
        if j < n and text[j] == ",":
            j = _skip_ws(text, j + 1, n)
            expect_record = True
            continue
        expect_record = False
        if j < n and text[j] not in "]":
            what = "',' or ']'"
            if strict:
                raise CoordJSONError("other", j, f"expected {what} after a record, got {text[j]!r}")
            res.drops["other"] += 1
            res.dropped.append(DroppedRecord("other", j, f"unreadable array content (expected {what})", (j, n)))
            res.error = f"other at char {j}: expected {what}; stopped reading"
            return res, None

    # -- after "]": exactly one top-level key, then "}"
    k = _skip_ws(text, j + 1, n)
    if k >= n:
        res.truncated = True
        if strict:
            raise CoordJSONError("truncated", k, "text ends before the container's closing '}'")
        return res, None
    if text[k] == ",":
        return fail("extra_top_level_key", k, 'the container must have exactly one key, "objects"', rejected=True)
    if text[k] != "}":
        return fail("other", k, f"expected '}}' to close the container, got {text[k]!r}", rejected=True)
    res.container_end = k + 1
    rest = _skip_ws(text, k + 1, n)
    if strict and rest < n:
        raise CoordJSONError("junk_after", rest, "text after the container")
    return res, None


def is_canonical(text: str, field_order: str) -> bool:
    """True when ``text`` is exactly what ``render`` produces for its own objects."""
    try:
        res = parse(text, "strict", field_order)
    except CoordJSONError:
        return False
    return render([o.to_dict(field_order) for o in res.objects], field_order) == text


# ----------------------------------------------------------------------------- Channel-B helpers


def append_ready_cut(result: ParseResult) -> int | None:
    """Where a rollout can be cut so that records can be appended: just after the last
    balanced record (valid or not), or after the array-open "[" when there is none.
    A closed container is cut the same way (its "]}" is dropped): a complete rollout is
    the common case, and its FN records go after its last record.
    None when there is nothing to append to (no container, or a rejected one): the caller
    then uses the fallback prefix ``{"objects": [``."""
    if result.parse_failed or result.objects_array_open_cut is None:
        return None
    return max([result.objects_array_open_cut, *result.record_end_cuts])


FALLBACK_PREFIX = '{"objects": ['


def fn_fragment(prefix: str, fn_objects, field_order: str) -> str:
    """The text appended to an append-ready prefix: the FN records, then "]}".

    ``prefix`` is the prefix text (or at least its last non-space character). A prefix
    ending in "}" needs a leading ", "; one ending in "[" none; one ending in "," takes
    records after a space, and is an error with no FN to follow. A prefix that is already
    a closed container is an error.
    """
    _check_field_order(field_order)
    tail = prefix.rstrip(_WS)[-1:] if isinstance(prefix, str) else ""
    if tail not in ("}", "[", ","):
        raise ValueError(f"prefix is not append-ready: it must end in '[' or '}}', ends in {tail!r}")
    if len(prefix.strip(_WS)) > 1 and tail == "}":
        head = parse(prefix, "salvage", field_order)
        if head.container_closed:
            raise ValueError('prefix is already a closed {"objects": [...]} container: nothing can be appended')
    fn_objects = list(fn_objects)
    body = render(fn_objects, field_order)[len(FALLBACK_PREFIX) : -2] if fn_objects else ""
    if tail == ",":
        if not fn_objects:
            raise ValueError("prefix ends in ',' and there is no FN record to follow it")
        return " " + body + "]}"
    if tail == "}" and fn_objects:
        return ", " + body + "]}"
    return body + "]}"
