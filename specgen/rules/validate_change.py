"""Validation of a change: OpenSpec CLI 1.13.2 ``validate <change>`` rules, levels and messages
(see docs/validation.md). A change is judged by its delta specs (``changes/<id>/specs/**/spec.md``,
read as requirement blocks), the conflict rules (:mod:`specgen.rules.conflicts`), the archive dry
run against the current specs, the ``skip_specs`` marker and the task-file lints.
"""

from __future__ import annotations

import errno as _errno
import re
from pathlib import Path

from specgen.errors import ERROR, INFO, WARNING, Issue
from specgen.reader.blocks import (
    DeltaPlan,
    contains_shall_or_must,
    count_empty_scenarios,
    count_scenarios,
    extract_requirements_section,
    find_unread_delta_files,
    normalize_requirement_name,
    parse_delta_spec,
)
from specgen.reader.files import Files
from specgen.reader.text import S, ci
from specgen.reader.tree import (
    CHANGE_MARKERS,
    LINKS_ANY,
    describe_nested,
    discover_spec_files,
    has_any_file_under,
    nested_changes,
)
from specgen.rules.conflicts import (
    BOTH,
    DUPLICATE,
    RENAME_OLD_MODIFIED,
    RENAME_REMOVED,
    RENAME_TO_ADDED,
    find_conflicts,
)
from specgen.rules.merge import ArchiveAbort, build_update, find_spec_updates
from specgen.rules.metadata import SchemaError, read_marker, resolve_schema, resolve_schema_name
from specgen.rules.structure import describe_scenario_balance, diff_scenario_names
from specgen.rules.tasks import task_issues
from specgen.rules.validate_spec import (
    GUIDE_NO_DELTAS,
    MSG_CHANGE_NO_DELTAS,
    MSG_SKIP_ACCEPTED,
    MSG_SKIP_CONFLICT,
    MSG_SKIP_INVALID,
    block_text,
    issue,
    rel,
    shall_message,
)


def _looks_like_change(d: Path, root: Path, files: Files) -> bool:
    """Markers, a file under specs/, or one of the artifacts its schema generates."""
    if any(files.is_file(d / m) for m in CHANGE_MARKERS):
        return True
    try:
        if has_any_file_under(d / "specs", files):
            return True
    except OSError:
        pass
    try:
        schema = resolve_schema(resolve_schema_name(d, root, files), root, files)
    except SchemaError:
        return False
    for gen in schema["artifacts"]:
        if any(c in gen for c in "*?[{"):
            if any(files.is_file(p) for p in files.glob(d, gen)):
                return True
        elif files.path_exists(d / gen):
            return True
    return False


def nested_change_message(changes_dir: Path, name: str, root: Path, files: Files | None = None) -> str | None:
    """Why `changes/<name>/` is not a change but a folder wrapping changes, or None."""
    files = files or Files()
    nested = nested_changes(changes_dir, name, lambda d: _looks_like_change(d, root, files), LINKS_ANY, files)
    return describe_nested(name, nested) if nested else None


# --------------------------------------------------------------------------------------------
# Changes
# --------------------------------------------------------------------------------------------


def _format_sections(sections: list[str]) -> str:
    if not sections:
        return ""
    if len(sections) == 1:
        return sections[0]
    return f"{', '.join(sections[:-1])} and {sections[-1]}"


_SECTION_HEADERS = (
    ("added", "## ADDED Requirements"),
    ("modified", "## MODIFIED Requirements"),
    ("removed", "## REMOVED Requirements"),
    ("renamed", "## RENAMED Requirements"),
)


class _DeltaFiles:
    """What the per-file rules found that is reported after every file: entries with delta
    sections but no entry, entries with no delta section, and the number of entries."""

    def __init__(self) -> None:
        self.total = 0
        self.empty_sections: list[tuple[str, list[str], int]] = []
        self.missing_header: list[str] = []


