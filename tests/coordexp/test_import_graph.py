"""coordexp's import graph, read from the source with ``ast`` (every import, the ones inside functions included):

- no import cycle between modules;
- no import from a lower layer to a higher one (the layers are ``LAYERS`` below);
- no ``_private`` name imported across modules, neither ``from m import _x`` nor ``m._x`` on an imported module;
- no production module imports the smoke helpers (``coordexp.smoke``: the tiny model, the synthetic data).

The layers, lowest first. A package may import its own modules and any package of a LOWER layer; packages that
share a layer do not import each other. ``coordexp.smoke`` sits outside the order: it may import production code
(it builds inputs for it), production never imports it.

0. ``coordexp`` (the package's own ``__init__``) and ``errors`` (``CoordExpError``, the base of its error classes)
1. ``format``: coord tokens, CoordJSON, prompts, the chat template, the JSONL contract
2. ``config``: loading and validating a run's YAML
3. ``training`` (the core both stages call) and ``generation`` (rollouts for inference and stage_2), side by side
4. ``checkpoints``: vocabulary expansion, merge
5. ``infer``: a checkpoint over a JSONL -> the artifact
6. ``eval``: the artifact -> metrics and pictures
7. ``stage1`` and ``stage2``: the recipes
8. ``train``: the entry that picks a recipe
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "coordexp"
SMOKE = "smoke"

LAYERS = {
    "": 0,
    "errors": 0,
    "format": 1,
    "config": 2,
    "training": 3,
    "generation": 3,
    "checkpoints": 4,
    "infer": 5,
    "eval": 6,
    "stage1": 7,
    "stage2": 7,
    "train": 8,
}


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_modules(src: Path = SRC) -> dict[str, tuple[Path, ast.Module]]:
    """Module name -> (its path as diagnostics show it, its syntax tree)."""
    out = {}
    for p in sorted((src / PACKAGE).rglob("*.py")):
        out[module_name(p, src)] = (p.relative_to(src.parent), ast.parse(p.read_text(encoding="utf-8"), str(p)))
    return out


def top_package(module: str) -> str:
    """``coordexp.format.coord`` -> ``format``; ``coordexp`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(modules: dict[str, tuple[Path, ast.Module]]) -> list[tuple[str, str, str, int]]:
    """(importer, imported module, name or "", line) for every coordexp import, a name that is a module resolved."""
    out = []
    for name, (path, tree) in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out += [(name, a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == PACKAGE]
            elif isinstance(node, ast.ImportFrom):
                target = resolve(name, is_package, node)
                if target.split(".")[0] != PACKAGE:
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


def graph_problems(src: Path = SRC) -> list[str]:
    modules = read_modules(src)
    found = imports(modules)
    problems = []
    edges: dict[str, set[str]] = {}
    for importer, target, _, _ in found:
        # importing a package runs its __init__, importing a submodule runs the packages above it: the edge that
        # matters for a cycle is to the module itself
        if target in modules and target != importer:
            edges.setdefault(importer, set()).add(target)
    for comp in cycles(edges):
        problems.append(f"import cycle: {' <-> '.join(comp)}")
    for importer, target, name, line in found:
        src_pkg, dst_pkg = top_package(importer), top_package(target)
        at = where(modules, importer, line)
        if dst_pkg == SMOKE and src_pkg != SMOKE:
            problems.append(f"{at}: {importer} imports the smoke helpers ({target}); production never does")
        if src_pkg != SMOKE and dst_pkg != SMOKE and src_pkg != dst_pkg:
            if src_pkg not in LAYERS or dst_pkg not in LAYERS:
                problems.append(f"{at}: coordexp.{src_pkg or dst_pkg} has no layer: add it to LAYERS")
            elif LAYERS[dst_pkg] >= LAYERS[src_pkg]:
                problems.append(
                    f"{at}: {importer} (layer {LAYERS[src_pkg]}) imports {target} (layer {LAYERS[dst_pkg]}): "
                    "an import goes to a lower layer only"
                )
        if name.startswith("_") and not name.startswith("__") and target != importer:
            problems.append(f"{at}: {importer} imports the private name {target}.{name}")
    problems += private_attribute_uses(modules)
    return problems


def private_attribute_uses(modules) -> list[str]:
    """``m._x`` where ``m`` names another coordexp module imported in this one."""
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


def test_the_import_graph_holds():
    problems = graph_problems()
    assert not problems, "\n".join(problems)


def test_every_package_has_a_layer():
    packages = {top_package(m) for m in read_modules()} - {SMOKE}
    assert packages == set(LAYERS), sorted(packages ^ set(LAYERS))


def test_the_rules_see_what_they_forbid(tmp_path):
    """Each rule on a small tree that breaks it (the same functions read the real tree above)."""
    pkg = tmp_path / PACKAGE
    for sub in ("format", "training", "smoke"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "format" / "a.py").write_text("def f():\n    from coordexp.format import b\n")
    (pkg / "format" / "b.py").write_text("from coordexp.format.a import f\nfrom coordexp.training.u import g\n")
    (pkg / "training" / "t.py").write_text(
        "from coordexp.format import a\nfrom coordexp.format.a import _hidden\nfrom . import u\n"
        "def run():\n    from coordexp.smoke import tiny\n    return a._private()\n"
    )
    (pkg / "training" / "u.py").write_text("def g():\n    pass\n")
    (pkg / "smoke" / "tiny.py").write_text("from coordexp.training import u\n")
    got = "\n".join(graph_problems(tmp_path))
    assert "import cycle: coordexp.format.a <-> coordexp.format.b" in got
    assert "coordexp.format.b (layer 1) imports coordexp.training.u (layer 3)" in got
    assert "imports the private name coordexp.format.a._hidden" in got
    assert "uses the private name coordexp.format.a._private" in got
    assert "coordexp.training.t imports the smoke helpers (coordexp.smoke.tiny)" in got
    assert len(got.splitlines()) == 5, got
