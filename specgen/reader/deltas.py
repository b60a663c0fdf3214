"""Delta specs, as the OpenSpec CLI 1.13.2 ``show`` reads them for ``show <change>``.

``parse_delta_text(text)`` groups a change's ``specs/<cap>/spec.md`` into ADDED / MODIFIED /
REMOVED / RENAMED entries; ``delta_requirements`` turns them into model ``Delta`` objects, each
block re-read with the section-tree reader as ``show`` does (see docs/reading-openspec.md).
Every name is decided without backtracking (linear in the line length).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from specgen.model import ADDED, MODIFIED, REMOVED, RENAMED, Delta, Requirement
from specgen.reader.markdown import Document, fence_mask, header_parts, strip_closing_run
from specgen.reader.specs import requirement_from_section
from specgen.reader.text import EOL_IN_LINE, WS, WS_CHARS, js_trim, js_trim_end, normalize


# ---------------------------------------------------------------------------- delta specs

_REMOVED_BULLET = re.compile(rf"[{WS}]*[-*+][{WS}]*`?###[{WS}]*Requirement:")
_RENAME_FROM = re.compile(rf"[{WS}]*[-*+]?[{WS}]*FROM:[{WS}]*`?###[{WS}]*Requirement:")
_RENAME_TO = re.compile(rf"[{WS}]*[-*+]?[{WS}]*TO:[{WS}]*`?###[{WS}]*Requirement:")
_DELTA_TITLES = {"added requirements": ADDED, "modified requirements": MODIFIED,
                 "removed requirements": REMOVED, "renamed requirements": RENAMED}
_REQ_TITLE = re.compile(rf"requirement:[{WS}]*[^{WS}]", re.I | re.A)


def delta_requirement_name(line: str) -> str | None:
    r"""The name in a delta reader's requirement header (JavaScript
    `/^###\s*Requirement:\s*(.+)\s*$/i`, then the closing run dropped and trimmed), or None.
    Decided without backtracking."""
    if not line.startswith("###"):
        return None
    rest = line[3:].lstrip(WS_CHARS)
    if rest[:12].lower() != "requirement:":
        return None
    r = rest[12:]
    p = len(r) - len(r.lstrip(WS_CHARS))
    if p == len(r):  # blanks only: a one-blank name, if any blank is no line terminator
        return "" if any(c not in EOL_IN_LINE for c in r) else None
    e = min([i for i in (r.find(c, p) for c in EOL_IN_LINE) if i != -1] or [len(r)])
    if r[e:].strip(WS_CHARS):
        return None
    return strip_closing_run(r[p:e])


def _lazy_tail(r: str) -> str | None:
    r"""JavaScript `\s*(.+?)`?\s*$` over `r`: the group (the text up to an optional closing
    backtick and trailing blanks), or None."""
    p = len(r) - len(r.lstrip(WS_CHARS))
    if p == len(r):
        return "" if any(c not in EOL_IN_LINE for c in r) else None
    n = len(r.rstrip(WS_CHARS))
    x = n - 1 if r[n - 1] == "`" and n - 1 >= p + 1 else n
    name = r[p:x]
    if any(c in name for c in EOL_IN_LINE):
        return None
    return name


def _prefixed_name(pattern: re.Pattern, line: str) -> str | None:
    m = pattern.match(line)
    if not m:
        return None
    name = _lazy_tail(line[m.end():])
    return None if name is None else strip_closing_run(name)


@dataclass
class _Block:
    name: str
    raw: str
    line: int  # 1-based line of the header


@dataclass
class DeltaText:
    """What one delta spec file says, grouped as the CLI's `show` reports it."""

    added: list[_Block] = field(default_factory=list)
    modified: list[_Block] = field(default_factory=list)
    removed: list[tuple[str, int]] = field(default_factory=list)  # (name, line), document order
    removed_blocks: list[_Block] = field(default_factory=list)
    renamed: list[tuple[str, str, int]] = field(default_factory=list)  # (from, to, line of FROM)
    has_sections: bool = False


def _is_delta_req(line: str) -> bool:
    return line.startswith("###") and delta_requirement_name(line) is not None


def _is_level2(line: str) -> bool:
    return line.startswith("##") and (header_parts(line) or (0,))[0] == 2