def validate_change_dir(
    change_dir: Path, root: Path, *, against_main: bool = True, tasks: bool = True, files: Files | None = None
) -> list[Issue]:
    """The issues `openspec validate <change>` reports (``against_main``/``tasks`` off: archive's own pre-check)."""
    files = files or Files()
    issues: list[Issue] = []
    specs_dir = change_dir / "specs"
    main_dir = root / "openspec" / "specs"
    rel_change = rel(change_dir, root)
    rel_specs = f"{rel_change}/specs"
    has_root_spec = files.is_file(specs_dir / "spec.md")
    if has_root_spec:
        issues.append(
            issue(
                ERROR,
                "spec.md",
                "Delta spec found at specs/spec.md. Delta specs must live under a "
                "capability path (e.g. specs/<capability-path>/spec.md) — a file at the "
                "specs/ root is ignored when the change is applied or archived.",
                1,
                f"{rel_specs}/spec.md",
            )
        )
    discovered = discover_spec_files(specs_dir, LINKS_ANY, files) if files.is_dir(specs_dir) else []
    found = _DeltaFiles()
    for spec_id, spec_file in discovered:
        try:
            content = files.text(spec_file)
        except OSError:
            continue
        main_file = main_dir.joinpath(*spec_id.split("/"), "spec.md") if against_main else None
        issues.extend(
            _delta_file_issues(
                spec_id, parse_delta_spec(content), f"{rel_specs}/{spec_id}/spec.md", main_file, found, files
            )
        )
    if against_main and discovered:
        issues.extend(_dry_run_issues(change_dir, root, main_dir, rel_specs, issues, found, files))
    unread = find_unread_delta_files(specs_dir, files)
    for u in unread:
        issues.append(
            issue(
                ERROR,
                u["path"],
                f"Delta spec found at specs/{u['path']}. Delta specs must be a spec.md "
                "inside a capability folder — this file is ignored when the change is "
                f"applied or archived. Move its requirements into specs/{u['expected']}.",
                1,
                f"{rel_specs}/{u['path']}",
            )
        )
    for entry, sections, line in found.empty_sections:
        message = (
            f"Delta sections {_format_sections(sections)} were found, but no requirement entries parsed. "
            'Ensure each section includes at least one "### Requirement:" block (REMOVED may use bullet '
            "list syntax)."
        )
        issues.append(issue(ERROR, entry, message, line, f"{rel_specs}/{entry}"))
    for entry in found.missing_header:
        message = (
            'No delta sections found. Add headers such as "## ADDED Requirements" or move non-delta notes '
            "outside specs/."
        )
        issues.append(issue(ERROR, entry, message, 1, f"{rel_specs}/{entry}"))
    issues.extend(
        _skip_marker_issues(change_dir, root, rel_change, found.total == 0 and not has_root_spec and not unread, files)
    )
    if tasks:
        issues.extend(task_issues(change_dir, root, rel_change, files))
    return issues


def _delta_file_issues(
    spec_id: str, plan: DeltaPlan, file: str, main_file: Path | None, found: _DeltaFiles, files: Files
) -> list[Issue]:
    """One delta spec: ignored headers, unpaired renames, requirements outside a delta section,
    each ADDED/MODIFIED block's text and scenarios, scenarios a MODIFIED block drops, conflicts."""
    entry = f"{spec_id}/spec.md"
    out: list[Issue] = []

    def add(level, message, line=None, cli_line=False):
        out.append(issue(level, entry, message, line, file, cli_line))

    for s in plan.skipped_headers:
        if re.match(r"^requirement:?\Z", s["header"], re.I | re.A):
            add(
                INFO,
                f'Header "### {s["header"]}" in {s["section"]} is missing a requirement name and is ignored '
                'by validation. Add a name, e.g. "### Requirement: <name>".',
                s["line"],
                True,
            )
        else:
            add(
                INFO,
                f'Header "### {s["header"]}" in {s["section"]} is not a "### Requirement:" header and is '
                f'ignored by validation. Use "### Requirement: {s["header"]}" if it should be validated as '
                "a requirement.",
                s["line"],
                True,
            )
    for u in plan.unpaired_renames:
        missing = "TO" if u["side"] == "FROM" else "FROM"
        add(
            ERROR,
            f'RENAMED {u["side"]}: "{u["name"]}" has no matching {missing}: line. Write each rename as a '
            "FROM: line followed immediately by its TO: line.",
            u["line"],
            True,
        )
    for o in plan.orphaned_requirements:
        where = f'under "## {o["section"]}"' if o["section"] else 'above the first "## " section'
        add(
            WARNING,
            f'Requirement "{o["name"]}" is {where}, which is not a delta section, so it is ignored. Move '
            'it under "## ADDED Requirements", "## MODIFIED Requirements", "## REMOVED Requirements", '
            'or "## RENAMED Requirements".',
            o["line"],
            True,
        )
    if not (plan.added or plan.modified or plan.removed or plan.renamed):
        names = [title for key, title in _SECTION_HEADERS if plan.section_presence[key]]
        if names:
            found.empty_sections.append((entry, names, min(plan.section_lines.values()) + 1))
        else:
            found.missing_header.append(entry)
    found.total += len(plan.added) + len(plan.modified) + len(plan.removed) + len(plan.renamed)
    conflicts = find_conflicts(plan)
    duplicates = {(c.section, c.index) for c in conflicts if c.kind == DUPLICATE}
    for op, blocks in (("ADDED", plan.added), ("MODIFIED", plan.modified)):
        for index, b in enumerate(blocks):
            if (op, index) in duplicates:
                add(ERROR, f'Duplicate requirement in {op}: "{b.name}"', b.line)
            _block_issues(op, b, add)
    if main_file is not None and plan.modified:
        out.extend(_scenario_loss(plan, main_file, entry, file, files))
    renames = sorted((c for c in conflicts if c.kind in _RENAME_ORDER), key=lambda c: (c.index, _RENAME_ORDER[c.kind]))
    for c in [c for c in conflicts if c.kind not in _RENAME_ORDER] + renames:
        message = _conflict_message(c)
        if message is not None:
            add(ERROR, message, c.line)
    return out


