"""The baseline: today's gaps and static problems, tolerated by the gate item by item until they are fixed.

``specgen.baseline.json`` (``[tool.specgen] baseline``) is committed. Version 2 lists, per unverified
requirement (``capability/requirement-slug``), the verdict it had and the ids of its scenarios that were
not verified; and the static problems of the tree (an id collision, an unreadable file, a check bound to
nothing...) as ``code``, ``path`` and ``what`` (the message with line numbers left out, so an edit above
a problem does not make it new). Same inputs, same bytes: ids sorted, keys sorted.

What the gate tolerates (:func:`apply`, run by ``specgen report``; :func:`tolerated_issues`, run by
``specgen check``) is exactly what was recorded: an unverified requirement is ``baselined`` only when
each of its unverified scenarios is listed under it (or is blocked by a listed problem), so a new
scenario under a baselined requirement is a new gap; a problem is tolerated only when listed. The
ratchet: the file only shrinks, and the gate refuses a listed requirement that is verified now or gone,
and a listed problem that is gone (``specgen baseline --update`` drops them). A version 1 file (a
requirement id -> verdict map) tolerates each listed requirement whole until ``--update`` rewrites it.
Requirements outside the gate's scope (``[tool.specgen] gate``) are marked ``gated: false``.

Not baselined, ever (``specgen baseline`` refuses while they are there, naming each with its fix):
:data:`REFUSED`, the states one command repairs (stale generated files or lock, unreviewed bindings,
missing or stale test results).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from specgen.errors import SpecgenError

BASELINED = "baselined"
VERSION = 2
REFUSED = ("stale-generated", "stale-lock", "unreviewed-binding", "missing-results", "stale-results")
GAPS = ("uncovered-requirement", "unbound-scenario")
_LINE_REF = re.compile(r"(\bline |\.md:|\.py:)\d+")


@dataclass(frozen=True)
class Entry:
    verdict: str
    scenarios: tuple[str, ...] | None  # None: a version 1 entry, the whole requirement


@dataclass
class Baseline:
    requirements: dict[str, Entry] = field(default_factory=dict)
    problems: set[tuple[str, str, str]] = field(default_factory=set)  # (code, path, what)

    def covers(self, requirement: str, scenario: str) -> bool:
        entry = self.requirements.get(requirement)
        return entry is not None and (entry.scenarios is None or scenario in entry.scenarios)


@dataclass(frozen=True)
class Ratchet:
    item: str
    why: str  # "verified" | "gone" | "fixed"

    def message(self, baseline_name: str) -> str:
        what = {"verified": "is verified now", "gone": "no longer exists", "fixed": "is fixed"}[self.why]
        return (
            f"ratchet: {self.item} {what} but is still listed in {baseline_name}; "
            "run `specgen baseline --update` and commit it (the baseline only shrinks)"
        )


def problem_key(code: str, path: str | None, message: str) -> tuple[str, str, str]:
    """What identifies a static problem across edits: its code, file, and message without line numbers."""
    return (code, path or "", _LINE_REF.sub(lambda m: m.group(1) + "*", message))


def read(path: Path) -> Baseline:
    """The baseline at `path`; an empty one without a file."""
    if not path.is_file():
        return Baseline()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["requirements"]
        if data.get("version") not in (1, VERSION) or not isinstance(entries, dict):
            raise ValueError(f"expected version {VERSION} with a requirements object")
        out = Baseline()
        for k, v in entries.items():
            if data["version"] == 1:
                out.requirements[str(k)] = Entry(str(v), None)
            else:
                out.requirements[str(k)] = Entry(str(v["verdict"]), tuple(str(s) for s in v["scenarios"]))
        for p in data.get("problems", []):
            out.problems.add((str(p["code"]), str(p["path"]), str(p["what"])))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SpecgenError(f"not a specgen baseline: {exc}; delete it and rerun `specgen baseline`", path) from None
    return out


def render(b: Baseline) -> str:
    reqs = {
        k: {"verdict": e.verdict, "scenarios": sorted(e.scenarios or ())} for k, e in sorted(b.requirements.items())
    }
    problems = [{"code": c, "path": p, "what": w} for c, p, w in sorted(b.problems)]
    data = {"version": VERSION, "requirements": reqs, "problems": problems}
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def _problem_issues(data: dict) -> list[dict]:
    return [i for i in data.get("issues", []) if i["code"] not in REFUSED]


def refused(data: dict) -> list[dict]:
    """The report's issues a baseline never holds: each must be fixed before `specgen baseline`."""
    return [i for i in data.get("issues", []) if i["code"] in REFUSED]


