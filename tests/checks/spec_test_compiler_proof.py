"""Checks for the spec-test-compiler capability's proof and fail-closed requirements: `specgen proof`
on the fixture tests/fixtures/proof-basic (a strong on-path check, an off-path one, an assertion-free-in-effect
one and, planted, one that runs no product code), and gates whose scope holds nothing."""

from __future__ import annotations

import json
import re

from specgen import check
from tests.checks import proof_harness as H
from tests.specgen import cli_project as P

CAP = "spec-test-compiler"
REQ = "Proof Of Reach And Strength"


def _named(gate_stderr: str) -> set[str]:
    return set(re.findall(r": not proven: calc / (\w+):", gate_stderr))


@check(CAP, REQ, "Off-path, no-reach and weak checks fail the proof gate")
def check_proof_gate_names_the_unproven():
    run = H.proven()
    assert run.gate.returncode == 1, P.output(run.gate)
    assert _named(run.gate.stderr) == {"Totals", "Scaling", "Probe"}, run.gate.stderr
    lines = {
        name: next(ln for ln in run.gate.stderr.splitlines() if f"calc / {name}:" in ln)
        for name in _named(run.gate.stderr)
    }
    assert "off-path (calc/__init__.py:15 legacy_total)" in lines["Totals"], lines
    assert "no-reach" in lines["Probe"], lines
    assert "< min_strength 0.5" in lines["Scaling"], lines
    assert "4/4 requirements verified" in run.gate.stdout, run.gate.stdout  # every check passes: presence is not proof


@check(CAP, REQ, "The report carries reach and strength")
def check_report_carries_reach_and_strength():
    run = H.proven()
    reach = {s["id"].split("/")[1]: s["reach"] for r in run.report()["requirements"] for s in r["scenarios"]}
    assert {k: v["status"] for k, v in reach.items()} == {
        "addition": "on-path",
        "totals": "off-path",
        "scaling": "on-path",
        "probe": "no-reach",
    }, reach
    assert reach["totals"]["off_path"] == ["calc/__init__.py:15 legacy_total"], reach
    strong, weak = run.requirement("Addition")["strength"], run.requirement("Scaling")["strength"]
    for st in (strong, weak):
        assert {"killed", "survived", "timeout", "total"} <= set(st) and st["status"] == "current", st
        assert st["killed"] + st["survived"] + st["timeout"] == st["total"] > 0, st
    assert strong["survived"] == 0 and strong["killed"] == strong["total"], strong
    assert weak["killed"] == 0 and weak["survived"] == weak["total"], weak
    assert all(
        re.fullmatch(r"calc/__init__\.py:1[01]", m["where"]) and " -> " in m["mutation"] for m in weak["survivors"]
    )
    md = (run.root / "build" / "specgen" / "report.md").read_text(encoding="utf-8")
    html = (run.root / "build" / "specgen" / "report.html").read_text(encoding="utf-8")
    assert "### Proof (gating)" in md and "survived</summary>" in md, md
    assert 'id="reach"' in html and "ReplaceBinaryOperator_Mul_Add" in html


