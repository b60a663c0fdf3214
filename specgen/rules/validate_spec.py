"""Validation of a main spec: OpenSpec CLI 1.13.2 ``validate <spec> [--strict]`` rules, levels and
messages, each issue with its file and line (see docs/validation.md).

A spec is read with the section-tree reader (:func:`specgen.reader.specs.parse_spec_text`),
checked against the spec schema, then by the spec rules (structure, Purpose, requirement
length, scenarios, SHALL/MUST). Verdict: valid when no error (and, with strict, no warning).
"""

from __future__ import annotations

import errno as _errno
import os
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

from specgen.errors import ERROR, INFO, WARNING, Issue
from specgen.model import Requirement
from specgen.reader.blocks import contains_shall_or_must, extract_requirements_section
from specgen.reader.files import Files
from specgen.reader.markdown import fence_mask, requirement_body
from specgen.reader.specs import SpecText, parse_spec_text
from specgen.reader.text import js_len, js_trim, normalize_eol
from specgen.rules.structure import find_main_spec_structure_issues
from specgen.rules.table import Rule

PURPOSE_PLACEHOLDER_PREFIX = "TBD - created by archiving change "
PURPOSE_PLACEHOLDER_SUFFIX = ". Update Purpose after archive."


MIN_PURPOSE_LENGTH = 50
MAX_REQUIREMENT_TEXT_LENGTH = 500

GUIDE_NO_DELTAS = (
    "No deltas found. Ensure your change has a specs/ directory with capability folders (e.g. "
    "specs/http-server/spec.md) containing .md files that use delta headers (## ADDED/MODIFIED/REMOVED/RENAMED "
    'Requirements) and that each requirement includes at least one "#### Scenario:" block. If this change '
    'intentionally modifies no specs (pure refactor, tooling, docs), set "skip_specs: true" in the change\'s '
    '.openspec.yaml instead. Tip: run "openspec change show <change-id> --json --deltas-only" to inspect parsed '
    "deltas."
)
GUIDE_MISSING_SPEC_SECTIONS = (
    'Missing required sections. Expected headers: "## Purpose" and "## Requirements". Example:\n## Purpose\n'
    "[brief purpose]\n\n## Requirements\n### Requirement: Clear requirement statement\nUsers SHALL ...\n\n"
    "#### Scenario: Descriptive name\n- **WHEN** ...\n- **THEN** ..."
)
GUIDE_SCENARIO_FORMAT = (
    "Scenarios must use level-4 headers. Convert bullet lists into:\n#### Scenario: Short name\n- **WHEN** ...\n"
    "- **THEN** ...\n- **AND** ..."
)
MSG_CHANGE_NO_DELTAS = "Change must have at least one delta"
MSG_SKIP_CONFLICT = (
    "skip_specs is set in .openspec.yaml but spec files exist under specs/. Remove skip_specs or "
    "delete the delta spec files"
)
MSG_SKIP_ACCEPTED = (
    "skip_specs is set in .openspec.yaml: change declares no spec-level behavior changes, zero deltas accepted"
)
MSG_SKIP_INVALID = (
    "skip_specs is set but .openspec.yaml is not valid change metadata, so the marker is not honored. Fix the metadata"
)
MSG_PURPOSE_TOO_BRIEF = f"Purpose section is too brief (less than {MIN_PURPOSE_LENGTH} characters)"
MSG_PURPOSE_PLACEHOLDER = (
    "Purpose section is still a placeholder rather than a Purpose anyone wrote (the sentence `openspec archive` "
    "writes for a new capability, or a `TBD`/`TODO` marker left in its place). Replace it with what this "
    "capability is for, editing the main spec directly: a `## Purpose` in a delta is read only when the "
    "capability is created, so it cannot replace this one."
)
MSG_REQUIREMENT_TOO_LONG = (
    f"Requirement text is very long (>{MAX_REQUIREMENT_TEXT_LENGTH} characters). Consider breaking it down."
)
MSG_NO_SCENARIOS = "Requirement must have at least one scenario"
MSG_NO_REQUIREMENTS = "Spec must have at least one requirement"
MSG_TASKS_NO_CHECKBOX = (
    'This change counts as 0 tasks: no line in its tracked task files is a checkbox, so "openspec list" and '
    '"openspec status" report no work and "openspec archive" has nothing to flag as incomplete. Write each task '
    'as "- [ ] 1.1 Description".'
)


def issue(
    level: str, locator: str, message: str, line: int | None = None, file: str | None = None, cli_line: bool = False
) -> Issue:
    """A validation issue: ``locator`` is the CLI's own (``requirements[3]``, ``overview``...),
    ``file`` the file holding it relative to the project root (POSIX)."""
    return Issue(level, file, line, message, locator=locator, cli_line=cli_line)


def issue_json(i: Issue) -> dict:
    """One issue as `openspec validate --json` prints it, plus `line` where known."""
    out = {"level": i.level.upper(), "path": i.locator}
    if i.line is not None:
        out["line"] = i.line
    out["message"] = i.message
    return out


