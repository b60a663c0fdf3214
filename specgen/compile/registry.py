"""Registry: ``@check(...)`` binds a check function to a scenario.

    @check("capability", "Requirement name", "Scenario name")
    @check("capability/requirement-slug/scenario-slug")
    @check(..., manual="tests/manual/<procedure>.md")   # a GPU- or person-only scenario

At run time the decorator records the binding and returns the function unchanged, so a
check is an ordinary pytest test function (fixtures, parametrize marks).

The compiler does not import check modules: it reads them (``ast``), which keeps
`specgen check` fast and free of the checks' heavy imports. So the decorator's
arguments must be string literals; anything else is reported with its file and line.
Check modules are found by import path from ``[tool.specgen] checks``.
"""

from __future__ import annotations

import ast
import copy
import difflib
import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from specgen.compile.identity import View, id_shaped, slugify, split_id
from specgen.errors import ERROR, Issue, SpecgenError


# ---------------------------------------------------------------- run time
def _check_args(capability_or_id, requirement, scenario, manual) -> None:
    if (requirement is None) != (scenario is None):
        raise TypeError("check() takes either a scenario id, or capability, requirement and scenario names")
    for value in (capability_or_id, requirement, scenario, manual):
        if value is not None and (not isinstance(value, str) or not value):
            raise TypeError("check() arguments must be non-empty strings")
    if requirement is None and not id_shaped(capability_or_id):
        raise TypeError(f"check({capability_or_id!r}): a scenario id reads capability/requirement-slug/scenario-slug")


def check(
    capability_or_id: str, requirement: str | None = None, scenario: str | None = None, *, manual: str | None = None
):
    """Bind the decorated function to a scenario (by names, or by its id). The binding is read statically from
    the source (:func:`discover`); at run time the decorator only checks its arguments and returns the function."""
    _check_args(capability_or_id, requirement, scenario, manual)

    def decorate(func: Callable) -> Callable:
        return func

    return decorate


# ---------------------------------------------------------------- discovery (static)
@dataclass(frozen=True)
class Decl:
    """One ``@check(...)`` decorator found in a check module."""

    module: str  # import path of the check module
    path: Path
    func: str
    line: int  # the decorator's line
    def_line: int
    source_fingerprint: str  # the function without its @check decorators
    target_id: str | None
    capability: str
    requirement: str | None
    scenario: str | None
    manual: str | None

    @property
    def check_key(self) -> str:
        return f"{self.module}:{self.func}"

    @property
    def target(self) -> str:
        if self.target_id:
            return self.target_id
        return f'{self.capability} / "{self.requirement}" / "{self.scenario}"'


@dataclass(frozen=True)
class CheckModule:
    name: str
    path: Path
    checks: tuple[Decl, ...]
    unbound: tuple[tuple[str, int], ...]  # check_* functions without @check: (name, line)


def module_files(root: Path, import_paths: tuple[str, ...]) -> list[tuple[str, Path]]:
    """(module import path, file) for every module named by `import_paths`, packages expanded, sorted."""
    found: dict[str, Path] = {}
    for dotted in import_paths:
        base = root.joinpath(*dotted.split("."))
        if base.is_dir() or base.with_suffix(".py").is_file():
            pass
        else:
            try:
                spec = importlib.util.find_spec(dotted)
            except (ImportError, ValueError):
                spec = None
            if spec is None or not spec.origin:
                raise SpecgenError(
                    f"tool.specgen.checks: {dotted!r} is neither a module nor a package "
                    f"under {root}; fix the import path",
                    root / "pyproject.toml",
                )
            origin = Path(spec.origin)
            base = origin.parent if origin.name == "__init__.py" else origin.with_suffix("")
        if base.is_dir():
            _package_modules(base, dotted, found)
        else:
            found[dotted] = base.with_suffix(".py")
    return sorted(found.items())


def _package_modules(base: Path, dotted: str, found: dict[str, Path]) -> None:
    """Every importable module of the package at `base`. The folder named in `checks` may be a
    namespace package (no __init__.py: Python imports it as one); below it, a folder without
    __init__.py is not scanned (it often holds data or helpers, not checks)."""
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        rel = os.path.relpath(dirpath, base)
        parts = [] if rel == "." else rel.split(os.sep)
        if (parts and "__init__.py" not in filenames) or any(not p.isidentifier() for p in parts):
            dirnames[:] = []  # not a package: neither it nor what it holds is importable as a check module
            continue
        for name in sorted(filenames):
            stem = name[:-3]
            if name.endswith(".py") and stem != "__init__" and stem.isidentifier():
                found[".".join([dotted, *parts, stem])] = Path(dirpath, name)


