"""The delta engine: OpenSpec's requirement-block reading and archive (delta-merge) semantics.

OpenSpec reads a spec two ways. ``show`` and ``validate <spec>`` use a section-tree markdown
reader (reproduced here by :func:`parse_spec_text`); ``validate <change>`` and ``archive`` cut a
file into *requirement blocks* (``### Requirement:`` header plus everything up to the next one,
raw text kept verbatim) and rebuild the main spec from those blocks. Both readers, the merge
(RENAMED, then REMOVED, then MODIFIED, then ADDED, with the CLI's abort conditions) and the exact
bytes the CLI writes are implemented here from the behaviour of OpenSpec CLI 1.13.2, probed
on fixture projects.

Everything is line based and regex based, like the CLI. JavaScript regex semantics differ
from Python's in ways that matter for fidelity, so the patterns below spell out JavaScript's
``\\s`` (``_S``), ``.`` (``_DOT``), ``$`` (``\\Z``) and ``String.prototype.trim`` (:func:`js_trim`).

Public API: :func:`apply_change` (merge a change into the current specs, in memory),
:func:`archive_change` (the same, then write and move the change like ``openspec archive``),
and the readers used by :mod:`specgen.validate`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from specgen.model import SpecgenError

# --------------------------------------------------------------------------------------------
# JavaScript string/regex primitives
# --------------------------------------------------------------------------------------------

# JavaScript's WhiteSpace + LineTerminator set (what `\s` matches and `trim()` strips).
JS_WS = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
        "\u2028\u2029\u202f\u205f\u3000\ufeff"
# Python's `\s` is JavaScript's minus U+FEFF plus U+001C..U+001F and U+0085; these spellings are
# exact and compile fast (a 20-character class above U+00FF makes `re` build a big charset table).
_S = "(?:[^\\S\\x1c-\\x1f\\x85]|\\ufeff)"
_NS = "(?:[\\x1c-\\x1f\\x85]|[^\\s\\ufeff])"
_DOT = "[^\n\r\u2028\u2029]"  # JavaScript `.` without the s flag
_A = re.ASCII


def _ci(word: str) -> str:
    """A case-insensitive literal as JavaScript's `i` (without `u`) reads ASCII words: [Rr][Ee]...

    Spelled out rather than flagged: Python's IGNORECASE also folds U+017F to `s` and U+212A to `k`,
    and re.ASCII would make `_S` below stop matching Unicode spaces.
    """
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


def js_trim(s: str) -> str:
    return s.strip(JS_WS)


def js_trim_end(s: str) -> str:
    return s.rstrip(JS_WS)


def js_trim_start(s: str) -> str:
    return s.lstrip(JS_WS)


def js_len(s: str) -> int:
    """String length as JavaScript counts it (UTF-16 code units)."""
    n = len(s)
    if s.isascii():
        return n
    return n + sum(1 for ch in s if ord(ch) > 0xFFFF)


def normalize_content(content: str) -> str:
    """Strip a leading BOM and normalise CRLF/CR to LF (what every OpenSpec reader does first)."""
    if content.startswith("\ufeff"):
        content = content[1:]
    if "\r" in content:
        content = content.replace("\r\n", "\n").replace("\r", "\n")
    return content


def normalize_eol(content: str) -> str:
    if "\r" in content:
        content = content.replace("\r\n", "\n").replace("\r", "\n")
    return content


# --------------------------------------------------------------------------------------------
# Fenced code blocks
# --------------------------------------------------------------------------------------------

_FENCE_OPEN = re.compile("^" + _S + "*(`{3,}|~{3,})")
_FENCE_CLOSE = re.compile("^" + _S + "*(`{3,}|~{3,})" + _S + "*\\Z")


def fence_mask(lines: list[str]) -> list[bool]:
    """True for every line inside a fenced block, the opening and closing fences included.

    A fence opens on a line whose first non-blank run is 3+ backticks or tildes; it closes on
    a line holding only a run of the same character at least as long. Unclosed fences run to
    the end of the input.
    """
    mask = [False] * len(lines)
    active: tuple[str, int] | None = None
    for i, line in enumerate(lines):
        if active is None:
            if "`" not in line and "~" not in line:
                continue
            m = _FENCE_OPEN.match(line)
            if m:
                run = m.group(1)
                active = (run[0], len(run))
                mask[i] = True
            continue
        mask[i] = True
        if ("`" in line or "~" in line):
            m = _FENCE_CLOSE.match(line)
            if m and m.group(1)[0] == active[0] and len(m.group(1)) >= active[1]:
                active = None
    return mask


# --------------------------------------------------------------------------------------------
# Requirement names and headers
# --------------------------------------------------------------------------------------------

REQUIREMENT_HEADER = re.compile("^###" + _S + "*" + _ci("Requirement:") + _S + "*(" + _DOT + "+)" + _S + "*\\Z")
_CLOSING_HASHES = re.compile("[ \t]+#+[ \t]*\\Z")
_H2 = re.compile("^(##)" + _S + "+(" + _DOT + "+)\\Z")
_TOP_LEVEL = re.compile("^##" + _S + "+")
_H3_ANY = re.compile("^###" + _S + "+(" + _DOT + "+?)" + _S + "*\\Z")
_REQUIREMENTS_H2 = re.compile("^##" + _S + "+" + _ci("Requirements") + _S + "*\\Z")
_REMOVED_BULLET = re.compile(
    "^" + _S + "*[-*+]" + _S + "*`?###" + _S + "*Requirement:" + _S + "*(" + _DOT + "+?)`?" + _S + "*\\Z")
_RENAME_FROM = re.compile(
    "^" + _S + "*[-*+]?" + _S + "*FROM:" + _S + "*`?###" + _S + "*Requirement:" + _S + "*(" + _DOT + "+?)`?"
    + _S + "*\\Z")
_RENAME_TO = re.compile(
    "^" + _S + "*[-*+]?" + _S + "*TO:" + _S + "*`?###" + _S + "*Requirement:" + _S + "*(" + _DOT + "+?)`?"
    + _S + "*\\Z")
SCENARIO_HEADER = re.compile("^####" + _S + "+")
_SCENARIO_BODY_END = re.compile("^#{1,4}" + _S)
_HEADER_LINE = re.compile("^#{1,6}" + _S)
_METADATA_LINE = re.compile("^\\*\\*[^*]+\\*\\*:")
_SCENARIO_PREFIX = re.compile("^" + _ci("Scenario:") + _S + "*")
_SHALL_MUST = re.compile(r"\b(SHALL|MUST)\b", _A)


def normalize_requirement_name(name: str) -> str:
    """The requirement's matching key: an ATX closing `#` run dropped, then trimmed (case kept)."""
    return js_trim(_CLOSING_HASHES.sub("", name, count=1))


def fold_requirement_name(name: str) -> str:
    """Case- and whitespace-insensitive fold, used only to detect near-miss headers."""
    return re.sub(_S + "+", " ", normalize_requirement_name(name).lower())


def contains_shall_or_must(text: str) -> bool:
    return _SHALL_MUST.search(text) is not None


# --------------------------------------------------------------------------------------------
# Requirement text and scenarios (shared by the spec reader and the delta validator)
# --------------------------------------------------------------------------------------------

