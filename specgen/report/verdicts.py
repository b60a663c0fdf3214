"""Report and gate: model + lock + test outcomes + manual evidence -> verdicts, files, exit code.

Verdicts, worst first: failing, stale, suspect, missing, skipped, manual, verified.
- a check: failing (a case failed or errored), stale (manual evidence for an older scenario text),
  suspect (spec text or check source changed since review), missing (no result, no evidence, or a
  result for older text), skipped (any case skipped: a skip never counts), manual (fresh passing
  evidence), verified (every case passed);
- a scenario: the worst of its checks, missing without one;
- a requirement: the worst of its scenarios. It is verified only when every scenario is verified,
  or manual with fresh evidence (unless --no-manual).
:func:`build` gives the report data (report.json); :mod:`specgen.report.write` writes it out.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from specgen.compile.compiler import REVIEWED, Compilation
from specgen.compile.generator import rel_path
from specgen.compile.identity import View
from specgen.report import manual as manualmod

# `baselined` is given to requirements only, by specgen.adopt.baseline: an unverified one the baseline tolerates.
VERDICTS = ("failing", "stale", "suspect", "missing", "skipped", "baselined", "manual", "verified")
_RANK = {v: i for i, v in enumerate(VERDICTS)}


def worst(verdicts) -> str:
    verdicts = list(verdicts)
    return min(verdicts, key=_RANK.__getitem__) if verdicts else "missing"


@dataclass
class CheckResult:
    check: str
    path: str
    line: int
    kind: str  # auto | manual
    verdict: str
    reason: str
    outcomes: dict = field(default_factory=dict)
    procedure: str | None = None


def check_result(comp: Compilation, view: View, ref, decl, results, evidence) -> CheckResult:
    base = dict(check=decl.check_key, path=rel_path(decl.path, comp.root), line=decl.line)
    state, why = comp.lock_state(view.name, ref.id, decl)
    if decl.manual:
        status, ev = manualmod.status(evidence.get(ref.id), ref.fingerprint)
        verdict, reason = {
            manualmod.FRESH: ("manual", f"evidence by {ev.who if ev else ''} at {ev.when if ev else ''}"),
            manualmod.FAILED: ("failing", f"latest evidence ({ev.path.name if ev else ''}) records a fail"),
            manualmod.STALE: (
                "stale",
                "the latest evidence is for an older scenario text: run the procedure "
                f"again and record fingerprint {ref.fingerprint}",
            ),
            manualmod.NONE: (
                "missing",
                f"no evidence yet: follow {decl.manual}, record it under "
                f"{comp.config.manual}/evidence/ with fingerprint {ref.fingerprint}",
            ),
        }[status]
        if status == manualmod.FRESH:
            from specgen.adopt.evidence import flag  # git, only for fresh evidence

            why_not = flag(comp.root, ev.commit, ev.dirty)
            if why_not:
                verdict, reason = "suspect", f"evidence {ev.path.name} is flagged: {why_not}; run the procedure again"
        result = CheckResult(kind="manual", verdict=verdict, reason=reason, procedure=decl.manual, **base)
    else:
        recs = results.get((view.name, ref.id, decl.check_key), [])
        counts = Counter(r.get("outcome") for r in recs)
        if not recs:
            verdict, reason = "missing", "no test result: run the generated tests"
        elif any(r.get("spec_fingerprint") != ref.fingerprint for r in recs):
            verdict, reason = "missing", "the last result is for an older scenario text: rerun the generated tests"
        elif counts["failed"] or counts["error"]:
            msg = next(r.get("message") for r in recs if r.get("outcome") in ("failed", "error"))
            verdict, reason = "failing", (msg or "failed").strip().splitlines()[0][:300]
        elif counts["skipped"]:
            msg = next(r.get("message") for r in recs if r.get("outcome") == "skipped")
            verdict, reason = "skipped", f"skipped ({msg or 'no reason'}); a skip never counts"
        else:
            verdict, reason = "verified", f"{counts['passed']} case(s) passed"
        result = CheckResult(
            kind="auto", verdict=verdict, reason=reason, outcomes={k: counts[k] for k in sorted(counts)}, **base
        )
    if state != REVIEWED and _RANK["suspect"] < _RANK[result.verdict]:
        result.verdict, result.reason = "suspect", why
    return result


def build(comp: Compilation, results: dict, no_manual: bool, source_url: str) -> dict:
    evidence = manualmod.read_evidence(comp.config.evidence_dir)
    counted = {"verified"} if no_manual else {"verified", "manual"}
    views = []
    for view in comp.views:
        reqs = []
        for req in view.requirements:
            scns = []
            for ref in req.scenarios:
                checks = [
                    check_result(comp, view, ref, d, results, evidence) for d in comp.decls_for(view.name, ref.id)
                ]
                verdict = worst(c.verdict for c in checks)
                if ref.blocked:  # an id collision: never verified, whatever a result file says
                    verdict, reason = "failing", ref.blocked
                elif checks:
                    bad = [c for c in checks if c.verdict == verdict]
                    reason = f"{bad[0].check.split(':')[-1]}: {bad[0].reason}"
                else:
                    reason = f"no check bound: `specgen stub {ref.id}`"
                scns.append(
                    {
                        "id": ref.id,
                        "name": ref.name,
                        "verdict": verdict,
                        "verified": verdict in counted,
                        "reason": reason,
                        "path": rel_path(ref.path, comp.root),
                        "line": ref.line,
                        "fingerprint": ref.fingerprint,
                        "text": ref.scenario.raw_text,
                        "checks": [c.__dict__ for c in checks],
                        **({"blocked": True} if ref.blocked else {}),  # the baseline holds it by its problem
                    }
                )
            verdict = worst(s["verdict"] for s in scns)
            not_ok = [s for s in scns if not s["verified"]]
            reqs.append(
                {
                    "capability": req.capability,
                    "name": req.name,
                    "id": req.key,
                    "verdict": verdict,
                    "verified": bool(scns) and not not_ok,
                    "operation": req.operation,
                    "reason": ""
                    if scns and not not_ok
                    else ("; ".join(f"{s['name']}: {s['verdict']} ({s['reason']})" for s in not_ok) or "no scenarios"),
                    "path": rel_path(req.path, comp.root),
                    "line": req.line,
                    "text": req.requirement.text,
                    "fingerprint": req.fingerprint,
                    "scenarios": scns,
                }
            )
        views.append({"view": view.name, "change": view.change, "requirements": reqs, "summary": summarize(reqs)})
    return {
        "version": 1,
        "manual_counted": not no_manual,
        "source_url": source_url,
        "summary": views[0]["summary"],
        "requirements": views[0]["requirements"],
        "changes": [{"id": v["change"], "summary": v["summary"], "requirements": v["requirements"]} for v in views[1:]],
    }


def summarize(reqs: list[dict]) -> dict:
    scns = [s for r in reqs for s in r["scenarios"]]
    return {
        "requirements_total": len(reqs),
        "requirements_verified": sum(r["verified"] for r in reqs),
        "scenarios_total": len(scns),
        "scenarios_verified": sum(s["verified"] for s in scns),
        "verdicts": {v: sum(r["verdict"] == v for r in reqs) for v in VERDICTS},
        "scenario_verdicts": {v: sum(s["verdict"] == v for s in scns) for v in VERDICTS},
    }


def summary_line(data: dict, where: str) -> str:
    s = data["summary"]
    bad = {v: n for v, n in s["verdicts"].items() if n and v not in ("verified",)}
    detail = ", ".join(f"{n} {v}" for v, n in bad.items())
    issues = len(data.get("issues", []))
    extra = f"; {issues} static issue(s)" if issues else ""
    return (
        f"specgen: {s['requirements_verified']}/{s['requirements_total']} requirements verified"
        f"{' (' + detail + ')' if detail else ''}, {s['scenarios_verified']}/{s['scenarios_total']} "
        f"scenarios{extra}; report: {where}"
    )


def spec_link(data: dict, path: str, line: int, out_dir: Path, root: Path) -> str:
    if data.get("source_url"):
        return f"{data['source_url'].rstrip('/')}/{path}#L{line}"
    return f"{os.path.relpath(root / path, out_dir).replace(os.sep, '/')}#L{line}"