def _block_issues(op: str, b, add) -> None:
    """An ADDED or MODIFIED block needs text with SHALL or MUST, and a scenario with a body."""
    text = block_text(b.raw)
    if not text:
        add(
            ERROR,
            shall_message(f'{op} "{b.name}"', b.name)
            if contains_shall_or_must(b.name)
            else f'{op} "{b.name}" is missing requirement text',
            b.line,
        )
    elif not contains_shall_or_must(text):
        add(WARNING, shall_message(f'{op} "{b.name}"', b.name, True), b.line)
    body = b.raw.split("\n")[1:]
    if count_scenarios(body) < 1:
        hint = (
            (
                " (a scenario header with no body under it does not count; add its steps, e.g. "
                '"- **WHEN** ..." and "- **THEN** ...")'
            )
            if count_empty_scenarios(body)
            else ""
        )
        add(ERROR, f'{op} "{b.name}" must include at least one scenario{hint}', b.line)


# The validator reports renames' conflicts pair by pair in this order (archive stops at the first).
_RENAME_ORDER = {RENAME_OLD_MODIFIED: 0, RENAME_TO_ADDED: 1, RENAME_REMOVED: 2}


def _conflict_message(c) -> str | None:
    """The validator's wording of a conflict (None for ADDED/MODIFIED duplicates, reported with
    their block)."""
    if c.kind == DUPLICATE:
        if c.section in ("ADDED", "MODIFIED"):
            return None
        if c.section == "REMOVED":
            return f'Duplicate requirement in REMOVED: "{c.name}"'
        return f'Duplicate {c.section} in RENAMED: "{c.name}"'
    if c.kind == BOTH:
        return f'Requirement present in both {c.section}: "{c.name}"'
    if c.kind == RENAME_OLD_MODIFIED:
        return f'MODIFIED references old name from RENAMED. Use new header for "{c.name}"'
    if c.kind == RENAME_TO_ADDED:
        return f'RENAMED TO collides with ADDED for "{c.name}"'
    spelled = f' (REMOVED spells it "{c.spelled}")' if c.spelled else ""
    return f'Requirement present in both RENAMED and REMOVED: "{c.name}"{spelled}'


def _dry_run_issues(
    change_dir: Path, root: Path, main_dir: Path, rel_specs: str, issues: list[Issue], found: _DeltaFiles, files: Files
) -> list[Issue]:
    """Archive's merge, run against the current specs, for each delta file without an error yet."""
    reported = (
        {i.locator for i in issues if i.level == ERROR}
        | set(found.missing_header)
        | {e[0] for e in found.empty_sections}
    )
    out = []
    for upd in find_spec_updates(change_dir, main_dir, files):
        entry = f"{upd.id}/spec.md"
        if entry in reported:
            continue
        try:
            build_update(upd, change_dir.name, files)
        except ArchiveAbort as exc:
            out.append(
                issue(
                    INFO,
                    entry,
                    f"Archive would refuse this delta: {exc.message}",
                    exc.line,
                    rel(Path(exc.path), root) if exc.path else f"{rel_specs}/{entry}",
                )
            )
        except Exception:  # a filesystem error says nothing about whether the delta applies
            continue
    return out


