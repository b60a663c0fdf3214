"""proof.json -> the report: ``reach`` per scenario, ``strength`` per requirement, and the proof gate.

Fields (report.json):
- scenario ``reach``: ``{"status": "on-path" | "off-path" | "no-reach" | "not-run" | "stale" | "unmeasured",
  "off_path": ["path:line function", ...], "functions": n, "exception": "why" (when stated),
  "measured": the status measured (only when stale)}``;
- requirement ``strength``: ``{"killed", "survived", "timeout", "total", "score", "survivors": [...],
  "status": "current" | "stale" | "unmeasured", "note"}``; ``score`` = (killed + timeout) / total;
- top level ``proof``: what was measured, whether it is current, the gate settings.

A result measured on other inputs (the product's code, a scenario's text, a check's source: see
:mod:`specgen.proof.stamp`) is ``stale``: shown as such, never as current. With ``[tool.specgen.proof]
gate = true`` every gated requirement with an off-path or no-reach scenario (unless its check states an
exception), or without current proof, fails the gate; with ``min_strength`` too, one whose score is below it.
"""

from __future__ import annotations

import json
from pathlib import Path

from specgen.proof.names import PROOF_NAME

GOOD_REACH = ("on-path",)
BAD_REACH = ("off-path", "no-reach")


def _load(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        stamp_ = data.get("stamp")
        if data.get("version") != 1 or not isinstance(data.get("scenarios"), dict) or not isinstance(stamp_, dict):
            return None
        return data
    except (OSError, ValueError, AttributeError):
        return None


def attach(data: dict, comp) -> list[tuple[dict, str]]:
    """Add the proof fields to report data in place; the proof gate's findings: (requirement, why)."""
    from specgen.proof import measure, stamp

    settings = dict(comp.config.proof)
    proof = _load(comp.config.report_dir / PROOF_NAME)
    if not settings and proof is None:
        return []  # a project that does not use proof: the report is as it was
    current = None
    if settings.get("source"):
        current = stamp.stamp(comp, measure.source_dirs(comp.config.root, list(settings["source"])))
    measured = proof is not None
    code_fresh = measured and current is not None and proof["stamp"].get("code") == current["code"]
    strength_stamp = (proof or {}).get("strength_stamp") or {}
    strength_code_fresh = current is not None and strength_stamp.get("code") == current["code"]
    failures: list[tuple[dict, str]] = []
    gate = bool(settings.get("gate"))
    min_strength = settings.get("min_strength")
    for r in data["requirements"]:
        reasons = []
        for s in r["scenarios"]:
            p = (proof or {}).get("scenarios", {}).get(s["id"])
            if p is None:
                s["reach"] = {"status": "unmeasured", "off_path": []}
            else:
                fresh = code_fresh and proof["stamp"]["scenarios"].get(s["id"]) == current["scenarios"].get(s["id"])
                s["reach"] = {
                    "status": p["status"] if fresh else "stale",
                    "off_path": list(p.get("off_path", [])),
                    "functions": len(p.get("functions", [])),
                }
                if p.get("exception"):
                    s["reach"]["exception"] = p["exception"]
                if not fresh:
                    s["reach"]["measured"] = p["status"]
            status = s["reach"]["status"]
            if not s["checks"] or all(c["kind"] == "manual" for c in s["checks"]):
                continue  # gaps and manual scenarios are the verdict gate's business
            if status in BAD_REACH and not s["reach"].get("exception"):
                what = ", ".join(s["reach"]["off_path"][:3]) if status == "off-path" else "no product code"
                more = len(s["reach"]["off_path"]) - 3
                reasons.append(f"{s['name']}: {status} ({what}{f' and {more} more' if more > 0 else ''})")
            elif status not in GOOD_REACH + BAD_REACH:
                reasons.append(f"{s['name']}: reach {status}: run `specgen proof`")
        r["strength"] = _strength(
            r, (proof or {}).get("strength", {}).get(r["id"]), strength_code_fresh, strength_stamp, current
        )
        if min_strength is not None and any(s["checks"] for s in r["scenarios"]):
            st = r["strength"]
            if st["status"] != "current":
                reasons.append(f"strength {st['status']}: run `specgen proof --mutants N`")
            elif st["total"] == 0:
                reasons.append(f"strength: no mutant ran ({st.get('note') or 'no on-path line to mutate'})")
            elif st["score"] < min_strength:
                reasons.append(
                    f"strength {st['killed'] + st['timeout']}/{st['total']} = {st['score']:.2f} < min_strength "
                    f"{min_strength}; {st['survived']} mutant(s) survived"
                )
        if gate and r.get("gated", True) and reasons:
            failures.append((r, "; ".join(reasons)))
        r["proof_findings"] = reasons
    data["proof"] = {
        "measured": measured,
        "current": bool(code_fresh),
        "gate": gate,
        "min_strength": min_strength,
        "entrypoints": (proof or {}).get("entrypoints", []),
        # what the last mutation run ran and, under --budget, did not (the order of each mutant: proof.json)
        "mutation": {k: v for k, v in ((proof or {}).get("mutation") or {}).items() if k != "sequence"},
        "reach": _counts(s["reach"]["status"] for r in data["requirements"] for s in r["scenarios"]),
    }
    return failures


def _strength(r: dict, st: dict | None, code_fresh: bool, stamp_: dict, current: dict | None) -> dict:
    if not st:
        return {
            "killed": 0,
            "survived": 0,
            "timeout": 0,
            "total": 0,
            "score": None,
            "survivors": [],
            "status": "unmeasured",
        }
    fresh = (
        code_fresh
        and current is not None
        and all(
            (stamp_.get("scenarios") or {}).get(s["id"]) == current["scenarios"].get(s["id"]) for s in r["scenarios"]
        )
    )
    total = st.get("total", 0)
    return {
        "killed": st.get("killed", 0),
        "survived": st.get("survived", 0),
        "timeout": st.get("timeout", 0),
        "total": total,
        "score": round((st.get("killed", 0) + st.get("timeout", 0)) / total, 4) if total else None,
        "survivors": list(st.get("survivors", [])),
        "status": "current" if fresh else "stale",
        "note": st.get("note", ""),
    }


def _counts(statuses) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in statuses:
        out[s] = out.get(s, 0) + 1
    return dict(sorted(out.items()))