def extract_requirement_body(body_lines: list[str]) -> str:
    """Body text of a requirement: non-blank, non-fenced lines up to the first header, trimmed.

    ``**Label**:`` metadata lines are dropped unless nothing else remains.
    """
    mask = fence_mask(body_lines)
    captured: list[str] = []
    metadata: list[str] = []
    for i, line in enumerate(body_lines):
        if mask[i]:
            continue
        if line.startswith("#") and _HEADER_LINE.match(line):
            break
        t = js_trim(line)
        if not t:
            continue
        if t.startswith("**") and _METADATA_LINE.match(t):
            metadata.append(t)
            continue
        captured.append(t)
    if captured:
        return "\n".join(captured)
    return "\n".join(metadata)


def _scenario_bodies(body_lines: list[str]) -> list[str]:
    mask = fence_mask(body_lines)
    bodies = []
    n = len(body_lines)
    for i in range(n):
        if mask[i] or not body_lines[i].startswith("####") or not SCENARIO_HEADER.match(body_lines[i]):
            continue
        end = i + 1
        while end < n and (mask[end] or not body_lines[end].startswith("#")
                           or not _SCENARIO_BODY_END.match(body_lines[end])):
            end += 1
        bodies.append("\n".join(body_lines[i + 1:end]))
    return bodies


def count_scenarios(body_lines: list[str]) -> int:
    """Scenarios that count: non-fenced `#### ` headers with a non-blank body."""
    return sum(1 for b in _scenario_bodies(body_lines) if js_trim(b))


def count_empty_scenarios(body_lines: list[str]) -> int:
    return sum(1 for b in _scenario_bodies(body_lines) if not js_trim(b))


# --------------------------------------------------------------------------------------------
# The section-tree reader (OpenSpec's markdown parser, behind `show` and `validate <spec>`)
# --------------------------------------------------------------------------------------------

_SECTION_HEADER = re.compile("^(#{1,6})" + _S + "+(" + _DOT + "+)\\Z")
_ANY_HEADER = re.compile("^(#{1,6})" + _S + "+")


@dataclass
class Section:
    level: int
    title: str
    content: str
    line: int  # 1-based line of the header
    children: list["Section"] = field(default_factory=list)


@dataclass
class ParsedRequirement:
    text: str
    scenarios: list[str]  # raw texts of the scenarios that count
    line: int
    title: str


@dataclass
class ParsedSpec:
    name: str
    overview: str
    requirements: list[ParsedRequirement]
    purpose_line: int | None
    requirements_line: int | None


class SpecParseError(Exception):
    """The markdown reader rejected the spec (no Purpose / no Requirements section)."""


def parse_sections(lines: list[str], mask: list[bool] | None = None) -> list[Section]:
    if mask is None:
        mask = fence_mask(lines)
    n = len(lines)
    # Header positions first, so each section's content is one slice.
    headers: list[tuple[int, int, str | None]] = []  # (index, level, title or None when only a boundary)
    for i, line in enumerate(lines):
        if mask[i] or not line.startswith("#"):
            continue
        m = _ANY_HEADER.match(line)
        if not m:
            continue
        full = _SECTION_HEADER.match(line)
        headers.append((i, len(m.group(1)), js_trim(full.group(2)) if full else None))
    sections: list[Section] = []
    stack: list[Section] = []
    for k, (i, level, title) in enumerate(headers):
        if title is None:
            continue
        end = n
        for j in range(k + 1, len(headers)):
            if headers[j][1] <= level:
                end = headers[j][0]
                break
        content = js_trim("\n".join(lines[i + 1:end]))
        sec = Section(level, title, content, i + 1)
        while stack and stack[-1].level >= level:
            stack.pop()
        (stack[-1].children if stack else sections).append(sec)
        stack.append(sec)
    return sections


def find_section(sections: list[Section], title: str) -> Section | None:
    t = title.lower()
    for s in sections:
        if s.title.lower() == t:
            return s
        c = find_section(s.children, title)
        if c:
            return c
    return None


def parse_spec_text(content: str, name: str) -> ParsedSpec:
    """Read a main spec as OpenSpec's markdown parser does; raise SpecParseError like it throws."""
    lines = normalize_content(content).split("\n")
    sections = parse_sections(lines)
    purpose_sec = find_section(sections, "Purpose")
    purpose = purpose_sec.content if purpose_sec else ""
    req_sec = find_section(sections, "Requirements")
    if not purpose:
        raise SpecParseError("Spec must have a Purpose section")
    if not req_sec:
        raise SpecParseError("Spec must have a Requirements section")
    reqs = []
    for child in req_sec.children:
        text = extract_requirement_body(child.content.split("\n")) or js_trim(child.title)
        scenarios = [sc.content for sc in child.children if js_trim(sc.content)]
        reqs.append(ParsedRequirement(text, scenarios, child.line, child.title))
    return ParsedSpec(name, js_trim(purpose), reqs, purpose_sec.line if purpose_sec else None, req_sec.line)


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
    lines = normalize_content(content).split("\n")
    mask = fence_mask(lines)
    idx = next((i for i, l in enumerate(lines) if not mask[i] and l.startswith("##") and _REQUIREMENTS_H2.match(l)), -1)
    if idx == -1:
        before = js_trim_end(content)
        return RequirementsParts(before + "\n\n" if before else "", "## Requirements", "", [], "\n")
    end = len(lines)
    for i in range(idx + 1, len(lines)):
        if not mask[i] and lines[i].startswith("##") and _TOP_LEVEL.match(lines[i]):
            end = i
            break
    before = "\n".join(lines[:idx])
    header_line = lines[idx]
    body = lines[idx + 1:end]
    bmask = mask[idx + 1:end]

    def is_req(c: int) -> bool:
        return not bmask[c] and body[c].startswith("###") and REQUIREMENT_HEADER.match(body[c]) is not None

    def is_top(c: int) -> bool:
        return not bmask[c] and body[c].startswith("##") and _TOP_LEVEL.match(body[c]) is not None

    blocks: list[Block] = []
    cursor = 0
    preamble_lines = []
    while cursor < len(body) and not is_req(cursor):
        preamble_lines.append(body[cursor])
        cursor += 1
    while cursor < len(body):
        if not is_req(cursor):
            cursor += 1
            continue
        hl = body[cursor]
        name = normalize_requirement_name(REQUIREMENT_HEADER.match(hl).group(1))
        start = cursor
        cursor += 1
        buf = [hl]
        while cursor < len(body) and not is_req(cursor) and not is_top(cursor):
            buf.append(body[cursor])
            cursor += 1
        blocks.append(Block(hl, name, js_trim_end("\n".join(buf)), idx + 2 + start))
    after = "\n".join(lines[end:])
    preamble = js_trim_end("\n".join(preamble_lines))
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
        m = _H2.match(line)
        if m:
            idx.append((js_trim(m.group(2)), i))
    out = []
    for k, (title, i) in enumerate(idx):
        end = idx[k + 1][1] if k + 1 < len(idx) else len(lines)
        out.append((title, lines[i + 1:end], mask[i + 1:end], i + 2))
    return out


def _parse_blocks(lines, mask, start_line, section_title=None, sink=None) -> list[Block]:
    n = len(lines)
    if n == 0:
        return []

    def is_req(i):
        return not mask[i] and lines[i].startswith("###") and REQUIREMENT_HEADER.match(lines[i]) is not None

    def record(i):
        if sink is None or mask[i] or not lines[i].startswith("###"):
            return
        m = _H3_ANY.match(lines[i])
        if m and not REQUIREMENT_HEADER.match(lines[i]):
            sink.append({"header": js_trim(m.group(1)), "section": section_title, "line": start_line + i})

    blocks = []
    i = 0
    while i < n:
        while i < n and not is_req(i):
            record(i)
            i += 1
        if i >= n:
            break
        hl = lines[i]
        name = normalize_requirement_name(REQUIREMENT_HEADER.match(hl).group(1))
        line = start_line + i
        buf = [hl]
        i += 1
        while i < n and not is_req(i) and not (not mask[i] and lines[i].startswith("##") and _TOP_LEVEL.match(lines[i])):
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
    lines = normalize_content(content).split("\n")
    mask = fence_mask(lines)
    sections = _split_top_level_sections(lines, mask)
    lookups = {}
    for key, desired in (("added", "ADDED Requirements"), ("modified", "MODIFIED Requirements"),
                         ("removed", "REMOVED Requirements"), ("renamed", "RENAMED Requirements")):
        target = desired.lower()
        matches = [s for s in sections if s[0].lower() == target]
        lookups[key] = (matches[0][0] if matches else desired, matches)
    skipped: list[dict] = []
    added = [b for s in lookups["added"][1] for b in _parse_blocks(s[1], s[2], s[3], lookups["added"][0], skipped)]
    modified = [b for s in lookups["modified"][1]
                for b in _parse_blocks(s[1], s[2], s[3], lookups["modified"][0], skipped)]
    removed: list[RemovedEntry] = []
    removed_blocks: list[Block] = []
    for _, blines, bmask, start in lookups["removed"][1]:
        for i, line in enumerate(blines):
            if bmask[i]:
                continue
            m = REQUIREMENT_HEADER.match(line)
            if m:
                removed.append(RemovedEntry(normalize_requirement_name(m.group(1)), start + i))
                continue
            m = _REMOVED_BULLET.match(line)
            if m:
                removed.append(RemovedEntry(normalize_requirement_name(m.group(1)), start + i))
        removed_blocks.extend(_parse_blocks(blines, bmask, start))
    unpaired: list[dict] = []
    renamed: list[RenamePair] = []
    for _, blines, bmask, start in lookups["renamed"][1]:
        pending = None
        for i, line in enumerate(blines):
            if bmask[i]:
                continue
            fm = _RENAME_FROM.match(line)
            tm = None if fm else _RENAME_TO.match(line)
            if fm:
                if pending:
                    unpaired.append({"side": "FROM", "name": pending[0], "line": pending[1]})
                pending = (normalize_requirement_name(fm.group(1)), start + i)
            elif tm:
                to = normalize_requirement_name(tm.group(1))
                if not pending:
                    unpaired.append({"side": "TO", "name": to, "line": start + i})
                    continue
                renamed.append(RenamePair(pending[0], to, pending[1]))
                pending = None
        if pending:
            unpaired.append({"side": "FROM", "name": pending[0], "line": pending[1]})
    unpaired.sort(key=lambda u: u["line"])
    skipped.sort(key=lambda s: s["line"])
    # Canonical requirement headers outside every delta section are ignored by the merge.
    orphans = []
    section = None
    for i, line in enumerate(lines):
        if mask[i]:
            continue
        m = _H2.match(line) if line.startswith("##") else None
        if m:
            section = js_trim(m.group(2))
            continue
        if section is not None and section.lower() in _DELTA_TITLES:
            continue
        h = REQUIREMENT_HEADER.match(line) if line.startswith("###") else None
        if h:
            orphans.append({"name": normalize_requirement_name(h.group(1)), "section": section, "line": i + 1})
    return DeltaPlan(
        added, modified, removed, removed_blocks, renamed, unpaired, orphans, skipped,
        {k: bool(v[1]) for k, v in lookups.items()},
        {k: v[1][0][3] - 1 for k, v in lookups.items() if v[1]},
    )


# --------------------------------------------------------------------------------------------
# Scenario comparison (MODIFIED must not drop a scenario the current spec has)
# --------------------------------------------------------------------------------------------

def scenario_names(raw: str) -> list[str]:
    lines = normalize_eol(raw).split("\n")
    mask = fence_mask(lines)
    names = []
    for i, line in enumerate(lines):
        if mask[i] or not line.startswith("####") or not SCENARIO_HEADER.match(line):
            continue
        name = SCENARIO_HEADER.sub("", line, count=1)
        name = _CLOSING_HASHES.sub("", name, count=1)
        name = _SCENARIO_PREFIX.sub("", name, count=1)
        names.append(js_trim(name))
    return names


@dataclass
class ScenarioDiff:
    missing: list[str]
    added: list[str]
    current_count: int
    incoming_count: int


def diff_scenario_names(current_raw: str, incoming_raw: str) -> ScenarioDiff:
    cur = scenario_names(current_raw)
    inc = scenario_names(incoming_raw)

    def unmatched(names, against):
        remaining: dict[str, int] = {}
        for n in against:
            remaining[n] = remaining.get(n, 0) + 1
        out = []
        for n in names:
            left = remaining.get(n, 0)
            if left > 0:
                remaining[n] = left - 1
            else:
                out.append(n)
        return out

    return ScenarioDiff(unmatched(cur, inc), unmatched(inc, cur), len(cur), len(inc))


def describe_scenario_balance(diff: ScenarioDiff) -> str:
    def count(v: int) -> str:
        return f"{v} {'scenario' if v == 1 else 'scenarios'}"

    scale = f"The modified block has {count(diff.incoming_count)}; the current spec has {count(diff.current_count)}."
    if not diff.added:
        return f"{scale} It adds none."
    listed = ", ".join(f'"{n}"' for n in diff.added[:3])
    rest = len(diff.added) - 3
    names = f"{listed} and {rest} more" if rest > 0 else listed
    return f"{scale} It adds {count(len(diff.added))} not in the current spec: {names}."


# --------------------------------------------------------------------------------------------
# Main-spec structure (what makes a spec unmergeable)
# --------------------------------------------------------------------------------------------

_DELTA_HEADER = re.compile("^##" + _S + "+(" + "|".join(_ci(w) for w in ("ADDED", "MODIFIED", "REMOVED", "RENAMED"))
                           + ")" + _S + "+" + _ci("Requirements") + _S + "*\\Z")
_STRUCT_REQ = re.compile("^###" + _S + "+" + _ci("Requirement:") + _S + "*(" + _DOT + "+)" + _S + "*\\Z")


def find_main_spec_structure_issues(content: str) -> list[dict]:
    """Delta headers in a main spec, requirement headers outside `## Requirements`, duplicates.

    Note: unlike the other readers this one does not strip a BOM (as in the CLI).
    """
    lines = normalize_eol(content).split("\n")
    mask = fence_mask(lines)
    lines = ["" if mask[i] else l for i, l in enumerate(lines)]
    issues = []
    seen: dict[str, int] = {}
    hdr = next((i for i, l in enumerate(lines) if _REQUIREMENTS_H2.match(l)), -1)
    end = len(lines)
    if hdr != -1:
        for i in range(hdr + 1, len(lines)):
            if _TOP_LEVEL.match(lines[i]):
                end = i
                break
    for i, line in enumerate(lines):
        if not line.startswith("##"):
            continue
        trimmed = js_trim(line)
        if not trimmed:
            continue
        if _DELTA_HEADER.match(line):
            issues.append({
                "kind": "delta-header", "line": i + 1, "header": trimmed,
                "message": f'Main spec contains delta header "{trimmed}". Delta headers are only valid inside '
                           "openspec/changes/<name>/specs/<capability-path>/spec.md and truncate the parsed "
                           "## Requirements section.",
            })
            continue
        m = _STRUCT_REQ.match(line)
        if not m:
            continue
        if not (hdr != -1 and hdr < i < end):
            issues.append({
                "kind": "requirement-outside-requirements", "line": i + 1, "header": trimmed,
                "message": f'Requirement header "{trimmed}" appears outside the main ## Requirements section. '
                           "Main specs only parse requirements inside that section, so this requirement is "
                           "currently invisible to validate, list, and archive.",
            })
            continue
        name = normalize_requirement_name(m.group(1))
        if name in seen:
            issues.append({
                "kind": "duplicate-requirement", "line": i + 1, "header": trimmed,
                "message": f'Requirement header "{trimmed}" duplicates the requirement declared on line '
                           f"{seen[name]}. Requirement names must be unique so spec updates cannot discard one "
                           "block while updating another.",
            })
        else:
            seen[name] = i + 1
    return issues


