"""Requirement blocks: the reader behind the OpenSpec CLI 1.13.2 ``validate <change>`` and
``archive`` (see docs/reading-openspec.md).

These commands do not build a section tree: they cut a file into *requirement blocks* (a
``### Requirement:`` header plus everything up to the next one or the next ``## `` line, raw
text kept verbatim) and rebuild specs from those blocks. ``extract_requirements_section`` cuts
a main spec; ``parse_delta_spec`` cuts a delta spec into its ADDED / MODIFIED / REMOVED /
RENAMED entries (a :class:`DeltaPlan`), with what the merge ignores (unpaired renames,
requirements outside a delta section, non-requirement headers) kept for the validator.

Regexes spell out JavaScript's semantics (:mod:`specgen.reader.text`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from itertools import compress, repeat
from pathlib import Path

from specgen.reader.files import Files
from specgen.reader.markdown import fence_mask, header_parts, scenario_name, strip_closing_run
from specgen.reader.text import (
    EOL_IN_LINE,
    JS_SPACE,
    WS_CHARS,
    ascii_caseless,
    js_trim,
    js_trim_end,
    normalize,
    normalize_eol,
)

LEVEL2_HEADER = re.compile("^##" + JS_SPACE + "+")
REQUIREMENTS_HEADER = re.compile("^##" + JS_SPACE + "+" + ascii_caseless("Requirements") + JS_SPACE + "*\\Z")
# The prefixes of REMOVED bullets and RENAMED lines, up to `Requirement:` (the name is read after).
# JS_SPACE, not a [WS] class: the same characters, and `re` compiles it three times faster (start-up).
_REMOVED_BULLET = re.compile(rf"{JS_SPACE}*[-*+]{JS_SPACE}*`?###{JS_SPACE}*Requirement:")
_RENAME_FROM = re.compile(rf"{JS_SPACE}*[-*+]?{JS_SPACE}*FROM:{JS_SPACE}*`?###{JS_SPACE}*Requirement:")
_RENAME_TO = re.compile(rf"{JS_SPACE}*[-*+]?{JS_SPACE}*TO:{JS_SPACE}*`?###{JS_SPACE}*Requirement:")
SCENARIO_HEADER = re.compile("^####" + JS_SPACE + "+")
_SCENARIO_BODY_END = re.compile("^#{1,4}" + JS_SPACE)
_SHALL_MUST = re.compile(r"\b(SHALL|MUST)\b", re.ASCII)


def normalize_requirement_name(name: str) -> str:
    """The requirement's matching key: an ATX closing `#` run dropped, then trimmed (case kept)."""
    return strip_closing_run(name)


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
    """The name after a REMOVED bullet or RENAMED prefix (`pattern`), or None."""
    m = pattern.match(line)
    if not m:
        return None
    name = _lazy_tail(line[m.end() :])
    return None if name is None else strip_closing_run(name)


def level2_title(line: str) -> str | None:
    r"""The trimmed title of a `## ` header (JavaScript `/^(##)\s+(.+)$/`), or None. Linear."""
    h = header_parts(line) if line.startswith("##") else None
    return h[1] if h is not None and h[0] == 2 else None


def h3_title(line: str) -> str | None:
    r"""The trimmed title of any `### ` header (JavaScript `/^###\s+(.+?)\s*$/`), or None.
    Decided without backtracking: after the blanks, the title runs to the last non-blank and
    holds no line terminator; a line of blanks only has the empty title when a blank after the
    first is no line terminator."""
    if not line.startswith("###"):
        return None
    r = line[3:]
    if not r or r[0] not in WS_CHARS:
        return None
    p = len(r) - len(r.lstrip(WS_CHARS))
    if p == len(r):
        return "" if any(c not in EOL_IN_LINE for c in r[1:]) else None
    title = r[p : len(r.rstrip(WS_CHARS))]
    return None if any(c in EOL_IN_LINE for c in title) else title


def is_requirement_header(line: str) -> bool:
    return line.startswith("###") and delta_requirement_name(line) is not None


def fold_requirement_name(name: str) -> str:
    """Case- and whitespace-insensitive fold, used only to detect near-miss headers."""
    return re.sub(JS_SPACE + "+", " ", normalize_requirement_name(name).lower())


def contains_shall_or_must(text: str) -> bool:
    return _SHALL_MUST.search(text) is not None


