"""The static gate (`specgen check`): model + bindings + lock + generated files -> issues.

Needs no test run: uncovered requirements, unbound scenarios, checks bound to nothing,
duplicate bindings, suspect or unreviewed bindings, missing manual procedures, stale
generated files. Active changes are gated only when asked (`--change`).
"""

from __future__ import annotations

import json

from specgen.compile import generator
from specgen.compile.compiler import SUSPECT, UNREVIEWED, Compilation
from specgen.compile.generator import rel_path
from specgen.compile.identity import View
from specgen.errors import ERROR, Issue


def view_issues(comp: Compilation, view: View) -> list[Issue]:
    issues: list[Issue] = []
    where = f" (change {view.change})" if view.change else ""
    for req in view.requirements:
        bound_any = False
        scenario_issues = []
        for ref in req.scenarios:
            decls = comp.decls_for(view.name, ref.id)
            if not decls:
                scenario_issues.append(Issue(ERROR, ref.path, ref.line, f"scenario {ref.id} has no check{where}: "
                                             f"`specgen stub {ref.id}`", "unbound-scenario"))
                continue
            bound_any = True
            for decl in decls:
                state, why = comp.lock_state(view.name, ref.id, decl)
                if state == SUSPECT:
                    message = (f"{decl.func} ({rel_path(decl.path, comp.root)}:{decl.line}) is suspect for "
                               f"{ref.id}{where}: {why}")
                    scenario_issues.append(Issue(ERROR, ref.path, ref.line, message, "suspect-binding"))
                elif state == UNREVIEWED:
                    message = f"{decl.func} for {ref.id}{where} is {why}"
                    scenario_issues.append(Issue(ERROR, ref.path, ref.line, message, "unreviewed-binding"))
        if not bound_any:
            message = f"requirement \"{req.name}\" ({req.key}){where} has no scenario with a check"
            issues.append(Issue(ERROR, req.path, req.line, message, "uncovered-requirement"))
        issues.extend(scenario_issues)
    return issues


def static_issues(comp: Compilation, gated_changes: list[str] = ()) -> list[Issue]:
    issues = list(comp.project.unreadable) + list(comp.issues)
    for mod in comp.modules:
        for name, line in mod.unbound:
            issues.append(Issue(ERROR, mod.path, line, f"{name} is bound to nothing: add @check(...) or rename it "
                                "(check_* names are reserved for checks)", "unbound-check"))
        for decl in mod.checks:
            if decl.manual and not (comp.root / decl.manual).is_file():
                issues.append(Issue(ERROR, decl.path, decl.line, f"{decl.func}: manual procedure {decl.manual} does "
                                    "not exist; write it", "missing-procedure"))
    issues += view_issues(comp, comp.specs)
    for change in gated_changes:
        issues += view_issues(comp, comp.view(change))
    # Stale generated files and lock lines, for the gated views only (`generate --check` sees all).
    views = [comp.specs] + [comp.view(c) for c in gated_changes]
    files = comp.generated_files(views)
    prefixes = [generator.file_name(v, "")[: -len(".py")] for v in views[1:]]
    scope = [n for n in generator.existing_generated(comp.config.output_dir)
             if "/" not in n or any(n.startswith(p) for p in prefixes)]
    d = generator.drift(comp.config.output_dir, files, scope)
    for name in (*d.changed, *d.missing, *d.extra):
        state = "out of date" if name in d.changed else ("missing" if name in d.missing else "no longer generated")
        issues.append(Issue(ERROR, comp.config.output_dir / name, None, f"{comp.config.output}/{name} is {state}: "
                            "run `specgen generate`", "stale-generated"))
    names = {v.name for v in views}
    wanted = {k: e for k, e in comp.wanted_lock().items() if k[0] in names}
    if wanted != {k: e for k, e in comp.lock.items() if k[0] in names}:
        issues.append(Issue(ERROR, comp.config.lock_path, None, "specgen.lock lacks new bindings or keeps gone ones: "
                            "run `specgen generate`", "stale-lock"))
    return sorted(set(issues), key=lambda i: (str(i.path or ""), i.line or 0, i.code, i.message))


def change_summaries(comp: Compilation, gated: list[str]) -> list[str]:
    lines = []
    for view in comp.views[1:]:
        scenarios = list(view.scenarios())
        bound = sum(1 for s in scenarios if comp.decls_for(view.name, s.id))
        note = "gated" if view.name in gated else "not gated; `specgen check --change " + view.name + "`"
        lines.append(f"change {view.name}: {bound}/{len(scenarios)} scenarios of {len(view.requirements)} "
                     f"requirement(s) have a check ({note})")
    return lines




def format_issues(issues: list[Issue], comp: Compilation, fmt: str, gated: list[str]) -> str:
    root = comp.root
    errors = [i for i in issues if i.level == "error"]
    scen = list(comp.specs.scenarios())
    summary = {
        "errors": len(errors), "warnings": len(issues) - len(errors),
        "requirements": len(comp.specs.requirements), "scenarios": len(scen),
        "bindings": sum(1 for b in comp.bound if b.view == comp.specs.name),
    }
    if fmt == "json":
        data = {"ok": not errors, "summary": summary,
                "issues": [{"level": i.level, "code": i.code, "message": i.message,
                            "path": rel_path(i.path, root) or None, "line": i.line} for i in issues],
                "changes": change_summaries(comp, gated)}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    out = []
    for i in issues:
        path = rel_path(i.path, root)
        if fmt == "github":
            loc = ",".join(p for p in (f"file={path}" if path else "", f"line={i.line}" if i.line else "") if p)
            msg = i.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            out.append(f"::{i.level} {loc + ',' if loc else ''}title=specgen {i.code}::{msg}")
        else:
            loc = f"{path}:{i.line}: " if i.line else (f"{path}: " if path else "")
            out.append(f"{loc}{i.level}: {i.message} [{i.code}]")
    if fmt == "text":
        out.extend(change_summaries(comp, gated))
        verdict = "ok" if not errors else f"{len(errors)} error(s)"
        out.append(f"specgen check: {verdict}; {summary['requirements']} requirements, {summary['scenarios']} "
                   f"scenarios, {summary['bindings']} bindings in openspec/specs")
    return "\n".join(out) + ("\n" if out else "")