def rel(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return Path(path).as_posix()


def is_valid(issues: list[Issue], strict: bool = False) -> bool:
    if strict:
        return not any(i.level in (ERROR, WARNING) for i in issues)
    return not any(i.level == ERROR for i in issues)


def shall_message(prefix: str, name: str, guidance: bool = False) -> str:
    base = f"{prefix} {'should' if guidance else 'must'} contain SHALL or MUST"
    suffix = " (RFC 2119 best practice for English specs)" if guidance else ""
    if contains_shall_or_must(name):
        return (
            f"{base} in the requirement body, not only in the header. Move the SHALL/MUST statement to the line "
            f'immediately after the "### Requirement: ..." header.{suffix}'
        )
    return f"{base}{suffix}"


def block_text(raw: str) -> str:
    """A requirement block's text: its body after the header line."""
    return requirement_body(raw.split("\n")[1:])


# --------------------------------------------------------------------------------------------
# Purpose placeholder
# --------------------------------------------------------------------------------------------

_MARKER_PUNCT = re.compile("[ \t]*(?:\\Z|\n|[:\\-\u2013\u2014.,;()\\[\\]{}])")
_PURPOSE_HEADER = re.compile("^ {0,3}##(?!#)[ \t]+Purpose[ \t]*\\Z", re.I | re.A)
_TOP_HEADER = re.compile("^ {0,3}#{1,2}(?!#)[ \t]+")


def _is_word_char(ch: str) -> bool:
    if ch == "_":
        return True
    cat = unicodedata.category(ch)
    return cat[0] in ("L", "N", "M")


def _leading_marker(prose: str) -> bool:
    for word in ("TBD", "TODO"):
        n = len(word)
        head = prose[:n]
        if head.upper() != word or (len(prose) > n and _is_word_char(prose[n])):
            continue
        if head == word:
            return True
        if _MARKER_PUNCT.match(prose, n):
            return True
    return False


def _placeholder_prefix_index(text: str) -> int | None:
    suffix_at = text.find(PURPOSE_PLACEHOLDER_SUFFIX)
    while suffix_at != -1:
        prefix_at = text.rfind(PURPOSE_PLACEHOLDER_PREFIX, 0, suffix_at + len(PURPOSE_PLACEHOLDER_PREFIX))
        if prefix_at != -1 and prefix_at <= suffix_at:
            return prefix_at
        suffix_at = text.find(PURPOSE_PLACEHOLDER_SUFFIX, suffix_at + 1)
    return None


def _purpose_placeholder(overview: str, content: str):
    """(found, line) for a Purpose that is still a TBD/TODO or archive's generated sentence."""
    lines = normalize_eol(overview).split("\n")
    fm = fence_mask(lines)
    prose = js_trim("\n".join(ln for i, ln in enumerate(lines) if not fm[i]))
    leading = _leading_marker(prose)
    if not leading and _placeholder_prefix_index(prose) is None:
        return False, None
    lines = normalize_eol(content).split("\n")
    fm = fence_mask(lines)
    hdr = next((i for i, ln in enumerate(lines) if not fm[i] and _PURPOSE_HEADER.match(ln)), -1)
    if hdr == -1:
        return True, None
    purpose_lines = []
    for i in range(hdr + 1, len(lines)):
        if fm[i]:
            continue
        if _TOP_HEADER.match(lines[i]):
            break
        if leading and js_trim(lines[i]):
            return True, i + 1
        purpose_lines.append((i + 1, lines[i]))
    if leading:
        return True, None
    purpose = "\n".join(t for _, t in purpose_lines)
    at = _placeholder_prefix_index(purpose)
    if at is None:
        return True, None
    offset = purpose[:at].count("\n")
    return True, purpose_lines[offset][0] if offset < len(purpose_lines) else None


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------


class SpecView:
    """What the spec rules read: one main spec's text, parsed once by each reader view."""

    __slots__ = ("content", "file", "spec", "blocks")

    def __init__(self, content: str, file: str | None, spec: SpecText, blocks: tuple) -> None:
        self.content = content
        self.file = file  # relative to the project root
        self.spec = spec  # the section-tree view (parse_spec_text)
        self.blocks = blocks  # the requirement-block view (extract_requirements_section), as archive reads it


def validate_spec_content(name: str, content: str, file: str | None = None) -> list[Issue]:
    """All issues of one main spec's text (the level decides the verdict; see :func:`is_valid`)."""
    spec = parse_spec_text(content)
    if spec.error:  # unreadable as a spec: that is the only issue
        return [issue(ERROR, "file", f"{spec.error}. {GUIDE_MISSING_SPEC_SECTIONS}", 1, file)]
    view = SpecView(content, file, spec, tuple(extract_requirements_section(content).body_blocks))
    issues: list[Issue] = []
    for rule in SPEC_RULES:
        issues.extend(rule.check(view))
    return issues


def _each_requirement(rules: tuple[Rule, ...]) -> Callable[[SpecView], list[Issue]]:
    """A SPEC_RULES row running `rules` in order on each requirement in turn."""

    def check(view: SpecView) -> list[Issue]:
        out: list[Issue] = []
        for i, r in enumerate(view.spec.requirements):
            for rule in rules:
                out.extend(rule.check(view, i, r))
        return out

    return check


def _has_requirement(view: SpecView) -> list[Issue]:
    if view.spec.requirements:
        return []
    return [issue(ERROR, "requirements", MSG_NO_REQUIREMENTS, view.spec.requirements_line, view.file)]


def _schema_has_text(view: SpecView, i: int, r: Requirement) -> list[Issue]:
    if r.text:
        return []
    return [issue(ERROR, f"requirements.{i}.text", "Requirement text cannot be empty", r.line, view.file)]


def _schema_has_scenario(view: SpecView, i: int, r: Requirement) -> list[Issue]:
    if r.scenarios:
        return []
    return [issue(ERROR, f"requirements.{i}.scenarios", MSG_NO_SCENARIOS, r.line, view.file)]


def _structure(view: SpecView) -> list[Issue]:
    return [
        issue(ERROR, "file", s["message"], s["line"], view.file, True)
        for s in find_main_spec_structure_issues(view.content)
    ]


def _purpose(view: SpecView) -> list[Issue]:
    spec = view.spec
    found, pline = _purpose_placeholder(spec.overview, view.content)
    if found:
        line = pline if pline is not None else spec.purpose_line
        return [issue(WARNING, "overview", MSG_PURPOSE_PLACEHOLDER, line, view.file, pline is not None)]
    if js_len(spec.overview) < MIN_PURPOSE_LENGTH:
        return [issue(WARNING, "overview", MSG_PURPOSE_TOO_BRIEF, spec.purpose_line, view.file)]
    return []


def _not_too_long(view: SpecView, i: int, r: Requirement) -> list[Issue]:
    if js_len(r.text) <= MAX_REQUIREMENT_TEXT_LENGTH:
        return []
    return [issue(INFO, f"requirements[{i}]", MSG_REQUIREMENT_TOO_LONG, r.line, view.file)]


def _has_scenario(view: SpecView, i: int, r: Requirement) -> list[Issue]:
    if r.scenarios:
        return []
    message = f"{MSG_NO_SCENARIOS}. {GUIDE_SCENARIO_FORMAT}"
    return [issue(WARNING, f"requirements[{i}].scenarios", message, r.line, view.file)]


def _shall_or_must(view: SpecView) -> list[Issue]:
    """Each requirement block, as archive reads it, needs text with SHALL or MUST."""
    out = []
    for i, block in enumerate(view.blocks):
        text = block_text(block.raw)
        if not text:
            message = shall_message(f'Requirement "{block.name}"', block.name)
            out.append(issue(ERROR, f"requirements[{i}]", message, block.line, view.file))
        elif not contains_shall_or_must(text):
            message = shall_message(f'Requirement "{block.name}"', block.name, True)
            out.append(issue(WARNING, f"requirements[{i}]", message, block.line, view.file))
    return out


# The spec rules, in the order their issues are reported (the CLI's order: its spec schema first,
# requirement by requirement, then its rules). docs/validation.md has their wording and levels.
SCHEMA_REQUIREMENT_RULES: tuple[Rule, ...] = (
    Rule("requirement-text-not-empty", _schema_has_text),
    Rule("requirement-has-scenario", _schema_has_scenario),
)
REQUIREMENT_RULES: tuple[Rule, ...] = (
    Rule("requirement-not-too-long", _not_too_long),
    Rule("requirement-has-scenario-format", _has_scenario),
)
SPEC_RULES: tuple[Rule, ...] = (
    Rule("spec-has-requirement", _has_requirement),
    Rule("requirement-schema", _each_requirement(SCHEMA_REQUIREMENT_RULES)),
    Rule("spec-structure", _structure),
    Rule("purpose-written", _purpose),
    Rule("requirements", _each_requirement(REQUIREMENT_RULES)),
    Rule("requirement-has-shall-or-must", _shall_or_must),
)


def validate_spec_file(path: Path, name: str, file: str | None = None, files: Files | None = None) -> list[Issue]:
    try:
        content = (files or Files()).text(path)
    except OSError as exc:
        return [issue(ERROR, "file", node_fs_message(exc, "open", path), 1, file)]
    return validate_spec_content(name, content, file)


def node_fs_message(exc: OSError, syscall: str, path: Path) -> str:
    code = _errno.errorcode.get(exc.errno or 0, "EIO")
    text = {
        "ENOENT": "no such file or directory",
        "EACCES": "permission denied",
        "EISDIR": "illegal operation on a directory",
        "ENOTDIR": "not a directory",
    }.get(code, exc.strerror or "")
    return f"{code}: {text}, {syscall} '{path}'"