def _skip_marker_issues(change_dir: Path, root: Path, rel_change: str, no_deltas: bool, files: Files) -> list[Issue]:
    """The skip_specs marker: honoured only when valid and no spec file exists; a change with no
    delta needs it."""
    out = []
    specs_dir = change_dir / "specs"
    marker = read_marker(change_dir, "skip_specs", root, files)
    meta = f"{rel_change}/.openspec.yaml"
    if marker.invalid_reason:
        out.append(issue(ERROR, ".openspec.yaml", f"{MSG_SKIP_INVALID} ({marker.invalid_reason})", 1, meta))
    skip = marker.declared
    has_files = False
    if skip:
        try:
            has_files = has_any_file_under(specs_dir, files)
        except OSError:
            has_files = True
        if has_files:
            out.append(issue(ERROR, "file", MSG_SKIP_CONFLICT, 1, meta))
    if no_deltas:
        if skip and not has_files:
            out.append(issue(INFO, "file", MSG_SKIP_ACCEPTED, 1, meta))
        elif not skip:
            out.append(issue(ERROR, "file", f"{MSG_CHANGE_NO_DELTAS}. {GUIDE_NO_DELTAS}", None, rel_change))
    return out


def _scenario_loss(plan: DeltaPlan, main_file: Path, entry: str, file: str, files: Files) -> list[Issue]:
    try:
        main = files.text(main_file)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        code = _errno.errorcode.get(exc.errno or 0, "")
        if code not in ("EACCES", "EPERM", "EISDIR", "ELOOP", "ENAMETOOLONG"):
            return []
        return [
            issue(
                ERROR,
                entry,
                f"Could not read {main_file.as_posix()} to check the MODIFIED requirements against "
                f"it ({code}). Archive reads the same file, so fix the file before archiving.",
                None,
                file,
            )
        ]
    current = {}
    for b in extract_requirements_section(main).body_blocks:
        current[normalize_requirement_name(b.name)] = b
    renamed_from = {normalize_requirement_name(p.to): normalize_requirement_name(p.frm) for p in plan.renamed}
    renamed_away = {normalize_requirement_name(p.frm) for p in plan.renamed}
    out = []
    for block in plan.modified:
        key = normalize_requirement_name(block.name)
        if key in renamed_away:
            continue
        visited = set()
        k = key
        cur = None
        while k is not None and k not in visited:
            cur = current.get(k)
            if cur is not None:
                break
            visited.add(k)
            k = renamed_from.get(k)
        if cur is None:
            continue
        diff = diff_scenario_names(cur.raw, block.raw)
        if not diff.missing:
            continue
        names = ", ".join(f'"{n}"' for n in diff.missing)
        message = (
            f'MODIFIED "{block.name}" omits scenario(s) the current spec still has: {names}. '
            f"{describe_scenario_balance(diff)} Copy the omitted scenarios into the MODIFIED block (a "
            "MODIFIED requirement replaces the whole block, so archive refuses to drop them)."
        )
        out.append(issue(ERROR, entry, message, block.line, file))
    return out


def validate_change_for_archive(root: Path, change_id: str, files: Files | None = None) -> list[Issue]:
    """Archive's gate: the delta-spec validation, run only when the change carries delta content."""
    files = files or Files()
    change_dir = root / "openspec" / "changes" / change_id
    specs_dir = change_dir / "specs"
    has = files.is_file(specs_dir / "spec.md") or bool(find_unread_delta_files(specs_dir, files))
    if not has:
        marker = read_marker(change_dir, "skip_specs", root, files)
        if marker.invalid_reason:
            has = True
        elif marker.declared:
            try:
                has = has_any_file_under(specs_dir, files)
            except OSError:
                has = True
    if not has:
        rx = re.compile(
            "^##"
            + S
            + "+(?:"
            + "|".join(ci(w) for w in ("ADDED", "MODIFIED", "REMOVED", "RENAMED"))
            + ")"
            + S
            + "+"
            + ci("Requirements"),
            re.M,
        )
        for _, f in discover_spec_files(specs_dir, LINKS_ANY, files):
            try:
                text = files.text(f)  # JavaScript's `m` flag: `^` after \r, U+2028 and U+2029 too
                if rx.search(text.replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")):
                    has = True
                    break
            except OSError:
                pass
    if not has:
        return []
    return validate_change_dir(change_dir, root, against_main=False, tasks=False, files=files)