# --------------------------------------------------------------------------------------------
# Discovery of delta spec files
# --------------------------------------------------------------------------------------------

def discover_spec_files(specs_root: Path) -> list[tuple[str, Path]]:
    """Every `spec.md` below a specs root at depth >= 1, as (capability id, file), sorted by id.

    Dot entries are skipped and symlinked directories are not followed (a symlinked spec.md
    that resolves to a file is read).
    """
    results: list[tuple[str, Path]] = []

    def walk(d: Path, segments: list[str]) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except FileNotFoundError:
            return
        except NotADirectoryError:
            if segments:
                return
            raise
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir(follow_symlinks=False):
                walk(Path(e.path), segments + [e.name])
            elif e.name == "spec.md" and segments:
                if e.is_file(follow_symlinks=False) or (e.is_symlink() and os.path.isfile(e.path)):
                    results.append(("/".join(segments), Path(e.path)))

    walk(Path(specs_root), [])
    results.sort(key=lambda r: r[0])
    return results


def find_unread_delta_files(specs_root: Path) -> list[dict]:
    """Markdown files under a change's specs/ that carry delta sections but are not a spec.md."""
    results = []

    def walk(d: Path, segments: list[str]) -> None:
        try:
            entries = list(os.scandir(d))
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
            if e.is_symlink() and not os.path.isfile(e.path):
                continue
            try:
                content = Path(e.path).read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            if not any(parse_delta_spec(content).section_presence.values()):
                continue
            cap = "/".join(segments) if segments else e.name[:-3]
            results.append({"path": "/".join(segments + [e.name]), "expected": f"{cap}/spec.md"})

    walk(Path(specs_root), [])
    results.sort(key=lambda r: r["path"])
    return results


def has_any_file_under(d: Path) -> bool:
    try:
        entries = list(os.scandir(d))
    except FileNotFoundError:
        return False
    for e in entries:
        if e.name.startswith("."):
            continue
        if e.is_file(follow_symlinks=False) or e.is_symlink():
            return True
        if e.is_dir(follow_symlinks=False) and has_any_file_under(Path(e.path)):
            return True
    return False


def read_text(path: Path) -> str:
    """Read as Node's readFile(..., 'utf-8') does: invalid bytes become U+FFFD, a BOM is kept."""
    with open(path, "rb") as fh:
        data = fh.read()
    return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# The merge
# --------------------------------------------------------------------------------------------

PURPOSE_PLACEHOLDER_PREFIX = "TBD - created by archiving change "
PURPOSE_PLACEHOLDER_SUFFIX = ". Update Purpose after archive."
MIN_PURPOSE_LENGTH = 50