# Where a check module may import `check` from (the first is the documented one).
_CHECK_MODULES = ("specgen", "specgen.compile.registry")


def _check_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names that mean specgen's `check` in this module, and aliases of the specgen module itself."""
    names, modules = set(), set()
    for node in tree.body:  # module-level imports: where a check decorator's name comes from
        if isinstance(node, ast.ImportFrom) and node.module in _CHECK_MODULES:
            for alias in node.names:
                if alias.name == "check":
                    names.add(alias.asname or "check")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in _CHECK_MODULES:
                    modules.add(alias.asname or alias.name)
    return names, modules


def _is_check_call(dec: ast.expr, names: set[str], modules: set[str]) -> bool:
    if not isinstance(dec, ast.Call):
        return False
    f = dec.func
    if isinstance(f, ast.Name):
        return f.id in names
    if isinstance(f, ast.Attribute) and f.attr == "check":
        return ast.unparse(f.value) in modules
    return False


def _source_fingerprint(node: ast.FunctionDef, kept: list[ast.expr]) -> str:
    # The function's syntax tree plus its other decorators (parametrize data is part of the check);
    # the @check lines are left out: re-binding is tracked by the binding itself. The tree, not the
    # text: re-formatting, re-wrapping and comments change no meaning, so they leave a review valid.
    parts = [ast.dump(d, include_attributes=False) for d in kept]
    bare = copy.copy(node)
    bare.decorator_list = []
    text = "\n".join([*parts, ast.dump(bare, include_attributes=False)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_module(name: str, path: Path) -> tuple[CheckModule, list[Issue]]:
    """The module's declarations, or (when it cannot be read or parsed) none and an error naming it:
    one broken module leaves its scenarios without a check, never the others."""
    issues: list[Issue] = []
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror or str(exc)
        return CheckModule(name, path, (), ()), [
            Issue(
                ERROR,
                path,
                None,
                f"cannot read check module {name}: {why}; its checks are not bound until it reads as UTF-8",
                "unreadable-check-module",
            )
        ]
    except SyntaxError as exc:
        return CheckModule(name, path, (), ()), [
            Issue(
                ERROR,
                path,
                exc.lineno,
                f"check module {name} does not parse: {exc.msg}; its checks are not bound until it does",
                "unreadable-check-module",
            )
        ]
    names, modules = _check_names(tree)
    constants = _constants(tree)
    decls: list[Decl] = []
    unbound: list[tuple[str, int]] = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        checks = [d for d in node.decorator_list if _is_check_call(d, names, modules)]
        if not checks:
            if node.name.startswith("check_"):
                unbound.append((node.name, node.lineno))
            continue
        kept = [d for d in node.decorator_list if d not in checks]
        fp = _source_fingerprint(node, kept)
        for dec in checks:
            decl = _decl_from_call(name, path, node, dec, fp, issues, constants)
            if decl is not None:
                decls.append(decl)
    return CheckModule(name, path, tuple(decls), tuple(unbound)), issues


def _constants(tree: ast.Module) -> dict[str, str | None]:
    """Module-level `NAME = "text"` assignments; None marks a name assigned more than once."""
    found: dict[str, str | None] = {}
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        if target is None:
            continue
        literal = value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None
        found[target] = None if target in found else literal
    return found


def _literal(expr: ast.expr, constants: dict[str, str | None]) -> str | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value or None
    if isinstance(expr, ast.Name):
        return constants.get(expr.id)
    return None


def _decl_from_call(
    module: str, path: Path, node, dec: ast.Call, fp: str, issues: list[Issue], constants: dict[str, str | None]
) -> Decl | None:
    def bad(msg: str) -> None:
        issues.append(Issue(ERROR, path, dec.lineno, f"{node.name}: {msg}", "bad-check"))

    args = []
    for a in dec.args:
        value = _literal(a, constants)
        if value is None:
            bad(
                "@check arguments must be non-empty string literals or module-level string constants "
                "assigned once (specgen reads them without importing)"
            )
            return None
        args.append(value)
    manual = None
    for kw in dec.keywords:
        value = _literal(kw.value, constants) if kw.arg == "manual" else None
        if value is None:
            bad('@check takes only manual="<procedure file>" as a keyword (a string)')
            return None
        manual = value
    common = dict(
        module=module,
        path=path,
        func=node.name,
        line=dec.lineno,
        def_line=node.lineno,
        source_fingerprint=fp,
        manual=manual,
    )
    if len(args) == 1:
        if not id_shaped(args[0]):
            bad(f"@check({args[0]!r}): a scenario id reads capability/requirement-slug/scenario-slug")
            return None
        return Decl(target_id=args[0], capability=split_id(args[0])[0], requirement=None, scenario=None, **common)
    if len(args) == 3:
        return Decl(target_id=None, capability=args[0], requirement=args[1], scenario=args[2], **common)
    bad("@check takes a scenario id, or capability, requirement and scenario names")
    return None


def discover(root: Path, import_paths: tuple[str, ...]) -> tuple[list[CheckModule], list[Issue]]:
    mods, issues = [], []
    for name, path in module_files(root, import_paths):
        mod, found = read_module(name, path)
        mods.append(mod)
        issues.extend(found)
    return mods, issues


# ---------------------------------------------------------------- resolution
@dataclass(frozen=True)
class Bound:
    """A check declaration resolved to a scenario of one view."""

    decl: Decl
    view: str
    scenario_id: str


def resolve(decls: list[Decl], views: list[View]) -> tuple[list[Bound], list[Issue]]:
    """Bind every declaration to its scenario in every view that has it (openspec/specs and/or the
    active changes that add or modify it). Unknown targets and duplicates are issues."""
    bound: list[Bound] = []
    issues: list[Issue] = []
    seen: set[tuple[str, str, str]] = set()
    for decl in decls:
        hits = []
        for view in views:
            ref = (
                view.by_id.get(decl.target_id)
                if decl.target_id
                else view.by_name.get((decl.capability, decl.requirement, decl.scenario)) or _anchored(view, decl)
            )
            if ref is not None:
                hits.append((view, ref))
        if not hits:
            near = nearest(decl, views)
            hint = f"; did you mean {near[1].id}?" if near else ""
            issues.append(
                Issue(
                    ERROR,
                    decl.path,
                    decl.line,
                    f"{decl.func} is bound to nothing: no scenario "
                    f"{decl.target} in openspec/specs or an active change (a typo, or a renamed or "
                    "deleted scenario?)" + hint,
                    "unknown-scenario",
                )
            )
            continue
        for view, ref in hits:
            key = (view.name, ref.id, decl.check_key)
            if key in seen:
                issues.append(
                    Issue(
                        ERROR,
                        decl.path,
                        decl.line,
                        f"{decl.func} is bound twice to {ref.id}; remove one @check",
                        "duplicate-binding",
                    )
                )
                continue
            seen.add(key)
            bound.append(Bound(decl, view.name, ref.id))
    return bound, issues


def _anchored(view: View, decl: Decl):
    """The scenario a by-names binding meant when those names were renamed and the scenario kept their
    id with a `specgen-id` anchor (the advice `check` gives after a rename): the anchored scenario whose
    anchor is the id the names give. Only anchors count, so names never bind a scenario by accident."""
    wanted = f"{decl.capability}/{slugify(decl.requirement or '')}/{slugify(decl.scenario or '')}"
    ref = view.by_id.get(wanted)
    return ref if ref is not None and ref.scenario.anchor == wanted else None


def nearest(decl: Decl, views: list[View]):
    """(view, scenario) a binding to nothing most likely meant (same capability, closest names), or None."""
    wanted = decl.target_id or f"{decl.requirement}\x1f{decl.scenario}"
    best, best_score = None, 0.6  # below this the names are too far apart to guess
    for view in views:
        for ref in view.scenarios():
            if ref.capability != decl.capability:
                continue
            have = ref.id if decl.target_id else f"{ref.requirement}\x1f{ref.name}"
            score = difflib.SequenceMatcher(None, wanted.lower(), have.lower()).ratio()
            if score > best_score:
                best, best_score = (view, ref), score
    return best


def near_misses(decls: list[Decl], bound: list[Bound], views: list[View]) -> dict[tuple[str, str], str]:
    """(view, scenario id) -> why its check is likely misspelt: the bindings to nothing that most
    likely meant it, for the scenario's failing generated test to name."""
    hit = {(b.decl.check_key, b.decl.line) for b in bound}
    notes: dict[tuple[str, str], list[str]] = {}
    for decl in decls:
        if (decl.check_key, decl.line) in hit:
            continue
        near = nearest(decl, views)
        if near is not None:
            where = f"{decl.path.name}:{decl.line}"
            notes.setdefault((near[0].name, near[1].id), []).append(
                f"{decl.func} ({where}) is bound to {decl.target}, which matches no scenario: fix the name"
            )
    return {k: "; ".join(v) for k, v in notes.items()}
