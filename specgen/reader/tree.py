"""The OpenSpec tree: which files are specs and changes, and the whole project model.

``discover_spec_files`` is the one walk over a ``specs/`` folder (main specs and a change's
delta specs alike): every ``<id>/spec.md`` at any depth, ids sorted as the CLI sorts them. The
CLI's code paths differ on one point, named here as a mode: ``show``/``list`` refuse a spec.md
that links outside its specs folder (``LINKS_INSIDE``); ``validate``/``archive`` read whatever a
link points at (``LINKS_ANY``). ``load_tree(root)`` reads ``<root>/openspec`` into a
:class:`specgen.model.Project` (see docs/reading-openspec.md).
"""

from __future__ import annotations

import os
import stat as _stat
from pathlib import Path

from specgen.errors import SpecgenError
from specgen.reader.files import Files
from specgen.reader.text import utf16_key

# ---------------------------------------------------------------------------- discovery


# How a symlinked spec.md is read (the CLI's code paths differ).
LINKS_INSIDE = "inside"  # show / list: a link must point inside the specs tree or its own folder
LINKS_ANY = "any"  # validate / archive: a link to any regular file is read


def discover_spec_files(
    specs_root: Path, links: str = LINKS_INSIDE, files: Files | None = None
) -> list[tuple[str, Path]]:
    """Every `<id>/spec.md` under `specs_root`, at any depth (`area/cap/spec.md` has id
    `area/cap`), sorted as the CLI sorts ids. Dot entries are skipped; symlinked directories
    are not followed (so a link loop is harmless); a dangling symlinked spec.md is skipped, one
    to a regular file counts (with LINKS_INSIDE, only when it points inside the specs tree or
    its own capability folder: else SpecgenError)."""
    files = files or Files()
    results: list[tuple[str, Path]] = []
    root_real = None
    todo: list[tuple[Path, tuple[str, ...]]] = [(specs_root, ())]
    while todo:
        folder, segs = todo.pop()
        try:
            entries = files.entries(folder)
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            if segs:
                continue
            raise SpecgenError("is not a folder", folder) from None
        except OSError as exc:
            raise SpecgenError(f"cannot list folder: {exc.strerror or exc}", folder) from None
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                todo.append((Path(entry.path), segs + (name,)))
                continue
            if name != "spec.md" or not segs:
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue  # dangling link: not content
                except OSError as exc:
                    raise SpecgenError(f"cannot read: {exc.strerror or exc}", path) from None
                if not _stat.S_ISREG(st.st_mode):
                    continue
                if links != LINKS_ANY and root_real is None:
                    root_real = os.path.realpath(specs_root)
                if links != LINKS_ANY and not _inside(root_real, folder, path):
                    raise SpecgenError("spec.md links outside its specs folder", path)
            elif not entry.is_file(follow_symlinks=False):
                continue
            results.append(("/".join(segs), path))
    results.sort(key=lambda r: utf16_key(r[0]))
    return results


def _inside(root_real: str, folder: Path, path: Path) -> bool:
    target = os.path.realpath(path)
    return _within(root_real, target) or _within(os.path.realpath(folder), target)


def _within(folder: str, target: str) -> bool:
    return target == folder or target.startswith(folder.rstrip(os.sep) + os.sep)


def _subdirs(folder: Path, follow_links: bool = False, files: Files | None = None) -> list[str]:
    """Names of the sub-folders (symlinked ones only with `follow_links`), in byte order as Node's
    readdir lists them."""
    try:
        names = [e.name for e in (files or Files()).entries(folder) if e.is_dir(follow_symlinks=follow_links)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise SpecgenError(f"cannot list folder: {exc.strerror or exc}", folder) from None
    return sorted(names, key=lambda n: n.encode("utf-8", "surrogateescape"))


def active_change_ids(root: Path, links: str = LINKS_INSIDE, files: Files | None = None) -> list[str]:
    """Folders directly under openspec/changes/, except archive/ and dot folders. A symlinked
    folder counts only with LINKS_ANY (what `validate` lists; `show` and `list` skip it)."""
    names = [
        n
        for n in _subdirs(root / "openspec" / "changes", links == LINKS_ANY, files)
        if n != "archive" and not n.startswith(".")
    ]
    return sorted(names, key=utf16_key)


def archived_change_ids(root: Path) -> list[str]:
    names = [n for n in _subdirs(root / "openspec" / "changes" / "archive") if not n.startswith(".")]
    return sorted(names, key=utf16_key)


def spec_ids(root: Path) -> list[str]:
    return [sid for sid, _ in discover_spec_files(root / "openspec" / "specs")]


# Files whose presence makes a folder under changes/ a change (besides any file under its specs/).
CHANGE_MARKERS = (".openspec.yaml", "proposal.md", "tasks.md", "design.md")


def has_any_file_under(folder: Path, files: Files | None = None) -> bool:
    """A file (or a symlink) anywhere under `folder`, dot entries skipped. False when the folder
    does not exist; another OSError propagates (the caller decides what an unreadable folder means)."""
    files = files or Files()
    todo = [folder]
    while todo:
        try:
            entries = files.entries(todo.pop())
        except FileNotFoundError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_file(follow_symlinks=False) or e.is_symlink():
                return True
            if e.is_dir(follow_symlinks=False):
                todo.append(Path(e.path))
    return False


def nested_changes(
    changes_dir: Path, name: str, looks_like_change, links: str = LINKS_INSIDE, files: Files | None = None
) -> list[str]:
    """Change folders wrapped in the namespace folder `changes/<name>/` (up to three levels), which
    OpenSpec does not read as changes; [] for an ordinary change. `looks_like_change(folder)` is the
    caller's test (validate also counts the schema's artifacts); with LINKS_ANY symlinked folders
    count as folders (validate), else not (list, show)."""
    if name == "archive" or name.startswith("."):
        return []
    files = files or Files()
    folder = changes_dir / name
    if looks_like_change(folder):
        return []
    follow = links == LINKS_ANY
    try:
        if any(not e.name.startswith(".") and not e.is_dir(follow_symlinks=follow) for e in files.entries(folder)):
            return []
    except OSError:
        return []
    found: list[str] = []
    todo = [(folder, name, 1)]
    while todo:
        d, prefix, depth = todo.pop()
        try:
            subs = sorted(
                e.name for e in files.entries(d) if e.is_dir(follow_symlinks=follow) and not e.name.startswith(".")
            )
        except OSError:
            continue
        for child in reversed(subs):  # depth-first, in name order
            cid = f"{prefix}/{child}"
            if looks_like_change(d / child):
                found.append(cid)
            elif depth < 3:
                todo.append((d / child, cid, depth + 1))
    return sorted(found, key=utf16_key)


def describe_nested(name: str, nested: list[str]) -> str:
    """The message for a namespace folder wrapping changes (the CLI's words)."""
    where = ", ".join(f"openspec/changes/{n}/" for n in nested)
    example = nested[0].replace("/", "-")
    return (
        f'"{name}" is not a change: it is a folder wrapping {where}. A change must be a directory '
        "directly under openspec/changes/, so those nested directories are invisible to OpenSpec while the "
        "folder around them is reported as a change. Nested paths are supported under openspec/specs/ only. "
        f'Rename each nested change to a flat name (for example "{example}").'
    )