class ArchiveAbort(SpecgenError):
    """A delta cannot be applied: the CLI's archive would refuse it. ``message`` is the CLI's text."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None,
                 spec_id: str | None = None, *, code: str = "archive_spec_update_failed", fix: str | None = None,
                 details: list | None = None):
        super().__init__(message, path, line)
        self.spec_id = spec_id
        self.code = code  # the CLI's `archive --json` status code
        self.fix = fix  # the CLI's fix line, when it gives one
        self.details = list(details or [])  # the underlying issues (specgen.validate.Issue)


@dataclass
class SpecUpdate:
    id: str  # capability id (may be nested: area/cap)
    source: Path  # the delta spec.md
    target: Path  # the main spec.md (may not exist)
    exists: bool


@dataclass
class BuildResult:
    rebuilt: str
    counts: dict  # added/modified/removed/renamed
    warnings: list[str]
    no_requirement_blocks: bool
    parts: RequirementsParts
    is_new: bool = False
    origins: dict = field(default_factory=dict)  # requirement name -> (path, line) of the text it came from

    @property
    def changed(self) -> bool:
        return sum(self.counts.values()) > 0


def find_spec_updates(change_dir: Path, main_specs_dir: Path) -> list[SpecUpdate]:
    out = []
    for spec_id, src in discover_spec_files(Path(change_dir) / "specs"):
        target = Path(main_specs_dir).joinpath(*spec_id.split("/"), "spec.md")
        out.append(SpecUpdate(spec_id, src, target, os.path.exists(target)))
    return out


_HTML_H = re.compile("^" + _S + "*<[hH][1-6](?![A-Za-z0-9_])")


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


_PURPOSE_H2 = re.compile("^##" + _S + "+" + _ci("Purpose") + _S + "*\\Z")


def extract_purpose_section(content: str) -> str | None:
    """Body of `## Purpose` (fences and HTML comments ignored for structure), or None."""
    normalized = normalize_eol(content)
    lines = normalized.split("\n")
    masked = _mask_html_comments(normalized).split("\n")
    fm = fence_mask(masked)
    start = next((i for i, l in enumerate(masked) if not fm[i] and _PURPOSE_H2.match(l)), -1)
    if start == -1:
        return None
    end = len(masked)
    for i in range(start + 1, len(masked)):
        if not fm[i] and _TOP_LEVEL.match(masked[i]):
            end = i
            break
    prose = js_trim("\n".join(masked[i] for i in range(start + 1, end) if not fm[i]))
    if not prose:
        return None
    body = js_trim("\n".join(lines[start + 1:end]))
    return body or None


def build_spec_skeleton(spec_id: str, change_name: str, purpose: str | None = None) -> str:
    body = (js_trim(purpose) if purpose else "") or f"{PURPOSE_PLACEHOLDER_PREFIX}{change_name}{PURPOSE_PLACEHOLDER_SUFFIX}"
    return f"# {spec_id} Specification\n\n## Purpose\n{body}\n\n## Requirements\n"


def _readable_overview(skeleton: str, spec_id: str) -> str | None:
    if "<!--" in skeleton:
        return None
    if find_main_spec_structure_issues(skeleton):
        return None
    try:
        return js_trim(parse_spec_text(skeleton, spec_id).overview) or None
    except SpecParseError:
        return None


def _collapse_blank_runs_outside_fences(content: str) -> str:
    lines = content.split("\n")
    mask = fence_mask(lines)
    kept = []
    run = 0
    for i, line in enumerate(lines):
        if mask[i]:
            run = 0
            kept.append(line)
            continue
        if line == "":
            run += 1
            if run > 1:
                continue
            kept.append(line)
            continue
        run = 0
        kept.append(line)
    return "\n".join(kept)


def _normalize_block_raw(raw: str) -> str:
    return js_trim(normalize_eol(raw))


_FOREIGN_HEADING = re.compile("^ {0,3}#{1,3}(?:[ \t]|\\Z)")


def _first_foreign_tail(raw: str):
    lines = normalize_eol(raw).split("\n")
    mask = fence_mask(lines)
    for i in range(1, len(lines)):
        if mask[i]:
            continue
        if _FOREIGN_HEADING.match(lines[i]):
            return js_trim(lines[i]), js_trim_end("\n".join(lines[i:]))
    return None


def _count_occurrences(hay: str, needle: str) -> int:
    if not needle:
        return 0
    count = start = 0
    while True:
        start = hay.find(needle, start)
        if start == -1:
            return count
        count += 1
        start += len(needle)


def build_updated_spec(spec_id: str, delta_text: str, target_text: str | None, change_name: str, *,
                       source: Path | None = None, target: Path | None = None) -> BuildResult:
    """Apply one delta spec to one main spec (``target_text`` None: the spec does not exist yet).

    Returns the rebuilt file content exactly as the CLI writes it, or raises ArchiveAbort with
    the CLI's message for every condition under which archive refuses the delta.
    """
    warnings: list[str] = []
    plan = parse_delta_spec(delta_text)

    def abort(msg: str, line: int | None = None, where: Path | None = None):
        raise ArchiveAbort(msg, where or source, line, spec_id)

    if plan.unpaired_renames:
        first = plan.unpaired_renames[0]
        missing = "TO" if first["side"] == "FROM" else "FROM"
        abort(f"{spec_id} validation failed - RENAMED entry on line {first['line']} has no matching {missing}: "
              f"for header \"### Requirement: {first['name']}\". Write each rename as a FROM: line followed "
              "immediately by its TO: line.", first["line"])
    for orphan in plan.orphaned_requirements:
        where = f'under "## {orphan["section"]}"' if orphan["section"] else 'above the first "## " section'
        warnings.append(f'{spec_id} - requirement "{orphan["name"]}" (line {orphan["line"]}) is {where}, which is '
                        "not a delta section, so it was not applied. Move it under ADDED/MODIFIED/REMOVED/RENAMED "
                        "Requirements.")
    def by_name(items, section: str) -> dict:
        seen: dict = {}
        for item in items:
            key = normalize_requirement_name(item.name)
            if key in seen:
                abort(f'{spec_id} validation failed - duplicate requirement in {section} for header '
                      f'"### Requirement: {item.name}"', item.line)
            seen[key] = item
        return seen

    added_names: dict[str, Block] = by_name(plan.added, "ADDED")
    modified_names: dict[str, Block] = by_name(plan.modified, "MODIFIED")
    removed_names: dict[str, RemovedEntry] = by_name(plan.removed, "REMOVED")
    rfrom: set[str] = set()
    rto: set[str] = set()
    for p in plan.renamed:
        f, t = normalize_requirement_name(p.frm), normalize_requirement_name(p.to)
        if f in rfrom:
            abort(f'{spec_id} validation failed - duplicate FROM in RENAMED for header "### Requirement: {p.frm}"',
                  p.line)
        if t in rto:
            abort(f'{spec_id} validation failed - duplicate TO in RENAMED for header "### Requirement: {p.to}"',
                  p.line)
        rfrom.add(f)
        rto.add(t)
    conflicts = []
    for n in modified_names:
        if n in removed_names:
            conflicts.append((n, "MODIFIED", "REMOVED", modified_names[n].line))
        if n in added_names:
            conflicts.append((n, "MODIFIED", "ADDED", modified_names[n].line))
    for n in added_names:
        if n in removed_names:
            conflicts.append((n, "ADDED", "REMOVED", added_names[n].line))
    for p in plan.renamed:
        f, t = normalize_requirement_name(p.frm), normalize_requirement_name(p.to)
        fold_match = next((r for r in removed_names if fold_requirement_name(r) == fold_requirement_name(f)), None)
        if fold_match is not None:
            abort(f"{spec_id} validation failed - requirement present in multiple sections (RENAMED and REMOVED) "
                  f'for header "### Requirement: {p.frm}"'
                  + ("" if fold_match == f else f' (REMOVED spells it "{fold_match}")'), p.line)
        if f in modified_names:
            abort(f"{spec_id} validation failed - when a rename exists, MODIFIED must reference the NEW header "
                  f'"### Requirement: {p.to}"', modified_names[f].line)
        if t in added_names:
            abort(f'{spec_id} validation failed - RENAMED TO header collides with ADDED for "### Requirement: '
                  f'{p.to}"', added_names[t].line)
    if conflicts:
        n, a, b, line = conflicts[0]
        abort(f"{spec_id} validation failed - requirement present in multiple sections ({a} and {b}) for header "
              f'"### Requirement: {n}"', line)
    if not (plan.added or plan.modified or plan.removed or plan.renamed):
        abort(f"Delta parsing found no operations for {spec_id}. Provide ADDED/MODIFIED/REMOVED/RENAMED sections "
              "in change spec.")

    delta_purpose = extract_purpose_section(delta_text)
    is_new = False
    if target_text is not None:
        if delta_purpose:
            existing = extract_purpose_section(target_text)
            if existing and existing != delta_purpose:
                warnings.append(f"{spec_id} - delta Purpose ignored; {spec_id} already has one. Edit {target} "
                                "directly to change it.")
    else:
        if plan.modified or plan.renamed:
            first = (plan.modified[0].line if plan.modified else plan.renamed[0].line)
            abort(f"{spec_id}: target spec does not exist; only ADDED requirements are allowed for new specs. "
                  "MODIFIED and RENAMED operations require an existing spec.", first)
        if plan.removed:
            warnings.append(f"{spec_id} - {len(plan.removed)} REMOVED requirement(s) ignored for new spec "
                            "(nothing to remove).")
        is_new = True
        target_text = build_spec_skeleton(spec_id, change_name, delta_purpose)
        overview = _readable_overview(target_text, spec_id) if delta_purpose else None
        if delta_purpose and not overview:
            target_text = build_spec_skeleton(spec_id, change_name)
            warnings.append(f"{spec_id} - delta Purpose ignored (it would leave the new spec unreadable); wrote "
                            "the placeholder Purpose instead.")
        elif overview and js_len(overview) < MIN_PURPOSE_LENGTH:
            warnings.append(f"{spec_id} - carried Purpose is under {MIN_PURPOSE_LENGTH} characters; openspec "
                            "validate --strict reports it as too brief.")

    structure = find_main_spec_structure_issues(target_text)
    if structure:
        details = "\n".join(f"line {i['line']}: {i['message']}" for i in structure)
        abort(f"{spec_id}: target spec is structurally invalid and cannot be updated until fixed:\n{details}",
              structure[0]["line"], target)

    parts = extract_requirements_section(target_text)
    name_to_block: dict[str, Block] = {}
    for b in parts.body_blocks:
        name_to_block[normalize_requirement_name(b.name)] = b
    ordered_keys = [normalize_requirement_name(b.name) for b in parts.body_blocks]
    origins: dict[str, tuple] = {}

    renamed_n = 0
    for p in plan.renamed:
        f, t = normalize_requirement_name(p.frm), normalize_requirement_name(p.to)
        if f not in name_to_block:
            if t in name_to_block:
                near = next((k for k in name_to_block if k != t and fold_requirement_name(k) ==
                             fold_requirement_name(f)), None)
                if near is not None:
                    abort(f'{spec_id} RENAMED failed for header "### Requirement: {p.frm}" - source not found, but '
                          f'"### Requirement: {name_to_block[near].name}" exists; fix the header to match it exactly',
                          p.line)
                continue
            abort(f'{spec_id} RENAMED failed for header "### Requirement: {p.frm}" - source not found', p.line)
        if t in name_to_block:
            abort(f'{spec_id} RENAMED failed for header "### Requirement: {p.to}" - target already exists', p.line)
        near = next((k for k in name_to_block if k != f and fold_requirement_name(k) == fold_requirement_name(t)),
                    None)
        if near is not None:
            abort(f'{spec_id} RENAMED failed for header "### Requirement: {p.to}" - "### Requirement: '
                  f'{name_to_block[near].name}" already exists and differs only in case or spacing; choose a '
                  "distinct name", p.line)
        block = name_to_block[f]
        new_header = f"### Requirement: {t}"
        raw_lines = block.raw.split("\n")
        raw_lines[0] = new_header
        del name_to_block[f]
        name_to_block[t] = Block(new_header, t, "\n".join(raw_lines), block.line)
        if f in ordered_keys:
            ordered_keys[ordered_keys.index(f)] = t
        renamed_n += 1

    removed_n = 0
    for r in plan.removed:
        key = normalize_requirement_name(r.name)
        if key not in name_to_block:
            if not is_new:
                near = next((k for k in name_to_block if fold_requirement_name(k) == fold_requirement_name(key)),
                            None)
                if near is not None:
                    abort(f'{spec_id} REMOVED failed for header "### Requirement: {r.name}" - not found, but '
                          f'"### Requirement: {name_to_block[near].name}" exists; fix the header to match it exactly',
                          r.line)
                warnings.append(f'{spec_id} - REMOVED requirement "{r.name}" is not in the current spec; treating '
                                "it as already removed.")
            continue
        del name_to_block[key]
        removed_n += 1

    modified_n = 0
    for mod in plan.modified:
        key = normalize_requirement_name(mod.name)
        cur = name_to_block.get(key)
        if cur is None:
            abort(f'{spec_id} MODIFIED failed for header "### Requirement: {mod.name}" - not found', mod.line)
        hm = REQUIREMENT_HEADER.match(mod.raw.split("\n")[0])
        if not hm or normalize_requirement_name(hm.group(1)) != key:
            abort(f'{spec_id} MODIFIED failed for header "### Requirement: {mod.name}" - header mismatch in content',
                  mod.line)
        diff = diff_scenario_names(cur.raw, mod.raw)
        if diff.missing:
            names = ", ".join(f'"{n}"' for n in diff.missing)
            abort(f'{spec_id} MODIFIED failed for header "### Requirement: {mod.name}" - current spec contains '
                  f"scenario(s) not present in the modified block: {names}. {describe_scenario_balance(diff)} "
                  "Refresh the change spec before archiving to avoid dropping scenarios.", mod.line)
        if _normalize_block_raw(cur.raw) != _normalize_block_raw(mod.raw):
            modified_n += 1
        name_to_block[key] = mod
        origins[key] = (source, mod.line)

    added_n = 0
    for add in plan.added:
        key = normalize_requirement_name(add.name)
        existing = name_to_block.get(key)
        if existing is not None:
            if _normalize_block_raw(existing.raw) == _normalize_block_raw(add.raw):
                continue
            abort(f'{spec_id} ADDED failed for header "### Requirement: {add.name}" - already exists', add.line)
        near = next((k for k in name_to_block if fold_requirement_name(k) == fold_requirement_name(key)), None)
        if near is not None:
            abort(f'{spec_id} ADDED failed for header "### Requirement: {add.name}" - "### Requirement: '
                  f'{name_to_block[near].name}" already exists and differs only in case or spacing; use MODIFIED '
                  "with that exact header to change it, or choose a distinct name", add.line)
        name_to_block[key] = add
        origins[key] = (source, add.line)
        added_n += 1

    kept: list[Block] = []
    seen: set[str] = set()
    for index, block in enumerate(parts.body_blocks):
        key = ordered_keys[index]
        repl = name_to_block.get(key)
        if repl is not None:
            kept.append(repl)
            seen.add(key)
        if repl is not block:
            foreign = _first_foreign_tail(block.raw)
            if foreign:
                nf = _normalize_block_raw(foreign[1])
                keeps = repl is not None and _count_occurrences(_normalize_block_raw(repl.raw), nf) >= \
                    _count_occurrences(_normalize_block_raw(block.raw), nf)
                if not keeps:
                    warnings.append(f'{spec_id} - "{foreign[0]}" sits inside requirement "{block.name}" and goes '
                                    "with it. Move it under its own requirement, or above `## Requirements`, to "
                                    "keep it.")
    for key, block in name_to_block.items():
        if key not in seen:
            kept.append(block)

    pieces = []
    if parts.preamble and js_trim(parts.preamble):
        pieces.append(js_trim_end(parts.preamble))
    pieces.extend(b.raw for b in kept)
    req_body = js_trim_end("\n\n".join(pieces))
    slices = [js_trim_end(parts.before), parts.header_line, req_body, js_trim(parts.after)]
    rebuilt = js_trim_end(_collapse_blank_runs_outside_fences("\n\n".join(s for s in slices if s != ""))) + "\n"
    return BuildResult(
        rebuilt,
        {"added": added_n, "modified": modified_n, "removed": removed_n, "renamed": renamed_n},
        warnings,
        not kept,
        parts,
        is_new,
        origins,
    )


def build_update(update: SpecUpdate, change_name: str) -> BuildResult:
    delta = read_text(update.source)
    try:
        target = read_text(update.target)
    except (FileNotFoundError, NotADirectoryError):
        target = None
    except OSError as exc:
        raise SpecgenError(f"cannot read: {exc.strerror}", update.target) from None
    return build_updated_spec(update.id, delta, target, change_name, source=update.source, target=update.target)


# --------------------------------------------------------------------------------------------
# Line endings on write
# --------------------------------------------------------------------------------------------

def match_line_ending(content: str, original: str) -> str:
    crlf = original.count("\r\n")
    lf = original.count("\n") - crlf
    if crlf == 0 and lf == 0:
        return content
    if crlf >= lf:
        return content.replace("\r\n", "\n").replace("\n", "\r\n")
    return content.replace("\r\n", "\n")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

@dataclass
class MergedSpec:
    id: str
    target: Path  # openspec/specs/<id>/spec.md (may not exist yet)
    source: Path  # the delta spec.md
    text: str  # the merged spec.md, byte for byte as archive writes it (LF; CRLF kept on write)
    counts: dict
    created: bool  # the capability is new
    changed: bool  # archive would write this file (some operation was not already in sync)
    warnings: list[str]
    origins: dict  # requirement name -> (delta path, line) for requirements the change brought


@dataclass
class ApplyResult:
    change_id: str
    specs: dict  # capability id -> MergedSpec, in discovery order
    warnings: list[str]
    project: object  # specgen.model.Project with the change applied (and removed from active changes)

    @property
    def totals(self) -> dict:
        t = {"added": 0, "modified": 0, "removed": 0, "renamed": 0}
        for m in self.specs.values():
            if m.changed:
                for k in t:
                    t[k] += m.counts[k]
        return t


def _resolve_root(project) -> Path:
    from specgen.model import Project

    return Path(project.root if isinstance(project, Project) else project)


def _change_dir(root: Path, change_id: str) -> Path:
    if not change_id or change_id in (".", "..") or "/" in change_id or "\\" in change_id:
        raise SpecgenError(f"invalid change name '{change_id}'")
    d = root / "openspec" / "changes" / change_id
    if change_id == "archive" or change_id.startswith(".") or not d.is_dir():
        changes = root / "openspec" / "changes"
        available = sorted((p.name for p in changes.iterdir() if p.is_dir() and p.name != "archive"),
                           key=lambda n: n.encode("utf-16-be")) if changes.is_dir() else []
        hint = f" Available changes: {', '.join(available)}" if available else " No active changes exist in this root."
        raise SpecgenError(f"Change '{change_id}' not found.{hint}", changes)
    return d


def merge_change(root: Path | str, change_id: str) -> list[tuple[SpecUpdate, BuildResult]]:
    """Build every spec a change touches; raise ArchiveAbort on the first delta archive refuses."""
    root = Path(root)
    change_dir = _change_dir(root, change_id)
    out = []
    for upd in find_spec_updates(change_dir, root / "openspec" / "specs"):
        out.append((upd, build_update(upd, change_id)))
    return out


def check_rebuilt(spec_id: str, text: str, target: Path, fix: str | None = None) -> None:
    """Archive validates every rebuilt spec (non-strict) before writing any; refuse like it does."""
    from specgen.validate import validate_spec_content

    issues = validate_spec_content(spec_id, text)
    errors = [i for i in issues if i.level == "ERROR"]
    if errors:
        raise ArchiveAbort(f"Rebuilt spec for '{spec_id}' failed validation. No files were changed.", target,
                           errors[0].line, spec_id, code="archive_spec_validation_failed",
                           fix=fix or f"Run openspec validate {spec_id} after fixing the change deltas.",
                           details=issues)


def is_retirable_spec(spec_id: str, text: str) -> bool:
    """The rebuilt spec's only error is that it has no requirement left (what retiring replaces)."""
    from specgen.validate import validate_spec_content

    errors = [i for i in validate_spec_content(spec_id, text) if i.level == "ERROR"]
    return bool(errors) and all(i.message == "Spec must have at least one requirement" for i in errors)


