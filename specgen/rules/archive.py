"""``apply_change`` and ``plan_archive``: a change's deltas merged into the current specs with
OpenSpec CLI 1.13.2 ``archive`` semantics, in memory (see docs/validation.md). Nothing here writes.

``apply_change`` returns the merged spec texts and a model ``Project`` with the change applied;
``plan_archive`` gates on validation, merges, validates each rebuilt spec and decides, per spec,
whether archive writes, retires or skips it. Every refusal raises
:class:`specgen.rules.merge.ArchiveAbort`. :mod:`specgen.archive` carries a plan out on disk.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path

from specgen.errors import ERROR, SpecgenError
from specgen.model import Project
from specgen.reader.files import Files
from specgen.reader.load import load_tree
from specgen.reader.specs import spec_from_text
from specgen.reader.text import utf16_key
from specgen.rules.merge import (
    ArchiveAbort,
    BuildResult,
    SpecUpdate,
    build_update,
    find_spec_updates,
)
from specgen.rules.metadata import read_marker
from specgen.rules.retire import content_the_merge_cannot_name, describe_unaccounted, is_retirable_spec
from specgen.rules.validate_change import nested_change_message, validate_change_for_archive
from specgen.rules.validate_spec import validate_spec_content


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
    return Path(project.root if isinstance(project, Project) else project)


def _change_dir(root: Path, change_id: str, files: Files) -> Path:
    if not change_id or change_id in (".", "..") or "/" in change_id or "\\" in change_id:
        raise SpecgenError(f"invalid change name '{change_id}'")
    d = root / "openspec" / "changes" / change_id
    if change_id == "archive" or change_id.startswith(".") or not files.is_dir(d):
        changes = root / "openspec" / "changes"
        available = (
            sorted((e.name for e in files.entries(changes) if e.is_dir() and e.name != "archive"), key=utf16_key)
            if files.is_dir(changes)
            else []
        )
        hint = f" Available changes: {', '.join(available)}" if available else " No active changes exist in this root."
        raise SpecgenError(f"Change '{change_id}' not found.{hint}", changes)
    return d


def merge_change(root: Path | str, change_id: str, files: Files | None = None) -> list[tuple[SpecUpdate, BuildResult]]:
    """Build every spec a change touches; raise ArchiveAbort on the first delta archive refuses."""
    root = Path(root)
    files = files or Files()
    change_dir = _change_dir(root, change_id, files)
    out = []
    for upd in find_spec_updates(change_dir, root / "openspec" / "specs", files):
        out.append((upd, build_update(upd, change_id, files)))
    return out


def check_rebuilt(spec_id: str, text: str, target: Path, fix: str | None = None) -> None:
    """Archive validates every rebuilt spec (non-strict) before writing any; refuse like it does."""
    issues = validate_spec_content(spec_id, text)
    errors = [i for i in issues if i.level == ERROR]
    if errors:
        raise ArchiveAbort(
            f"Rebuilt spec for '{spec_id}' failed validation. No files were changed.",
            target,
            errors[0].line,
            spec_id,
            code="archive_spec_validation_failed",
            fix=fix or f"Run openspec validate {spec_id} after fixing the change deltas.",
            details=issues,
        )


def _merged_spec(upd, res) -> MergedSpec:
    """One capability's merge result, as apply and archive both report it."""
    return MergedSpec(
        upd.id, upd.target, upd.source, res.rebuilt, res.counts, not upd.exists, res.changed, res.warnings, res.origins
    )


def apply_change(project, change_id: str, *, validate_rebuilt: bool = True) -> ApplyResult:
    """Apply a change's deltas to the current specs in memory, with `openspec archive` semantics.

    ``project`` is a ``specgen.model.Project`` (or the folder holding ``openspec/``). Returns the
    merged spec texts per capability and a model ``Project`` in which the change is applied:
    its specs replaced or created, the change no longer among the active changes. Nothing is
    written. Raises ``ArchiveAbort`` (a ``SpecgenError``) on every abort condition of archive,
    with the CLI's message and the delta file/line it comes from.
    """
    root = _resolve_root(project)
    built = merge_change(root, change_id, Files())
    merged: dict[str, MergedSpec] = {}
    warnings: list[str] = []
    for upd, res in built:
        if validate_rebuilt:
            check_rebuilt(upd.id, res.rebuilt, upd.target)
        merged[upd.id] = _merged_spec(upd, res)
        warnings.extend(res.warnings)
    return ApplyResult(change_id, merged, warnings, _merged_project(project, root, change_id, merged))


def _merged_project(project, root: Path, change_id: str, merged: dict[str, MergedSpec]) -> Project:
    """The model Project with the merged spec texts in place of (or beside) the current ones."""
    if not isinstance(project, Project):
        project = load_tree(root)
    by_id = {s.id: s for s in project.specs}
    for spec_id, m in merged.items():
        by_id[spec_id] = spec_from_text(m.text, m.target, spec_id)
    specs = tuple(sorted(by_id.values(), key=lambda s: s.id))
    changes = tuple(c for c in project.changes if c.id != change_id)
    return dataclasses.replace(project, specs=specs, changes=changes)


ARCHIVE_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")


@dataclass
class ArchivePlan:
    """What archive will do, every check passed: each delta spec merged, with its outcome."""

    change_id: str
    change_dir: Path
    archived_as: str  # the folder name under changes/archive/
    archive_path: Path
    updates: list[SpecUpdate]
    prepared: list  # [(SpecUpdate, BuildResult, "write" | "retire" | "skip")]
    warnings: list[str]
    merged: dict  # capability id -> MergedSpec