def _scenario_bodies(body_lines: list[str]) -> list[str]:
    mask = fence_mask(body_lines)
    bodies = []
    n = len(body_lines)
    for i in range(n):
        if mask[i] or not body_lines[i].startswith("####") or not SCENARIO_HEADER.match(body_lines[i]):
            continue
        end = i + 1
        while end < n and (
            mask[end] or not body_lines[end].startswith("#") or not _SCENARIO_BODY_END.match(body_lines[end])
        ):
            end += 1
        bodies.append("\n".join(body_lines[i + 1 : end]))
    return bodies


def count_scenarios(body_lines: list[str]) -> int:
    """Scenarios that count: non-fenced `#### ` headers with a non-blank body."""
    return sum(1 for b in _scenario_bodies(body_lines) if js_trim(b))


def count_empty_scenarios(body_lines: list[str]) -> int:
    return sum(1 for b in _scenario_bodies(body_lines) if not js_trim(b))


# --------------------------------------------------------------------------------------------
# Requirement blocks (the reader behind `validate <change>` and `archive`)
# --------------------------------------------------------------------------------------------


@dataclass
class Block:
    header_line: str
    name: str
    raw: str
    line: int = 0  # 1-based line of the header in its file (0 when synthesised)


@dataclass
class RequirementsParts:
    before: str
    header_line: str
    preamble: str
    body_blocks: list[Block]
    after: str
    header_index: int = -1  # 0-based line of `## Requirements`, -1 when absent


def extract_requirements_section(content: str) -> RequirementsParts:
    """The `## Requirements` section cut into preamble and requirement blocks (cached per text;
    callers must not mutate the result)."""
    return _extract_requirements_section(content)


@functools.lru_cache(maxsize=256)
def _extract_requirements_section(content: str) -> RequirementsParts:
    lines = normalize(content).split("\n")
    mask = fence_mask(lines)
    idx = next(
        (i for i, ln in enumerate(lines) if not mask[i] and ln.startswith("##") and REQUIREMENTS_HEADER.match(ln)), -1
    )
    if idx == -1:
        before = js_trim_end(content)
        return RequirementsParts(before + "\n\n" if before else "", "## Requirements", "", [], "\n")
    end = len(lines)
    for i in range(idx + 1, len(lines)):
        if not mask[i] and lines[i].startswith("##") and LEVEL2_HEADER.match(lines[i]):
            end = i
            break
    before = "\n".join(lines[:idx])
    header_line = lines[idx]
    body = lines[idx + 1 : end]
    bmask = mask[idx + 1 : end]

    # A block runs from a `### Requirement:` header (outside a fence) to the next one; the section
    # itself ends at the next `## ` header. Only lines starting with `##` can be headers: they are
    # found with C-level iteration, not by testing every line.
    heads = [c for c in compress(range(len(body)), map(str.startswith, body, repeat("###"))) if not bmask[c]]
    names = {c: n for c in heads if (n := delta_requirement_name(body[c])) is not None}
    starts = list(names)  # in line order
    blocks: list[Block] = []
    for k, start in enumerate(starts):
        end_at = starts[k + 1] if k + 1 < len(starts) else len(body)
        blocks.append(Block(body[start], names[start], js_trim_end("\n".join(body[start:end_at])), idx + 2 + start))
    after = "\n".join(lines[end:])
    preamble = js_trim_end("\n".join(body[: next(iter(names), len(body))]))
    return RequirementsParts(
        before + "\n" if js_trim_end(before) else before,
        header_line,
        preamble,
        blocks,
        after if after.startswith("\n") else "\n" + after,
        idx,
    )


@dataclass
class RenamePair:
    frm: str
    to: str
    line: int  # line of the FROM: entry


@dataclass
class RemovedEntry:
    name: str
    line: int


@dataclass
class DeltaPlan:
    added: list[Block]
    modified: list[Block]
    removed: list[RemovedEntry]
    removed_blocks: list[Block]
    renamed: list[RenamePair]
    unpaired_renames: list[dict]  # {side, name, line}
    orphaned_requirements: list[dict]  # {name, section, line}
    skipped_headers: list[dict]  # {header, section, line}
    section_presence: dict  # added/modified/removed/renamed -> bool
    section_lines: dict = field(default_factory=dict)  # op -> first header line


_DELTA_TITLES = ("added requirements", "modified requirements", "removed requirements", "renamed requirements")


