"""`specgen apply <change> [--dry-run] [--root DIR]`: what `openspec archive <change> --yes` does.

Validate the delta specs, merge them into the current specs (RENAMED, REMOVED, MODIFIED, ADDED),
validate the rebuilt specs, write them to openspec/specs/ and move the change to
openspec/changes/archive/YYYY-MM-DD-<change>/. --dry-run runs every check and prints the merged
specs; it never writes anything. Exit 0 applied, 1 archive would refuse the change (nothing
written), 2 bad input (docs/validation.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from specgen.archive import archive_change
from specgen.cli import roots
from specgen.cli.validate import openspec_root
from specgen.reader.text import read_text_as_node
from specgen.rules.merge import ArchiveAbort
from specgen.rules.tasks import parse_task_lines


def _holds(r, change: str) -> bool:
    return (r.config.openspec_dir / "changes" / change).is_dir()


def run_apply(args) -> int:
    # With several OpenSpec roots the change is looked up as specgen.cli.roots says (`<root>:<change>`,
    # --only, or the one root holding it).
    r, args.change = roots.one(args, args.change, _holds, "active change")
    root, prefix = openspec_root(r.config)
    try:
        outcome = archive_change(root, args.change, dry_run=args.dry_run)
    except ArchiveAbort as exc:
        where = os.path.relpath(exc.path, root) if exc.path else f"openspec/changes/{args.change}"
        where = prefix + Path(where).as_posix()
        loc = f"{where}:{exc.line}" if exc.line else where
        msg = exc.message.replace("\n", "\n    ")
        print(f"{loc}: error: {msg}", file=sys.stderr)
        for detail in exc.details:
            print(f"    {detail.human(prefix + str(detail.path) if detail.path else None)}", file=sys.stderr)
        if exc.fix:
            print(f"fix: {exc.fix}", file=sys.stderr)
        print("Aborted. No files were changed.", file=sys.stderr)
        return 1
    change_dir = root / "openspec" / "changes" / args.change
    tasks_file = (outcome.archive_path if not args.dry_run else change_dir) / "tasks.md"
    if tasks_file.is_file():
        left = sum(1 for done, _ in parse_task_lines(read_text_as_node(tasks_file)) if not done)
        if left:
            print(
                f"warning: {left} incomplete task(s) found; continuing (as `openspec archive --yes`).", file=sys.stderr
            )
    for w in outcome.warnings:
        print(f"warning: {w}", file=sys.stderr)
    out = sys.stdout
    for spec_id, m in outcome.merged.items():
        rel = prefix + Path(os.path.relpath(m.target, root)).as_posix()
        c = m.counts
        kind = outcome.outcomes.get(spec_id, "write")
        verb = "retire" if kind == "retire" else "create" if m.created else "update" if m.changed else "in sync"
        counts = f"+{c['added']} ~{c['modified']} -{c['removed']} \u2192{c['renamed']}"
        if args.dry_run:
            out.write(f"==> {rel} ({verb}: {counts})\n")
            if kind != "retire":
                out.write(m.text)
        else:
            out.write(f"{rel}: {verb} ({counts})\n")
    t = outcome.totals or {"added": 0, "modified": 0, "removed": 0, "renamed": 0}
    out.write(f"Totals: + {t['added']}, ~ {t['modified']}, - {t['removed']}, \u2192 {t['renamed']}\n")
    if args.dry_run:
        out.write(f"Dry run: would archive '{args.change}' as '{outcome.archived_as}'. Nothing was written.\n")
    else:
        out.write(f"Change '{args.change}' archived as '{outcome.archived_as}'.\n")
    return 0
