"""The files of one OpenSpec tree as the validation rules see them, each touched once per run.

A :class:`Files` is made by whoever starts a run (``rules.validate.validate_all`` makes one for
the whole tree) and handed down: every rule reads, lists and tests paths through it, so a file
read by three rules (a delta spec, the main spec it modifies, a change's metadata) is read once,
a folder listed by the discovery and again by a rule is listed once, and what is derived from a
file (a change's schema) is worked out once. Results are the ones the plain calls give, errors
included: an exception (``OSError``, a schema error) is remembered and raised again, so a rule
sees a missing or unreadable file exactly as it would on disk.

A run must not write to the tree while its ``Files`` is in use (archive, which writes, makes
its own before it starts and none after). A function taking ``files=None`` makes a fresh one, so
a one-off caller (show, the compiler) reads the disk as it always did.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from pathlib import Path

from specgen.reader.text import read_text_as_node


class Files:
    """Memoized file-system answers (and values derived from files) for one run over one tree."""

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        self._memo: dict[Hashable, tuple[bool, object]] = {}

    def memo(self, key: Hashable, compute: Callable[[], object]):
        """`compute()` once per key; an exception it raises is raised again on each later call."""
        hit = self._memo.get(key)
        if hit is None:
            try:
                hit = (True, compute())
            except Exception as exc:  # noqa: BLE001 (remembered, and raised again below)
                hit = (False, exc)
            self._memo[key] = hit
        ok, value = hit
        if ok:
            return value
        raise value.with_traceback(None)  # type: ignore[union-attr]

    def text(self, path: Path | str) -> str:
        """The file's text as Node's readFile(path, 'utf-8') gives it (see reader.text)."""
        key = os.fspath(path)
        return self.memo(("text", key), lambda: read_text_as_node(key))

    def entries(self, folder: Path | str) -> list[os.DirEntry]:
        """The folder's entries as os.scandir lists them (DirEntry keeps its own type answers)."""
        key = os.fspath(folder)
        return self.memo(("scandir", key), lambda: list(os.scandir(key)))

    def text_utf8(self, path: Path) -> str:
        """Path.read_text(encoding="utf-8"): strict UTF-8, universal newlines (a schema file)."""
        return self.memo(("text_utf8", os.fspath(path)), lambda: Path(path).read_text(encoding="utf-8"))

    # Two families, because their callers were written against both: os.path's answers (every
    # error means False) and pathlib's (an error other than a missing path is raised).

    def exists(self, path: Path | str) -> bool:
        """os.path.exists."""
        key = os.fspath(path)
        return self.memo(("exists", key), lambda: os.path.exists(key))

    def isfile(self, path: Path | str) -> bool:
        """os.path.isfile."""
        key = os.fspath(path)
        return self.memo(("isfile", key), lambda: os.path.isfile(key))

    def lexists(self, path: Path | str) -> bool:
        """os.path.lexists (a dangling link exists)."""
        key = os.fspath(path)
        return self.memo(("lexists", key), lambda: os.path.lexists(key))

    def is_file(self, path: Path) -> bool:
        """Path.is_file."""
        return self.memo(("is_file", os.fspath(path)), lambda: Path(path).is_file())

    def is_dir(self, path: Path) -> bool:
        """Path.is_dir."""
        return self.memo(("is_dir", os.fspath(path)), lambda: Path(path).is_dir())

    def is_symlink(self, path: Path) -> bool:
        """Path.is_symlink."""
        return self.memo(("is_symlink", os.fspath(path)), lambda: Path(path).is_symlink())

    def path_exists(self, path: Path) -> bool:
        """Path.exists."""
        return self.memo(("path_exists", os.fspath(path)), lambda: Path(path).exists())

    def glob(self, folder: Path, pattern: str) -> list[Path]:
        return self.memo(("glob", os.fspath(folder), pattern), lambda: list(Path(folder).glob(pattern)))

    def realpath(self, path: Path) -> Path:
        return self.memo(("realpath", os.fspath(path)), lambda: Path(path).resolve())
