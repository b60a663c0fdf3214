"""`specgen stub --write`: add a check skeleton to the module that owns the capability's checks."""

from __future__ import annotations

import ast
from pathlib import Path

from specgen import fsio
from specgen.compile.generator import docline, module_part, stub_code, stub_name
from specgen.compile.identity import ScenarioRef
from specgen.errors import SpecgenError

IMPORT = "from specgen import check\n"


def target_module(comp, ref: ScenarioRef) -> Path:
    """The first check module (in import-path order) already binding this capability; else a new
    module named for the capability in the first checks package."""
    for mod in comp.modules:
        if any(d.capability == ref.capability for d in mod.checks):  # bound by id: capability of the id
            return mod.path
    first = comp.config.checks[0]
    base = comp.root.joinpath(*first.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if not (base / "__init__.py").is_file():
        raise SpecgenError(
            f"tool.specgen.checks: {first!r} is not a package folder with __init__.py under the "
            "project; create it or pass the module explicitly",
            comp.root / "pyproject.toml",
        )
    return base / (module_part(ref.capability.replace("/", "__")) + ".py")


def write_stub(comp, ref: ScenarioRef) -> tuple[Path, str]:
    path = target_module(comp, ref)
    text = path.read_text(encoding="utf-8") if path.is_file() else f'"""Checks for {docline(ref.capability)}."""\n'
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise SpecgenError(f"cannot add a stub: the module does not parse: {exc.msg}", path, exc.lineno) from None
    taken = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    func, n = stub_name(ref), 2
    while func in taken:
        func, n = f"{stub_name(ref)}_{n}", n + 1
    has_import = any(
        isinstance(n, ast.ImportFrom)
        and n.module == "specgen"
        and any(a.name == "check" and a.asname is None for a in n.names)
        for n in tree.body
    )
    if not has_import:
        lines = text.splitlines(keepends=True)
        imports = [n.end_lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        doc = (
            tree.body[0].end_lineno
            if tree.body
            and isinstance(tree.body[0], ast.Expr)
            and isinstance(getattr(tree.body[0], "value", None), ast.Constant)
            else 0
        )
        at = max(imports) if imports else doc
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.insert(at, ("\n" if at and not imports else "") + IMPORT)
        text = "".join(lines)
    text = text.rstrip("\n") + "\n\n\n" + stub_code(ref, func)
    fsio.write_text(path, text, comp.root)
    return path, func
