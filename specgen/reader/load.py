"""The whole OpenSpec tree -> the spec model: ``load_tree(root)`` reads ``<root>/openspec``
(every spec, every active change, every archived change) as the OpenSpec CLI 1.13.2 reads each.

``root`` is the folder holding ``openspec/``; which folder that is, for a project, is decided
once by :mod:`specgen.config` (``[tool.specgen] specs``).
"""

from __future__ import annotations

import os
from pathlib import Path

from specgen.errors import ERROR, Issue, SpecgenError
from specgen.model import Project
from specgen.reader.changes import parse_change
from specgen.reader.specs import parse_spec
from specgen.reader.tree import active_change_ids, archived_change_ids, discover_spec_files


def find_openspec_root(start: Path | str = ".") -> Path | None:
    """The OpenSpec root the CLI would use from `start`: the nearest folder (start first,
    then its ancestors) holding an `openspec/` with a `specs/` or `changes/` folder in it,
    symlinks resolved. None when there is none."""
    here = Path(os.path.realpath(start))
    if not here.is_dir():
        here = here.parent
    while True:
        base = here / "openspec"
        if base.is_dir() and ((base / "specs").is_dir() or (base / "changes").is_dir()):
            return here
        if here.parent == here:
            return None
        here = here.parent


def load_tree(root: Path | str = ".") -> Project:
    """Parse ``<root>/openspec``: every spec, every active change, every archived change. A file
    that cannot be read is an error in ``Project.unreadable``, not an exception (the rest is read)."""
    root = Path(root)
    base = root / "openspec"
    if not base.is_dir():
        raise SpecgenError("no openspec/ folder here; pass --root DIR or run `openspec init`", base)
    unreadable: list[Issue] = []
    specs = _each(unreadable, parse_spec, [(path, sid) for sid, path in discover_spec_files(base / "specs")])
    changes = _each(
        unreadable, parse_change, [(base / "changes" / cid, False, root) for cid in active_change_ids(root)]
    )
    archived = _each(
        unreadable,
        parse_change,
        [(base / "changes" / "archive" / cid, True, root) for cid in archived_change_ids(root)],
    )
    return Project(root, specs, changes, archived, tuple(unreadable))


def _each(unreadable: list[Issue], parse, calls: list[tuple]) -> tuple:
    """parse(*args) for each call; a file that cannot be read (SpecgenError naming it) becomes an
    error Issue, and the item it belongs to is left out, so one bad file never hides the rest."""
    out = []
    for args in calls:
        try:
            out.append(parse(*args))
        except SpecgenError as exc:
            unreadable.append(Issue(ERROR, exc.path, exc.line, exc.message, "unreadable-file"))
    return tuple(out)