def plan_archive(root: Path, change_id: str, *, today: _dt.date | None = None) -> ArchivePlan:
    """`openspec archive <id> --yes` up to its first write: the change's pre-checks, the merge of
    each delta spec and the validation of each rebuilt spec. Raises ArchiveAbort (with the CLI's
    code, message and fix) where archive refuses. Every file is read once, through one Files."""
    files = Files()
    change_dir = _archivable_change(root, change_id, files)
    name = (
        change_id if ARCHIVE_DATE_PREFIX.match(change_id) else f"{(today or _dt.date.today()).isoformat()}-{change_id}"
    )
    archive_path = root / "openspec" / "changes" / "archive" / name
    marker = read_marker(change_dir, "retire_capabilities", root, files)
    if files.lexists(archive_path):
        raise ArchiveAbort(f"Archive '{name}' already exists.", archive_path, code="archive_target_exists")
    updates = find_spec_updates(change_dir, root / "openspec" / "specs", files)
    prepared, warnings = _prepare(updates, change_id, marker.declared, files)
    for upd, res, outcome in prepared:
        if outcome == "write":
            _check_written(upd, res, marker)
    merged = {upd.id: _merged_spec(upd, res) for upd, res, _ in prepared}
    return ArchivePlan(change_id, change_dir, name, archive_path, updates, prepared, warnings, merged)


def _archivable_change(root: Path, change_id: str, files: Files) -> Path:
    """The change folder, once the CLI's pre-checks pass: a real directory, not a namespace folder
    wrapping changes, and no validation error in its delta specs."""
    if files.is_symlink(root / "openspec" / "changes" / change_id) and "/" not in change_id:
        raise ArchiveAbort(
            f"Change '{change_id}' is a symbolic link. Replace it with a real directory before archiving.",
            root / "openspec" / "changes" / change_id,
            code="archive_change_symlink",
        )
    change_dir = _change_dir(root, change_id, files)
    nested = nested_change_message(root / "openspec" / "changes", change_id, root, files)
    if nested:
        first = re.search(r"openspec/changes/(\S+?)/(?:,|\.)", nested).group(1)
        raise ArchiveAbort(
            f"Cannot archive '{change_id}': {nested}",
            change_dir,
            code="archive_change_is_namespace_folder",
            fix=f"Rename openspec/changes/{first}/ to a flat change directory, then archive it.",
        )
    issues = validate_change_for_archive(root, change_id, files)
    errors = [i for i in issues if i.level == ERROR]
    if errors:
        first = errors[0]
        raise ArchiveAbort(
            f"Validation failed for change '{change_id}'.",
            root / first.path if first.path else change_dir,
            first.line,
            code="archive_validation_failed",
            fix=f"Run openspec validate {change_id} for details, fix the errors, or rerun with --no-validate.",
            details=issues,
        )
    return change_dir


def _prepare(updates: list[SpecUpdate], change_id: str, retire_declared: bool, files: Files):
    """Merge every delta spec: [(update, result, "write" | "retire" | "skip")], and the warnings."""
    prepared = []
    warnings: list[str] = []
    for upd in updates:
        try:
            res = build_update(upd, change_id, files)
        except ArchiveAbort as exc:
            exc.fix = exc.fix or "Fix the change delta specs and rerun. No files were changed."
            raise
        outcome = "write"
        if (
            retire_declared
            and res.no_requirement_blocks
            and not content_the_merge_cannot_name(res.parts)
            and is_retirable_spec(upd.id, res.rebuilt)
        ):
            outcome = "skip" if not upd.exists else ("retire" if res.counts["removed"] > 0 else "write")
        prepared.append((upd, res, outcome))
        warnings.extend(res.warnings)
    return prepared, warnings


def _check_written(upd: SpecUpdate, res: BuildResult, marker) -> None:
    """Refuse a rebuilt spec that fails validation, with the fix the CLI gives for its case."""
    if not any(i.level == ERROR for i in validate_spec_content(upd.id, res.rebuilt)):
        return
    emptied = (
        upd.exists
        and res.counts["removed"] > 0
        and res.no_requirement_blocks
        and is_retirable_spec(upd.id, res.rebuilt)
    )
    unaccounted = content_the_merge_cannot_name(res.parts)
    invalid = f" The marker present now cannot be honored ({marker.invalid_reason})." if marker.invalid_reason else ""
    fix = None
    if marker.declared and unaccounted and is_retirable_spec(upd.id, res.rebuilt):
        fix = (
            f"'{upd.id}' declares retire_capabilities, but the spec holds content the merge cannot safely "
            "account for and deleting the file would take with it: "
            f"{describe_unaccounted(unaccounted)}. Move it into `## Purpose` or a canonical requirement, or "
            "delete the spec by hand."
        )
    elif not marker.declared and emptied and not unaccounted:
        fix = (
            f"This change removes the last requirement '{upd.id}' has. To retire the capability and delete its "
            "spec, add `retire_capabilities: true` to the change's .openspec.yaml (alongside its `schema:`, "
            f"which that file requires), then rerun.{invalid}"
        )
    elif not marker.declared and emptied and unaccounted:
        fix = (
            f"This change removes the last requirement '{upd.id}' has, so the rebuilt spec has none left and "
            "cannot be written. Retiring the capability is what archive does instead, and it is refused while "
            "the spec holds content the merge cannot safely account for and deleting the file would take with "
            f"it: {describe_unaccounted(unaccounted)}. Move it into `## Purpose` or a canonical requirement, "
            f"or delete the spec by hand, then rerun.{invalid}"
        )
    check_rebuilt(upd.id, res.rebuilt, upd.target, fix)
