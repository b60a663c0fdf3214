"""The static gate (`specgen check`): model + bindings + lock + generated files -> issues.

Needs no test run: uncovered requirements, unbound scenarios, checks bound to nothing,
duplicate bindings, suspect or unreviewed bindings, missing manual procedures, stale
generated files. Active changes are gated only when asked (`--change`).
"""

from __future__ import annotations

import json
from collections import Counter

from specgen.compile import generator
from specgen.compile.compiler import SUSPECT, UNREVIEWED, Compilation
from specgen.compile.generator import rel_path
from specgen.compile.identity import View
from specgen.errors import ERROR, Issue
from specgen.proof.shape import shape_issues
from specgen.report.scope import scope_issues


def view_issues(comp: Compilation, view: View) -> list[Issue]:
    issues: list[Issue] = []
    where = f" (change {view.change})" if view.change else ""
    for req in view.requirements:
        bound_any = False
        scenario_issues = []
        for ref in req.scenarios:
            decls = comp.decls_for(view.name, ref.id)
            if ref.blocked:
                continue  # the collision itself is the issue (comp.problems), at this scenario's line
            if not decls:
                scenario_issues.append(
                    Issue(
                        ERROR,
                        ref.path,
                        ref.line,
                        f"scenario {ref.id} has no check{where}: `specgen stub {ref.id}`",
                        "unbound-scenario",
                    )
                )
                continue
            bound_any = True
            for decl in decls:
                state, why = comp.lock_state(view.name, ref.id, decl)
                if state == SUSPECT:
                    message = (
                        f"{decl.func} ({rel_path(decl.path, comp.root)}:{decl.line}) is suspect for "
                        f"{ref.id}{where}: {why}"
                    )
                    scenario_issues.append(Issue(ERROR, ref.path, ref.line, message, "suspect-binding"))
                elif state == UNREVIEWED:
                    message = f"{decl.func} for {ref.id}{where} is {why}"
                    scenario_issues.append(Issue(ERROR, ref.path, ref.line, message, "unreviewed-binding"))
        if not bound_any:
            message = f'requirement "{req.name}" ({req.key}){where} has no scenario with a check'
            issues.append(Issue(ERROR, req.path, req.line, message, "uncovered-requirement"))
        issues.extend(scenario_issues)
    return issues


def static_issues(comp: Compilation, gated_changes: list[str] = ()) -> list[Issue]:
    issues = list(comp.project.unreadable) + comp.problems(gated_changes)
    for mod in comp.modules:
        for name, line in mod.unbound:
            issues.append(
                Issue(
                    ERROR,
                    mod.path,
                    line,
                    f"{name} is bound to nothing: add @check(...) or rename it (check_* names are reserved for checks)",
                    "unbound-check",
                )
            )
        for decl in mod.checks:
            if decl.manual and not (comp.root / decl.manual).is_file():
                issues.append(
                    Issue(
                        ERROR,
                        decl.path,
                        decl.line,
                        f"{decl.func}: manual procedure {decl.manual} does not exist; write it",
                        "missing-procedure",
                    )
                )
    issues += view_issues(comp, comp.specs)
    for change in gated_changes:
        issues += view_issues(comp, comp.view(change))
    # Stale generated files and lock lines, for the gated views only (`generate --check` sees all).
    views = [comp.specs] + [comp.view(c) for c in gated_changes]
    files = comp.generated_files(views)
    prefixes = [generator.file_name(v, "")[: -len(".py")] for v in views[1:]]
    scope = [
        n
        for n in generator.existing_generated(comp.config.output_dir)
        if "/" not in n or any(n.startswith(p) for p in prefixes)
    ]
    d = generator.drift(comp.config.output_dir, files, scope)
    for name in (*d.changed, *d.missing, *d.extra):
        state = "out of date" if name in d.changed else ("missing" if name in d.missing else "no longer generated")
        issues.append(
            Issue(
                ERROR,
                comp.config.output_dir / name,
                None,
                f"{comp.config.output}/{name} is {state}: run `specgen generate`",
                "stale-generated",
            )
        )
    names = {v.name for v in views}
    wanted = {k: e for k, e in comp.wanted_lock().items() if k[0] in names}
    if wanted != {k: e for k, e in comp.lock.items() if k[0] in names}:
        issues.append(
            Issue(
                ERROR,
                comp.config.lock_path,
                None,
                f"{comp.config.lock} lacks new bindings or keeps gone ones: run `specgen generate`",
                "stale-lock",
            )
        )
    issues += scope_issues(comp)  # fail closed: an empty or unreadable gate scope never passes
    issues += shape_issues(comp)  # advisory: THEN lines a check can compare, and checks that look at them
    return sorted(set(issues), key=lambda i: (str(i.path or ""), i.line or 0, i.code, i.message))