@check(CAP, REQ, "Proof results go stale when the code changes")
def check_proof_goes_stale(tmp_path):
    run = H.pipeline(H.make(tmp_path / "proj", probe=False), mutants=3)
    assert _named(run.gate.stderr) == {"Totals", "Scaling"}, P.output(run.gate)
    product = tmp_path / "proj" / "calc" / "__init__.py"
    product.write_text(product.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    gate = H.specgen(tmp_path / "proj", "report", "--gate")
    assert gate.returncode == 1, P.output(gate)
    report = run.report()
    statuses = {s["reach"]["status"] for r in report["requirements"] for s in r["scenarios"]}
    assert statuses == {"stale"} and {r["strength"]["status"] for r in report["requirements"]} == {"stale"}, report
    assert _named(gate.stderr) == {"Addition", "Totals", "Scaling"}, gate.stderr
    assert "reach stale: run `specgen proof`" in gate.stderr


@check(CAP, REQ, "Without the proof gate reach and strength are shown, not gating")
def check_proof_shown_not_gating(tmp_path):
    root = H.make(tmp_path / "proj", probe=False)
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    (root / "pyproject.toml").write_text(text.replace("gate = true\n", "").replace("min_strength = 0.5\n", ""), "utf-8")
    run = H.pipeline(root, mutants=3)
    assert run.gate.returncode == 0, P.output(run.gate)
    report = run.report()
    assert report["proof"]["gate"] is False and report["proof"]["reach"] == {"off-path": 1, "on-path": 2}, report
    assert "not proven" not in run.gate.stderr


WHY = "legacy_total is a library API no command runs"


@check(CAP, REQ, "A stated exception is shown and passes the reach gate")
def check_reach_exception(tmp_path):
    root = H.make(tmp_path / "proj", probe=False)
    checks = root / "tests" / "checks" / "calc.py"
    text = checks.read_text(encoding="utf-8").replace(
        "from specgen import check\n", "import pytest\n\nfrom specgen import check\n"
    )
    text = text.replace(
        '@check("calc", "Totals", "A list")\n',
        '@check("calc", "Totals", "A list")\n@pytest.mark.reach_exception("' + WHY + '")\n',
    )
    checks.write_text(text, encoding="utf-8")
    run = H.pipeline(root, mutants=3)
    totals = run.requirement("Totals")["scenarios"][0]["reach"]
    assert totals["status"] == "off-path" and totals["exception"] == WHY
    assert "A list: off-path" not in run.gate.stderr, run.gate.stderr
    assert _named(run.gate.stderr) == {"Totals", "Scaling"}, run.gate.stderr  # Totals: still no mutant to run


def _proof_json(root) -> dict:
    return json.loads((root / "build" / "specgen" / "proof.json").read_text(encoding="utf-8"))


def _measure(root, *args: str) -> dict:
    proc = H.specgen(root, "proof", *args)
    assert proc.returncode == 0, P.output(proc)
    return _proof_json(root)


def _edit(path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, path
    path.write_text(text.replace(old, new), encoding="utf-8")


@check(CAP, REQ, "One proof run serves the verdicts and reach")
def check_one_proof_run_serves_verdicts_and_reach(tmp_path):
    root = H.make(tmp_path / "proj", probe=False)
    pyproject = root / "pyproject.toml"  # reach alone gates here: no mutation run, so no min_strength
    pyproject.write_text(pyproject.read_text(encoding="utf-8").replace("min_strength = 0.5\n", ""), "utf-8")
    assert H.specgen(root, "generate").returncode == 0
    assert not (root / "build" / "specgen" / "results.json").exists()
    _measure(root)
    results = json.loads((root / "build" / "specgen" / "results.json").read_text(encoding="utf-8"))["results"]
    assert sorted(r["check"].split(":")[-1] for r in results) == ["check_scaled", "check_sum", "check_total"], results
    assert {r["outcome"] for r in results} == {"passed"}, results
    gate = H.specgen(root, "report", "--gate")
    assert gate.returncode == 1 and "3/3 requirements verified" in gate.stdout, P.output(gate)
    assert "missing-results" not in P.output(gate) and "not verified" not in gate.stderr, P.output(gate)
    assert _named(gate.stderr) == {"Totals"} and "A list: off-path" in gate.stderr, gate.stderr


@check(CAP, REQ, "An incremental reach run measures what a full run measures")
def check_incremental_reach_equals_full(tmp_path):
    root = H.make(tmp_path / "proj", probe=False)
    assert H.specgen(root, "generate").returncode == 0
    assert _measure(root)["reach_run"]["mode"] == "full"
    _edit(root / "calc" / "__init__.py", "    return a + b\n", "    return legacy_total([a, b])\n")
    first = _measure(root)
    first_full = _measure(root, "--full")
    assert first["scenarios"] == first_full["scenarios"], (first["scenarios"], first_full["scenarios"])
    assert first["scenarios"]["calc/totals/a-list"]["status"] == "on-path", first["scenarios"]
    assert first["reach_run"]["mode"] == "incremental" and first["reach_run"]["entrypoints"]["rerun"] == 1, first
    _edit(root / "openspec" / "specs" / "calc" / "spec.md", "- **WHEN** the list is", "- **WHEN** the given list is")
    assert H.specgen(root, "generate").returncode == 0
    second = _measure(root)
    second_full = _measure(root, "--full")
    assert second["scenarios"] == second_full["scenarios"], (second["scenarios"], second_full["scenarios"])
    assert second["reach_run"]["rerun"] == 1 and second["reach_run"]["kept"] == 2, second
    assert second["reach_run"]["entrypoints"] == {"rerun": 0, "kept": 1}, second


@check(CAP, REQ, "A budget-limited mutation run is breadth-first")
def check_budget_breadth_first(tmp_path):
    sequence = _proof_json(H.proven().root)["mutation"]["sequence"]  # the shared run: read, never rerun
    rounds = [int(s.rsplit("#", 1)[1]) for s in sequence]
    assert rounds == sorted(rounds) and rounds.count(0) >= 2, sequence  # every first mutant before any second
    first = [s.rsplit("#", 1)[0] for s in sequence if s.endswith("#0")]
    assert first == ["calc/addition", "calc/scaling"], sequence  # in spec order, one each
    assert any(s.startswith("calc/addition#1") for s in sequence), sequence
    root = H.make(tmp_path / "proj", probe=False)
    assert H.specgen(root, "generate").returncode == 0
    cut = _measure(root, "--mutants", "20", "--budget", "1e-9")
    mutation = cut["mutation"]
    reached = [k for k, v in cut["strength"].items() if v["sites"]]
    assert mutation["sequence"] == [] and mutation["not_run"] > 0, mutation
    assert sorted(mutation["requirements_not_reached"]) == sorted(reached) == ["calc/addition", "calc/scaling"]
    assert all(cut["strength"][k]["note"].startswith("not run: --budget") for k in reached), cut["strength"]
    H.specgen(root, "report")
    md = (root / "build" / "specgen" / "report.md").read_text(encoding="utf-8")
    assert "Mutation run cut by `--budget 1e-09`" in md, md


# ---------------------------------------------------------------- fail closed
SPEC = """# auth Specification

## Purpose
Authentication of users who sign in with a password and a second factor.

## {header}

### Requirement: Login
The system SHALL log users in.

#### Scenario: Good password
- **WHEN** a user gives the right password
- **THEN** the response status is `200`
"""


def _gated(tmp_path, header: str | None):
    root = P.make_project(tmp_path / "proj")
    (root / "openspec" / "specs").mkdir(parents=True)
    if header:
        (root / "openspec" / "specs" / "auth").mkdir()
        (root / "openspec" / "specs" / "auth" / "spec.md").write_text(SPEC.format(header=header), encoding="utf-8")
    return [H.specgen(root, "check"), H.specgen(root, "report", "--gate")]


@check(CAP, "The Gate Fails Closed", "An empty OpenSpec tree fails the gate")
def check_empty_tree_fails_closed(tmp_path):
    for proc in _gated(tmp_path, None):
        lines = [ln for ln in P.output(proc).splitlines() if "[empty-gate]" in ln]
        assert proc.returncode == 1 and len(lines) == 1, P.output(proc)
        assert lines[0].startswith("pyproject.toml: error: the gate holds 0 requirements"), lines


@check(CAP, "The Gate Fails Closed", "A main spec written as a delta fails the gate")
def check_delta_main_spec_fails_closed(tmp_path):
    for proc in _gated(tmp_path, "ADDED Requirements"):
        lines = [ln for ln in P.output(proc).splitlines() if "[invalid-spec]" in ln]
        assert proc.returncode == 1 and len(lines) == 1, P.output(proc)
        assert lines[0].startswith("openspec/specs/auth/spec.md:6: error: gated spec auth reads as 0 requirements")
        assert "`## Requirements`" in lines[0], lines


# ---------------------------------------------------------------- scenario shape
VAGUE = """
#### Scenario: Anything
- **WHEN** anything happens
- **THEN** it works correctly
"""


@check(CAP, "Scenario Shape Warnings", "A vague THEN and a check blind to its outcome are warned")
def check_shape_warnings(tmp_path):
    root = H.make(tmp_path / "proj", probe=False)
    spec = root / "openspec" / "specs" / "calc" / "spec.md"
    spec.write_text(spec.read_text(encoding="utf-8") + VAGUE, encoding="utf-8")
    checks = root / "tests" / "checks" / "calc.py"
    checks.write_text(
        checks.read_text(encoding="utf-8") + '\n\n@check("calc", "Scaling", "Anything")\ndef check_anything():\n'
        "    assert scale([1], 1) == [1]\n",
        encoding="utf-8",
    )
    assert H.specgen(root, "generate").returncode == 0
    run = H.specgen(root, "check")
    shape = [ln for ln in run.stdout.splitlines() if ln.endswith("[unverifiable-shape]")]
    misses = [ln for ln in run.stdout.splitlines() if ln.endswith("[check-misses-outcome]")]
    assert run.returncode == 1, P.output(run)
    assert len(shape) == 1 and "calc/scaling/anything" in shape[0] and ": error: " in shape[0], run.stdout
    assert len(misses) == 1 and "check_scaled names none of calc/scaling/scaled-list" in misses[0], run.stdout
    assert ": warning: " in misses[0] and "[3, 6]" in misses[0], misses