def apply_change(project, change_id: str, *, validate_rebuilt: bool = True) -> ApplyResult:
    """Apply a change's deltas to the current specs in memory, with `openspec archive` semantics.

    ``project`` is a ``specgen.model.Project`` (or the folder holding ``openspec/``). Returns the
    merged spec texts per capability and a model ``Project`` in which the change is applied:
    its specs replaced or created, the change no longer among the active changes. Nothing is
    written. Raises ``ArchiveAbort`` (a ``SpecgenError``) on every abort condition of archive,
    with the CLI's message and the delta file/line it comes from.
    """
    root = _resolve_root(project)
    built = merge_change(root, change_id)
    merged: dict[str, MergedSpec] = {}
    warnings: list[str] = []
    for upd, res in built:
        if validate_rebuilt:
            check_rebuilt(upd.id, res.rebuilt, upd.target)
        merged[upd.id] = MergedSpec(upd.id, upd.target, upd.source, res.rebuilt, res.counts, not upd.exists,
                                    res.changed, res.warnings, res.origins)
        warnings.extend(res.warnings)
    return ApplyResult(change_id, merged, warnings, _merged_project(project, root, change_id, merged))


def _merged_project(project, root: Path, change_id: str, merged: dict):
    """The model Project with the merged spec texts in place of (or beside) the current ones."""
    import dataclasses
    import tempfile

    from specgen import parser
    from specgen.model import Project

    if not isinstance(project, Project):
        project = parser.load_project(root)
    by_id = {s.id: s for s in project.specs}
    with tempfile.TemporaryDirectory(prefix="specgen-merge-") as tmp:
        for spec_id, m in merged.items():
            tmp_file = Path(tmp).joinpath(*spec_id.split("/"), "spec.md")
            tmp_file.parent.mkdir(parents=True, exist_ok=True)
            tmp_file.write_text(m.text, encoding="utf-8")
            spec = parser.parse_spec(tmp_file, spec_id)
            by_id[spec_id] = dataclasses.replace(spec, path=m.target)
    specs = tuple(sorted(by_id.values(), key=lambda s: s.id))
    changes = tuple(c for c in project.changes if c.id != change_id)
    return dataclasses.replace(project, specs=specs, changes=changes)




