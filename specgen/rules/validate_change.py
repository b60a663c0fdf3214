"""Validation of a change: OpenSpec CLI 1.13.2 ``validate <change>`` rules, levels and messages
(see docs/validation.md). A change is judged by its delta specs (``changes/<id>/specs/**/spec.md``,
read as requirement blocks), the conflict rules (:mod:`specgen.rules.conflicts`), the archive dry
run against the current specs, the ``skip_specs`` marker and the task-file lints.

``read_change`` reads a change once (through the run's ``reader.files.Files``) into a ``ChangeView``;
``check_change`` runs ``CHANGE_RULES`` over it, the rule tables at the end of this module, in the
order the CLI reports their issues.
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
from specgen.reader.text import JS_SPACE, ascii_caseless
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
from specgen.rules.table import Rule
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


class DeltaFile:
    """One delta spec of a change, read and cut into entries once."""

    __slots__ = ("spec_id", "entry", "file", "plan", "main_file", "conflicts")

    def __init__(self, spec_id: str, entry: str, file: str, plan: DeltaPlan, main_file: Path | None) -> None:
        self.spec_id = spec_id
        self.entry = entry  # "<capability>/spec.md": the CLI's locator
        self.file = file  # the file, relative to the project root
        self.plan = plan
        self.main_file = main_file  # the main spec it changes (None: not checked against it)
        self.conflicts = find_conflicts(plan)  # the one conflict rule set, read by two rows

    @property
    def entries(self) -> int:
        p = self.plan
        return len(p.added) + len(p.modified) + len(p.removed) + len(p.renamed)

    def empty_sections(self) -> list[str]:
        """Delta section titles present although no entry parsed ([] when an entry parsed)."""
        if self.entries:
            return []
        return [title for key, title in _SECTION_HEADERS if self.plan.section_presence[key]]

    @property
    def missing_header(self) -> bool:
        return not self.entries and not self.empty_sections()


class ChangeView:
    """What the change rules read: a change's folder as read through one run's Files."""

    __slots__ = ("change_dir", "root", "files", "rel_change", "has_root_spec", "deltas", "unread", "against_main")

    def __init__(
        self,
        change_dir: Path,
        root: Path,
        files: Files,
        rel_change: str,
        has_root_spec: bool,
        deltas: tuple[DeltaFile, ...],
        unread: tuple[dict, ...],
        against_main: bool,
    ) -> None:
        self.change_dir = change_dir
        self.root = root
        self.files = files
        self.rel_change = rel_change
        self.has_root_spec = has_root_spec  # specs/spec.md exists (a delta outside any capability)
        self.deltas = deltas
        self.unread = unread  # Markdown files under specs/ with delta sections that are not a spec.md
        self.against_main = against_main  # validate (True) or archive's own pre-check (False)

    @property
    def rel_specs(self) -> str:
        return f"{self.rel_change}/specs"


def read_change(change_dir: Path, root: Path, files: Files, *, against_main: bool = True) -> ChangeView:
    """The change's delta specs (each read once; an unreadable one is left out, as the CLI skips
    it), whether specs/spec.md exists, and the misnamed delta files."""
    specs_dir = change_dir / "specs"
    main_dir = root / "openspec" / "specs"
    rel_change = rel(change_dir, root)
    discovered = discover_spec_files(specs_dir, LINKS_ANY, files) if files.is_dir(specs_dir) else []
    deltas = []
    for spec_id, spec_file in discovered:
        try:
            content = files.text(spec_file)
        except OSError:
            continue
        main_file = main_dir.joinpath(*spec_id.split("/"), "spec.md") if against_main else None
        entry = f"{spec_id}/spec.md"
        deltas.append(DeltaFile(spec_id, entry, f"{rel_change}/specs/{entry}", parse_delta_spec(content), main_file))
    return ChangeView(
        change_dir,
        root,
        files,
        rel_change,
        files.is_file(specs_dir / "spec.md"),
        tuple(deltas),
        tuple(find_unread_delta_files(specs_dir, files)),
        against_main,
    )


def validate_change_dir(
    change_dir: Path, root: Path, *, against_main: bool = True, tasks: bool = True, files: Files | None = None
) -> list[Issue]:
    """The issues `openspec validate <change>` reports (``against_main``/``tasks`` off: archive's own pre-check)."""
    view = read_change(change_dir, root, files or Files(), against_main=against_main)
    return check_change(view, tasks=tasks)


def check_change(view: ChangeView, *, tasks: bool = True) -> list[Issue]:
    """CHANGE_RULES in order over one change; each row sees the issues the rows before it found."""
    issues: list[Issue] = []
    full = view.against_main and tasks
    for rule in CHANGE_RULES:
        if full or not rule.validate_only:
            issues.extend(rule.check(view, issues))
    return issues


def _delta_at_specs_root(view: ChangeView, _found: list[Issue]) -> list[Issue]:
    if not view.has_root_spec:
        return []
    message = (
        "Delta spec found at specs/spec.md. Delta specs must live under a capability path (e.g. "
        "specs/<capability-path>/spec.md) — a file at the specs/ root is ignored when the change is applied or "
        "archived."
    )
    return [issue(ERROR, "spec.md", message, 1, f"{view.rel_specs}/spec.md")]


def _each_delta_file(view: ChangeView, _found: list[Issue]) -> list[Issue]:
    """DELTA_FILE_RULES in order, file by file."""
    out: list[Issue] = []
    for d in view.deltas:
        for rule in DELTA_FILE_RULES:
            if view.against_main or not rule.validate_only:
                out.extend(rule.check(d, view.files))
    return out


def _misnamed_delta_files(view: ChangeView, _found: list[Issue]) -> list[Issue]:
    return [
        issue(
            ERROR,
            u["path"],
            f"Delta spec found at specs/{u['path']}. Delta specs must be a spec.md "
            "inside a capability folder — this file is ignored when the change is "
            f"applied or archived. Move its requirements into specs/{u['expected']}.",
            1,
            f"{view.rel_specs}/{u['path']}",
        )
        for u in view.unread
    ]


def _sections_without_entries(view: ChangeView, _found: list[Issue]) -> list[Issue]:
    out = []
    for d in view.deltas:
        sections = d.empty_sections()
        if not sections:
            continue
        message = (
            f"Delta sections {_format_sections(sections)} were found, but no requirement entries parsed. "
            'Ensure each section includes at least one "### Requirement:" block (REMOVED may use bullet '
            "list syntax)."
        )
        line = min(d.plan.section_lines.values()) + 1
        out.append(issue(ERROR, d.entry, message, line, d.file))
    return out


def _file_without_delta_section(view: ChangeView, _found: list[Issue]) -> list[Issue]:
    message = (
        'No delta sections found. Add headers such as "## ADDED Requirements" or move non-delta notes outside specs/.'
    )
    return [issue(ERROR, d.entry, message, 1, d.file) for d in view.deltas if d.missing_header]


def _task_lines(view: ChangeView, _found: list[Issue]) -> list[Issue]:
    return task_issues(view.change_dir, view.root, view.rel_change, view.files)


def _ignored_headers(d: DeltaFile, _files: Files) -> list[Issue]:
    out = []
    for s in d.plan.skipped_headers:
        if re.match(r"^requirement:?\Z", s["header"], re.I | re.A):
            message = (
                f'Header "### {s["header"]}" in {s["section"]} is missing a requirement name and is ignored '
                'by validation. Add a name, e.g. "### Requirement: <name>".'
            )
        else:
            message = (
                f'Header "### {s["header"]}" in {s["section"]} is not a "### Requirement:" header and is '
                f'ignored by validation. Use "### Requirement: {s["header"]}" if it should be validated as '
                "a requirement."
            )
        out.append(issue(INFO, d.entry, message, s["line"], d.file, True))
    return out


def _unpaired_renames(d: DeltaFile, _files: Files) -> list[Issue]:
    out = []
    for u in d.plan.unpaired_renames:
        missing = "TO" if u["side"] == "FROM" else "FROM"
        message = (
            f'RENAMED {u["side"]}: "{u["name"]}" has no matching {missing}: line. Write each rename as a '
            "FROM: line followed immediately by its TO: line."
        )
        out.append(issue(ERROR, d.entry, message, u["line"], d.file, True))
    return out


def _requirements_outside_delta_sections(d: DeltaFile, _files: Files) -> list[Issue]:
    out = []
    for o in d.plan.orphaned_requirements:
        where = f'under "## {o["section"]}"' if o["section"] else 'above the first "## " section'
        message = (
            f'Requirement "{o["name"]}" is {where}, which is not a delta section, so it is ignored. Move '
            'it under "## ADDED Requirements", "## MODIFIED Requirements", "## REMOVED Requirements", '
            'or "## RENAMED Requirements".'
        )
        out.append(issue(WARNING, d.entry, message, o["line"], d.file, True))
    return out


def _added_and_modified_blocks(d: DeltaFile, _files: Files) -> list[Issue]:
    """Each ADDED then MODIFIED block: BLOCK_RULES in order."""
    out: list[Issue] = []
    duplicates = {(c.section, c.index) for c in d.conflicts if c.kind == DUPLICATE}
    for op, blocks in (("ADDED", d.plan.added), ("MODIFIED", d.plan.modified)):
        for index, b in enumerate(blocks):
            for rule in BLOCK_RULES:
                out.extend(
                    issue(level, d.entry, message, b.line, d.file)
                    for level, message in rule.check(op, b, (op, index) in duplicates)
                )
    return out


def _modified_keeps_scenarios(d: DeltaFile, files: Files) -> list[Issue]:
    if d.main_file is None or not d.plan.modified:
        return []
    return _scenario_loss(d.plan, d.main_file, d.entry, d.file, files)


def _delta_conflicts(d: DeltaFile, _files: Files) -> list[Issue]:
    conflicts = d.conflicts
    renames = sorted((c for c in conflicts if c.kind in _RENAME_ORDER), key=lambda c: (c.index, _RENAME_ORDER[c.kind]))
    out = []
    for c in [c for c in conflicts if c.kind not in _RENAME_ORDER] + renames:
        message = _conflict_message(c)
        if message is not None:
            out.append(issue(ERROR, d.entry, message, c.line, d.file))
    return out


# A BLOCK_RULES row returns (level, message) pairs; each is reported at the block's header line.


def _duplicate_block(op: str, b, duplicate: bool) -> list[tuple[str, str]]:
    return [(ERROR, f'Duplicate requirement in {op}: "{b.name}"')] if duplicate else []


def _block_has_text(op: str, b, _duplicate: bool) -> list[tuple[str, str]]:
    """An ADDED or MODIFIED block needs text, with SHALL or MUST in it."""
    text = block_text(b.raw)
    if not text:
        if contains_shall_or_must(b.name):
            return [(ERROR, shall_message(f'{op} "{b.name}"', b.name))]
        return [(ERROR, f'{op} "{b.name}" is missing requirement text')]
    if not contains_shall_or_must(text):
        return [(WARNING, shall_message(f'{op} "{b.name}"', b.name, True))]
    return []


def _block_has_scenario(op: str, b, _duplicate: bool) -> list[tuple[str, str]]:
    """An ADDED or MODIFIED block needs a scenario with a body."""
    body = b.raw.split("\n")[1:]
    if count_scenarios(body) >= 1:
        return []
    hint = (
        (
            " (a scenario header with no body under it does not count; add its steps, e.g. "
            '"- **WHEN** ..." and "- **THEN** ...")'
        )
        if count_empty_scenarios(body)
        else ""
    )
    return [(ERROR, f'{op} "{b.name}" must include at least one scenario{hint}')]


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


def _archive_dry_run(view: ChangeView, found: list[Issue]) -> list[Issue]:
    """Archive's merge, run against the current specs, for each delta file without an error yet."""
    if not view.deltas and not _discovered_any(view):
        return []
    reported = {i.locator for i in found if i.level == ERROR} | {
        d.entry for d in view.deltas if d.missing_header or d.empty_sections()
    }
    out = []
    main_dir = view.root / "openspec" / "specs"
    for upd in find_spec_updates(view.change_dir, main_dir, view.files):
        entry = f"{upd.id}/spec.md"
        if entry in reported:
            continue
        try:
            build_update(upd, view.change_dir.name, view.files)
        except ArchiveAbort as exc:
            out.append(
                issue(
                    INFO,
                    entry,
                    f"Archive would refuse this delta: {exc.message}",
                    exc.line,
                    rel(Path(exc.path), view.root) if exc.path else f"{view.rel_specs}/{entry}",
                )
            )
        except Exception:  # a filesystem error says nothing about whether the delta applies
            continue
    return out


def _discovered_any(view: ChangeView) -> bool:
    """A spec.md under specs/ was found, readable or not (the dry run's condition)."""
    specs_dir = view.change_dir / "specs"
    return view.files.is_dir(specs_dir) and bool(discover_spec_files(specs_dir, LINKS_ANY, view.files))


def _skip_specs_marker(view: ChangeView, _found: list[Issue]) -> list[Issue]:
    """The skip_specs marker: honoured only when valid and no spec file exists; a change with no
    delta needs it."""
    no_deltas = sum(d.entries for d in view.deltas) == 0 and not view.has_root_spec and not view.unread
    out = []
    specs_dir = view.change_dir / "specs"
    marker = read_marker(view.change_dir, "skip_specs", view.root, view.files)
    meta = f"{view.rel_change}/.openspec.yaml"
    if marker.invalid_reason:
        out.append(issue(ERROR, ".openspec.yaml", f"{MSG_SKIP_INVALID} ({marker.invalid_reason})", 1, meta))
    skip = marker.declared
    has_files = False
    if skip:
        try:
            has_files = has_any_file_under(specs_dir, view.files)
        except OSError:
            has_files = True
        if has_files:
            out.append(issue(ERROR, "file", MSG_SKIP_CONFLICT, 1, meta))
    if no_deltas:
        if skip and not has_files:
            out.append(issue(INFO, "file", MSG_SKIP_ACCEPTED, 1, meta))
        elif not skip:
            out.append(issue(ERROR, "file", f"{MSG_CHANGE_NO_DELTAS}. {GUIDE_NO_DELTAS}", None, view.rel_change))
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
            + JS_SPACE
            + "+(?:"
            + "|".join(ascii_caseless(w) for w in ("ADDED", "MODIFIED", "REMOVED", "RENAMED"))
            + ")"
            + JS_SPACE
            + "+"
            + ascii_caseless("Requirements"),
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


# The rule tables, in the order their issues are reported (the CLI's order). A row's name says
# what it asks of the change; docs/validation.md has the rules' wording and levels.
BLOCK_RULES: tuple[Rule, ...] = (  # each ADDED, then each MODIFIED requirement block
    Rule("requirement-not-duplicated", _duplicate_block),
    Rule("requirement-has-text-with-shall-or-must", _block_has_text),
    Rule("requirement-has-scenario", _block_has_scenario),
)
DELTA_FILE_RULES: tuple[Rule, ...] = (  # each delta spec file, in discovery order
    Rule("delta-header-is-a-requirement", _ignored_headers),
    Rule("rename-has-from-and-to", _unpaired_renames),
    Rule("requirement-inside-delta-section", _requirements_outside_delta_sections),
    Rule("added-and-modified-blocks", _added_and_modified_blocks),
    Rule("modified-keeps-scenarios", _modified_keeps_scenarios, validate_only=True),
    Rule("delta-entries-do-not-conflict", _delta_conflicts),
)
CHANGE_RULES: tuple[Rule, ...] = (
    Rule("delta-spec-not-at-specs-root", _delta_at_specs_root),
    Rule("delta-files", _each_delta_file),
    Rule("archive-would-apply", _archive_dry_run, validate_only=True),
    Rule("delta-spec-named-spec-md", _misnamed_delta_files),
    Rule("delta-sections-have-entries", _sections_without_entries),
    Rule("delta-file-has-delta-section", _file_without_delta_section),
    Rule("skip-specs-marker", _skip_specs_marker),
    Rule("task-lines", _task_lines, validate_only=True),
)