def record(data: dict, gated) -> Baseline:
    """Today's gaps and problems in report data (gated requirements only)."""
    out = Baseline()
    out.problems = {problem_key(i["code"], i["path"], i["message"]) for i in _problem_issues(data)}
    for r in data["requirements"]:
        if r["verified"] or not gated(r["capability"]):
            continue
        open_ = [s["id"] for s in r["scenarios"] if not s["verified"] and not s.get("blocked")]
        if open_ or not r["scenarios"]:  # one whose open scenarios are all blocked is held by its problem
            out.requirements[r["id"]] = Entry(r["verdict"], tuple(open_))
    return out


def _blocked_ok(data: dict, b: Baseline) -> set[tuple[str, int]]:
    """(path, line) of the listed problems present now: a scenario blocked there is tolerated."""
    listed = [i for i in _problem_issues(data) if problem_key(i["code"], i["path"], i["message"]) in b.problems]
    return {(i["path"], i["line"]) for i in listed}


def _tolerated(r: dict, b: Baseline, blocked_ok: set) -> bool:
    if r["verified"]:
        return False
    open_ = [s for s in r["scenarios"] if not s["verified"]]
    if not open_:
        return r["id"] in b.requirements
    where_req = (r["path"], r["line"])
    return all(
        b.covers(r["id"], s["id"])
        or (s.get("blocked") and ((s["path"], s["line"]) in blocked_ok or where_req in blocked_ok))
        for s in open_
    )


def apply(data: dict, b: Baseline, gated) -> list[Ratchet]:
    """Mark report data in place (baselined verdicts, gate scope, listed problems moved out of
    ``issues`` into ``baselined_issues``); the ratchet violations."""
    ok = _blocked_ok(data, b)
    seen = set()
    ratchets = []
    for r in data["requirements"]:
        r["gated"] = gated(r["capability"])
        if r["id"] in b.requirements:
            seen.add(r["id"])
            if r["verified"]:
                ratchets.append(Ratchet(r["id"], "verified"))
        if _tolerated(r, b, ok):
            r["baselined_verdict"], r["verdict"] = r["verdict"], BASELINED
    ratchets += [Ratchet(k, "gone") for k in sorted(b.requirements) if k not in seen]
    kept, held, present = [], [], set()
    for i in data.get("issues", []):
        key = problem_key(i["code"], i["path"], i["message"])
        if i["code"] not in REFUSED and key in b.problems:
            held.append(i)
            present.add(key)
        else:
            kept.append(i)
    data["issues"], data["baselined_issues"] = kept, held
    ratchets += [Ratchet(f"{c} in {p}: {w}", "fixed") for c, p, w in sorted(b.problems - present)]
    return ratchets


def update(old: Baseline, now: Baseline) -> tuple[Baseline, list[str], list[str]]:
    """The shrunk baseline: what is listed and still open now; (it, dropped items, new gaps not added)."""
    kept = Baseline()
    dropped, new = [], []
    for k, e in old.requirements.items():
        cur = now.requirements.get(k)
        if cur is None:
            dropped.append(k)
            continue
        scenarios = cur.scenarios if e.scenarios is None else tuple(s for s in e.scenarios if s in cur.scenarios)
        dropped += [s for s in (e.scenarios or ()) if s not in scenarios]
        kept.requirements[k] = Entry(cur.verdict, scenarios)
        if e.scenarios is not None:
            new += [s for s in cur.scenarios if s not in e.scenarios]
    new += [k for k in now.requirements if k not in old.requirements]
    kept.problems = old.problems & now.problems
    dropped += [f"{c} in {p}: {w}" for c, p, w in sorted(old.problems - now.problems)]
    new += [f"{c} in {p}: {w}" for c, p, w in sorted(now.problems - old.problems)]
    return kept, sorted(dropped), sorted(new)


def tolerated_issues(issues: list, comp, b: Baseline, gated) -> tuple[list, int]:
    """`check`'s issues less the listed ones: gaps of listed scenarios (and uncovered listed
    requirements), gaps of ungated requirements, and listed problems; (kept, dropped count)."""
    from specgen.compile.generator import rel_path

    def listed(i) -> bool:
        return (
            i.code not in REFUSED and problem_key(i.code, rel_path(i.path, comp.root) or None, i.message) in b.problems
        )

    held_at = {(str(i.path), i.line) for i in issues if listed(i)}  # a scenario blocked there is held too
    drop = set()
    for req in comp.specs.requirements:
        ungated = not gated(req.capability)
        held = [
            b.covers(req.key, ref.id)
            or (ref.blocked and bool({(str(ref.path), ref.line), (str(req.path), req.line)} & held_at))
            for ref in req.scenarios
        ]
        if ungated or req.key in b.requirements or (held and all(held)):
            drop.add((str(req.path), req.line, "uncovered-requirement"))
        for ref, ok in zip(req.scenarios, held, strict=True):
            if ungated or ok:
                drop.add((str(ref.path), ref.line, "unbound-scenario"))
    kept = [i for i in issues if not ((i.code in GAPS and (str(i.path), i.line, i.code) in drop) or listed(i))]
    return kept, len(issues) - len(kept)
