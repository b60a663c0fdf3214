"""Scenario shape: the cheap, static first look before a mutation run (``specgen check``, warnings).

- ``unverifiable-shape``: a scenario whose THEN lines (THEN and the AND lines after it) name no observable
  outcome: no code-like token (a `code span`, a "quoted literal", a number, a dotted.key, a snake_case or
  call() identifier, a path) and a vague phrase ("works correctly", "is handled properly", "as expected",
  ...). Advisory; an error when ``[tool.specgen.proof] gate = true``.
- ``check-misses-outcome``: a bound check whose source names none of the code-like tokens of its scenario's
  THEN lines: whatever it asserts, it does not look at what the scenario promises.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from specgen.errors import ERROR, WARNING, Issue

_STEP = re.compile(r"^\s*[-*]\s*(?:\*\*)?(WHEN|THEN|AND|GIVEN|BUT)(?:\*\*)?\s*:?\s*(.*)$", re.IGNORECASE)
_SPAN = re.compile(r"`([^`]+)`")
_QUOTED = re.compile(r"\"([^\"]+)\"|'([^'\s][^']*)'")
_DOTTED = re.compile(r"\b[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)+\b")
_SNAKE = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b|\b[A-Za-z_]\w*\(\)")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\b")
_PATH = re.compile(r"\b[\w.-]+/[\w./-]+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")
_COMMON = {"check", "true", "false", "none", "self", "test", "with", "from", "that", "this", "specgen", "error"}
_VAGUE = re.compile(
    r"\b(works?|working|worked) (correctly|properly|as expected|fine)\b|\b(is|are|gets?|be) handled"
    r"( properly| correctly| gracefully)?\b|\bas expected\b|\bsuccessfully\b|\bappropriate(ly)?\b|\bproperly\b"
    r"|\bcorrectly\b|\bbehaves? (correctly|as expected)\b|\bno errors?\b|\bis valid\b",
    re.IGNORECASE,
)


def then_text(raw: str) -> str:
    """The THEN line and the AND/BUT lines that follow it (until the next WHEN or GIVEN)."""
    out, inside = [], False
    for line in raw.splitlines():
        m = _STEP.match(line)
        if m:
            step = m.group(1).upper()
            inside = step == "THEN" or (inside and step in ("AND", "BUT"))
            if inside:
                out.append(m.group(2))
        elif inside and line.strip() and not line.lstrip().startswith("#"):
            out.append(line.strip())  # a wrapped continuation line
    return "\n".join(out)


def code_tokens(text: str) -> set[str]:
    """The code-like tokens of THEN text: code spans, quoted literals, dotted keys, snake_case and call() names."""
    tokens: set[str] = set()
    for span in _SPAN.findall(text):
        tokens.add(span.strip())
    for a, b in _QUOTED.findall(_SPAN.sub(" ", text)):
        tokens.add((a or b).strip())
    rest = _SPAN.sub(" ", text)
    tokens.update(_DOTTED.findall(rest))
    tokens.update(t.rstrip("()") for t in _SNAKE.findall(rest))
    return {t for t in tokens if t}


def observable(text: str) -> bool:
    if code_tokens(text) or _NUMBER.search(text) or _PATH.search(text):
        return True
    return not _VAGUE.search(text)


def names_any(source: str, tokens: set[str]) -> bool:
    """Whether check source names a token: the token itself, or one of its identifier-like words (3+ chars)."""
    for token in tokens:
        if token in source:
            return True
        words = _WORD.findall(token)
        if words and all(w in source for w in words):  # `specgen check`: both words, in any form
            return True
        if any(w in source for w in words if w.lower() not in _COMMON):
            return True
    return False


def _function_source(path: Path, name: str, cache: dict) -> str | None:
    if path not in cache:
        try:
            text = path.read_text(encoding="utf-8")
            cache[path] = (text, ast.parse(text))
        except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
            cache[path] = None
    if cache[path] is None:
        return None
    text, tree = cache[path]
    lines = text.splitlines()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            body = node.body[1:] if _is_docstring(node.body[0]) and len(node.body) > 1 else node.body
            parts = [
                ast.get_source_segment(text, d) or ""
                for d in node.decorator_list
                if not (ast.get_source_segment(text, d) or "").startswith("check(")
            ]  # a parametrize list often holds the literal the scenario names; @check repeats its names
            parts += lines[body[0].lineno - 1 : node.end_lineno]
            return "\n".join(parts)
    return None


def _is_docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def shape_issues(comp) -> list[Issue]:
    gate = bool(dict(comp.config.proof).get("gate"))
    issues: list[Issue] = []
    sources: dict = {}
    for ref in comp.specs.scenarios():
        text = then_text(ref.scenario.raw_text)
        if not text.strip():
            continue  # no THEN at all: validation's business
        if not observable(text):
            issues.append(
                Issue(
                    ERROR if gate else WARNING,
                    ref.path,
                    ref.line,
                    f"scenario {ref.id}: its THEN names no observable outcome (a value, state, message or output, "
                    "e.g. a `code span` or a quoted literal); say what a check can compare",
                    "unverifiable-shape",
                )
            )
            continue
        tokens = code_tokens(text)
        if not tokens:
            continue
        for decl in comp.decls_for(comp.specs.name, ref.id):
            if decl.manual:
                continue
            body = _function_source(decl.path, decl.func, sources)
            if body is not None and not names_any(body, tokens):
                shown = ", ".join(sorted(tokens)[:4])
                issues.append(
                    Issue(
                        WARNING,
                        decl.path,
                        decl.def_line,
                        f"{decl.func} names none of {ref.id}'s THEN tokens ({shown}); does it check what the "
                        "scenario promises?",
                        "check-misses-outcome",
                    )
                )
    return issues
