"""Every file specgen writes goes through here: whole or not at all.

A write goes to a temporary file in the target's own folder (same file system, so the rename is
atomic), is flushed to disk, and is renamed over the target. A run killed at any moment, or a full
disk, leaves the old file or the new one, never a truncated one; the temporary file is removed
when the write fails. Failures of the environment (read-only folder, full disk, a folder where a
file should be) become one ``SpecgenError`` naming the path, never a traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from specgen.errors import SpecgenError


def write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (its folder is created when missing)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise SpecgenError("is a folder where a file belongs; remove or rename it", path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise SpecgenError(f"cannot write: {exc.strerror or exc}", path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        mode = _mode_of(path)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise SpecgenError(f"cannot write: {exc.strerror or exc}", path) from None
    except BaseException:
        _discard(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    """``write_bytes`` of UTF-8 text, newlines kept exactly as given."""
    write_bytes(path, text.encode("utf-8"))


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