def _split_top_level_sections(lines: list[str], mask: list[bool]):
    idx = []
    for i, line in enumerate(lines):
        if mask[i] or not line.startswith("##"):
            continue
        title = level2_title(line)
        if title is not None:
            idx.append((title, i))
    out = []
    for k, (title, i) in enumerate(idx):
        end = idx[k + 1][1] if k + 1 < len(idx) else len(lines)
        out.append((title, lines[i + 1 : end], mask[i + 1 : end], i + 2))
    return out


def _parse_blocks(lines, mask, start_line, section_title=None, sink=None) -> list[Block]:
    n = len(lines)
    if n == 0:
        return []

    def is_req(i):
        return not mask[i] and is_requirement_header(lines[i])

    def record(i):
        if sink is None or mask[i] or not lines[i].startswith("###"):
            return
        title = h3_title(lines[i])
        if title is not None and not is_requirement_header(lines[i]):
            sink.append({"header": title, "section": section_title, "line": start_line + i})

    blocks = []
    i = 0
    while i < n:
        while i < n and not is_req(i):
            record(i)
            i += 1
        if i >= n:
            break
        hl = lines[i]
        name = delta_requirement_name(hl)
        line = start_line + i
        buf = [hl]
        i += 1
        while (
            i < n
            and not is_req(i)
            and not (not mask[i] and lines[i].startswith("##") and LEVEL2_HEADER.match(lines[i]))
        ):
            record(i)
            buf.append(lines[i])
            i += 1
        blocks.append(Block(hl, name, js_trim_end("\n".join(buf)), line))
    return blocks


def parse_delta_spec(content: str) -> DeltaPlan:
    """Cut a delta spec into its ADDED/MODIFIED/REMOVED/RENAMED entries, as archive reads it
    (cached per text; callers must not mutate the result)."""
    return _parse_delta_spec(content)


@functools.lru_cache(maxsize=256)
def _parse_delta_spec(content: str) -> DeltaPlan:
    lines = normalize(content).split("\n")
    mask = fence_mask(lines)
    sections = _split_top_level_sections(lines, mask)
    lookups = {}
    for key, desired in (
        ("added", "ADDED Requirements"),
        ("modified", "MODIFIED Requirements"),
        ("removed", "REMOVED Requirements"),
        ("renamed", "RENAMED Requirements"),
    ):
        target = desired.lower()
        matches = [s for s in sections if s[0].lower() == target]
        lookups[key] = (matches[0][0] if matches else desired, matches)
    skipped: list[dict] = []
    added = [b for s in lookups["added"][1] for b in _parse_blocks(s[1], s[2], s[3], lookups["added"][0], skipped)]
    modified = [
        b for s in lookups["modified"][1] for b in _parse_blocks(s[1], s[2], s[3], lookups["modified"][0], skipped)
    ]
    removed, removed_blocks = _removed_entries(lookups["removed"][1])
    renamed, unpaired = _rename_pairs(lookups["renamed"][1])
    skipped.sort(key=lambda s: s["line"])
    return DeltaPlan(
        added,
        modified,
        removed,
        removed_blocks,
        renamed,
        unpaired,
        _orphans(lines, mask),
        skipped,
        {k: bool(v[1]) for k, v in lookups.items()},
        {k: v[1][0][3] - 1 for k, v in lookups.items() if v[1]},
    )


def _removed_entries(sections) -> tuple[list[RemovedEntry], list[Block]]:
    """REMOVED: every `### Requirement:` header or `- ### Requirement:` bullet, and the blocks."""
    removed: list[RemovedEntry] = []
    removed_blocks: list[Block] = []
    for _, blines, bmask, start in sections:
        for i, line in enumerate(blines):
            if bmask[i]:
                continue
            name = delta_requirement_name(line)
            if name is None:
                name = _prefixed_name(_REMOVED_BULLET, line)
            if name is not None:
                removed.append(RemovedEntry(name, start + i))
        removed_blocks.extend(_parse_blocks(blines, bmask, start))
    return removed, removed_blocks


def _rename_pairs(sections) -> tuple[list[RenamePair], list[dict]]:
    """RENAMED: each FROM line pairs with the next TO line; the rest are unpaired (by line)."""
    unpaired: list[dict] = []
    renamed: list[RenamePair] = []
    for _, blines, bmask, start in sections:
        pending = None
        for i, line in enumerate(blines):
            if bmask[i]:
                continue
            frm = _prefixed_name(_RENAME_FROM, line) if "FROM:" in line else None
            to = None if frm is not None or "TO:" not in line else _prefixed_name(_RENAME_TO, line)
            if frm is not None:
                if pending:
                    unpaired.append({"side": "FROM", "name": pending[0], "line": pending[1]})
                pending = (frm, start + i)
            elif to is not None:
                if not pending:
                    unpaired.append({"side": "TO", "name": to, "line": start + i})
                    continue
                renamed.append(RenamePair(pending[0], to, pending[1]))
                pending = None
        if pending:
            unpaired.append({"side": "FROM", "name": pending[0], "line": pending[1]})
    unpaired.sort(key=lambda u: u["line"])
    return renamed, unpaired


def _orphans(lines: list[str], mask: list[bool]) -> list[dict]:
    """Canonical requirement headers outside every delta section: the merge ignores them."""
    orphans = []
    section = None
    for i, line in enumerate(lines):
        if mask[i]:
            continue
        title = level2_title(line)
        if title is not None:
            section = title
            continue
        if section is not None and section.lower() in _DELTA_TITLES:
            continue
        name = delta_requirement_name(line)
        if name is not None:
            orphans.append({"name": name, "section": section, "line": i + 1})
    return orphans


def scenario_names(raw: str) -> list[str]:
    """The names of a block's scenarios (`#### ` headers outside fences), as `show` names them."""
    lines = normalize_eol(raw).split("\n")
    mask = fence_mask(lines)
    names = []
    for i, line in enumerate(lines):
        if mask[i] or not line.startswith("####") or not SCENARIO_HEADER.match(line):
            continue
        names.append(scenario_name(SCENARIO_HEADER.sub("", line, count=1)))
    return names


def find_unread_delta_files(specs_root: Path, files: Files | None = None) -> list[dict]:
    """Markdown files under a change's specs/ that carry delta sections but are not a spec.md."""
    results = []
    files = files or Files()

    def walk(d: Path, segments: list[str]) -> None:
        try:
            entries = files.entries(d)
        except (FileNotFoundError, NotADirectoryError):
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir(follow_symlinks=False):
                walk(Path(e.path), segments + [e.name])
                continue
            if not (e.is_file(follow_symlinks=False) or e.is_symlink()):
                continue
            if e.name == "spec.md" or not e.name.lower().endswith(".md"):
                continue
            if e.is_symlink() and not files.isfile(e.path):
                continue
            try:
                content = files.text(e.path)
            except FileNotFoundError:
                continue
            if not any(parse_delta_spec(content).section_presence.values()):
                continue
            cap = "/".join(segments) if segments else e.name[:-3]
            results.append({"path": "/".join(segments + [e.name]), "expected": f"{cap}/spec.md"})

    walk(Path(specs_root), [])
    results.sort(key=lambda r: r["path"])
    return results


def _mask_html_comments(content: str) -> str:
    out = []
    index = 0
    while True:
        op = content.find("<!--", index)
        if op == -1:
            out.append(content[index:])
            return "".join(out)
        out.append(content[index:op])
        close = -1
        i = op + 4
        while i < len(content):
            if content.startswith("-->", i):
                close = i + 3
                break
            if content.startswith("--!>", i):
                close = i + 4
                break
            i += 1
        if close == -1:
            out.append(re.sub("[^\n]", " ", content[op:]))
            return "".join(out)
        out.append(re.sub("[^\n]", " ", content[op:close]))
        index = close


_PURPOSE_H2 = re.compile("^##" + JS_SPACE + "+" + ascii_caseless("Purpose") + JS_SPACE + "*\\Z")


def extract_purpose_section(content: str) -> str | None:
    """Body of `## Purpose` (fences and HTML comments ignored for structure), or None."""
    normalized = normalize_eol(content)
    lines = normalized.split("\n")
    masked = _mask_html_comments(normalized).split("\n")
    fm = fence_mask(masked)
    start = next((i for i, ln in enumerate(masked) if not fm[i] and _PURPOSE_H2.match(ln)), -1)
    if start == -1:
        return None
    end = len(masked)
    for i in range(start + 1, len(masked)):
        if not fm[i] and LEVEL2_HEADER.match(masked[i]):
            end = i
            break
    prose = js_trim("\n".join(masked[i] for i in range(start + 1, end) if not fm[i]))
    if not prose:
        return None
    body = js_trim("\n".join(lines[start + 1 : end]))
    return body or None
