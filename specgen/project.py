"""The one project model: which folder is the project, and where its specs, checks and outputs are.

Every command and the pytest plugin resolve the project here, the same way (docs/compiler.md):

- the **project root** is ``--root DIR`` when given; else the nearest folder, from the current one
  upwards, with a ``pyproject.toml`` holding ``[tool.specgen]`` or an ``openspec/`` folder;
- ``[tool.specgen]`` in the root's ``pyproject.toml`` (all keys optional) names the rest, every path
  relative to the root. ``specs`` is the OpenSpec folder (``openspec`` by default, e.g.
  ``docs/openspec``); every command reads it, ``list``, ``show``, ``validate`` and ``apply`` included.
  Its parent is what the OpenSpec layers read (they see ``<parent>/openspec/``), so the folder
  must be called ``openspec``, as OpenSpec itself requires.

Unknown keys and wrong types are errors naming the dotted key, so a typo never silently falls
back to a default; an error names only paths the user gave or configured (or the default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from specgen.errors import SpecgenError

_DEFAULTS = {
    "specs": "openspec",  # the OpenSpec folder (holding specs/ and changes/)
    "checks": ["tests.checks"],  # import paths: a module, or a package whose every module is scanned
    "output": "tests/generated",
    "manual": "tests/manual",
    "lock": "specgen.lock",
    "report": "build/specgen",
}


@dataclass(frozen=True)
class Config:
    root: Path
    specs: str = "openspec"
    checks: tuple[str, ...] = ("tests.checks",)
    output: str = "tests/generated"
    manual: str = "tests/manual"
    lock: str = "specgen.lock"
    report: str = "build/specgen"
    configured: frozenset[str] = frozenset()  # the keys [tool.specgen] sets

    def path(self, rel: str) -> Path:
        return self.root / rel

    @property
    def output_dir(self) -> Path:
        return self.root / self.output

    @property
    def lock_path(self) -> Path:
        return self.root / self.lock

    @property
    def report_dir(self) -> Path:
        return self.root / self.report

    @property
    def manual_dir(self) -> Path:
        return self.root / self.manual

    @property
    def evidence_dir(self) -> Path:
        return self.root / self.manual / "evidence"

    @property
    def openspec_dir(self) -> Path:
        return self.root / self.specs

    @property
    def openspec_parent(self) -> Path:
        """The folder holding the OpenSpec folder: what the reader and the rules take as `root`."""
        return Path(os.path.realpath(self.openspec_dir)).parent

    def require_openspec(self) -> Path:
        """The OpenSpec folder's parent, once the folder exists; else an error naming what to fix."""
        if not self.openspec_dir.is_dir():
            if "specs" in self.configured:
                raise SpecgenError(f"no OpenSpec root: tool.specgen.specs = {self.specs!r} is not a folder; fix the "
                                   "path or run `openspec init` there", self.root / "pyproject.toml")
            raise SpecgenError("no OpenSpec root: no openspec/ folder in this project root; run `openspec init`, "
                               "set tool.specgen.specs in pyproject.toml, or pass --root DIR", self.root)
        return self.openspec_parent


def find_root(start: Path | str = ".") -> Path:
    """The nearest folder, from `start` upwards, with a pyproject.toml [tool.specgen] or an openspec/ folder."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.specgen]" in pyproject.read_text(encoding="utf-8", errors="replace"):
            return folder
        if (folder / "openspec").is_dir():
            return folder
    raise SpecgenError("no project found: no pyproject.toml with [tool.specgen] and no openspec/ folder here "
                       "or above; pass --root DIR", start)


def resolve(root_arg: str | Path | None = None) -> Config:
    """The project every command works on: `--root` (or the search from the current folder) and
    its [tool.specgen]."""
    if root_arg is not None:
        root = Path(root_arg)
        if not root.is_dir():
            raise SpecgenError(f"--root {root_arg}: no such folder")
    else:
        root = find_root(Path.cwd())
    return load_config(root)


def load_config(root: Path | str) -> Config:
    root = Path(root).resolve()
    pyproject = root / "pyproject.toml"
    table: dict = {}
    text = _read_pyproject(pyproject)
    if text is not None and "specgen" in text:  # only then is there a table to read (tomllib costs start-up)
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecgenError(f"not valid TOML: {exc}", pyproject) from None
        table = data.get("tool", {}).get("specgen", {})
        if not isinstance(table, dict):
            raise SpecgenError("tool.specgen: expected a table", pyproject)
    values = dict(_DEFAULTS)
    for key, value in table.items():
        values[key] = _checked(key, value, pyproject)
    values["checks"] = tuple(values["checks"])
    return Config(root=root, configured=frozenset(table), **values)


def _read_pyproject(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecgenError(f"cannot read: {exc}", path) from None


def _checked(key: str, value, pyproject: Path):
    if key not in _DEFAULTS:
        raise SpecgenError(f"tool.specgen.{key}: unknown key; known keys: {', '.join(sorted(_DEFAULTS))}", pyproject)
    if key == "checks":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise SpecgenError("tool.specgen.checks: expected a list of import paths, e.g. [\"tests.checks\"]",
                               pyproject)
        return value
    if not isinstance(value, str) or not value:
        raise SpecgenError(f"tool.specgen.{key}: expected a non-empty path string", pyproject)
    if key == "specs" and Path(value).name != "openspec":
        raise SpecgenError(f"tool.specgen.specs: {value!r} must name a folder called openspec (OpenSpec reads "
                           "<folder>/openspec/specs and <folder>/openspec/changes), e.g. \"docs/openspec\"",
                           pyproject)
    return value
