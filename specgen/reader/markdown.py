"""Text -> sections: OpenSpec's line-level markdown, as the OpenSpec CLI (1.13.2) reads it.

OpenSpec does not parse CommonMark. It splits a file into lines and reads them with a few
line patterns; everything else (lists, emphasis, HTML, indentation) is plain text to it. This
module reproduces those line rules, and the JavaScript string semantics they depend on, so
that what specgen calls a requirement or a scenario is exactly what the CLI calls one:

- Text is normalized first: one leading U+FEFF is dropped, CRLF and lone CR become LF.
- JavaScript's ``\\s``, ``trim()`` and ``.`` (see :mod:`specgen.reader.text`).
- A fence opens on any line whose first non-blank text is three or more backticks or tildes
  (any indentation, any info string) and closes on a line holding only a run of the same
  character at least as long (plus blanks). An unclosed fence runs to the end of the text.
  Fenced lines (the fence lines included) are never headers.
- A header is ``#`` to ``######`` followed by whitespace and at least one more character.
  A shorter line such as ``## `` is not a header, yet it still ends the body of any open
  section at its level or deeper (the CLI uses a looser pattern for that).
- A section's *content* is every line after its header up to the next such boundary, joined
  with LF and trimmed. Sections nest by level in a stack, so a ``#####`` right under a
  ``###`` is that ``###``'s child.

Everything here is iterative and linear in the size of the input (no recursion, no rescans).
"""

from __future__ import annotations

import re
from itertools import compress, count, repeat
from operator import contains

from specgen.reader.text import JS_SPACE, WS_CHARS, js_trim, normalize

# ---------------------------------------------------------------------------- fences

# JS_SPACE, not a [WS] class: the same characters, compiled faster (start-up of every command).
_FENCE_OPEN = re.compile(rf"{JS_SPACE}*(`{{3,}}|~{{3,}})")
_FENCE_CLOSE = re.compile(rf"{JS_SPACE}*(`{{3,}}|~{{3,}}){JS_SPACE}*\Z")


def fence_mask(lines: list[str]) -> list[bool]:
    """True for every line inside a fenced block, the opening and closing fence lines included."""
    mask = [False] * len(lines)
    marker = ""
    width = 0
    for i, line in enumerate(lines):
        if not marker:
            if "``" in line or "~~" in line:
                m = _FENCE_OPEN.match(line)
                if m:
                    run = m.group(1)
                    marker, width = run[0], len(run)
                    mask[i] = True
            continue
        mask[i] = True
        if marker * 3 in line:
            m = _FENCE_CLOSE.match(line)
            if m and m.group(1)[0] == marker and len(m.group(1)) >= width:
                marker = ""
    return mask


# ---------------------------------------------------------------------------- headers


def _last_eol(s: str) -> int:
    return max(s.rfind("\r"), s.rfind("\u2028"), s.rfind("\u2029"))


def tail_text(rest: str) -> str | None:
    r"""JavaScript's `\s*(.+)$` over `rest` (to its end): the trimmed text, or None when it
    does not match. Decided without backtracking: a line terminator may only sit in the
    leading blanks, and something must follow it."""
    if not rest:
        return None
    e = _last_eol(rest)
    if e != -1 and (e == len(rest) - 1 or rest[: e + 1].strip(WS_CHARS)):
        return None
    return rest.strip(WS_CHARS)


def header_parts(line: str) -> tuple[int, str | None] | None:
    r"""For a line starting with 1..6 `#` and a blank (`^(#{1,6})\s`): (level, title), the
    title None when the line is no header (`## ` alone, or a title holding a line
    terminator) though it still ends open bodies. None for any other line."""
    n = len(line) - len(line.lstrip("#"))
    if not 1 <= n <= 6 or n >= len(line) or line[n] not in WS_CHARS:
        return None
    return n, tail_text(line[n + 1 :])


