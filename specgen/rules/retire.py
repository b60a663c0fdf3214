"""Retirement: what a merge that removed a capability's last requirement may delete.

``openspec archive`` deletes such a spec only when the change declares ``retire_capabilities``
and the spec holds nothing the merge cannot name (title, Purpose, the Requirements header and
each requirement's header, statement and scenario bullets); see docs/validation.md.
"""

from __future__ import annotations

import re

from specgen.errors import ERROR
from specgen.reader.blocks import RequirementsParts
from specgen.reader.markdown import fence_mask
from specgen.reader.text import DOT, JS_SPACE, ascii_caseless, content_column, js_trim, normalize_eol
from specgen.rules.merge import first_foreign_tail
from specgen.rules.validate_spec import MSG_NO_REQUIREMENTS, validate_spec_content

_HTML_H = re.compile("^" + JS_SPACE + "*<[hH][1-6](?![A-Za-z0-9_])")
_INTERRUPTS = re.compile("^ {0,3}(?:>|(?:[-*_][ \t]*){3,}\\Z|(?:[-*+]|[0-9]{1,9}[.)])(?:[ \t]|\\Z)|[<|])")
_LIST_ITEM = re.compile("^(" + JS_SPACE + "*(?:[-*+]|[0-9]{1,9}[.)])" + JS_SPACE + "+)")
_SETEXT = re.compile("^ {0,3}(?:=+|-+)" + JS_SPACE + "*\\Z")


def _drop_indent(line: str, columns: int) -> str:
    col = i = 0
    while i < len(line) and col < columns:
        ch = line[i]
        if ch == " ":
            col += 1
        elif ch == "\t":
            col += 4 - col % 4
        else:
            break
        i += 1
    return line[i:]


def _is_heading_line(line: str) -> bool:
    return re.match("^ {0,3}#{1,6}(?:[ \t]|\\Z)", line) is not None or _HTML_H.match(line) is not None


def content_the_merge_cannot_name(parts: RequirementsParts) -> list[str]:
    """Non-blank lines a retirement would delete without being able to name them.

    Expected parts are the title, the `## Purpose` section, the `## Requirements` header and each
    requirement's header, statement and scenario bullets; everything else is reported.
    """
    left = _unnamed_before_requirements(parts.before)
    for sl in (parts.preamble, parts.after):
        for line in sl.split("\n"):
            if js_trim(line):
                left.append(js_trim(line))
    for block in parts.body_blocks:
        left.extend(_unnamed_in_block(block.raw))
    return list(dict.fromkeys(left))


def _unnamed_before_requirements(before: str) -> list[str]:
    """Lines above `## Requirements` other than the title and the Purpose section."""
    left: list[str] = []
    before = before[1:] if before.startswith("\ufeff") else before
    blines = normalize_eol(before).split("\n")
    bmask = fence_mask(blines)
    in_purpose = title_seen = False
    prev = ""
    for i, line in enumerate(blines):
        if not js_trim(line):
            prev = ""
            continue
        if not bmask[i]:
            sec = re.match("^ {0,3}##" + JS_SPACE + "+(" + DOT + "+?)" + JS_SPACE + "*\\Z", line)
            if sec:
                in_purpose = re.match("^purpose\\Z", js_trim(sec.group(1)), re.I | re.ASCII) is not None
                if not in_purpose:
                    left.append(js_trim(line))
                prev = line
                continue
            setext = in_purpose and js_trim(prev) and re.match("^ {0,3}(=+|-+)" + JS_SPACE + "*\\Z", line)
            html = re.match("^ {0,3}<h[1-6]\\b", line, re.I | re.ASCII)
            if setext or html:
                left.append(js_trim(prev if setext else line))
                in_purpose = False
                prev = line
                continue
            if re.match("^ {0,3}#" + JS_SPACE + "+" + DOT + "+\\Z", line):
                if not title_seen and not in_purpose:
                    title_seen = True
                else:
                    left.append(js_trim(line))
                    in_purpose = False
                prev = line
                continue
        prev = line
        if in_purpose:
            continue
        left.append(js_trim(line))
    return left


def _unnamed_in_block(raw: str) -> list[str]:
    """Lines of a requirement block other than its header, statement and scenario bullets
    (CommonMark list continuation and lazy lines included)."""
    left: list[str] = []
    tail = first_foreign_tail(raw)
    if tail:
        left.append(tail[0])
    lines = normalize_eol(raw).split("\n")
    mask = fence_mask(lines)
    seen_scenario = in_bullets = bullets_seen = para_open = False
    list_indent = None
    for i, line in enumerate(lines):
        if not js_trim(line):
            if bullets_seen:
                in_bullets = False
            list_indent = None
            para_open = False
            continue
        if i == 0:
            continue
        indent = content_column(re.match("^[ \t]*", line).group(0))
        inside = list_indent is not None and indent >= list_indent
        within = _drop_indent(line, list_indent) if inside else line
        lazy = para_open and in_bullets and not _INTERRUPTS.match(within)
        continues = (inside or lazy) and not _is_heading_line(within)
        if mask[i]:
            if not inside:
                list_indent = None
            para_open = False
            continue
        if i > 1 and _SETEXT.match(within) and js_trim(lines[i - 1]):
            left.append(js_trim(lines[i - 1]))
            list_indent = None
            para_open = False
            continue
        if continues:
            para_open = not _INTERRUPTS.match(within)
            continue
        bullet = _LIST_ITEM.match(line)
        list_indent = content_column(bullet.group(1)) if bullet else None
        para_open = bullet is not None
        if re.match("^ {0,3}####" + JS_SPACE + "+" + ascii_caseless("Scenario:"), line):
            seen_scenario = in_bullets = True
            bullets_seen = False
            continue
        if bullet:
            if in_bullets:
                bullets_seen = True
                continue
            if not seen_scenario:
                continue
            left.append(js_trim(line))
            continue
        if not seen_scenario and not re.match("^" + JS_SPACE + "*[|<]", line):
            continue
        left.append(js_trim(line))
    return left


def describe_unaccounted(lines: list[str]) -> str:
    shown = []
    for line in lines[:3]:
        safe = re.sub("[\x00-\x1f\x7f]", "?", line)
        shown.append(f'"{safe[:200]}\u2026"' if len(safe) > 200 else f'"{safe}"')
    rest = f", and {len(lines) - 3} more line(s)" if len(lines) > 3 else ""
    return ", ".join(shown) + rest


def is_retirable_spec(spec_id: str, text: str) -> bool:
    """The rebuilt spec's only error is that it has no requirement left (what retiring replaces)."""
    errors = [i for i in validate_spec_content(spec_id, text) if i.level == ERROR]
    return bool(errors) and all(i.message == MSG_NO_REQUIREMENTS for i in errors)
