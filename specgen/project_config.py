"""`[tool.specgen]` in pyproject.toml -> a plain config object.

Every path is relative to the project root (the folder holding pyproject.toml).
Unknown keys and wrong types are errors naming the dotted key, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from specgen.model import SpecgenError

_DEFAULTS = {
    "specs": "openspec",  # the folder holding specs/ and changes/ (its parent is what the parser reads)
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
    def openspec_parent(self) -> Path:
        # The parser takes the folder that holds `openspec/`; `specs` names that folder.
        return (self.root / self.specs).parent


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


def load_config(root: Path | str) -> Config:
    root = Path(root).resolve()
    pyproject = root / "pyproject.toml"
    table: dict = {}
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SpecgenError(f"not valid TOML: {exc}", pyproject) from None
        table = data.get("tool", {}).get("specgen", {})
        if not isinstance(table, dict):
            raise SpecgenError("tool.specgen: expected a table", pyproject)
    values = dict(_DEFAULTS)
    for key, value in table.items():
        if key not in _DEFAULTS:
            raise SpecgenError(f"tool.specgen.{key}: unknown key; known keys: {', '.join(sorted(_DEFAULTS))}",
                               pyproject)
        if key == "checks":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise SpecgenError("tool.specgen.checks: expected a list of import paths, e.g. [\"tests.checks\"]",
                                   pyproject)
        elif not isinstance(value, str) or not value:
            raise SpecgenError(f"tool.specgen.{key}: expected a non-empty path string", pyproject)
        values[key] = value
    values["checks"] = tuple(values["checks"])
    return Config(root=root, **values)
