#!/usr/bin/env python3
"""Inventory gate over ``src/``: an AST scan (not a regex) for three ways to break CoordJSON.

Rules (each finding is ``path:line: rule: message``):

- ``json-load``: a JSON decoder (``json.loads``/``json.load``/``JSONDecoder``, and the
  ``msgspec``/``orjson``/``ujson``/``simplejson`` equivalents, under any import alias) used
  anywhere without a reasoned pragma. CoordJSON is not JSON: model text is read with
  ``coordjson.parse`` only (openspec/specs/coordjson, No JSON Decoding Of Model Text). Decoding that is not model
  output (a JSONL record file, a cache, a manifest) carries a pragma with its reason on the
  same line or the line above: ``# inventory: json-ok(<reason>)``.
- ``object-n-key``: an ``object_N``-style key (``"object_3"``, ``f"object_{i}"``,
  ``"object_%d"``): the retired format must never come back. Docstrings are prose and are
  not scanned.
- ``div-1000``: a division by 1000. norm1000 bins span [0, 999] (``k/999``); a ``/1000``
  convention shifts coordinates. A non-coordinate one carries
  ``# inventory: div1000-ok(<reason>)``.

A pragma with an empty reason is itself a finding. ``scripts/tools/inventory.py [PATH...]``
exits 0 when clean, 1 with findings, 2 on bad usage.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DECODERS = frozenset(
    {
        "json.loads",
        "json.load",
        "json.JSONDecoder",
        "json.decoder.JSONDecoder",
        "msgspec.json.decode",
        "msgspec.json.Decoder",
        "orjson.loads",
        "ujson.loads",
        "ujson.load",
        "simplejson.loads",
        "simplejson.load",
    }
)
_PRAGMA = re.compile(r"#\s*inventory:\s*(json-ok|div1000-ok)\(([^)]*)\)")
_OBJECT_N = re.compile(r"\bobject_(?:\d+|N\b|\{|%)")


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.message}"


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted module path, from every import in the module."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    out[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                ids.add(id(body[0].value))
    return ids


class _Scanner:
    def __init__(self, source: str, path: str):
        self.path = path
        self.lines = source.splitlines()
        self.findings: list[Finding] = []

    def pragma(self, line: int, kind: str) -> bool:
        """True when line or the line above carries a pragma of this kind with a reason."""
        for ln in (line, line - 1):
            if 1 <= ln <= len(self.lines):
                for m in _PRAGMA.finditer(self.lines[ln - 1]):
                    if m.group(1) != kind:
                        continue
                    if not m.group(2).strip():
                        self.add(ln, "pragma", f"'{kind}' pragma needs a reason: # inventory: {kind}(<why>)")
                        return False
                    return True
        return False

    def add(self, line: int, rule: str, message: str) -> None:
        self.findings.append(Finding(self.path, line, rule, message))


def _scopes(tree: ast.AST):
    """(scope node, parent map) for the module and every function, for the tiny dataflow."""
    parents: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    return parents


def scan_source(source: str, path: str = "<string>") -> list[Finding]:
    s = _Scanner(source, path)
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        s.add(e.lineno or 0, "syntax", f"cannot be parsed, so cannot be checked: {e.msg}")
        return s.findings
    aliases = _aliases(tree)
    parents = _scopes(tree)
    docstrings = _docstring_nodes(tree)
    for node in ast.walk(tree):
        # -- json-load
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(getattr(node, "ctx", None), ast.Load):
            dotted = _dotted(node, aliases)
            if dotted in DECODERS and not s.pragma(node.lineno, "json-ok"):
                s.add(
                    node.lineno,
                    "json-load",
                    f"{dotted}: CoordJSON is not JSON, read model text with coordjson.parse; mark JSON that "
                    f"is not model output with '# inventory: json-ok(<reason>)'",
                )
        # -- object-n-key
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            parent = parents.get(id(node))
            if not isinstance(parent, ast.JoinedStr) and _OBJECT_N.search(node.value):
                s.add(
                    node.lineno,
                    "object-n-key",
                    f"numbered object key in {node.value[:40]!r}: the "
                    f"retired numbered-key format must not be produced or parsed",
                )
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{" for v in node.values)
            if _OBJECT_N.search(text):
                s.add(
                    node.lineno,
                    "object-n-key",
                    "numbered object key in an f-string: the retired "
                    "numbered-key format must not be produced or parsed",
                )
        # -- div-1000
        right = None
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.FloorDiv)):
            right = node.right
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, (ast.Div, ast.FloorDiv)):
            right = node.value
        if (
            isinstance(right, ast.Constant)
            and isinstance(right.value, (int, float))
            and not isinstance(right.value, bool)
            and right.value == 1000
        ):
            if not s.pragma(node.lineno, "div1000-ok"):
                s.add(
                    node.lineno,
                    "div-1000",
                    "division by 1000: norm1000 bins map with k/999 "
                    "(coord.norm1000_to_pixel); mark a non-coordinate one with "
                    "'# inventory: div1000-ok(<reason>)'",
                )
    return sorted(set(s.findings))


def scan_tree(*roots: Path | str) -> list[Finding]:
    """Every ``*.py`` under the roots (files are taken as given), in a stable order."""
    findings: list[Finding] = []
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for f in files:
            try:
                source = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                findings.append(Finding(str(f), 0, "unreadable", str(e)))
                continue
            findings.extend(scan_source(source, str(f)))
    return findings


def default_root() -> Path:
    return Path(__file__).resolve().parents[2] / "src"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a.startswith("-") for a in args):
        print("usage: scripts/tools/inventory.py [PATH...]   (default: src/)", file=sys.stderr)
        return 2
    roots = [Path(a) for a in args] or [default_root()]
    missing = [str(r) for r in roots if not r.exists()]
    if missing:
        print(f"inventory: no such path: {', '.join(missing)}", file=sys.stderr)
        return 2
    findings = scan_tree(*roots)
    for f in findings:
        print(f)
    print(f"inventory: {len(findings)} finding(s) in {', '.join(map(str, roots))}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
