"""Every public coordexp function a spec check calls is also on the production path.

A check proves what runs only when the function it exercises is one the recipes, the scripts or the server
reach. This test reads the syntax trees (never docstrings or comments) of `src/coordexp`, `scripts/` and the
spec checks (`tests/checks`, plus the `tests/` helpers they import), resolves each identifier to the module-level
function it names (through imports, module aliases, attribute chains and package re-exports), and lists the
public functions under `src/coordexp` that the checks reference and production never does. That list must be
empty, except for functions whose docstring says they are oracles for tests.

An import alone is not a reference (a package `__init__` re-exporting a name does not put it on the path): only a
use of the name in an expression counts.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "coordexp"

# The docstring of a function kept only to check production's output says it is an oracle for tests.
ORACLE_DOCSTRING = re.compile(r"\boracles?\b", re.IGNORECASE)
TESTS_WORD = re.compile(r"\btests?\b", re.IGNORECASE)

@dataclass
class Module:
    """One parsed file: its dotted name, tree, top-level functions and the names its imports bind."""

    name: str
    path: Path
    tree: ast.Module
    is_package: bool
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)
    # local name -> ("module", dotted) or ("symbol", dotted module, attribute)
    bindings: dict[str, tuple] = field(default_factory=dict)


def module_name(path: Path, base: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(base).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def parse(path: Path, base: Path) -> Module:
    name, is_package = module_name(path, base)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    mod = Module(name, path, tree, is_package)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            mod.functions[node.name] = node
    return mod


def absolute(mod: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = mod.name.split(".") if mod.is_package else mod.name.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def bind_imports(mod: Module, known_modules: set[str]) -> None:
    # Imports anywhere in the file (checks import inside functions) bind for the whole file: a slight
    # over-approximation that can only make a name look more referenced, never less.
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    mod.bindings[alias.asname] = ("module", alias.name)
                else:
                    top = alias.name.split(".")[0]
                    mod.bindings[top] = ("module", top)
        elif isinstance(node, ast.ImportFrom):
            source = absolute(mod, node)
            for alias in node.names:
                local = alias.asname or alias.name
                dotted = f"{source}.{alias.name}"
                if dotted in known_modules:
                    mod.bindings[local] = ("module", dotted)
                else:
                    mod.bindings[local] = ("symbol", source, alias.name)


class Index:
    """All parsed modules, and resolution of (module, attribute) to the function that defines it."""

    def __init__(self, modules: list[Module]):
        self.modules = {m.name: m for m in modules}
        names = set(self.modules)
        for m in modules:
            bind_imports(m, names)

    def resolve(self, module: str, attr: str, seen: frozenset = frozenset()) -> str | None:
        """The dotted name of the function `module.attr` is, following re-exports; None when not a function."""
        if (module, attr) in seen or module not in self.modules:
            return None
        mod = self.modules[module]
        if attr in mod.functions:
            return f"{module}.{attr}"
        bound = mod.bindings.get(attr)
        if bound and bound[0] == "symbol":
            return self.resolve(bound[1], bound[2], seen | {(module, attr)})
        return None

    def references(self, mod: Module) -> set[str]:
        """The functions `mod` names in expressions (loads of names and attribute chains)."""
        found: set[str] = set()
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Attribute):
                chain = attribute_chain(node)
                if chain:
                    target = self._resolve_chain(mod, chain)
                    if target:
                        found.add(target)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                target = self._resolve_name(mod, node.id)
                if target:
                    found.add(target)
        return found

    def _resolve_name(self, mod: Module, name: str) -> str | None:
        bound = mod.bindings.get(name)
        if bound is None:
            return f"{mod.name}.{name}" if name in mod.functions else None
        if bound[0] == "symbol":
            return self.resolve(bound[1], bound[2])
        return None

    def _resolve_chain(self, mod: Module, chain: list[str]) -> str | None:
        bound = mod.bindings.get(chain[0])
        if bound is None or bound[0] != "module":
            return None
        current = bound[1]
        for part in chain[1:]:
            if f"{current}.{part}" in self.modules:
                current = f"{current}.{part}"
                continue
            return self.resolve(current, part)
        return None


def attribute_chain(node: ast.Attribute) -> list[str] | None:
    parts = []
    cur: ast.expr = node
    while isinstance(cur, ast.Attribute):
        parts.append(cur.attr)
        cur = cur.value
    if not isinstance(cur, ast.Name):
        return None
    parts.append(cur.id)
    return parts[::-1]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def build_index() -> tuple[Index, list[Module], list[Module], list[Module]]:
    product = [parse(p, SRC) for p in _files(SRC / PACKAGE)]
    scripts = [parse(p, ROOT) for p in _files(ROOT / "scripts")]
    tests = [parse(p, ROOT) for p in _files(ROOT / "tests") if "generated" not in p.parts]
    index = Index(product + scripts + tests)
    checks = checks_and_helpers(index, [m for m in tests if m.name.startswith("tests.checks")])
    return index, product, scripts, checks


def checks_and_helpers(index: Index, checks: list[Module]) -> list[Module]:
    """The check modules plus every `tests` module they import, transitively (fixtures call coordexp too)."""
    out = {m.name: m for m in checks}
    todo = list(checks)
    while todo:
        m = todo.pop()
        for bound in m.bindings.values():
            target = bound[1]
            if target.startswith("tests.") and target in index.modules and target not in out:
                out[target] = index.modules[target]
                todo.append(out[target])
    return list(out.values())


def is_public(qualified: str) -> bool:
    return not qualified.rsplit(".", 1)[1].startswith("_")


def is_oracle(index: Index, qualified: str) -> bool:
    module, name = qualified.rsplit(".", 1)
    doc = ast.get_docstring(index.modules[module].functions[name]) or ""
    return bool(ORACLE_DOCSTRING.search(doc) and TESTS_WORD.search(doc))


def off_path() -> list[str]:
    """Public coordexp functions the checks reference and production does not, oracles left out."""
    index, product, scripts, checks = build_index()
    production = set().union(*(index.references(m) for m in product + scripts))
    checked = set().union(*(index.references(m) for m in checks))
    found = {
        q for q in checked - production if q.startswith(PACKAGE + ".") and is_public(q) and not is_oracle(index, q)
    }
    return sorted(found)


def test_every_checked_function_is_on_the_production_path():
    found = off_path()
    assert not found, (
        "public functions that spec checks call and no production code references (call them from the recipes,"
        " scripts or server, or rebind the scenario to the function that does the work, or say in the docstring"
        " that it is an oracle for tests):\n  " + "\n  ".join(found)
    )


def test_resolver_sees_calls_through_aliases_chains_and_reexports():
    index, product, _, checks = build_index()
    production = set().union(*(index.references(m) for m in product))
    # `from .loader import load_config` re-exported by the package, called as `load_config(...)` elsewhere.
    assert "coordexp.config.loader.load_config" in production
    checked = set().union(*(index.references(m) for m in checks))
    assert "coordexp.config.loader.load_config" in checked
    # An import alone is not a use: a module that only re-exports a function does not reference it.
    pkg = Module("pkg", ROOT / "pkg" / "__init__.py", ast.parse("from .impl import f\n"), True)
    impl = Module("pkg.impl", ROOT / "pkg" / "impl.py", ast.parse("def f():\n    pass\n"), False)
    impl.functions["f"] = impl.tree.body[0]
    user = Module("user", ROOT / "user.py", ast.parse("import pkg\n\npkg.f()\n"), False)
    small = Index([pkg, impl, user])
    assert small.references(pkg) == set() and small.references(user) == {"pkg.impl.f"}
