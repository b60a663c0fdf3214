"""OpenSpec's line-level markdown, as the OpenSpec CLI (1.13.2) reads it.

OpenSpec does not parse CommonMark. It splits a file into lines and reads them with a few
line patterns; everything else (lists, emphasis, HTML, indentation) is plain text to it. This
module reproduces those line rules, and the JavaScript string semantics they depend on, so
that what specgen calls a requirement or a scenario is exactly what the CLI calls one:

- Text is normalized first: one leading U+FEFF is dropped, CRLF and lone CR become LF.
- JavaScript's ``\\s`` and ``trim()`` use their own whitespace set (it includes U+FEFF and
  excludes U+001C..U+001F and U+0085, unlike Python's), and ``.`` stops at CR, U+2028 and
  U+2029. ``WS``, ``js_trim`` and ``NOT_EOL`` below stand in for them.
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


def js_trim(text: str) -> str:
    return text.strip(WS_CHARS)


def js_trim_end(text: str) -> str:
    return text.rstrip(WS_CHARS)


def normalize(text: str) -> str:
    """Drop one leading BOM; CRLF and lone CR become LF."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


# ---------------------------------------------------------------------------- fences

_FENCE_OPEN = re.compile(rf"[{WS}]*(`{{3,}}|~{{3,}})")
_FENCE_CLOSE = re.compile(rf"[{WS}]*(`{{3,}}|~{{3,}})[{WS}]*\Z")


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

# A line that ends the content of open sections of its level or deeper.
_BOUNDARY = re.compile(rf"(#{{1,6}})[{WS}]")
# A line that opens a section: the boundary pattern plus a non-empty title on one line.
_HEADER = re.compile(rf"(#{{1,6}})[{WS}]+({NOT_EOL}+)\Z")
# Where a requirement's own text stops (any header-looking line, checked on raw lines).
_ANY_HEADER = re.compile(rf"#{{1,6}}[{WS}]")
# `**ID**: ...` lines: requirement metadata, skipped when other body text exists.
_METADATA = re.compile(r"\*\*[^*]+\*\*:")


def header_of(line: str) -> tuple[int, str] | None:
    """(level, trimmed title) when `line` opens a section (fence state is the caller's)."""
    if not line.startswith("#"):
        return None
    m = _HEADER.match(line)
    if not m:
        return None
    return len(m.group(1)), js_trim(m.group(2))


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
    """A normalized text split into lines, its fence mask and its section tree."""

    __slots__ = ("lines", "mask", "roots", "sections")

    def __init__(self, text: str, *, normalized: bool = False):
        if not normalized:
            text = normalize(text)
        self.lines = text.split("\n")
        self.mask = fence_mask(self.lines)
        self.roots: list[Section] = []
        self.sections: list[Section] = []  # every section, in document order
        self._build()

    def _build(self) -> None:
        lines, mask = self.lines, self.mask
        stack: list[Section] = []  # tree parents (popped only by real headers)
        open_: list[Section] = []  # sections whose content has not ended yet
        for i, line in enumerate(lines):
            if not line.startswith("#") or mask[i]:
                continue
            b = _BOUNDARY.match(line)
            if not b:
                continue
            level = len(b.group(1))
            while open_ and open_[-1].level >= level:
                open_.pop().end = i
            h = _HEADER.match(line)
            if not h:
                continue
            sec = Section(level, js_trim(h.group(2)), i)
            while stack and stack[-1].level >= level:
                stack.pop()
            (stack[-1].children if stack else self.roots).append(sec)
            stack.append(sec)
            open_.append(sec)
            self.sections.append(sec)
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

    def find(self, title: str) -> Section | None:
        """The first section, in document order and at any level, whose title matches
        `title` case-insensitively (how the CLI finds Purpose, Requirements, Why...)."""
        want = title.lower()
        for sec in self.sections:
            if sec.title.lower() == want:
                return sec
        return None


# ---------------------------------------------------------------------------- requirement text


def requirement_body(body_lines: list[str]) -> str:
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

# An ATX closing run: only a run preceded by a space or tab closes the heading.
_CLOSING_RUN = re.compile(r"[ \t]+#+[ \t]*\Z")
_REQ_PREFIX = re.compile(rf"requirement:[{WS}]*", re.I | re.A)
_SCN_PREFIX = re.compile(rf"scenario:[{WS}]*", re.I | re.A)


def strip_closing_run(name: str) -> str:
    return js_trim(_CLOSING_RUN.sub("", name, count=1))


def requirement_name(title: str) -> str:
    """The requirement's name from its header title: `Requirement: Foo ###` -> `Foo`.

    A child of ``## Requirements`` whose title has no ``Requirement:`` prefix is still a
    requirement to the CLI; its name is the whole title.
    """
    m = _REQ_PREFIX.match(title)
    if m:
        title = title[m.end() :]
    return strip_closing_run(title)


def scenario_name(title: str) -> str:
    """`Scenario: Foo ####` -> `Foo` (the closing run first, then the optional prefix)."""
    name = _CLOSING_RUN.sub("", title, count=1)
    m = _SCN_PREFIX.match(name)
    if m:
        name = name[m.end() :]
    return js_trim(name)
