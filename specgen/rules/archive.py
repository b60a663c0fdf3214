"""``apply_change`` and ``archive_change``: a change's deltas merged into the current specs with
OpenSpec CLI 1.13.2 ``archive`` semantics, in memory or on disk (see docs/validation.md).

``apply_change`` returns the merged spec texts and a model ``Project`` with the change applied;
``archive_change`` gates on validation, merges, validates each rebuilt spec, then writes (or
retires) the specs and moves the change to ``changes/archive/YYYY-MM-DD-<id>/``. Every refusal
raises :class:`specgen.rules.merge.ArchiveAbort` before anything is written.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from specgen import fsio
from specgen.errors import ERROR, SpecgenError
from specgen.model import Project
from specgen.reader.load import load_tree
from specgen.reader.specs import spec_from_text
from specgen.reader.text import utf16_key
from specgen.rules.merge import (
    ArchiveAbort,
    BuildResult,
    SpecUpdate,
    build_update,
    find_spec_updates,
    match_line_ending,
)
from specgen.rules.metadata import read_marker
from specgen.rules.retire import (
    content_the_merge_cannot_name,
    describe_unaccounted,
    is_retirable_spec,
    prune_empty_dirs,
)
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


def _change_dir(root: Path, change_id: str) -> Path:
    if not change_id or change_id in (".", "..") or "/" in change_id or "\\" in change_id:
        raise SpecgenError(f"invalid change name '{change_id}'")
    d = root / "openspec" / "changes" / change_id
    if change_id == "archive" or change_id.startswith(".") or not d.is_dir():
        changes = root / "openspec" / "changes"
        available = (
            sorted((p.name for p in changes.iterdir() if p.is_dir() and p.name != "archive"), key=utf16_key)
            if changes.is_dir()
            else []
        )
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
    built = merge_change(root, change_id)
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
        out = {
            "change": self.change_id,
            "archivedAs": self.archived_as,
            "path": str(self.archive_path),
            "specsUpdated": self.specs_updated,
        }
        if self.totals is not None:
            out["totals"] = self.totals
        if self.warnings:
            out["warnings"] = self.warnings
        return out


ARCHIVE_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")


def archive_change(
    root: Path | str, change_id: str, *, dry_run: bool = False, today: _dt.date | None = None
) -> ArchiveOutcome:
    """`openspec archive <id> --yes`: gate on the delta specs, merge, validate each rebuilt spec, then
    write (or retire) the specs and move the change to changes/archive/YYYY-MM-DD-<id>/.

    Every refusal raises ArchiveAbort (with the CLI's code, message and fix) before anything is
    written. ``dry_run`` runs every check and writes nothing.
    """
    root = Path(root)
    _roll_back_interrupted(root, change_id, dry_run)
    change_dir = _archivable_change(root, change_id)
    name = (
        change_id if ARCHIVE_DATE_PREFIX.match(change_id) else f"{(today or _dt.date.today()).isoformat()}-{change_id}"
    )
    archive_path = root / "openspec" / "changes" / "archive" / name
    marker = read_marker(change_dir, "retire_capabilities", root)
    if os.path.lexists(archive_path):
        raise ArchiveAbort(f"Archive '{name}' already exists.", archive_path, code="archive_target_exists")
    updates = find_spec_updates(change_dir, root / "openspec" / "specs")
    prepared, warnings = _prepare(updates, change_id, marker.declared)
    for upd, res, outcome in prepared:
        if outcome == "write":
            _check_written(upd, res, marker)
    merged = {upd.id: _merged_spec(upd, res) for upd, res, _ in prepared}
    totals = {"added": 0, "modified": 0, "removed": 0, "renamed": 0}
    written: list[Path] = []
    retired: list[Path] = []
    touched = (
        []
        if dry_run
        else [
            upd.target for upd, res, outcome in prepared if outcome == "retire" or (outcome == "write" and res.changed)
        ]
    )
    snapshots = {target: target.read_bytes() if target.exists() else None for target in touched}
    if not dry_run:
        _write_journal(root, change_dir, snapshots)
    try:
        _write_and_move(root, prepared, dry_run, totals, written, retired, warnings, change_dir, archive_path)
    except BaseException:
        _restore(snapshots)
        _journal(change_dir).unlink(missing_ok=True)
        raise
    if not dry_run:
        _journal(archive_path).unlink(missing_ok=True)
    return ArchiveOutcome(
        change_id,
        name,
        archive_path,
        bool(written or retired),
        totals if updates else None,
        warnings,
        merged,
        {u.id: o for u, _, o in prepared},
        written,
        retired,
        dry_run,
    )


def _archivable_change(root: Path, change_id: str) -> Path:
    """The change folder, once the CLI's pre-checks pass: a real directory, not a namespace folder
    wrapping changes, and no validation error in its delta specs."""
    if (root / "openspec" / "changes" / change_id).is_symlink() and "/" not in change_id:
        raise ArchiveAbort(
            f"Change '{change_id}' is a symbolic link. Replace it with a real directory before archiving.",
            root / "openspec" / "changes" / change_id,
            code="archive_change_symlink",
        )
    change_dir = _change_dir(root, change_id)
    nested = nested_change_message(root / "openspec" / "changes", change_id, root)
    if nested:
        first = re.search(r"openspec/changes/(\S+?)/(?:,|\.)", nested).group(1)
        raise ArchiveAbort(
            f"Cannot archive '{change_id}': {nested}",
            change_dir,
            code="archive_change_is_namespace_folder",
            fix=f"Rename openspec/changes/{first}/ to a flat change directory, then archive it.",
        )
    issues = validate_change_for_archive(root, change_id)
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


def _prepare(updates: list[SpecUpdate], change_id: str, retire_declared: bool):
    """Merge every delta spec: [(update, result, "write" | "retire" | "skip")], and the warnings."""
    prepared = []
    warnings: list[str] = []
    for upd in updates:
        try:
            res = build_update(upd, change_id)
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


def _restore(snapshots: dict[Path, bytes | None]) -> None:
    """Put every spec back as it was (after a failed write)."""
    for target, data in snapshots.items():
        if data is None:
            target.unlink(missing_ok=True)
        else:
            fsio.write_bytes(target, data)


# An apply killed half-way (specs partly written, the change not yet moved) would leave a tree that
# neither the old nor the new state describes. Before the first spec is written, the specs it will
# touch are recorded in the change folder; the journal goes when the change is archived. An apply
# that finds one puts those specs back first, then applies as if the interruption never happened.
JOURNAL = ".specgen-apply-journal.json"


def _journal(change_dir: Path) -> Path:
    return change_dir / JOURNAL


def _write_journal(root: Path, change_dir: Path, snapshots: dict[Path, bytes | None]) -> None:
    import base64
    import json

    entries = {
        Path(os.path.relpath(t, root)).as_posix(): None if d is None else base64.b64encode(d).decode("ascii")
        for t, d in snapshots.items()
    }
    fsio.write_text(_journal(change_dir), json.dumps({"version": 1, "specs": entries}, sort_keys=True))


def _roll_back_interrupted(root: Path, change_id: str, dry_run: bool) -> None:
    import base64
    import json

    path = _journal(root / "openspec" / "changes" / change_id)
    if not path.is_file():
        return
    if dry_run:
        raise ArchiveAbort(
            f"an earlier apply of '{change_id}' was interrupted; run `specgen apply {change_id}` (without "
            "--dry-run) to put its specs back and apply it again",
            path,
        )
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["specs"]
        snapshots = {}
        for rel, data in entries.items():
            target = (root / rel).resolve()
            if os.path.commonpath([str(root.resolve()), str(target)]) != str(root.resolve()):
                raise ValueError(f"{rel} is outside the project")
            snapshots[target] = None if data is None else base64.b64decode(data, validate=True)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArchiveAbort(
            f"an earlier apply of '{change_id}' was interrupted and its journal cannot be read ({exc}); restore "
            "openspec/specs from version control, delete the journal and rerun",
            path,
        ) from None
    _restore(snapshots)
    path.unlink()
    print(f"specgen apply: an earlier apply of {change_id} was interrupted; its specs were put back", file=sys.stderr)


def _write_and_move(root, prepared, dry_run, totals, written, retired, warnings, change_dir, archive_path) -> None:
    for upd, res, outcome in prepared:
        if outcome == "write" and res.changed:
            if not dry_run:
                try:
                    previous = upd.target.read_bytes().decode("utf-8", errors="replace")
                except FileNotFoundError:
                    previous = None
                data = res.rebuilt if previous is None else match_line_ending(res.rebuilt, previous)
                fsio.write_text(upd.target, data)
            written.append(upd.target)
            for k in totals:
                totals[k] += res.counts[k]
    for upd, res, outcome in prepared:
        if outcome != "retire":
            continue
        rel = Path(os.path.relpath(upd.target, root)).as_posix()
        if not dry_run:
            os.unlink(upd.target)
            prune_empty_dirs(upd.target.parent, root / "openspec" / "specs")
        retired.append(upd.target)
        for k in totals:
            totals[k] += res.counts[k]
        warnings.append(
            f"{upd.id} - capability retired; deleted the main spec (all requirements removed, declared by "
            f"retire_capabilities) at {rel}. Its section(s) went with it: Purpose. If it was committed, "
            f'restore it with: git checkout HEAD -- ":(top){rel}"'
        )
    if not dry_run:
        archive_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(change_dir), str(archive_path))
