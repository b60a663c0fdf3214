"""Strength: mutate the on-path lines each requirement's checks execute and see whether those checks fail.

The mutations are Cosmic Ray's (its ``core`` operator provider, with its parso-based ``mutate_code``):
this module only chooses *where* (the lines reach found: executed by the requirement's checks and by an
entrypoint, optionally only lines changed since a git ref) and *which* (a seeded sample of at most N
sites per requirement), then runs each mutant.

Running a mutant never writes a product file and never re-imports the product: the parent process imports
pytest, the product and the checks once (a collect-only pass over the generated tests); each mutant runs in
a child forked from it, which compiles the mutated module text and swaps the new code into the live
function objects (``func.__code__``) of the function holding the mutated line, then runs only that
requirement's generated tests with ``pytest.main``. Exit 0: the mutant *survived*; 1: *killed*; past the
timeout the child is killed: *timeout* (counted as detected). A mutant that cannot be swapped in (the
line is not inside a live function, or the new code's closure differs) is *skipped* and counted apart.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

KILLED, SURVIVED, TIMEOUT, SKIPPED, ERROR = "killed", "survived", "timeout", "skipped", "error"


@dataclass(frozen=True)
class Site:
    file: str  # relative to the project root
    line: int
    operator: str
    occurrence: int


@dataclass
class Strength:
    killed: int = 0
    survived: int = 0
    timeout: int = 0
    total: int = 0
    skipped: int = 0
    errors: int = 0
    sites: int = 0  # mutation sites on the requirement's on-path lines (before sampling)
    survivors: list[dict] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict:
        return {
            "killed": self.killed,
            "survived": self.survived,
            "timeout": self.timeout,
            "total": self.total,
            "skipped": self.skipped,
            "errors": self.errors,
            "sites": self.sites,
            "survivors": self.survivors,
            "note": self.note,
        }


# ------------------------------------------------------------------ where: sites


def operators() -> list[tuple[str, object]]:
    import cosmic_ray.plugins

    out = []
    for name in sorted(cosmic_ray.plugins.operator_names()):
        cls = cosmic_ray.plugins.get_operator(name)
        if cls.arguments():  # operators that need arguments from a config file are left out
            continue
        out.append((name, cls()))
    return out


def file_sites(path: Path, rel: str, operators) -> list[Site]:
    """Every (operator, occurrence) Cosmic Ray can apply to the file, with the line it changes. Occurrences
    are counted per operator in the walk order of Cosmic Ray's own MutationVisitor, so `mutate_code`
    applies exactly the counted one."""
    from cosmic_ray.ast import ast_nodes, get_ast

    try:
        tree = get_ast(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return []
    counts = {name: 0 for name, _ in operators}
    sites = []
    for node in ast_nodes(tree):
        for name, op in operators:
            for start, _end in op.mutation_positions(node):
                sites.append(Site(rel, start[0], name, counts[name]))
                counts[name] += 1
    return sites


def changed_lines(root: Path, ref: str, files: list[str]) -> dict[str, set[int]]:
    """Lines added or changed since git `ref` in `files` (relative paths), from `git diff -U0`."""
    import re

    from specgen.errors import SpecgenError

    proc = subprocess.run(
        ["git", "diff", "-U0", "--no-color", ref, "--", *files], cwd=root, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SpecgenError(f"--since {ref}: git diff failed: {proc.stderr.strip().splitlines()[-1:]}")
    out: dict[str, set[int]] = {}
    current = None
    for line in proc.stdout.splitlines():
        if line.startswith("+++ "):
            current = line[6:] if line.startswith("+++ b/") else None
        elif line.startswith("@@") and current:
            m = re.match(r"@@ -\S+ \+(\d+)(?:,(\d+))? @@", line)
            if m:
                start, count = int(m.group(1)), int(m.group(2) or 1)
                out.setdefault(current, set()).update(range(start, start + count))
    return out


def pick(sites: list[Site], n: int, seed: int, key: str) -> list[Site]:
    """A deterministic sample of at most `n` sites for requirement `key` (same seed, same sample)."""
    ordered = sorted(sites, key=lambda s: (s.file, s.line, s.operator, s.occurrence))
    if len(ordered) <= n:
        return ordered
    rng = random.Random(f"{seed}:{key}")
    return sorted(rng.sample(ordered, n), key=lambda s: (s.file, s.line, s.operator, s.occurrence))


# ------------------------------------------------------------------ which code: swap in a mutant


def _module_for(path: Path):
    target = os.path.realpath(path)
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if f and os.path.realpath(f) == target:
            return module
    return None


def _codes(code):
    yield code
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            yield from _codes(const)


def _live_functions(module):
    """Every function object defined by `module` reachable from its namespace (classes walked, wrappers unwrapped)."""
    seen: set[int] = set()
    out = []

    def add(obj) -> None:
        while obj is not None and id(obj) not in seen:
            seen.add(id(obj))
            code = getattr(obj, "__code__", None)
            if code is not None and getattr(obj, "__module__", None) == module.__name__:
                out.append(obj)
            obj = getattr(obj, "__wrapped__", None)

    def walk(namespace, depth: int) -> None:
        for value in list(namespace.values()):
            if isinstance(value, type) and value.__module__ == module.__name__ and depth < 4:
                walk(vars(value), depth + 1)
            elif isinstance(value, (staticmethod, classmethod)):
                add(value.__func__)
            elif isinstance(value, property):
                for f in (value.fget, value.fset, value.fdel):
                    add(f)
            else:
                add(value)

    walk(vars(module), 0)
    return out


def swap_in(path: Path, mutated_source: str, qualname: str) -> bool:
    """Give the live function `qualname` of the module loaded from `path` the code compiled from the mutated
    text. False when there is no such live function or the code cannot be swapped."""
    module = _module_for(path)
    if module is None:
        return False
    try:
        compiled = compile(mutated_source, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    new = {c.co_qualname: c for c in _codes(compiled)}
    if qualname not in new:
        return False
    swapped = False
    for fn in _live_functions(module):
        if fn.__code__.co_qualname == qualname:
            try:
                fn.__code__ = new[qualname]
            except ValueError:  # a different closure: cannot be swapped in place
                return False
            swapped = True
    return swapped


# ------------------------------------------------------------------ running


@dataclass(frozen=True)
class Mutant:
    site: Site
    mutated: str  # the whole mutated module text
    qualname: str  # the live function to swap (the outermost one holding the line)
    before: str
    after: str


def build_mutant(root: Path, site: Site, fmap) -> Mutant | None:
    import cosmic_ray.plugins
    from cosmic_ray.mutating import mutate_code

    fn = fmap.function_at(site.line) if fmap else None
    if fn is None:
        return None
    source = (root / site.file).read_text(encoding="utf-8")
    mutated = mutate_code(source, cosmic_ray.plugins.get_operator(site.operator)(), site.occurrence)
    if mutated is None:
        return None
    old, new = source.splitlines(), mutated.splitlines()
    before = old[site.line - 1].strip() if site.line <= len(old) else ""
    after = new[site.line - 1].strip() if site.line <= len(new) else ""
    return Mutant(site, mutated, fn.outer, before, after)


def _pytest_args(nodeids: list[str], scratch: Path) -> list[str]:
    return [
        *nodeids,
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--specgen-results",
        str(scratch / f"results-{os.getpid()}.json"),
    ]


def _quiet() -> None:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)


def run_forked(root: Path, nodeids: list[str], scratch: Path, timeout: float, mutant: Mutant | None) -> str:
    """Run the tests `nodeids` in a child forked from this (warm) process, with `mutant` swapped in."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 3
        try:
            _quiet()
            if mutant is not None and not swap_in(root / mutant.site.file, mutant.mutated, mutant.qualname):
                os._exit(100)
            import pytest

            code = int(pytest.main(_pytest_args(nodeids, scratch)))
        except BaseException:  # noqa: BLE001 - any failure of the child is an error verdict
            code = 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return {0: SURVIVED, 1: KILLED, 100: SKIPPED}.get(code, ERROR)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return TIMEOUT
        time.sleep(0.01)


def warm(root: Path, test_files: list[str], scratch: Path) -> int:
    """Import pytest, the checks and the product once, in this process (the parent of every mutant)."""
    import pytest

    os.chdir(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    pid = os.fork()
    if pid == 0:  # a first, quiet, collect-only pass in a child tells whether collection works at all
        _quiet()
        os._exit(int(pytest.main([*test_files, "--collect-only", "-q", "-p", "no:cacheprovider"])))
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return os.waitstatus_to_exitcode(status)
    saved = os.dup(1), os.dup(2)
    _quiet()
    try:
        return int(pytest.main([*test_files, "--collect-only", "-q", "-p", "no:cacheprovider"]))
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