def header_of(line: str) -> tuple[int, str] | None:
    """(level, trimmed title) when `line` opens a section (fence state is the caller's)."""
    h = header_parts(line) if line.startswith("#") else None
    if h is None or h[1] is None:
        return None
    return h  # type: ignore[return-value]


# Where a requirement's own text stops (any header-looking line, checked on raw lines).
_ANY_HEADER = re.compile(rf"#{{1,6}}{JS_SPACE}")
# `**ID**: ...` lines: requirement metadata, skipped when other body text exists.
_METADATA = re.compile(r"\*\*[^*]+\*\*:")


class Section:
    """One header and the lines under it. ``index`` is the header's 0-based line index;
    the content is ``lines[index + 1:end]``, joined and trimmed."""

    __slots__ = ("level", "title", "index", "end", "children")

    def __init__(self, level: int, title: str, index: int):
        self.level = level
        self.title = title
        self.index = index
        self.end = -1
        self.children: list[Section] = []

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Section({self.level}, {self.title!r}, line {self.index + 1}, {len(self.children)} children)"


class Document:
    """A normalized text split into lines, and its section tree.

    Only the lines that can matter (a leading `#`, or a run of backticks or tildes) are
    visited; fence state is tracked across them in order.
    """

    __slots__ = ("lines", "roots", "sections")

    def __init__(self, text: str, *, normalized: bool = False):
        if not normalized:
            text = normalize(text)
        self.lines = text.split("\n")
        self.roots: list[Section] = []
        self.sections: list[Section] = []  # every section, in document order
        self._build()

    def _build(self) -> None:
        lines = self.lines
        roots, sections = self.roots, self.sections
        stack: list[Section] = []  # tree parents (popped only by real headers)
        open_: list[Section] = []  # sections whose content has not ended yet
        close = _FENCE_CLOSE.match
        ws = WS_CHARS
        marker = ""
        width = 0
        # Candidates: a leading `#`, or a fence-like run somewhere (checked below). Found
        # with C-level iteration: this is the one pass over every line.
        hashes = compress(count(), map(str.startswith, lines, repeat("#")))
        ticks = compress(count(), map(contains, lines, repeat("``")))
        tildes = compress(count(), map(contains, lines, repeat("~~")))
        cands = sorted(set(ticks).union(tildes).union(hashes))
        for k in cands:
            line = lines[k]
            if marker:  # inside a fence: only a closing fence matters
                if marker * 3 in line:
                    c = close(line)
                    if c and c.group(1)[0] == marker and len(c.group(1)) >= width:
                        marker = ""
                continue
            if line[0] != "#":
                f = _FENCE_OPEN.match(line)
                if f:
                    run = f.group(1)
                    marker, width = run[0], len(run)
                continue
            # header_parts(), inlined: this loop runs once per `#` line.
            level = len(line) - len(line.lstrip("#"))
            if level > 6 or level >= len(line) or line[level] not in ws:
                continue
            rest = line[level + 1 :]
            if not rest:
                title = None
            elif "\u2028" in rest or "\u2029" in rest or "\r" in rest:
                title = tail_text(rest)
            else:
                title = rest.strip(ws)
            while open_ and open_[-1].level >= level:
                open_.pop().end = k
            if title is None:  # `## ` alone, or a title holding a line separator
                continue
            sec = Section(level, title, k)
            while stack and stack[-1].level >= level:
                stack.pop()
            (stack[-1].children if stack else roots).append(sec)
            stack.append(sec)
            open_.append(sec)
            sections.append(sec)
        n = len(lines)
        for sec in open_:
            sec.end = n

    def content(self, sec: Section) -> str:
        return js_trim("\n".join(self.lines[sec.index + 1 : sec.end]))

    def content_start(self, sec: Section) -> int:
        """0-based index of the line the (trimmed) content starts on."""
        for i in range(sec.index + 1, sec.end):
            if js_trim(self.lines[i]):
                return i
        return sec.index + 1

    def requirement_text(self, sec: Section) -> str:
        """`requirement_text(sec.title, self.content(sec))` without building the content:
        the trimmed content's first line is the first non-blank line, left-trimmed, and its
        last line the last non-blank one, right-trimmed (which can turn an indented
        `#### x` into a header, or `###### ` into text, exactly as in the CLI)."""
        lines = self.lines
        ws = WS_CHARS
        first, end = sec.index + 1, sec.end
        while first < end and not lines[first].strip(ws):
            first += 1
        if first == end:
            return sec.title.strip(ws)
        last = end - 1  # the content's last line: the last non-blank one
        while not lines[last].strip(ws):
            last -= 1
        body = lines[first : last + 1]
        body[0] = body[0].lstrip(ws)
        body[-1] = body[-1].rstrip(ws)
        return requirement_body(body) or sec.title.strip(ws)

    def find(self, title: str) -> Section | None:
        """The first section, in document order and at any level, whose title matches
        `title` case-insensitively (how the CLI finds Purpose, Requirements, Why...)."""
        want = title.lower()
        for sec in self.sections:
            if sec.title.lower() == want:
                return sec
        return None


