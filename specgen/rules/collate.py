"""The one collation key: JavaScript's ``a.localeCompare(b)`` (ICU root collation), which the
OpenSpec CLI uses to order ``list --specs``, ``list --sort name``, ``validate --all`` items and
a change's task files. Every call site sorts with :func:`collation_key`.

Exact for ASCII: blanks, then punctuation and symbols in ICU's order, then digits, then letters
compared case-insensitively first and lowercase before uppercase on a tie. Accented Latin
letters sort with their base letter (the accent breaks ties before case does). Other symbols
and punctuation (``€``, ``—``) sort with the symbols, before digits, by code point; other
letters and everything else after the Latin letters, by code point. (A deliberate
approximation: no ICU tables here; see docs/reading-openspec.md.)
"""

from __future__ import annotations

import unicodedata

_PUNCT = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"
_SYMBOLS = 100  # non-ASCII punctuation and symbols: after ASCII ones, before digits
_DIGITS = 0x200000
_LETTERS = _DIGITS + 100
_OTHER = _LETTERS + 100
_PRIMARY: dict[str, int] = {}
for _c in " \t\n\r\x0b\x0c":
    _PRIMARY[_c] = 1
for _i, _c in enumerate(_PUNCT):
    _PRIMARY[_c] = 10 + _i
for _i, _c in enumerate("0123456789"):
    _PRIMARY[_c] = _DIGITS + _i
for _i, _c in enumerate("abcdefghijklmnopqrstuvwxyz"):
    _PRIMARY[_c] = _LETTERS + _i
    _PRIMARY[_c.upper()] = _LETTERS + _i


def _weights(ch: str) -> tuple[int, int, int]:
    """(primary, secondary, tertiary) of one character."""
    w = _PRIMARY.get(ch)
    if w is not None:
        return w, 0, 1 if ch.isupper() else 0
    base = unicodedata.normalize("NFD", ch)
    w = _PRIMARY.get(base[0])
    if w is not None and base[0].isalpha():
        return w, sum(ord(m) for m in base[1:]) or 1, 1 if base[0].isupper() else 0
    if ch.isspace():
        return 1, 0, 0
    if unicodedata.category(ch)[0] in "PS":
        return _SYMBOLS + ord(ch), 0, 0
    low = ch.lower()
    return _OTHER + ord(low[0] if low else ch), 0, 0 if ch == low else 1


def collation_key(text: str):
    primary: list[int] = []
    secondary: list[int] = []
    tertiary: list[int] = []
    for ch in text:
        p, s, t = _weights(ch)
        primary.append(p)
        secondary.append(s)
        tertiary.append(t)
    return (primary, secondary, tertiary, text)
