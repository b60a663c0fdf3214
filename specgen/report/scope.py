"""Fail closed: a gate that holds nothing to account never passes.

Green is proof only when there is something to prove. :func:`scope_issues` gives the errors that make
``specgen check`` and ``specgen report --gate`` fail when the gate's scope is empty or rests on a spec
the reader cannot count (see openspec/specs/spec-test-compiler/spec.md, "The gate fails closed"):

- ``empty-gate``: the gated capabilities ([tool.specgen] gate) hold 0 requirements, whether
  ``openspec/specs`` is empty, or the gate patterns match no capability;
- ``invalid-spec``: a gated main spec that ``specgen validate`` rejects (its first error, and the fix),
  among them a main spec that reads as 0 requirements because it was written as a change's delta
  (``## ADDED Requirements`` in place of ``## Requirements``).

One issue per spec, at the spec's file and line; one line each, naming what to do.
"""

from __future__ import annotations

import re
from pathlib import Path

from specgen.errors import ERROR, Issue

_DELTA_HEADER = re.compile(r"^##\s+(ADDED|MODIFIED|REMOVED|RENAMED)\s+Requirements\s*$", re.MULTILINE)


def scope_issues(comp) -> list[Issue]:
    """The fail-closed errors of one compilation's main specs (``comp.specs``) under its gate."""
    from specgen.rules.validate_spec import validate_spec_file  # the rules only when a gate is checked

    config = comp.config
    prefix = f"{config.namespace}:" if config.namespace else ""
    issues: list[Issue] = []
    gated_specs = [s for s in comp.project.specs if config.gated(prefix + s.id)]
    for spec in gated_specs:
        rel = _rel(spec.path, comp.root)
        errors = [i for i in validate_spec_file(spec.path, spec.id.split("/")[0], rel) if i.level == ERROR]
        if not errors and spec.requirements:
            continue
        line, why = _why(spec, errors)
        issues.append(Issue(ERROR, spec.path, line, f"gated spec {spec.id} {why}", "invalid-spec"))
    gated_reqs = [r for r in comp.specs.requirements if config.gated(r.capability)]
    if not gated_reqs:
        specs_dir = f"{config.specs}/specs"
        if not comp.project.specs:
            why = f"{specs_dir} holds no spec; write one (openspec/specs/<capability>/spec.md with `## Requirements`)"
        elif not gated_specs:
            why = (
                f"[tool.specgen] gate {list(config.gate)} matches none of the capabilities in {specs_dir} "
                f"({', '.join(sorted(s.id for s in comp.project.specs)[:5])}); fix the patterns"
            )
        else:
            why = "every gated spec reads as 0 requirements; fix the specs named above"
        issues.append(
            Issue(ERROR, config.root / "pyproject.toml", None, f"the gate holds 0 requirements: {why}", "empty-gate")
        )
    return issues


def _why(spec, errors: list[Issue]) -> tuple[int | None, str]:
    try:
        text = spec.path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    delta = _DELTA_HEADER.search(text)
    if delta:
        line = text.count("\n", 0, delta.start()) + 1
        return line, (
            f"reads as 0 requirements: `## {delta.group(1)} Requirements` is a change's delta header; a main "
            "spec lists its requirements under `## Requirements` (rename the header, or move the file into "
            "openspec/changes/<change>/specs/ and `specgen apply` it)"
        )
    if errors:
        first = errors[0]
        message = " ".join(first.message.split())
        if len(message) > 200:
            message = message[:200] + "…"
        return first.line, f"is invalid: {message}; fix it (`specgen validate {spec.id}` shows every issue)"
    return 1, "reads as 0 requirements; add `### Requirement:` blocks under `## Requirements`"


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
