"""Bytes -> text, and the JavaScript string semantics every OpenSpec reading rule depends on.

The OpenSpec CLI is JavaScript: its ``\\s``, ``.`` and ``trim()`` differ from Python's, and it
sorts strings by UTF-16 code units. This module is the one place those are spelled out (see
docs/reading-openspec.md):

- ``WS_CHARS`` / ``WS``: JavaScript's WhiteSpace + LineTerminator set (what ``\\s`` matches and
  ``trim()`` strips; it includes U+FEFF and excludes U+001C..U+001F and U+0085, unlike Python's).
- ``NOT_EOL`` / ``DOT``: JavaScript's ``.`` without the s flag (stops at CR, U+2028, U+2029).
- ``JS_SPACE`` / ``JS_NON_SPACE``: ``\\s`` / ``\\S`` as fast Python regex spellings;
  ``ascii_caseless(word)``: a literal matched
  case-insensitively the way JavaScript's ``i`` flag reads ASCII words.

Reading a file has two named modes, because specgen and the CLI want different things:

- ``read_text``: the spec model's mode. Not UTF-8, UTF-16, binary (NUL bytes) or unreadable ->
  ``SpecgenError`` naming the file and line; specgen refuses to report text that is not in the file.
- ``read_text_as_node``: the validator's and the merge's mode, as Node's ``readFile(path, 'utf-8')``:
  bad bytes become U+FFFD, a BOM is kept, ``OSError`` propagates (the caller words it as the CLI does).
"""

from __future__ import annotations

import re
from pathlib import Path

from specgen.errors import SpecgenError

# JavaScript's WhiteSpace + LineTerminator set: what `\s` matches and what trim() removes.
WS_CHARS = (
    "\t\n\x0b\x0c\r \xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
# The same set as the inside of a regex character class.
WS = r"\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# JavaScript's `.` (no dotAll flag): anything but a line terminator.
NOT_EOL = r"[^\n\r\u2028\u2029]"
DOT = "[^\n\r\u2028\u2029]"
# Python's `\s` is JavaScript's minus U+FEFF plus U+001C..U+001F and U+0085; these spellings are
# exact and compile fast (a 20-character class above U+00FF makes `re` build a big charset table).
JS_SPACE = "(?:[^\\S\\x1c-\\x1f\\x85]|\\ufeff)"
JS_NON_SPACE = "(?:[\\x1c-\\x1f\\x85]|[^\\s\\ufeff])"
# Line terminators that can sit inside a line (LF splits lines).
EOL_IN_LINE = "\r\u2028\u2029"


def ascii_caseless(word: str) -> str:
    """A case-insensitive literal as JavaScript's `i` (without `u`) reads ASCII words: [Rr][Ee]...

    Spelled out rather than flagged: Python's IGNORECASE also folds U+017F to `s` and U+212A to `k`,
    and re.ASCII would make `JS_SPACE` stop matching Unicode spaces.
    """
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


def js_trim(text: str) -> str:
    return text.strip(WS_CHARS)


def js_trim_end(text: str) -> str:
    return text.rstrip(WS_CHARS)


def js_trim_start(text: str) -> str:
    return text.lstrip(WS_CHARS)


def js_len(text: str) -> int:
    """String length as JavaScript counts it (UTF-16 code units)."""
    if text.isascii():
        return len(text)
    # Two bytes per code unit; an astral character is two units, a lone surrogate one (as in JavaScript).
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def content_column(prefix: str) -> int:
    """The column a run of blanks reaches, tabs stopping at multiples of 4 (CommonMark)."""
    col = 0
    for ch in prefix:
        col += 4 - col % 4 if ch == "\t" else 1
    return col


def utf16_key(text: str) -> bytes:
    """Sort key matching JavaScript's default string order (UTF-16 code units)."""
    return text.encode("utf-16-be", "surrogatepass")


def normalize(text: str) -> str:
    """Drop one leading BOM; CRLF and lone CR become LF (what every OpenSpec reader does first)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return normalize_eol(text)


def normalize_eol(text: str) -> str:
    """CRLF and lone CR become LF; a BOM is kept (the readers that do not strip one)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def read_text(path: Path | str) -> str:
    """A markdown file's text, strictly: not UTF-8, binary or unreadable -> SpecgenError naming
    the file and, for bad bytes, the line. (The CLI would read bad bytes as U+FFFD and carry on.)"""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except IsADirectoryError:
        raise SpecgenError("is a directory, expected a markdown file", path) from None
    except OSError as exc:
        raise SpecgenError(f"cannot read: {exc.strerror or exc}", path) from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise SpecgenError("UTF-16 text; re-save the file as UTF-8", path, 1)
    nul = data.find(b"\x00")
    if nul != -1:
        line = data.count(b"\n", 0, nul) + 1
        raise SpecgenError("binary file (NUL byte); expected UTF-8 markdown", path, line)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecgenError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {col}); re-save the file as UTF-8", path, line
        ) from None


def read_text_as_node(path: Path | str) -> str:
    """Read as Node's readFile(..., 'utf-8') does: invalid bytes become U+FFFD, a BOM is kept.
    OSError (missing, unreadable) propagates."""
    with open(path, "rb") as fh:
        data = fh.read()
    return data.decode("utf-8", errors="replace")