# ---------------------------------------------------------------------------- requirement text


def requirement_body(body_lines) -> str:
    """A requirement's text from the lines of its (trimmed) content.

    Every non-blank line before the first header-looking line outside a fence, trimmed and
    joined with LF; fenced lines are skipped. ``**Label**:`` lines are dropped unless they are
    all there is. Empty when there is nothing (the caller falls back to the header title).
    """
    captured: list[str] = []
    metadata: list[str] = []
    marker = ""
    width = 0
    for line in body_lines:
        if marker:  # inside a fence: skipped; a closing fence ends it
            if marker * 3 in line:
                m = _FENCE_CLOSE.match(line)
                if m and m.group(1)[0] == marker and len(m.group(1)) >= width:
                    marker = ""
            continue
        if "``" in line or "~~" in line:
            m = _FENCE_OPEN.match(line)
            if m:
                run = m.group(1)
                marker, width = run[0], len(run)
                continue
        if line.startswith("#") and _ANY_HEADER.match(line):
            break
        trimmed = js_trim(line)
        if not trimmed:
            continue
        if trimmed.startswith("**") and _METADATA.match(trimmed):
            metadata.append(trimmed)
        else:
            captured.append(trimmed)
    return "\n".join(captured) if captured else "\n".join(metadata)


def requirement_text(title: str, content: str) -> str:
    return requirement_body(content.split("\n")) or js_trim(title)


# ---------------------------------------------------------------------------- names


def strip_closing_run(name: str) -> str:
    """Drop an ATX closing run (`Foo ###` -> `Foo`; only a run after a space or tab counts,
    so `C#` keeps its `#`), then trim. Linear, unlike the CLI's regex."""
    body = name.rstrip(" \t")
    hashes = body.rstrip("#")
    if len(hashes) < len(body):
        before = hashes.rstrip(" \t")
        if len(before) < len(hashes):
            name = before
    return name.strip(WS_CHARS)


def requirement_name(title: str) -> str:
    """The requirement's name from its header title: `Requirement: Foo ###` -> `Foo`.

    A child of ``## Requirements`` whose title has no ``Requirement:`` prefix is still a
    requirement to the CLI; its name is the whole title.
    """
    if title[:12].lower() == "requirement:":  # (no non-ASCII letter lowercases into these)
        title = title[12:]
    return strip_closing_run(title)


def scenario_name(title: str) -> str:
    """`Scenario: Foo ####` -> `Foo` (the closing run first, then the optional prefix)."""
    if title.rstrip(" \t")[-1:] == "#":
        title = strip_closing_run(title)
    if title[:9].lower() == "scenario:":
        title = title[9:]
    return title.strip(WS_CHARS)
