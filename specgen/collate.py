"""A sort key approximating JavaScript's `a.localeCompare(b)` (ICU root / en-US collation),
which the OpenSpec CLI uses to order `list --specs` and `list --sort name`.

Exact for ASCII ids: blanks, then punctuation and symbols in ICU's order, then digits, then
letters compared case-insensitively first and lowercase before uppercase on a tie. Accented
Latin letters sort with their base letter (the accent breaks ties); other characters sort
after the Latin letters by code point. (A deliberate approximation: no ICU tables here.)
"""

from __future__ import annotations

import unicodedata

_PUNCT = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"
_PRIMARY: dict[str, int] = {}
for _i, _c in enumerate(" \t\n\r\x0b\x0c"):
    _PRIMARY[_c] = 1
for _i, _c in enumerate(_PUNCT):
    _PRIMARY[_c] = 10 + _i
for _i, _c in enumerate("0123456789"):
    _PRIMARY[_c] = 100 + _i
for _i, _c in enumerate("abcdefghijklmnopqrstuvwxyz"):
    _PRIMARY[_c] = 200 + _i
    _PRIMARY[_c.upper()] = 200 + _i


def locale_key(text: str):
    primary: list[int] = []
    secondary: list[int] = []
    tertiary: list[int] = []
    for ch in text:
        w = _PRIMARY.get(ch)
        if w is not None:
            primary.append(w)
            secondary.append(0)
            tertiary.append(1 if ch.isupper() else 0)
            continue
        base = unicodedata.normalize("NFD", ch)
        w = _PRIMARY.get(base[0])
        if w is not None and base[0].isalpha():
            primary.append(w)
            secondary.append(sum(ord(m) for m in base[1:]) or 1)
            tertiary.append(1 if base[0].isupper() else 0)
            continue
        low = ch.lower()
        primary.append(1000 + ord(low[0]) if low else 1000 + ord(ch))
        secondary.append(0)
        tertiary.append(0 if ch == low else 1)
    return (primary, secondary, tertiary)
