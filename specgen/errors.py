"""What goes wrong, in one shape for every layer.

- ``SpecgenError``: the one exception base. Bad input (unreadable file, missing folder, unknown
  id, a change archive would refuse): the CLI prints ``path:line: error: message`` and exits 2
  (or 1 where the README says so). Never a traceback.
- ``Issue``: one finding that does not stop the run (a validation rule, a binding without a
  check, a stale file): ``level`` (``error``, ``warning``, ``info``), ``path`` and ``line`` where
  it is, ``message`` saying what to do. ``code`` is a stable keyword for machines; ``locator``
  is the OpenSpec CLI's own locator for validation issues (``requirements[3]``, ``overview``,
  ``file``...), printed as ``path`` by ``validate --json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ERROR, WARNING, INFO = "error", "warning", "info"


class SpecgenError(Exception):
    """Bad input: unreadable file, missing folder, unknown id. CLI exit 2.

    ``path`` and ``line`` locate the problem when known; the message says what to do.
    """

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return f"{where}error: {self.message}"


@dataclass(frozen=True)
class Issue:
    level: str  # ERROR | WARNING | INFO
    path: Path | str | None  # the file holding it (a Path, or a project-relative POSIX string)
    line: int | None  # 1-based
    message: str
    code: str = ""  # a stable keyword ("unbound-scenario", ...)
    locator: str = ""  # validation: the OpenSpec CLI's locator, as `openspec validate --json` prints `path`
    cli_line: bool = False  # validation: the CLI itself reports `line` for this issue

    def human(self, where: str | None = None) -> str:
        """``path:line: level: message`` on one line."""
        where = where if where is not None else (str(self.path) if self.path is not None else self.locator)
        loc = f"{where}:{self.line}" if self.line else where
        return f"{loc}: {self.level}: {self.message.replace(chr(10), ' ')}"
