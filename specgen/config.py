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
back to a default; an error names only paths the user gave or configured (or the default). A path
key (``specs``, ``output``, ``manual``, ``lock``, ``report``, ``baseline``, ``roots``) that is absolute
or leaves the root (``../x``) is refused the same way: specgen reads and writes only inside the project.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from dataclasses import dataclass, replace
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

# --- Adoption settings (docs/compiler.md "Gradual adoption", "JUnit for test-management tools") -----------
# `baseline`: the committed file of tolerated gaps; `gate`: the capabilities the gate holds to account
# (names or fnmatch patterns, e.g. ["auth", "billing/*"]; all by default); `junit`: the junit.xml properties
# test-management importers read, a table: xray = true (Xray's requirements, test_summary), requirements =
# {spec requirement id = Jira key}, test_keys = {scenario id = Jira test key}, testrail_ids = {scenario id = "C123"}.
_ADOPTION_DEFAULTS = {
    "baseline": "specgen.baseline.json",
    "gate": ["*"],
    "junit": {},
}
_JUNIT_KEYS = {"xray": bool, "requirements": dict, "test_keys": dict, "testrail_ids": dict}

# --- Proof settings (docs/proof.md): [tool.specgen.proof] source = the product's packages or folders,
# entrypoints = shell commands that run the product as its users do, gate = reach and strength gate,
# min_strength = the least killed/total a requirement's mutants must reach, timeout = seconds per mutant.
_PROOF_KEYS = {
    "source": list,
    "entrypoints": list,
    "gate": bool,
    "min_strength": (int, float),
    "timeout": (int, float),
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
    # Several roots (see the block at the end): the glob patterns, and for one root's config its
    # name (the id namespace, "" in a single-root project) and the names of all roots.
    roots: tuple[str, ...] = ()
    namespace: str = ""
    siblings: tuple[str, ...] = ()

    # Adoption settings (see _ADOPTION_DEFAULTS).
    baseline: str = "specgen.baseline.json"
    gate: tuple[str, ...] = ("*",)
    junit: tuple[tuple[str, object], ...] = ()  # [tool.specgen.junit] as sorted (key, value) pairs
    proof: tuple[tuple[str, object], ...] = ()  # [tool.specgen.proof] as sorted (key, value) pairs

    @property
    def baseline_path(self) -> Path:
        return self.root / self.baseline

    def gated(self, capability: str) -> bool:
        """Whether the gate holds `capability` to account ([tool.specgen] gate)."""
        return any(fnmatch.fnmatchcase(capability, pattern) for pattern in self.gate)

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
    def openspec_root(self) -> Path:
        """The folder holding the OpenSpec folder: what the reader and the rules take as `root`."""
        return Path(os.path.realpath(self.openspec_dir)).parent

    def require_openspec(self) -> Path:
        """The OpenSpec folder's parent, once the folder exists; else an error naming what to fix."""
        if not self.openspec_dir.is_dir():
            if "specs" in self.configured:
                raise SpecgenError(
                    f"no OpenSpec root: tool.specgen.specs = {self.specs!r} is not a folder; fix the "
                    "path or run `openspec init` there",
                    self.root / "pyproject.toml",
                )
            raise SpecgenError(
                "no OpenSpec root: no openspec/ folder in this project root; run `openspec init`, "
                "set tool.specgen.specs (one tree) or tool.specgen.roots (several, e.g. "
                '["packages/*/openspec"]) in pyproject.toml, or pass --root DIR',
                self.root,
            )
        return self.openspec_root


def find_root(start: Path | str = ".") -> Path:
    """The nearest folder, from `start` upwards, with a pyproject.toml [tool.specgen] or an openspec/ folder."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.specgen]" in pyproject.read_text(encoding="utf-8", errors="replace"):
            return folder
        if (folder / "openspec").is_dir():
            return folder
    raise SpecgenError(
        "no project found: no pyproject.toml with [tool.specgen] and no openspec/ folder here "
        "or above; pass --root DIR",
        start,
    )


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
    values = dict(_DEFAULTS) | dict(_ADOPTION_DEFAULTS)
    for key, value in table.items():
        if key == "roots":
            continue
        if key == "proof":
            values["proof"] = tuple(sorted(_proof_checked(value, pyproject).items()))
            continue
        values[key] = (
            _adoption_checked(key, value, pyproject) if key in _ADOPTION_DEFAULTS else (_checked(key, value, pyproject))
        )
    values["checks"] = tuple(values["checks"])
    values["gate"] = tuple(values["gate"])
    values["junit"] = tuple(sorted(values["junit"].items()))
    patterns = _checked_roots(table["roots"], pyproject) if "roots" in table else ()
    return Config(root=root, configured=frozenset(table), roots=patterns, **values)


def _read_pyproject(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecgenError(f"cannot read: {exc}", path) from None


def _checked(key: str, value, pyproject: Path):
    if key not in _DEFAULTS:
        known = ", ".join(sorted([*_DEFAULTS, *_ADOPTION_DEFAULTS, "proof", "roots"]))
        raise SpecgenError(f"tool.specgen.{key}: unknown key; known keys: {known}", pyproject)
    if key == "checks":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise SpecgenError('tool.specgen.checks: expected a list of import paths, e.g. ["tests.checks"]', pyproject)
        return value
    if not isinstance(value, str) or not value:
        raise SpecgenError(f"tool.specgen.{key}: expected a non-empty path string", pyproject)
    _inside_root(key, value, pyproject)
    if key == "specs" and Path(value).name != "openspec":
        raise SpecgenError(
            f"tool.specgen.specs: {value!r} must name a folder called openspec (OpenSpec reads "
            '<folder>/openspec/specs and <folder>/openspec/changes), e.g. "docs/openspec"',
            pyproject,
        )
    return value


def _adoption_checked(key: str, value, pyproject: Path):
    if key == "gate":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise SpecgenError(
                'tool.specgen.gate: expected a list of capability names or patterns, e.g. ["auth", "billing/*"]',
                pyproject,
            )
        return value
    if key == "junit":
        if not isinstance(value, dict):
            raise SpecgenError("tool.specgen.junit: expected a table, e.g. [tool.specgen.junit] xray = true", pyproject)
        for k, v in value.items():
            if k not in _JUNIT_KEYS:
                raise SpecgenError(
                    f"tool.specgen.junit.{k}: unknown key; known keys: {', '.join(sorted(_JUNIT_KEYS))}", pyproject
                )
            if not isinstance(v, _JUNIT_KEYS[k]):
                raise SpecgenError(f"tool.specgen.junit.{k}: expected a {_JUNIT_KEYS[k].__name__}", pyproject)
        return value
    if not isinstance(value, str) or not value:
        raise SpecgenError(f"tool.specgen.{key}: expected a non-empty path string", pyproject)
    _inside_root(key, value, pyproject)
    return value


def _inside_root(key: str, value: str, pyproject: Path) -> None:
    """Refuse a configured path that is absolute or climbs out of the project root."""
    posix = value.replace("\\", "/")
    norm = posixpath.normpath(posix)
    if posixpath.isabs(posix) or posix.startswith("~") or re.match(r"^[A-Za-z]:", posix) or norm.split("/")[0] == "..":
        raise SpecgenError(
            f"tool.specgen.{key}: {value!r} is outside the project root; give a path relative to the root "
            "and inside it (specgen reads and writes only inside the project)",
            pyproject,
        )


def _proof_checked(value, pyproject: Path) -> dict:
    if not isinstance(value, dict):
        raise SpecgenError(
            'tool.specgen.proof: expected a table, e.g. [tool.specgen.proof] source = ["src/pkg"]', pyproject
        )
    for k, v in value.items():
        if k not in _PROOF_KEYS:
            raise SpecgenError(
                f"tool.specgen.proof.{k}: unknown key; known keys: {', '.join(sorted(_PROOF_KEYS))}", pyproject
            )
        kind = _PROOF_KEYS[k]
        if kind is list:
            if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
                raise SpecgenError(f"tool.specgen.proof.{k}: expected a list of non-empty strings", pyproject)
            if k == "source":
                for x in v:
                    if Path(x).is_absolute() or ".." in Path(x).parts:
                        raise SpecgenError(
                            f"tool.specgen.proof.source: {x!r} must be a path or package inside the project", pyproject
                        )
        elif isinstance(v, bool) != (kind is bool) or not isinstance(v, kind):
            raise SpecgenError(
                f"tool.specgen.proof.{k}: expected a {'boolean' if kind is bool else 'number'}", pyproject
            )
    if "min_strength" in value and not 0 <= value["min_strength"] <= 1:
        raise SpecgenError("tool.specgen.proof.min_strength: expected a number from 0 to 1, e.g. 0.5", pyproject)
    if "timeout" in value and value["timeout"] <= 0:
        raise SpecgenError("tool.specgen.proof.timeout: expected seconds > 0", pyproject)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}


# ------------------------------------------------------------------ several OpenSpec roots
# ``roots = ["packages/*/openspec", ...]`` (globs relative to the project root, each matching
# folders called ``openspec``) replaces ``specs`` when a repository keeps several OpenSpec trees.
# Each root is compiled on its own, as a single-root project would be, with a config derived here:
# output ``<output>/<name>``, lock ``<lock stem>.<name>.lock``, baseline ``<baseline stem>.<name>.json``,
# report ``<report>/<name>``, and its
# capabilities (so its ids and @check capability names) prefixed ``<name>:``. A pattern list that
# matches one folder is a single-root project: no namespace, today's paths, ids and bytes.


@dataclass(frozen=True)
class Root:
    name: str  # the folder holding openspec/, as a slug ("" when it is the only root)
    config: Config


def roots(config: Config, only: str | None = None) -> list[Root]:
    """The OpenSpec roots of the project, each with its own config; `only`: one root's name or path."""
    if not config.roots:
        found = [Root("", config)]
    else:
        folders = _matched(config)
        if len(folders) == 1:
            found = [Root("", replace(config, specs=folders[0]))]
        else:
            names = _names(folders)
            found = [Root(n, _root_config(config, n, f, tuple(names))) for n, f in zip(names, folders, strict=True)]
    if only is None:
        return found
    picked = [r for r in found if only in (r.name, r.config.specs, str(Path(r.config.specs).parent))]
    if not picked:
        raise SpecgenError(
            f"--only {only}: no such root; roots: "
            + ", ".join(f"{r.name or '(the only one)'} ({r.config.specs})" for r in found)
        )
    return picked


def _matched(config: Config) -> list[str]:
    folders: set[str] = set()
    for pattern in config.roots:
        hits = [
            p for p in config.root.glob(pattern) if p.is_dir() and p.name == "openspec" and _real_inside(p, config.root)
        ]
        if not hits:
            raise SpecgenError(
                f"tool.specgen.roots: {pattern!r} matches no folder called openspec under "
                f"{config.root}; fix the pattern",
                config.root / "pyproject.toml",
            )
        folders.update(p.relative_to(config.root).as_posix() for p in hits)
    return sorted(folders)


def _real_inside(path: Path, root: Path) -> bool:
    """`path` is inside `root` once links are followed (a linked folder leading out is not a root)."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


def _names(folders: list[str]) -> list[str]:
    """Each root's name: the slug of the folder holding it, or of its whole path where two share one."""

    def slug(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "root"

    short = [slug(Path(f).parent.name) for f in folders]
    return [n if short.count(n) == 1 else slug(str(Path(f).parent)) for n, f in zip(short, folders, strict=True)]


def _root_config(config: Config, name: str, folder: str, names: tuple[str, ...]) -> Config:
    lock, base = Path(config.lock), Path(config.baseline)
    return replace(
        config,
        specs=folder,
        output=f"{config.output}/{name}",
        report=f"{config.report}/{name}",
        lock=str(lock.with_name(f"{lock.stem}.{name}{lock.suffix or '.lock'}")),
        baseline=str(base.with_name(f"{base.stem}.{name}{base.suffix or '.json'}")),
        namespace=name,
        siblings=names,
    )


def _checked_roots(value, pyproject: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise SpecgenError(
            'tool.specgen.roots: expected a list of folder globs, e.g. ["packages/*/openspec"]', pyproject
        )
    for pattern in value:
        _inside_root("roots", pattern, pyproject)
    return tuple(value)
