"""Source file -> its functions, and each body line -> the function that owns it (``ast``, no import).

A line belongs to the innermost ``def`` (or ``async def``) whose body holds it; the ``def`` line and its
decorators run when the module is imported, so they belong to no function. Names are Python's qualified
names (``Class.method``, ``outer.<locals>.inner``), so they match ``code.co_qualname`` at run time.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Function:
    qualname: str
    line: int  # the def line
    first: int  # the first body line
    last: int  # the last body line
    outer: str  # the qualname of the outermost enclosing function (itself when not nested in a function)


@dataclass(frozen=True)
class FileMap:
    path: Path
    functions: tuple[Function, ...]
    owner: dict  # body line -> Function (the innermost)

    def function_at(self, line: int) -> Function | None:
        return self.owner.get(line)


def map_file(path: Path) -> FileMap | None:
    """The functions of one Python file; None when it cannot be read or parsed (it is then not measured)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    found: list[Function] = []

    def walk(node, prefix: str, outer: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = f"{prefix}{child.name}"
                top = outer or qual
                first = child.body[0].lineno
                found.append(Function(qual, child.lineno, first, child.end_lineno or first, top))
                walk(child, f"{qual}.<locals>.", top)
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.", outer)
            else:
                walk(child, prefix, outer)

    walk(tree, "", None)
    owner: dict[int, Function] = {}
    # Outer functions first, so an inner function's lines end up owned by the inner one.
    for fn in sorted(found, key=lambda f: (f.first, -f.last)):
        for line in range(fn.first, fn.last + 1):
            owner[line] = fn
    return FileMap(path, tuple(sorted(found, key=lambda f: f.line)), owner)
