"""Every file specgen writes goes through here: whole or not at all.

A write goes to a temporary file in the target's own folder (same file system, so the rename is
atomic), is flushed to disk, and is renamed over the target. A run killed at any moment, or a full
disk, leaves the old file or the new one, never a truncated one; the temporary file is removed
when the write fails. Failures of the environment (read-only folder, full disk, a folder where a
file should be) become one ``SpecgenError`` naming the path, never a traceback.

With ``root`` (the project root) a write is also confined: a target whose folder, or which itself, is
a link leading out of the root is refused, never written through.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from specgen.errors import SpecgenError


def write_bytes(path: Path, data: bytes, root: Path | None = None) -> None:
    """Replace ``path`` with ``data`` atomically (its folder is created when missing). ``root``: refuse a
    target that a link leads out of this folder (see `confined`)."""
    write_many([(path, data)], root)


def write_many(items, root: Path | None = None) -> None:
    """``write_bytes`` for each (path, data) of `items`, each file atomic on its own: every temporary file is
    written first, then each is flushed to disk and renamed. Flushing after all writes lets the file system
    commit them together (1,000 generated files: one journal commit instead of 1,000)."""
    pending: list[tuple[Path, str]] = []
    try:
        for path, data in items:
            path = Path(path)
            if root is not None:
                confined(path, root)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.is_dir():
                    raise SpecgenError("is a folder where a file belongs; remove or rename it", path)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                pending.append((path, tmp))
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
            except OSError as exc:
                raise SpecgenError(f"cannot write: {exc.strerror or exc}", path) from None
        while pending:
            path, tmp = pending[0]
            try:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                mode = _mode_of(path)
                if mode is not None:
                    os.chmod(tmp, mode)
                os.replace(tmp, path)
            except OSError as exc:
                raise SpecgenError(f"cannot write: {exc.strerror or exc}", path) from None
            pending.pop(0)
    finally:
        for _, tmp in pending:
            _discard(tmp)


def write_text(path: Path, text: str, root: Path | None = None) -> None:
    """``write_bytes`` of UTF-8 text, newlines kept exactly as given."""
    write_bytes(path, text.encode("utf-8"), root)


def confined(path: Path, root: Path) -> None:
    """Refuse (SpecgenError naming the path) a `path` that is not inside `root` once links are followed:
    its folder (or the nearest one that exists) or, when `path` is a link, what it points to."""
    real_root = os.path.realpath(root)
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    for what, real in (("its folder", os.path.realpath(folder)), ("the link", os.path.realpath(path))):
        if what == "the link" and not os.path.islink(path):
            continue
        if os.path.commonpath([real_root, real]) != real_root:
            raise SpecgenError(
                f"{what} leads out of the project ({real}); specgen writes only inside {real_root}: "
                "replace the link with a folder or file of the project",
                path,
            )


def _mode_of(path: Path) -> int | None:
    # Keep an existing file's permissions; a new file gets the umask's default like open() would.
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass
