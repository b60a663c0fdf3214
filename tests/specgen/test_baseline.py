"""specgen.adopt.baseline: the file's versions, the ratchet on scenarios and problems, keys without line numbers."""

from __future__ import annotations

import json

from specgen.adopt import baseline as B


def _data(scenarios: dict[str, bool], issues=()) -> dict:
    """Report data for one requirement `cap/req` with scenarios id -> verified."""
    scns = [
        {"id": f"cap/req/{k}", "verified": v, "path": "s.md", "line": n} for n, (k, v) in enumerate(scenarios.items())
    ]
    req = {
        "id": "cap/req",
        "capability": "cap",
        "verified": all(scenarios.values()) and bool(scenarios),
        "verdict": "verified" if all(scenarios.values()) else "missing",
        "path": "s.md",
        "line": 1,
        "scenarios": scns,
    }
    return {"requirements": [req], "issues": list(issues)}


def test_version_1_holds_whole_requirements_until_update_rewrites_it(tmp_path):
    path = tmp_path / "specgen.baseline.json"
    path.write_text(json.dumps({"version": 1, "requirements": {"cap/req": "missing"}}), encoding="utf-8")
    old = B.read(path)
    data = _data({"a": False, "new": False})
    assert B.apply(data, old, lambda c: True) == [] and data["requirements"][0]["verdict"] == "baselined"
    kept, dropped, new = B.update(old, B.record(_data({"a": False, "new": False}), lambda c: True))
    assert kept.requirements["cap/req"].scenarios == ("cap/req/a", "cap/req/new") and not dropped and not new
    assert json.loads(B.render(kept))["version"] == 2


def test_a_new_scenario_is_a_new_gap_and_update_shrinks_scenarios():
    listed = B.record(_data({"a": False, "b": False}), lambda c: True)
    data = _data({"a": False, "b": False, "c": False})
    B.apply(data, listed, lambda c: True)
    assert data["requirements"][0]["verdict"] == "missing"  # c is not listed
    kept, dropped, new = B.update(listed, B.record(_data({"a": True, "b": False, "c": False}), lambda c: True))
    assert (
        kept.requirements["cap/req"].scenarios == ("cap/req/b",) and dropped == ["cap/req/a"] and new == ["cap/req/c"]
    )


def test_problems_are_keyed_without_line_numbers_and_a_fixed_one_is_a_ratchet():
    issue = {"code": "id-collision", "path": "s.md", "line": 7, "message": 'id x collides with "X" (line 9)'}
    listed = B.record(_data({"a": False}, [issue]), lambda c: True)
    moved = dict(issue, line=12, message='id x collides with "X" (line 14)')
    data = _data({"a": False}, [moved])
    assert B.apply(data, listed, lambda c: True) == [] and data["issues"] == [] and data["baselined_issues"] == [moved]
    fixed = _data({"a": False})
    (ratchet,) = B.apply(fixed, listed, lambda c: True)
    assert ratchet.why == "fixed" and "id-collision in s.md" in ratchet.message("specgen.baseline.json")


def test_refused_states_are_never_recorded():
    stale = {"code": "stale-generated", "path": "g.py", "line": None, "message": "out of date"}
    data = _data({"a": False}, [stale])
    assert B.refused(data) == [stale] and not B.record(data, lambda c: True).problems
