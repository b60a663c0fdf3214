"""Config problems: where they are (file, line, dotted key) and how they print.

Every problem is collected, never raised one at a time, so that a user fixing a config sees
all of them in one run. One problem prints as one line, ``file:line: error: dotted.key: message``,
the shape compilers and linters use, so editors can jump to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from coordexp.errors import CoordExpError

# A key path inside the config tree: mapping keys (str) and list indices (int).
KeyPath = tuple


def dotted(path: KeyPath) -> str:
    """``("rollout_matching", "vllm", "server", "servers", 0, "x")``
    -> ``rollout_matching.vllm.server.servers[0].x``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def display_path(path: str | Path) -> str:
    """A file name as the user typed it when it lies under the working directory, else absolute."""
    p = Path(path)
    try:
        return os.path.relpath(p) if p.resolve().is_relative_to(Path.cwd().resolve()) else str(p)
    except (OSError, ValueError):
        return str(p)


@dataclass(frozen=True, order=True)
class Loc:
    file: str
    line: int  # 1-based


@dataclass(frozen=True)
class Issue:
    loc: Loc
    key: str  # dotted path, "" for a whole-file problem
    message: str
    level: str = "error"  # or "warning"

    def format(self) -> str:
        where = f"{display_path(self.loc.file)}:{self.loc.line}"
        key = f"{self.key}: " if self.key else ""
        return f"{where}: {self.level}: {key}{self.message}"

    def __str__(self) -> str:
        return self.format()


class ConfigError(CoordExpError, ValueError):
    """The config is invalid; ``.errors`` holds every problem found (``Issue``), in file order."""

    def __init__(self, errors: list[Issue]):
        self.errors = sorted(errors, key=lambda i: (i.loc.file, i.loc.line, i.key, i.message))
        n = len(self.errors)
        lines = [e.format() for e in self.errors]
        super().__init__(f"{n} config error{'s' if n != 1 else ''}:\n" + "\n".join(lines))


class ConfigWarning(UserWarning):
    """A config key that is accepted but does nothing (e.g. the deprecated ``custom.coord_loss``)."""