# --------------------------------------------------------------------------------------------
# Retirement: what a merge that removed the last requirement may delete
# --------------------------------------------------------------------------------------------

_INTERRUPTS = re.compile("^ {0,3}(?:>|(?:[-*_][ \t]*){3,}\\Z|(?:[-*+]|[0-9]{1,9}[.)])(?:[ \t]|\\Z)|[<|])")
_LIST_ITEM = re.compile("^(" + _S + "*(?:[-*+]|[0-9]{1,9}[.)])" + _S + "+)")
_SETEXT = re.compile("^ {0,3}(?:=+|-+)" + _S + "*\\Z")


def _content_column(prefix: str) -> int:
    col = 0
    for ch in prefix:
        col += 4 - col % 4 if ch == "\t" else 1
    return col


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
    left: list[str] = []
    before = parts.before[1:] if parts.before.startswith("\ufeff") else parts.before
    blines = normalize_eol(before).split("\n")
    bmask = fence_mask(blines)
    in_purpose = title_seen = False
    prev = ""
    for i, line in enumerate(blines):
        if not js_trim(line):
            prev = ""
            continue
        if not bmask[i]:
            sec = re.match("^ {0,3}##" + _S + "+(" + _DOT + "+?)" + _S + "*\\Z", line)
            if sec:
                in_purpose = re.match("^purpose\\Z", js_trim(sec.group(1)), re.I | _A) is not None
                if not in_purpose:
                    left.append(js_trim(line))
                prev = line
                continue
            setext = in_purpose and js_trim(prev) and re.match("^ {0,3}(=+|-+)" + _S + "*\\Z", line)
            html = re.match("^ {0,3}<h[1-6]\\b", line, re.I | _A)
            if setext or html:
                left.append(js_trim(prev if setext else line))
                in_purpose = False
                prev = line
                continue
            if re.match("^ {0,3}#" + _S + "+" + _DOT + "+\\Z", line):
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
    for sl in (parts.preamble, parts.after):
        for line in sl.split("\n"):
            if js_trim(line):
                left.append(js_trim(line))
    for block in parts.body_blocks:
        tail = _first_foreign_tail(block.raw)
        if tail:
            left.append(tail[0])
        lines = normalize_eol(block.raw).split("\n")
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
            indent = _content_column(re.match("^[ \t]*", line).group(0))
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
            list_indent = _content_column(bullet.group(1)) if bullet else None
            para_open = bullet is not None
            if re.match("^ {0,3}####" + _S + "+" + _ci("Scenario:"), line):
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
            if not seen_scenario and not re.match("^" + _S + "*[|<]", line):
                continue
            left.append(js_trim(line))
    return list(dict.fromkeys(left))


def _describe_unaccounted(lines: list[str]) -> str:
    shown = []
    for line in lines[:3]:
        safe = re.sub("[\x00-\x1f\x7f]", "?", line)
        shown.append(f'"{safe[:200]}\u2026"' if len(safe) > 200 else f'"{safe}"')
    rest = f", and {len(lines) - 3} more line(s)" if len(lines) > 3 else ""
    return ", ".join(shown) + rest


def _prune_empty_dirs(start: Path, boundary: Path) -> None:
    boundary = Path(os.path.realpath(boundary))
    d = start
    while True:
        if d.is_symlink():
            return
        real = Path(os.path.realpath(d))
        if real == boundary or boundary not in real.parents:
            return
        try:
            if any(True for _ in os.scandir(d)):
                return
            os.rmdir(d)
        except OSError:
            return
        d = d.parent


# --------------------------------------------------------------------------------------------
# archive
# --------------------------------------------------------------------------------------------

@dataclass
class ArchiveOutcome:
    change_id: str
    archived_as: str
    archive_path: Path
    specs_updated: bool
    totals: dict | None  # None when the change has no delta specs (as the CLI omits it)
    warnings: list[str]
    merged: dict  # capability id -> MergedSpec
    outcomes: dict  # capability id -> "write" | "retire" | "skip"
    written: list[Path]
    retired: list[Path]
    dry_run: bool

    def to_json(self) -> dict:
        """The `archive` object of `openspec archive --json`."""
        out = {"change": self.change_id, "archivedAs": self.archived_as, "path": str(self.archive_path),
               "specsUpdated": self.specs_updated}
        if self.totals is not None:
            out["totals"] = self.totals
        if self.warnings:
            out["warnings"] = self.warnings
        return out


