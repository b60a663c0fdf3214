"""A Python package's import graph, read from its source with ``ast`` (every import, the ones inside functions
included), and the rules both packages of this repository hold to (tests/coordexp/test_import_graph.py,
tests/specgen/test_import_graph.py):

- no import cycle between modules;
- no import from a lower layer to a higher one (a package may import its own modules and any package of a LOWER
  layer; packages that share a layer do not import each other);
- no ``_private`` name imported across modules, neither ``from m import _x`` nor ``m._x`` on an imported module;
- the packages ``outside`` the order (smoke helpers, a test harness) may import the layers; the layers never
  import them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Graph:
    src: Path  # the folder holding the package
    package: str  # its import name
    layers: dict[str, int]  # top-level module or subpackage ("" for the package's __init__) -> layer
    outside: frozenset[str] = frozenset()  # top-level names outside the order: they import, nobody imports them
    outside_what: str = "the harness"  # how a diagnostic names them


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_modules(src: Path, package: str) -> dict[str, tuple[Path, ast.Module]]:
    """Module name -> (its path as diagnostics show it, its syntax tree)."""
    out = {}
    for p in sorted((src / package).rglob("*.py")):
        out[module_name(p, src)] = (p.relative_to(src.parent), ast.parse(p.read_text(encoding="utf-8"), str(p)))
    return out


def top_package(module: str) -> str:
    """``pkg.format.coord`` -> ``format``; ``pkg`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(modules: dict[str, tuple[Path, ast.Module]], package: str) -> list[tuple[str, str, str, int]]:
    """(importer, imported module, name or "", line) for every import of `package`, a name that is a module resolved."""
    out = []
    for name, (path, tree) in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out += [(name, a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == package]
            elif isinstance(node, ast.ImportFrom):
                target = resolve(name, is_package, node)
                if target.split(".")[0] != package:
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    out.append((name, sub, "", node.lineno) if sub in modules else (name, target, a.name, node.lineno))
    return out


def where(modules, importer: str, line: int) -> str:
    return f"{modules[importer][0]}:{line}"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (or a module importing itself)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def graph_problems(graph: Graph) -> list[str]:
    modules = read_modules(graph.src, graph.package)
    found = imports(modules, graph.package)
    problems = []
    edges: dict[str, set[str]] = {}
    for importer, target, _, _ in found:
        # importing a package runs its __init__, importing a submodule runs the packages above it: the edge that
        # matters for a cycle is to the module itself
        if target in modules and target != importer:
            edges.setdefault(importer, set()).add(target)
    for comp in cycles(edges):
        problems.append(f"import cycle: {' <-> '.join(comp)}")
    layers, outside = graph.layers, graph.outside
    for importer, target, name, line in found:
        src_pkg, dst_pkg = top_package(importer), top_package(target)
        at = where(modules, importer, line)
        if target == graph.package:
            pass  # its __init__ runs on every import of a submodule: naming it adds no edge (private names: below)
        elif dst_pkg in outside and src_pkg not in outside:
            problems.append(f"{at}: {importer} imports {graph.outside_what} ({target}); the layers never do")
        elif src_pkg not in outside and dst_pkg not in outside and src_pkg != dst_pkg:
            if src_pkg not in layers or dst_pkg not in layers:
                problems.append(f"{at}: {graph.package}.{src_pkg if src_pkg not in layers else dst_pkg} has no layer")
            elif layers[dst_pkg] >= layers[src_pkg]:
                problems.append(
                    f"{at}: {importer} (layer {layers[src_pkg]}) imports {target} (layer {layers[dst_pkg]}): "
                    "an import goes to a lower layer only"
                )
        if name.startswith("_") and not name.startswith("__") and target != importer:
            problems.append(f"{at}: {importer} imports the private name {target}.{name}")
    problems += private_attribute_uses(modules)
    return problems


def unlayered(graph: Graph) -> list[str]:
    """Top-level names of the package with neither a layer nor a place outside the order."""
    tops = {top_package(m) for m in read_modules(graph.src, graph.package)}
    return sorted(tops - set(graph.layers) - graph.outside)


def private_attribute_uses(modules) -> list[str]:
    """``m._x`` where ``m`` names another module of the package imported in this one."""
    out = []
    for name, (path, tree) in modules.items():
        is_package = path.name == "__init__.py"
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in modules and a.asname:
                        aliases[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom):
                target = resolve(name, is_package, node)
                for a in node.names:
                    if f"{target}.{a.name}" in modules:
                        aliases[a.asname or a.name] = f"{target}.{a.name}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and aliases[node.value.id] != name
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                at = where(modules, name, node.lineno)
                out.append(f"{at}: {name} uses the private name {aliases[node.value.id]}.{node.attr}")
    return out