# Worst first, for capped output: what breaks trust in a verdict, then gaps, then housekeeping.
# Codes not listed (binding and configuration errors) come first.
_CODE_RANK = {
    "suspect-binding": 1,
    "missing-procedure": 2,
    "uncovered-requirement": 3,
    "unbound-scenario": 4,
    "unreviewed-binding": 5,
    "renamed-scenario": 6,
    "renamed-requirement": 6,
    "unbound-check": 7,
    "stale-generated": 8,
    "stale-lock": 9,
}


def worst_first(i: Issue) -> tuple:
    return ({"error": 0, "warning": 1}.get(i.level, 2), _CODE_RANK.get(i.code, 0), str(i.path or ""), i.line or 0)


def change_summaries(comp: Compilation, gated: list[str]) -> list[str]:
    lines = []
    for view in comp.views[1:]:
        scenarios = list(view.scenarios())
        bound = sum(1 for s in scenarios if comp.decls_for(view.name, s.id))
        note = "gated" if view.name in gated else "not gated; `specgen check --change " + view.name + "`"
        lines.append(
            f"change {view.name}: {bound}/{len(scenarios)} scenarios of {len(view.requirements)} "
            f"requirement(s) have a check ({note})"
        )
    return lines


TERMINAL_LIMIT = 40  # per-item lines a person reads; --verbose prints all


def format_issues(issues: list[Issue], comp: Compilation, fmt: str, gated: list[str], limit: int | None = None) -> str:
    """`limit`: text only, the summary first and at most `limit` issue lines (None: all, no head line)."""
    root = comp.root
    errors = [i for i in issues if i.level == "error"]
    scen = list(comp.specs.scenarios())
    summary = {
        "errors": len(errors),
        "warnings": len(issues) - len(errors),
        "requirements": len(comp.specs.requirements),
        "scenarios": len(scen),
        "bindings": sum(1 for b in comp.bound if b.view == comp.specs.name),
    }
    if fmt == "json":
        data = {
            "ok": not errors,
            "summary": summary,
            "issues": [
                {
                    "level": i.level,
                    "code": i.code,
                    "message": i.message,
                    "path": rel_path(i.path, root) or None,
                    "line": i.line,
                }
                for i in issues
            ],
            "changes": change_summaries(comp, gated),
        }
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    out = []
    if fmt == "github":
        from specgen.report import github

        ranked = sorted(issues, key=worst_first)
        out = github.annotations(
            [
                github.Annotation(i.level, rel_path(i.path, root) or None, i.line, f"specgen {i.code}", i.message)
                for i in ranked
            ],
            "issue(s)",
        )
    verdict = "ok" if not errors else f"{len(errors)} error(s)"
    last = (
        f"specgen check: {verdict}; {summary['requirements']} requirements, {summary['scenarios']} "
        f"scenarios, {summary['bindings']} bindings in openspec/specs"
    )
    shown = issues if fmt != "text" or limit is None else sorted(issues, key=worst_first)[:limit]
    if fmt == "text" and limit is not None and issues:  # the head line only when lines follow it
        codes = Counter(i.code for i in issues)
        out.append(
            last
            + ("; " + ", ".join(f"{n} {c}" for c, n in sorted(codes.items(), key=lambda x: -x[1])) if codes else "")
        )
    for i in shown if fmt != "github" else ():
        path = rel_path(i.path, root)
        loc = f"{path}:{i.line}: " if i.line else (f"{path}: " if path else "")
        out.append(f"{loc}{i.level}: {i.message} [{i.code}]")
    if fmt == "text":
        if len(shown) < len(issues):
            out.append(
                f"... {len(issues) - len(shown)} more issue(s), worst first above: `specgen check --verbose` "
                "or `--format json` for all"
            )
        changes = change_summaries(comp, gated)
        if limit is not None and len(changes) > limit // 4:
            changes = changes[: limit // 4] + [f"... {len(changes) - limit // 4} more change(s) (--verbose)"]
        out.extend(changes)
        out.append(last)
    return "\n".join(out) + ("\n" if out else "")
