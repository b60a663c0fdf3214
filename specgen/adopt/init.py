"""``specgen init``: what an existing OpenSpec project needs to adopt specgen, and nothing else.

:func:`plan` reads the project (``tomllib`` for pyproject.toml) and returns the edits still needed,
each a :class:`Edit` (a file, what it adds, the text to write); :func:`apply` writes them. Run twice,
the second plan is empty. Existing content is never rewritten: a missing ``[tool.specgen]`` or
``[tool.pytest.ini_options]`` table is appended as text; a pytest table without ``pythonpath`` gets
that one line after its header; ``.gitignore`` gets one line; the checks package gets an empty
``__init__.py``.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

from specgen import fsio
from specgen.errors import SpecgenError

SPECGEN_TABLE = """\
[tool.specgen]
{layout}
checks = ["tests.checks"]
output = "tests/generated"
"""
SINGLE = 'specs = "openspec"'
# Folders never searched for OpenSpec trees: tools' caches, dependencies, build outputs.
_SKIP = {".git", "node_modules", ".venv", "venv", "build", "dist", "__pycache__", ".tox", ".mypy_cache"}
_DEPTH = 4  # openspec/ folders deeper than root/a/b/c/openspec are not looked for
PYTEST_TABLE = """\
[tool.pytest.ini_options]
pythonpath = ["."]  # generated tests import the check modules from the project root
"""
PYTEST_HEADER = "[tool.pytest.ini_options]"
PYTHONPATH_LINE = 'pythonpath = ["."]  # generated tests import the check modules from the project root'
IGNORED = "build/specgen/"


@dataclass(frozen=True)
class Edit:
    path: Path
    what: str  # one line for the user: "appended [tool.specgen]"
    mode: str  # "create" | "append" | "insert-after:<line>"
    text: str


def find_trees(root: Path) -> list[str]:
    """Folders called openspec (holding specs/ or changes/) under `root`, as POSIX paths relative to it, sorted;
    the search stops at an openspec/ folder (no tree inside a tree) and skips tools' and build folders."""
    found: list[str] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            return
        for child in children:
            if child.name == "openspec":
                if (child / "specs").is_dir() or (child / "changes").is_dir():
                    found.append(child.relative_to(root).as_posix())
            elif child.name not in _SKIP and not child.name.startswith(".") and depth < _DEPTH:
                walk(child, depth + 1)

    walk(root, 0)
    return found


def layout(trees: list[str]) -> str:
    """The [tool.specgen] line naming the OpenSpec trees: `specs` for one, `roots` (globs) for several.
    Trees that differ only in one folder name share a glob (packages/a/openspec, packages/b/openspec:
    packages/*/openspec)."""
    if len(trees) <= 1:
        return f'specs = "{trees[0] if trees else "openspec"}"'
    patterns: list[str] = []
    for tree in trees:
        parts = tree.split("/")
        glob = "/".join([*parts[:-2], "*", parts[-1]]) if len(parts) >= 3 else tree
        siblings = [t for t in trees if len(t.split("/")) == len(parts) and fnmatch.fnmatchcase(t, glob)]
        pattern = glob if len(siblings) > 1 else tree
        if pattern not in patterns:
            patterns.append(pattern)
    return "roots = [" + ", ".join(f'"{p}"' for p in patterns) + "]"


def plan(root: Path, checks: str = "tests.checks", trees: str = SINGLE) -> list[Edit]:
    """The edits `root` still needs; empty when it is adopted. `trees`: the line naming the OpenSpec
    folder(s) in a new [tool.specgen] table (see `layout`)."""
    edits = _pyproject_edits(root, trees)
    package = root.joinpath(*checks.split("."))
    # A parent folder that exists already (a project's tests/) is left as it is: an __init__.py there would
    # change how pytest imports the project's own tests, and a namespace package imports as well.
    for folder in reversed(package.relative_to(root).parents[:-1]):
        if not (root / folder).exists():
            edits.append(Edit(root / folder / "__init__.py", f"created {folder.as_posix()}/__init__.py", "create", ""))
    if not (package / "__init__.py").exists():
        edits.append(
            Edit(
                package / "__init__.py",
                f"created {package.relative_to(root).as_posix()}/__init__.py (the checks package)",
                "create",
                "",
            )
        )
    gitignore = root / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.is_file() else []
    if not any(line.strip().rstrip("/").lstrip("/") == IGNORED.rstrip("/") for line in lines):
        edits.append(
            Edit(
                gitignore,
                f"added {IGNORED} to .gitignore (reports are built, not committed)",
                "append" if gitignore.exists() else "create",
                IGNORED + "\n",
            )
        )
    return edits


def _pyproject_edits(root: Path, trees: str) -> list[Edit]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return [
            Edit(
                path,
                "created pyproject.toml with [tool.specgen] and the pytest settings",
                "create",
                SPECGEN_TABLE.format(layout=trees) + "\n" + PYTEST_TABLE,
            )
        ]
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecgenError(f"not valid TOML: {exc}; fix it and rerun `specgen init`", path) from None
    tool = data.get("tool", {})
    edits = []
    if "specgen" not in tool:
        edits.append(
            Edit(path, "appended [tool.specgen] to pyproject.toml", "append", SPECGEN_TABLE.format(layout=trees))
        )
    pytest_table = tool.get("pytest", {}).get("ini_options")
    if pytest_table is None:
        edits.append(
            Edit(path, "appended [tool.pytest.ini_options] pythonpath to pyproject.toml", "append", PYTEST_TABLE)
        )
    elif "pythonpath" not in pytest_table:
        if PYTEST_HEADER not in text.splitlines():
            raise SpecgenError(
                f"{PYTEST_HEADER} has no pythonpath and is not written as one table header; add "
                f'`pythonpath = ["."]` to it by hand',
                path,
            )
        edits.append(
            Edit(
                path,
                "added pythonpath to [tool.pytest.ini_options] in pyproject.toml",
                f"insert-after:{PYTEST_HEADER}",
                PYTHONPATH_LINE + "\n",
            )
        )
    elif "." not in (
        pytest_table["pythonpath"]
        if isinstance(pytest_table["pythonpath"], list)
        else str(pytest_table["pythonpath"]).split()
    ):
        raise SpecgenError(
            'tool.pytest.ini_options.pythonpath lacks "."; generated tests import the check '
            'modules from the project root: add "." to it',
            path,
        )
    return edits


def apply(edits: list[Edit]) -> None:
    for e in edits:
        if e.mode == "create":
            fsio.write_text(e.path, e.text)
        elif e.mode == "append":
            old = e.path.read_text(encoding="utf-8")
            sep = "" if not old or old.endswith("\n\n") else ("\n" if old.endswith("\n") else "\n\n")
            fsio.write_text(e.path, old + sep + e.text)
        else:
            header = e.mode.split(":", 1)[1]
            lines = e.path.read_text(encoding="utf-8").splitlines(keepends=True)
            at = next(i for i, line in enumerate(lines) if line.rstrip("\r\n") == header)
            fsio.write_text(e.path, "".join(lines[: at + 1] + [e.text] + lines[at + 1 :]))
