"""Main-spec structure and scenario balance: what makes a spec unmergeable, and what a
MODIFIED block would drop (OpenSpec CLI 1.13.2 ``validate`` and ``archive``; docs/validation.md).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from specgen.reader.blocks import LEVEL2_HEADER, REQUIREMENTS_HEADER, delta_requirement_name, scenario_names
from specgen.reader.markdown import fence_mask
from specgen.reader.text import JS_SPACE, WS_CHARS, ascii_caseless, js_trim, normalize_eol


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


_DELTA_HEADER = re.compile(
    "^##"
    + JS_SPACE
    + "+("
    + "|".join(ascii_caseless(w) for w in ("ADDED", "MODIFIED", "REMOVED", "RENAMED"))
    + ")"
    + JS_SPACE
    + "+"
    + ascii_caseless("Requirements")
    + JS_SPACE
    + "*\\Z"
)


def _structural_requirement_name(line: str) -> str | None:
    r"""The name in `/^###\s+Requirement:\s*(.+)\s*$/i` (a blank required after `###`), or None.
    Linear: the block reader's rule plus that blank."""
    if line[3:4] == "" or line[3] not in WS_CHARS:
        return None
    return delta_requirement_name(line)


def find_main_spec_structure_issues(content: str) -> list[dict]:
    """Delta headers in a main spec, requirement headers outside `## Requirements`, duplicates.

    Note: unlike the other readers this one does not strip a BOM (as in the CLI). Cached per text
    (a main spec is checked by its own validation and again by each change's archive dry run);
    callers must not mutate the result.
    """
    return _find_main_spec_structure_issues(content)


@functools.lru_cache(maxsize=256)
def _find_main_spec_structure_issues(content: str) -> list[dict]:
    lines = normalize_eol(content).split("\n")
    mask = fence_mask(lines)
    lines = ["" if mask[i] else ln for i, ln in enumerate(lines)]
    issues = []
    seen: dict[str, int] = {}
    hdr = next((i for i, ln in enumerate(lines) if REQUIREMENTS_HEADER.match(ln)), -1)
    end = len(lines)
    if hdr != -1:
        for i in range(hdr + 1, len(lines)):
            if LEVEL2_HEADER.match(lines[i]):
                end = i
                break
    for i, line in enumerate(lines):
        if not line.startswith("##"):
            continue
        trimmed = js_trim(line)
        if not trimmed:
            continue
        if _DELTA_HEADER.match(line):
            issues.append(
                {
                    "kind": "delta-header",
                    "line": i + 1,
                    "header": trimmed,
                    "message": f'Main spec contains delta header "{trimmed}". Delta headers are only valid inside '
                    "openspec/changes/<name>/specs/<capability-path>/spec.md and truncate the parsed "
                    "## Requirements section.",
                }
            )
            continue
        name = _structural_requirement_name(line)
        if name is None:
            continue
        if not (hdr != -1 and hdr < i < end):
            issues.append(
                {
                    "kind": "requirement-outside-requirements",
                    "line": i + 1,
                    "header": trimmed,
                    "message": f'Requirement header "{trimmed}" appears outside the main ## Requirements section. '
                    "Main specs only parse requirements inside that section, so this requirement is "
                    "currently invisible to validate, list, and archive.",
                }
            )
            continue
        if name in seen:
            issues.append(
                {
                    "kind": "duplicate-requirement",
                    "line": i + 1,
                    "header": trimmed,
                    "message": f'Requirement header "{trimmed}" duplicates the requirement declared on line '
                    f"{seen[name]}. Requirement names must be unique so spec updates cannot discard one "
                    "block while updating another.",
                }
            )
        else:
            seen[name] = i + 1
    return issues