def _blocks(lines: list[str], mask: list[bool], start: int, end: int) -> list[_Block]:
    """Requirement blocks of one delta section: each from a `### Requirement:` header to the
    next one or the next `## ` line (fenced lines never count as either)."""
    blocks: list[_Block] = []
    i = start
    while i < end:
        while i < end and (mask[i] or not _is_delta_req(lines[i])):
            i += 1
        if i >= end:
            break
        name = delta_requirement_name(lines[i])
        header = i
        i += 1
        while i < end and (mask[i] or not (_is_delta_req(lines[i]) or _is_level2(lines[i]))):
            i += 1
        raw = js_trim_end("\n".join(lines[header:i]))
        blocks.append(_Block(name, raw, header + 1))
    return blocks


def parse_delta_text(text: str) -> DeltaText:
    doc_lines = normalize(text).split("\n")
    mask = fence_mask(doc_lines)
    heads: list[tuple[int, str]] = []
    for i, line in enumerate(doc_lines):
        if not mask[i] and line.startswith("##"):
            h = header_parts(line)
            if h is not None and h[0] == 2 and h[1] is not None:
                heads.append((i, h[1]))
    out = DeltaText()
    for k, (idx, title) in enumerate(heads):
        op = _DELTA_TITLES.get(title.lower())
        if op is None:
            continue
        out.has_sections = True
        start, end = idx + 1, heads[k + 1][0] if k + 1 < len(heads) else len(doc_lines)
        if op == ADDED:
            out.added.extend(_blocks(doc_lines, mask, start, end))
        elif op == MODIFIED:
            out.modified.extend(_blocks(doc_lines, mask, start, end))
        elif op == REMOVED:
            for i in range(start, end):
                if mask[i]:
                    continue
                line = doc_lines[i]
                name = delta_requirement_name(line)
                if name is None:
                    name = _prefixed_name(_REMOVED_BULLET, line)
                if name is not None:
                    out.removed.append((name, i + 1))
            out.removed_blocks.extend(_blocks(doc_lines, mask, start, end))
        else:  # RENAMED: a FROM line then a TO line; anything else pairs with nothing
            pending: tuple[str, int] | None = None
            for i in range(start, end):
                if mask[i]:
                    continue
                line = doc_lines[i]
                frm = _prefixed_name(_RENAME_FROM, line) if "FROM:" in line else None
                if frm is not None:
                    pending = (frm, i + 1)
                    continue
                to = _prefixed_name(_RENAME_TO, line) if "TO:" in line else None
                if to is not None and pending is not None:
                    out.renamed.append((pending[0], to, pending[1]))
                    pending = None
    return out


class DropFile(Exception):  # control flow only, never leaves this layer
    """The CLI's `show` fails on this block and silently drops the whole file's deltas."""


def _block_requirement(block: _Block) -> Requirement | None:
    """A delta block read as the CLI's `show` reads it: re-parsed as a small document whose
    first line is `### <title>`; kept only when its first section's title is
    `Requirement: <something>`."""
    header, nl, body = block.raw.partition("\n")
    title = js_trim(re.sub(rf"\A###[{WS}]*", "", header, count=1))
    doc = Document(f"### {title}\n{body}" if nl else f"### {title}")
    if not doc.roots:
        # Only when the title holds a line separator (U+2028...): the CLI then reads an
        # undefined section and throws, and its catch-all skips the file.
        raise DropFile
    sec = doc.roots[0]
    if not _REQ_TITLE.match(sec.title):
        return None
    return requirement_from_section(doc, sec, block.line - 1)


def delta_requirements(spec_id: str, path: Path, dt: DeltaText) -> list[Delta]:
    """The deltas of one file in the CLI's `show` order: ADDED, MODIFIED, REMOVED, RENAMED."""
    out: list[Delta] = []
    for op, blocks, verb in ((ADDED, dt.added, "Add"), (MODIFIED, dt.modified, "Modify")):
        for b in blocks:
            req = _block_requirement(b)
            if req is not None:
                out.append(Delta(spec_id, op, path, req.line, requirement=req, name=req.name,
                                 description=f"{verb} requirement: {req.text}"))
    pool: dict[str, deque[_Block]] = {}
    for b in dt.removed_blocks:
        pool.setdefault(b.name, deque()).append(b)
    for name, line in dt.removed:
        # Each name takes the first unused block of exactly that name; a bullet-form entry
        # has none and reads as a bare header.
        queue = pool.get(name)
        block = queue.popleft() if queue else _Block(name, f"### Requirement: {name}", line)
        req = _block_requirement(block)
        if req is not None:
            out.append(Delta(spec_id, REMOVED, path, req.line, requirement=req, name=name,
                             description=f"Remove requirement: {req.text}"))
    for frm, to, line in dt.renamed:
        out.append(Delta(spec_id, RENAMED, path, line, name=to, rename_from=frm,
                         description=f'Rename requirement from "{frm}" to "{to}"'))
    return out
