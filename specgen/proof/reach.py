"""Reach: coverage data -> per scenario, the product functions its checks execute and which of them no
entrypoint runs. Pure functions over coverage.py's data objects (``measured_files``,
``contexts_by_lineno``, ``lines``) and the ``ast`` map of :mod:`specgen.proof.functions`.

A scenario is
- ``on-path``: every product function its checks execute is executed by some entrypoint;
- ``off-path``: some are not; they are listed as ``path:line function`` (the def line);
- ``no-reach``: its checks execute no product function at all.
A binding marked ``@pytest.mark.reach_exception("why")`` keeps its status and carries the reason;
the gate lets it pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from specgen.proof.functions import FileMap, map_file
from specgen.proof.names import in_subprocess, parse_context

ON_PATH, OFF_PATH, NO_REACH = "on-path", "off-path", "no-reach"


@dataclass
class ScenarioReach:
    status: str
    functions: list[str]  # every product function the checks execute, "path:line function"
    off_path: list[str]
    exception: str | None = None
    lines: dict[str, list[int]] = field(default_factory=dict)  # on-path lines the checks execute, by file

    def to_json(self) -> dict:
        out = {"status": self.status, "functions": self.functions, "off_path": self.off_path, "lines": self.lines}
        if self.exception is not None:
            out["exception"] = self.exception
        return out


# What runs every generated test, whatever its check: the harness, never the product a check reaches (when
# specgen is itself the product measured, as in this repository, these would otherwise be "reached" by all).
_HARNESS = ("runtime.py", "plugin.py", "proof/contexts.py", "proof/names.py")


def _harness_files() -> set[str]:
    base = Path(__file__).resolve().parents[1]
    return {str(base / rel) for rel in _HARNESS}


class Maps:
    """The function map of each measured file, read once (None for the test harness's own files)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._maps: dict[str, FileMap | None] = {}
        self._harness = _harness_files()

    def get(self, filename: str) -> FileMap | None:
        if filename not in self._maps:
            harness = str(Path(filename).resolve()) in self._harness
            self._maps[filename] = None if harness else map_file(Path(filename))
        return self._maps[filename]

    def rel(self, filename: str) -> str:
        try:
            return Path(filename).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return filename


def entry_lines(entry_data, maps: Maps) -> tuple[set[tuple[str, str]], dict[str, set[int]]]:
    """The (file, function) pairs and the lines the entrypoints executed, inside functions."""
    functions: set[tuple[str, str]] = set()
    lines: dict[str, set[int]] = {}
    for filename in entry_data.measured_files():
        fmap = maps.get(filename)
        if fmap is None:
            continue
        rel = maps.rel(filename)
        for line in entry_data.lines(filename) or ():
            fn = fmap.function_at(line)
            if fn is not None:
                functions.add((rel, fn.qualname))
                lines.setdefault(rel, set()).add(line)
    return functions, lines


@dataclass
class CheckData:
    """What each check executed, by context key (view, scenario id, check): `executed`, the lines inside product
    functions, in the test's own process and the processes it started; `in_process`, those of the test's own
    process (what a mutant swapped into that process can change); `files`, every measured file it executed any
    line of (harness files included: what an incremental run compares to decide whether to rerun it)."""

    executed: dict[tuple[str, str, str], dict[str, set[int]]] = field(default_factory=dict)
    in_process: dict[tuple[str, str, str], dict[str, set[int]]] = field(default_factory=dict)
    files: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)


def check_data(test_data, maps: Maps) -> CheckData:
    """One pass over the test run's coverage data (``contexts_by_lineno`` per file): see :class:`CheckData`."""
    out = CheckData()
    for filename in test_data.measured_files():
        fmap = maps.get(filename)
        rel = maps.rel(filename)
        for line, contexts in test_data.contexts_by_lineno(filename).items():
            inside = fmap is not None and fmap.function_at(line) is not None
            for ctx in contexts:
                key = parse_context(ctx)
                if key is None:
                    continue
                out.files.setdefault(key, set()).add(rel)
                if not inside:
                    continue
                out.executed.setdefault(key, {}).setdefault(rel, set()).add(line)
                if not in_subprocess(ctx):
                    out.in_process.setdefault(key, {}).setdefault(rel, set()).add(line)
    return out


def scenario_reach(
    executed: list[dict[str, set[int]]],
    entry_functions: set[tuple[str, str]],
    entry_line_map: dict[str, set[int]],
    maps: Maps,
    exception: str | None = None,
    in_process: list[dict[str, set[int]]] | None = None,
) -> ScenarioReach:
    """One scenario's reach from the lines each of its checks executed; its mutable lines (`lines`): the
    on-path ones among those executed `in_process` (default: all)."""
    merged: dict[str, set[int]] = {}
    for per_file in executed:
        for rel, lines in per_file.items():
            merged.setdefault(rel, set()).update(lines)
    functions: dict[tuple[str, str], str] = {}
    on_lines: dict[str, list[int]] = {}
    for rel in sorted(merged):
        fmap = maps.get(str(maps.root / rel))
        if fmap is None:
            continue
        for line in sorted(merged[rel]):
            fn = fmap.function_at(line)
            if fn is not None:
                functions[(rel, fn.qualname)] = f"{rel}:{fn.line} {fn.qualname}"
    own: dict[str, set[int]] = {}
    for per_file in in_process if in_process is not None else executed:
        for rel, lines in per_file.items():
            own.setdefault(rel, set()).update(lines)
    for rel in sorted(own):
        hit = sorted(own[rel] & entry_line_map.get(rel, set()))
        if hit:
            on_lines[rel] = hit
    off = sorted(label for key, label in functions.items() if key not in entry_functions)
    if not functions:
        status = NO_REACH
    elif off:
        status = OFF_PATH
    else:
        status = ON_PATH
    return ScenarioReach(status, sorted(functions.values()), off, exception, on_lines)