ARCHIVE_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")


def archive_change(root: Path | str, change_id: str, *, dry_run: bool = False,
                   today: _dt.date | None = None) -> ArchiveOutcome:
    """`openspec archive <id> --yes`: gate on the delta specs, merge, validate each rebuilt spec, then
    write (or retire) the specs and move the change to changes/archive/YYYY-MM-DD-<id>/.

    Every refusal raises ArchiveAbort (with the CLI's code, message and fix) before anything is
    written. ``dry_run`` runs every check and writes nothing.
    """
    from specgen.validate import nested_change_message, read_marker, validate_change_for_archive

    root = Path(root)
    if (root / "openspec" / "changes" / change_id).is_symlink() and "/" not in change_id:
        raise ArchiveAbort(f"Change '{change_id}' is a symbolic link. Replace it with a real directory before "
                           "archiving.", root / "openspec" / "changes" / change_id, code="archive_change_symlink")
    change_dir = _change_dir(root, change_id)
    nested = nested_change_message(root / "openspec" / "changes", change_id, root)
    if nested:
        first = re.search(r"openspec/changes/(\S+?)/(?:,|\.)", nested).group(1)
        raise ArchiveAbort(f"Cannot archive '{change_id}': {nested}", change_dir, code="archive_change_is_namespace_folder",
                           fix=f"Rename openspec/changes/{first}/ to a flat change directory, then archive it.")
    issues = validate_change_for_archive(root, change_id)
    errors = [i for i in issues if i.level == "ERROR"]
    if errors:
        first = errors[0]
        raise ArchiveAbort(f"Validation failed for change '{change_id}'.",
                           root / first.file if first.file else change_dir, first.line,
                           code="archive_validation_failed",
                           fix=f"Run openspec validate {change_id} for details, fix the errors, or rerun with "
                               "--no-validate.", details=issues)
    name = change_id if ARCHIVE_DATE_PREFIX.match(change_id) else \
        f"{(today or _dt.date.today()).isoformat()}-{change_id}"
    archive_path = root / "openspec" / "changes" / "archive" / name
    marker = read_marker(change_dir, "retire_capabilities", root)
    if os.path.lexists(archive_path):
        raise ArchiveAbort(f"Archive '{name}' already exists.", archive_path, code="archive_target_exists")
    updates = find_spec_updates(change_dir, root / "openspec" / "specs")
    prepared = []
    warnings: list[str] = []
    for upd in updates:
        try:
            res = build_update(upd, change_id)
        except ArchiveAbort as exc:
            exc.fix = exc.fix or "Fix the change delta specs and rerun. No files were changed."
            raise
        outcome = "write"
        if marker.declared and res.no_requirement_blocks and not content_the_merge_cannot_name(res.parts) \
                and is_retirable_spec(upd.id, res.rebuilt):
            outcome = "skip" if not upd.exists else ("retire" if res.counts["removed"] > 0 else "write")
        prepared.append((upd, res, outcome))
        warnings.extend(res.warnings)
    for upd, res, outcome in prepared:
        if outcome != "write":
            continue
        from specgen.validate import validate_spec_content

        if not any(i.level == "ERROR" for i in validate_spec_content(upd.id, res.rebuilt)):
            continue
        emptied = upd.exists and res.counts["removed"] > 0 and res.no_requirement_blocks and \
            is_retirable_spec(upd.id, res.rebuilt)
        unaccounted = content_the_merge_cannot_name(res.parts)
        invalid = f" The marker present now cannot be honored ({marker.invalid_reason})." if marker.invalid_reason else ""
        fix = None
        if marker.declared and unaccounted and is_retirable_spec(upd.id, res.rebuilt):
            fix = (f"'{upd.id}' declares retire_capabilities, but the spec holds content the merge cannot safely "
                   "account for and deleting the file would take with it: "
                   f"{_describe_unaccounted(unaccounted)}. Move it into `## Purpose` or a canonical requirement, or "
                   "delete the spec by hand.")
        elif not marker.declared and emptied and not unaccounted:
            fix = (f"This change removes the last requirement '{upd.id}' has. To retire the capability and delete its "
                   "spec, add `retire_capabilities: true` to the change's .openspec.yaml (alongside its `schema:`, "
                   f"which that file requires), then rerun.{invalid}")
        elif not marker.declared and emptied and unaccounted:
            fix = (f"This change removes the last requirement '{upd.id}' has, so the rebuilt spec has none left and "
                   "cannot be written. Retiring the capability is what archive does instead, and it is refused while "
                   "the spec holds content the merge cannot safely account for and deleting the file would take with "
                   f"it: {_describe_unaccounted(unaccounted)}. Move it into `## Purpose` or a canonical requirement, "
                   f"or delete the spec by hand, then rerun.{invalid}")
        check_rebuilt(upd.id, res.rebuilt, upd.target, fix)
    merged = {upd.id: MergedSpec(upd.id, upd.target, upd.source, res.rebuilt, res.counts, not upd.exists,
                                 res.changed, res.warnings, res.origins) for upd, res, _ in prepared}
    totals = {"added": 0, "modified": 0, "removed": 0, "renamed": 0}
    written: list[Path] = []
    retired: list[Path] = []
    snapshots: dict[Path, bytes | None] = {}
    for upd, _, outcome in prepared:
        if not dry_run and (outcome == "retire" or (outcome == "write" and _.changed)):
            snapshots[upd.target] = upd.target.read_bytes() if upd.target.exists() else None
    try:
        _write_and_move(root, prepared, dry_run, totals, written, retired, warnings, change_dir, archive_path)
    except BaseException:
        for target, data in snapshots.items():  # put every spec back as it was, then re-raise
            if data is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        raise
    return ArchiveOutcome(change_id, name, archive_path, bool(written or retired), totals if updates else None,
                          warnings, merged, {u.id: o for u, _, o in prepared}, written, retired, dry_run)


def _write_and_move(root, prepared, dry_run, totals, written, retired, warnings, change_dir, archive_path) -> None:
    for upd, res, outcome in prepared:
        if outcome == "write" and res.changed:
            if not dry_run:
                try:
                    previous = upd.target.read_bytes().decode("utf-8", errors="replace")
                except FileNotFoundError:
                    previous = None
                data = res.rebuilt if previous is None else match_line_ending(res.rebuilt, previous)
                upd.target.parent.mkdir(parents=True, exist_ok=True)
                with open(upd.target, "w", encoding="utf-8", newline="") as fh:
                    fh.write(data)
            written.append(upd.target)
            for k in totals:
                totals[k] += res.counts[k]
    for upd, res, outcome in prepared:
        if outcome != "retire":
            continue
        rel = Path(os.path.relpath(upd.target, root)).as_posix()
        if not dry_run:
            os.unlink(upd.target)
            _prune_empty_dirs(upd.target.parent, root / "openspec" / "specs")
        retired.append(upd.target)
        for k in totals:
            totals[k] += res.counts[k]
        warnings.append(f"{upd.id} - capability retired; deleted the main spec (all requirements removed, declared by "
                        f"retire_capabilities) at {rel}. Its section(s) went with it: Purpose. If it was committed, "
                        f'restore it with: git checkout HEAD -- ":(top){rel}"')
    if not dry_run:
        archive_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(change_dir), str(archive_path))
