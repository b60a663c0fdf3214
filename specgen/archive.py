"""``archive_change``: what `openspec archive <id> --yes` does on disk (see docs/validation.md).

:func:`specgen.rules.archive.plan_archive` decides everything (the checks, each merged spec and
whether it is written, retired or skipped) without writing; this module carries the plan out:
it writes (or retires) the specs and moves the change to ``changes/archive/YYYY-MM-DD-<id>/``.
Every refusal is raised by the plan, before anything is written. Before the first spec is
written, the specs to be touched are journaled in the change folder, so an interrupted apply
is put back by the next one.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from specgen import fsio
from specgen.rules.archive import plan_archive
from specgen.rules.merge import ArchiveAbort, match_line_ending


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
    plan = plan_archive(root, change_id, today=today)  # reads the tree as the rollback left it
    prepared, change_dir, archive_path = plan.prepared, plan.change_dir, plan.archive_path
    warnings = list(plan.warnings)  # a retirement adds its own below
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
        plan.archived_as,
        archive_path,
        bool(written or retired),
        totals if plan.updates else None,
        warnings,
        plan.merged,
        {u.id: o for u, _, o in prepared},
        written,
        retired,
        dry_run,
    )


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


def prune_empty_dirs(start: Path, boundary: Path) -> None:
    """Remove `start` and its parents while empty, up to (not including) `boundary` (a retired spec's folders)."""
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
