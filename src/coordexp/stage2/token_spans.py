"""Token spans of a decoded CoordJSON text: which tokens cover which characters.

A tokenizer's pieces (``template.decode_pieces``) join to the decoded text; ``char_offsets`` gives each token's
first character, ``overlapping`` the tokens whose characters meet a character span, and ``desc_content_span`` the
characters inside a record's desc quotes. Channel-B target building and the segment builder both read tokens
through these three.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate
from json.decoder import scanstring

from coordexp.format.coordjson import ParsedObject

JSON_WS = " \t\n\r"  # the whitespace JSON allows between tokens


def char_offsets(pieces) -> list[int]:
    """Character offset of each token's start, plus the text length at the end."""
    return list(accumulate(map(len, pieces), initial=0))


def overlapping(offsets: list[int], span: tuple[int, int]) -> range:
    """Indices of tokens whose character range [offsets[t], offsets[t+1]) overlaps [a, b)."""
    a, b = span
    if a >= b:
        return range(0)
    n = len(offsets) - 1
    lo = bisect_right(offsets, a) - 1  # the token holding character a
    hi = bisect_left(offsets, b)  # first token starting at or after b
    return range(max(lo, 0), min(hi, n))


def desc_content_span(text: str, obj: ParsedObject) -> tuple[int, int]:
    """Characters strictly inside the desc string's quotes of a valid record."""
    start, end = obj.span
    # The geometry array holds only coord literals, so a '"desc"' before it is the key
    # (desc_first); otherwise the key follows the array (geometry_first).
    key = text.find('"desc"', start, obj.geometry_span[0])
    if key < 0:
        key = text.find('"desc"', obj.geometry_span[1], end)
    colon = text.index(":", key + len('"desc"'), end)
    q = colon + 1
    while text[q] in JSON_WS:
        q += 1
    _, after = scanstring(text, q + 1, True)
    return q + 1, after - 1
