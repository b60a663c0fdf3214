"""Checks for the spec-test-compiler capability: specgen compiling small projects in tmp_path."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from specgen import check
from specgen.compile.identity import fingerprint
from tests.helpers.specgen_harness import CHECKS, REPO, SPEC, Proj

CAP = "spec-test-compiler"
GEN = "generated/test_greeting.py"


@pytest.fixture
def proj(tmp_path):
    return Proj(tmp_path / "proj")


ADDED_DELTA = """## ADDED Requirements
### Requirement: Wave
The greeter SHALL wave.

#### Scenario: Wave hello
- **WHEN** the greeter waves
- **THEN** a hand is raised
"""


# ---------------------------------------------------------------- identity
@check(CAP, "Stable Scenario Identity", "Ids are derived from names")
def check_ids_from_names(proj):
    assert proj.specgen("generate").rc == 0
    assert 'id="greeting/greet-by-name/named-person"' in proj.read(GEN)


@check(CAP, "Stable Scenario Identity", "Colliding ids block only their scenarios")
def check_collision_blocks_only_its_scenarios(proj):
    proj.edit(
        SPEC,
        "#### Scenario: Goodbye\n",
        "#### Scenario: Goodbye\n- **WHEN** x\n- **THEN** y\n\n#### Scenario: Goodbye!\n",
    )
    run = proj.specgen("generate")
    assert run.rc == 1, run.text
    lines = proj.read(SPEC).splitlines()
    err = run.err.replace(str(proj.root) + "/", "")
    for heading in ("#### Scenario: Goodbye", "#### Scenario: Goodbye!"):
        assert re.search(rf"{SPEC}:{lines.index(heading) + 1}: error: .*collides", err), err
    assert "Traceback" not in run.text
    tests = proj.pytest("-rf")
    assert re.search(r"\b2 failed, 3 passed\b", tests.text), tests.text  # the named person runs twice
    assert tests.text.count("cannot be compiled: scenario id greeting/farewell/goodbye collides") == 2, tests.text
    proj.edit(
        SPEC, "#### Scenario: Goodbye!\n", "#### Scenario: Goodbye!\n<!-- specgen-id: greeting/farewell/bye -->\n"
    )
    run = proj.specgen("generate")
    assert run.rc == 0 and "collides" not in run.text, run.text


@check(CAP, "Stable Scenario Identity", "An anchor keeps the id across a rename")
def check_anchor_survives_rename(proj):
    proj.edit(
        SPEC, "#### Scenario: Goodbye\n", "#### Scenario: Goodbye\n<!-- specgen-id: greeting/farewell/goodbye -->\n"
    )
    proj.edit(CHECKS, '@check("greeting", "Farewell", "Goodbye")', '@check("greeting/farewell/goodbye")')
    assert proj.specgen("generate").rc == 0
    proj.edit(SPEC, "#### Scenario: Goodbye", "#### Scenario: Saying goodbye")
    assert proj.specgen("generate").rc == 0
    gen = proj.read(GEN)
    assert 'id="greeting/farewell/goodbye"' in gen and 'scenario="Saying goodbye"' in gen
    assert "checks.greeting:check_goodbye" in gen
    assert "saying_goodbye" not in gen  # the test name follows the id, not the new name


@check(CAP, "Stable Scenario Identity", "A renamed requirement keeps its ids in a change")
def check_rename_keeps_ids(proj):
    proj.add_change(
        "rename-farewell",
        "## RENAMED Requirements\n- FROM: `### Requirement: Farewell`\n- TO: `### Requirement: Parting words`\n",
    )
    assert proj.specgen("generate").rc == 0
    gen = proj.read("generated/changes/test_rename_farewell__greeting.py")
    assert 'requirement="Parting words"' in gen and 'id="greeting/farewell/goodbye"' in gen
    assert "parting" not in "".join(re.findall(r'id="([^"]+)"', gen))


@check(CAP, "Stable Scenario Identity", "Fingerprints ignore whitespace only")
def check_fingerprint_whitespace(proj):
    a = fingerprint("Goodbye", '- **WHEN** the greeter says goodbye\n- **THEN** it returns "Bye."')
    b = fingerprint("Goodbye", '- **WHEN**   the greeter says goodbye  \n\n- **THEN** it returns "Bye."\n')
    c = fingerprint("Goodbye", '- **WHEN** the greeter says farewell\n- **THEN** it returns "Bye."')
    assert a == b and a != c
    assert proj.specgen("generate").rc == 0
    before = re.findall(r'spec_fingerprint="(\w+)"', proj.read(GEN))
    proj.edit(SPEC, "- **WHEN** the greeter says goodbye", "- **WHEN**  the greeter   says goodbye ")
    assert proj.specgen("generate").rc == 0
    assert re.findall(r'spec_fingerprint="(\w+)"', proj.read(GEN)) == before


# ---------------------------------------------------------------- registry
@check(CAP, "Check Registry", "Checks bind by names and by id")
def check_bind_by_names_and_id(proj):
    src = proj.read(CHECKS)
    assert '@check("greeting", "Greet by name", "Named person")' in src
    assert '@check("greeting/greet-by-name/empty-name")' in src
    assert proj.specgen("generate").rc == 0
    run = proj.specgen("check")
    assert run.rc == 0, run.text
    gen = proj.read(GEN)
    assert "_checks_0.check_named" in gen and "_checks_0.check_empty" in gen


@check(CAP, "Check Registry", "Several checks on one scenario must all pass")
def check_several_checks_all_must_pass(proj):
    proj.write(
        CHECKS,
        proj.read(CHECKS) + '\n\n@check("greeting", "Farewell", "Goodbye")\n'
        'def check_goodbye_again():\n    assert "Bye." == "Bye!"\n',
    )
    _, tests, gate = proj.pipeline()
    assert tests.rc == 1 and gate.rc == 1
    scn = proj.scenario("greeting/farewell/goodbye")
    assert scn["verdict"] == "failing"
    assert sorted(c["verdict"] for c in scn["checks"]) == ["failing", "verified"]


@check(CAP, "Check Registry", "Checks use fixtures and parametrize")
def check_fixtures_and_parametrize(proj):
    _, tests, gate = proj.pipeline()
    assert tests.rc == 0, tests.text
    assert "4 passed" in tests.out  # named person x2 (parametrize), empty name, goodbye (tmp_path)
    assert gate.rc == 0, gate.text
    assert proj.scenario("greeting/greet-by-name/named-person")["checks"][0]["outcomes"] == {"passed": 2}


@check(CAP, "Check Registry", "A check bound to nothing is an error")
def check_bound_to_nothing(proj):
    proj.write(
        CHECKS, proj.read(CHECKS) + '\n\n@check("greeting", "Farewell", "Good night")\ndef check_typo():\n    pass\n'
    )
    run = proj.specgen("check")
    assert run.rc == 1
    line = proj.read(CHECKS).splitlines().index('@check("greeting", "Farewell", "Good night")') + 1
    assert re.search(rf"^checks/greeting.py:{line}: error: check_typo is bound to nothing", run.out, re.M), run.out


@check(CAP, "Check Registry", "A duplicate binding is an error")
def check_duplicate_binding(proj):
    proj.edit(
        CHECKS,
        '@check("greeting", "Farewell", "Goodbye")\n',
        '@check("greeting", "Farewell", "Goodbye")\n@check("greeting/farewell/goodbye")\n',
    )
    assert proj.specgen("generate").rc == 1
    run = proj.specgen("check")
    assert run.rc == 1 and "[duplicate-binding]" in run.out, run.out


@check(CAP, "Check Registry", "Checks may bind scenarios of an active change")
def check_binding_to_change(proj):
    proj.add_change("add-wave", ADDED_DELTA)
    proj.write(
        CHECKS,
        proj.read(CHECKS) + '\n\n@check("greeting", "Wave", "Wave hello")\ndef check_wave():\n    assert "hand"\n',
    )
    assert proj.specgen("generate").rc == 0
    run = proj.specgen("check")
    assert run.rc == 0 and "bound to nothing" not in run.out, run.out
    assert "checks.greeting:check_wave" in proj.read("generated/changes/test_add_wave__greeting.py")
    assert "check_wave" not in proj.read(GEN)


# ---------------------------------------------------------------- generation
@check(CAP, "Test Generation", "A test per binding documents its scenario")
def check_test_per_binding(proj):
    assert proj.specgen("generate").rc == 0
    gen = proj.read(GEN)
    assert re.findall(r"^def (test_\w+)", gen, re.M) == [
        "test_greet_by_name__named_person",
        "test_greet_by_name__empty_name",
        "test_farewell__goodbye",
    ]
    doc = gen.split("def test_farewell__goodbye():", 1)[1]
    assert 'WHEN the greeter says goodbye\n    THEN it returns "Bye."' in doc
    assert "spec_fingerprint=" in gen and "@pytest.mark.specgen(" in gen


@check(CAP, "Test Generation", "Generation is deterministic and leaves unchanged files alone")
def check_deterministic(proj, tmp_path):
    assert proj.specgen("generate").rc == 0
    first = (proj.root / GEN).read_bytes()
    stamp = (proj.root / GEN).stat().st_mtime_ns
    again = proj.specgen("generate")
    assert again.rc == 0 and "0 written" in again.out
    assert (proj.root / GEN).stat().st_mtime_ns == stamp and (proj.root / GEN).read_bytes() == first
    proj.write(SPEC, proj.read(SPEC))  # same text, new mtime: the full comparison runs, not the stamp
    again = proj.specgen("generate")
    assert again.rc == 0 and "0 written" in again.out
    assert (proj.root / GEN).stat().st_mtime_ns == stamp
    other = Proj(tmp_path / "other")  # same inputs elsewhere: same bytes
    assert other.specgen("generate").rc == 0
    assert (other.root / GEN).read_bytes() == first


@check(CAP, "Test Generation", "Drift is reported without writing")
def check_drift_check(proj):
    assert proj.specgen("generate").rc == 0
    before = proj.read(GEN)
    proj.edit(SPEC, 'it returns "Bye."', 'it returns "Goodbye."')
    run = proj.specgen("generate", "--check")
    assert run.rc == 1
    assert "--- a/generated/test_greeting.py" in run.out and '+    THEN it returns "Goodbye."' in run.out
    assert proj.read(GEN) == before
    assert proj.specgen("generate").rc == 0 and proj.specgen("generate", "--check").rc == 0


@check(CAP, "Test Generation", "Files of removed capabilities are deleted")
def check_removed_capability(proj):
    proj.write(
        "openspec/specs/extra/spec.md",
        "# extra Specification\n\n## Purpose\nExtra.\n\n## Requirements\n"
        "### Requirement: Extra\nIt SHALL exist.\n\n#### Scenario: Exists\n- **WHEN** x\n- **THEN** y\n",
    )
    assert proj.specgen("generate").rc == 0
    assert (proj.root / "generated/test_extra.py").is_file()
    (proj.root / "openspec/specs/extra/spec.md").unlink()
    (proj.root / "openspec/specs/extra").rmdir()
    run = proj.specgen("generate")
    assert run.rc == 0 and "1 deleted" in run.out
    assert not (proj.root / "generated/test_extra.py").exists() and (proj.root / GEN).is_file()


@check(CAP, "Test Generation", "A scenario without a check gets a failing test")
def check_unbound_gets_failing_test(proj):
    proj.edit(CHECKS, '@check("greeting", "Farewell", "Goodbye")\n', "")
    assert proj.specgen("generate").rc == 0
    tests = proj.pytest()
    assert tests.rc == 1 and "1 failed" in tests.out
    assert "scenario greeting/farewell/goodbye has no check" in tests.out
    assert '@check("greeting", "Farewell", "Goodbye")\ndef check_goodbye():' in tests.out


@check(CAP, "Test Generation", "A change compiles apart from the specs")
def check_change_compiles_apart(proj):
    proj.add_change("add-wave", ADDED_DELTA)
    run = proj.specgen("generate", "--change", "add-wave")
    assert run.rc == 0, run.text
    assert (proj.root / "generated/changes/test_add_wave__greeting.py").is_file()
    assert not (proj.root / GEN).exists()  # --change writes only that change's files
    assert proj.specgen("generate").rc == 0
    _, tests, gate = proj.pipeline()
    assert tests.rc == 1  # the change's unbound scenario fails its own test...
    assert gate.rc == 0, gate.text  # ...but the gate over openspec/specs passes
    change = proj.report()["changes"][0]
    assert change["id"] == "add-wave" and change["summary"]["requirements_verified"] == 0


# ---------------------------------------------------------------- static gate
@check(CAP, "Static Gate", "An uncovered requirement fails the gate")
def check_uncovered_requirement(proj):
    proj.edit(CHECKS, '@check("greeting", "Farewell", "Goodbye")\n', "")
    assert proj.specgen("generate").rc == 0
    run = proj.specgen("check")
    assert run.rc == 1
    line = proj.read(SPEC).splitlines().index("### Requirement: Farewell") + 1
    assert re.search(rf"^{SPEC}:{line}: error: requirement \"Farewell\".*\[uncovered-requirement\]", run.out, re.M)
    assert proj.specgen("check").rc == 1


@check(CAP, "Static Gate", "GitHub annotations point at spec lines")
def check_github_annotations(proj):
    proj.edit(CHECKS, '@check("greeting/greet-by-name/empty-name")\n', "")
    assert proj.specgen("generate").rc == 0
    run = proj.specgen("check", "--format", "github")
    assert run.rc == 1
    line = proj.read(SPEC).splitlines().index("#### Scenario: Empty name") + 1
    assert f"::error file={SPEC},line={line},title=specgen unbound-scenario::" in run.out, run.out


@check(CAP, "Static Gate", "JSON output is machine-readable")
def check_json_output(proj):
    assert proj.specgen("generate").rc == 0
    run = proj.specgen("check", "--format", "json")
    data = json.loads(run.out)
    assert run.rc == 0 and data["ok"] is True and data["issues"] == []
    assert data["summary"]["scenarios"] == 3 and data["summary"]["bindings"] == 3
    proj.edit(CHECKS, '@check("greeting/greet-by-name/empty-name")\n', "")
    data = json.loads(proj.specgen("check", "--format", "json").out)
    assert data["ok"] is False and {"unbound-scenario", "stale-generated"} <= {i["code"] for i in data["issues"]}


@check(CAP, "Static Gate", "Bad input exits 2 without a traceback")
def check_bad_input(proj):
    proj.edit("pyproject.toml", 'output = "generated"', 'output = "generated"\nouptut = "x"')
    for cmd in (("check",), ("generate",), ("report", "--gate")):
        run = proj.specgen(*cmd)
        assert run.rc == 2 and "tool.specgen.ouptut: unknown key" in run.err, run.text
        assert "Traceback" not in run.text and len(run.err.strip().splitlines()) == 1
    assert proj.specgen("stub", "greeting/no/such").rc == 2


@check(CAP, "Static Gate", "Active changes are gated only when asked")
def check_changes_gated_on_request(proj):
    proj.add_change("add-wave", ADDED_DELTA)
    assert proj.specgen("generate").rc == 0
    run = proj.specgen("check")
    assert run.rc == 0, run.text
    assert "change add-wave: 0/1 scenarios" in run.out
    gated = proj.specgen("check", "--change", "add-wave")
    assert gated.rc == 1 and "greeting/wave/wave-hello has no check (change add-wave)" in gated.out


# ---------------------------------------------------------------- suspect links
@check(CAP, "Suspect Links", "An edited scenario makes its binding suspect")
def check_edited_scenario_suspect(proj):
    assert proj.specgen("generate").rc == 0
    proj.edit(SPEC, "- **WHEN** the greeter says goodbye", "- **WHEN** the greeter says goodbye twice")
    assert proj.specgen("generate").rc == 0
    run = proj.specgen("check")
    assert run.rc == 1 and "the scenario text changed" in run.out and "[suspect-binding]" in run.out
    review = proj.specgen("review", "greeting/farewell/goodbye")
    assert review.rc == 0 and "1 binding(s) stamped" in review.out
    assert proj.specgen("check").rc == 0


@check(CAP, "Suspect Links", "An edited check makes its binding suspect")
def check_edited_check_suspect(proj):
    assert proj.specgen("generate").rc == 0
    # Layout and comments are not a change of meaning: the review stays valid.
    proj.edit(
        CHECKS,
        '(tmp_path / "out.txt").write_text("Bye.")',
        '(tmp_path / "out.txt").write_text(  # reworded later\n        "Bye."\n    )',
    )
    assert proj.specgen("check").rc == 0
    proj.edit(CHECKS, '"Bye."\n', '"Bye!"\n')
    run = proj.specgen("check")
    assert run.rc == 1 and "the check's source changed" in run.out and "check_goodbye" in run.out
    assert "scenario text changed" not in run.out
    assert proj.specgen("review", "--all").rc == 0 and proj.specgen("check").rc == 0


@check(CAP, "Suspect Links", "The lock is sorted and diff-friendly")
def check_lock_format(proj):
    assert proj.specgen("generate").rc == 0
    lines = [ln for ln in proj.read("specgen.lock").splitlines() if not ln.startswith("#")]
    assert lines == sorted(lines) and len(lines) == 3
    for line in lines:
        view, sid, chk, sfp, cfp = line.split(" ")
        assert view == "specs" and sid.startswith("greeting/") and chk.startswith("checks.greeting:check_")
        assert re.fullmatch(r"[0-9a-f]{16}", sfp) and re.fullmatch(r"[0-9a-f]{16}", cfp)


# ---------------------------------------------------------------- stubs
@check(CAP, "Check Stubs", "A stub is printed")
def check_stub_printed(proj):
    run = proj.specgen("stub", "greeting/farewell/goodbye")
    assert run.rc == 0
    assert run.out.startswith('@check("greeting", "Farewell", "Goodbye")\ndef check_goodbye():\n')
    assert "    # WHEN the greeter says goodbye\n" in run.out and '    # THEN it returns "Bye."\n' in run.out
    assert "raise NotImplementedError" in run.out
    compile(run.out, "stub", "exec")


@check(CAP, "Check Stubs", "A stub is written to the capability's module")
def check_stub_written(proj):
    proj.write(SPEC, proj.read(SPEC) + "\n#### Scenario: Wave\n- **WHEN** leaving\n- **THEN** the greeter waves\n")
    run = proj.specgen("stub", "greeting/farewell/wave", "--write")
    assert run.rc == 0 and "checks/greeting.py" in run.out, run.text
    assert '@check("greeting", "Farewell", "Wave")\ndef check_wave():' in proj.read(CHECKS)
    assert proj.specgen("generate").rc == 0
    tests = proj.pytest("-k", "wave")
    assert tests.rc == 1 and "NotImplementedError" in tests.out


# ---------------------------------------------------------------- manual
MANUAL_CHECK = (
    '\n\n@check("greeting", "Farewell", "Goodbye", manual="manual/goodbye.md")\ndef check_goodbye_on_gpu():\n    ...\n'
)


def _manual_project(proj):
    proj.edit(CHECKS, '@check("greeting", "Farewell", "Goodbye")\ndef check_goodbye', "def helper_goodbye")
    proj.write(CHECKS, proj.read(CHECKS) + MANUAL_CHECK)
    proj.write("manual/goodbye.md", "# Goodbye on a GPU\n1. Run it.\n2. Record evidence.\n")
    assert proj.specgen("generate").rc == 0
    sfp = re.search(r'id="greeting/farewell/goodbye",\n.*\n.*\n    spec_fingerprint="(\w+)"', proj.read(GEN)).group(1)
    proj.write(
        "manual/evidence/goodbye-1.yaml",
        f"scenario: greeting/farewell/goodbye\nfingerprint: {sfp}\n"
        "result: pass\nwho: Ada\nwhen: 2025-01-31T12:00:00Z\ncommit: abc1234\nnotes: on an H100\n",
    )


@check(CAP, "Manual Checks", "Fresh evidence counts as manual")
def check_manual_fresh(proj):
    _manual_project(proj)
    _, tests, gate = proj.pipeline()
    assert gate.rc == 0, gate.text
    assert proj.scenario("greeting/farewell/goodbye")["verdict"] == "manual"
    farewell = proj.requirement("Farewell")
    assert farewell["verified"] is True and proj.report()["summary"]["verdicts"]["manual"] == 1


@check(CAP, "Manual Checks", "Evidence for older text is stale")
def check_manual_stale(proj):
    _manual_project(proj)
    proj.edit(SPEC, '- **THEN** it returns "Bye."', '- **THEN** it returns "Bye!"')
    _, _, gate = proj.pipeline()
    assert gate.rc == 1
    assert proj.scenario("greeting/farewell/goodbye")["verdict"] == "stale"
    assert "Farewell [stale]" in gate.err


@check(CAP, "Manual Checks", "Only automated results count with --no-manual")
def check_no_manual(proj):
    _manual_project(proj)
    proj.pipeline()
    run = proj.specgen("report", "--gate", "--no-manual")
    assert run.rc == 1 and "Farewell [manual]" in run.err, run.text
    assert proj.requirement("Farewell")["verified"] is False and proj.report()["manual_counted"] is False


# ---------------------------------------------------------------- plugin
@check(CAP, "Pytest Plugin", "JUnit XML carries the spec properties")
def check_junit_properties(proj):
    proj.pipeline()
    cases = ET.parse(proj.root / "build/specgen/junit.xml").getroot().iter("testcase")
    props = [{p.get("name"): p.get("value") for p in case.iter("property")} for case in cases]
    assert len(props) == 4
    for p in props:
        assert {"requirement", "scenario_id", "spec_fingerprint"} <= set(p)
        assert p["scenario_id"].startswith("greeting/") and re.fullmatch(r"[0-9a-f]{16}", p["spec_fingerprint"])


@check(CAP, "Pytest Plugin", "Outcomes are aggregated under xdist")
def check_xdist(proj):
    proj.edit(CHECKS, 'assert greeter("") == "Hello, stranger!"', 'assert greeter("") == "Hi"')
    assert proj.specgen("generate").rc == 0
    tests = proj.pytest("-n", "2")
    assert "bringing up nodes" in tests.text, tests.text  # xdist ran it
    results = json.loads(proj.read("build/specgen/results.json"))["results"]
    assert len(results) == 4
    outcome = {r["nodeid"].split("::")[1]: r["outcome"] for r in results}
    assert outcome["test_greet_by_name__empty_name"] == "failed"
    assert outcome["test_greet_by_name__named_person[Ada]"] == "passed"


# ---------------------------------------------------------------- report
@check(CAP, "Traceability Report", "The report files are written")
def check_report_files(proj):
    _, _, gate = proj.pipeline()
    assert gate.rc == 0 and "specgen: 2/2 requirements verified" in gate.out, gate.text
    data = proj.report()
    assert data["summary"]["requirements_total"] == 2 and data["summary"]["verdicts"]["verified"] == 2
    req = data["requirements"][0]
    assert {"capability", "name", "verdict", "scenarios"} <= set(req)
    assert {"id", "name", "verdict", "checks"} <= set(req["scenarios"][0])
    assert proj.read("build/specgen/report.md").startswith("## specgen: 2/2 requirements verified")
    html = proj.read("build/specgen/report.html")
    # Rows travel once as JSON (the page renders them): the ids and the spec text are in it, the anchor is not.
    assert "greeting/greet-by-name/named-person" in html and "**WHEN** the greeter" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # self-contained: nothing external
    assert (proj.root / "build/specgen/junit.xml").is_file()


@check(CAP, "Traceability Report", "A skip never counts")
def check_skip_never_counts(proj):
    proj.edit(CHECKS, "def check_goodbye(tmp_path):\n", "def check_goodbye(tmp_path):\n    pytest.skip('later')\n")
    proj.specgen("review", "--all")
    _, tests, gate = proj.pipeline()
    assert tests.rc == 0  # pytest itself is green...
    assert gate.rc == 1  # ...the gate is not
    assert proj.scenario("greeting/farewell/goodbye")["verdict"] == "skipped"
    assert "Farewell [skipped]" in gate.err


# ---------------------------------------------------------------- pipeline
NEW_SCENARIO = (
    "\n#### Scenario: Goodbye in French\n- **WHEN** the greeter says goodbye in French\n"
    '- **THEN** it returns "Au revoir."\n'
)


@check(CAP, "Spec Test Pipeline", "A new scenario fails until its check is added")
def check_new_scenario(proj):
    proj.write(SPEC, proj.read(SPEC) + NEW_SCENARIO)
    _, tests, gate = proj.pipeline()
    assert gate.rc == 1 and tests.rc == 1
    assert "scenario greeting/farewell/goodbye-in-french has no check" in tests.out
    assert '@check("greeting", "Farewell", "Goodbye in French")' in tests.out
    assert "Farewell [missing]" in gate.err
    proj.write(
        CHECKS,
        proj.read(CHECKS) + '\n\n@check("greeting", "Farewell", "Goodbye in French")\n'
        'def check_goodbye_in_french():\n    assert "Au revoir." == "Au revoir."\n',
    )
    _, tests, gate = proj.pipeline()
    assert tests.rc == 0 and gate.rc == 1 and "specgen review greeting/farewell/goodbye-in-french" in gate.text
    assert proj.specgen("review", "greeting/farewell/goodbye-in-french").rc == 0
    assert proj.specgen("report", "--gate").rc == 0


@check(CAP, "Spec Test Pipeline", "An edited THEN line is suspect until reviewed")
def check_edited_then_line(proj):
    assert proj.pipeline()[2].rc == 0
    proj.edit(SPEC, '- **THEN** it returns "Bye."', '- **THEN** it returns "Bye." and waves')
    _, tests, gate = proj.pipeline()
    assert tests.rc == 0 and gate.rc == 1
    assert proj.scenario("greeting/farewell/goodbye")["verdict"] == "suspect"
    assert "Farewell [suspect]" in gate.err
    assert proj.specgen("review", "greeting/farewell/goodbye").rc == 0
    assert proj.specgen("report", "--gate").rc == 0


@check(CAP, "Spec Test Pipeline", "A deleted check leaves its requirement uncovered")
def check_deleted_check(proj):
    assert proj.pipeline()[2].rc == 0
    proj.edit(CHECKS, '@check("greeting", "Farewell", "Goodbye")\n', "")
    proj.edit(CHECKS, "def check_goodbye(", "def helper_goodbye(")
    _, _, gate = proj.pipeline()
    assert gate.rc == 1 and "Farewell [missing]" in gate.err
    assert proj.requirement("Farewell")["verdict"] == "missing"
    assert proj.specgen("check").rc == 1


@check(CAP, "Spec Test Pipeline", "A broken check is failing")
def check_broken_check(proj):
    proj.edit(CHECKS, 'assert greeter("") == "Hello, stranger!"', 'assert greeter("") == "Hello, nobody!"')
    _, tests, gate = proj.pipeline()
    assert tests.rc == 1 and gate.rc == 1
    assert proj.scenario("greeting/greet-by-name/empty-name")["verdict"] == "failing"
    assert "Greet by name [failing]" in gate.err and "Hello, nobody!" in gate.err


# ---------------------------------------------------------------- per-item degradation
def _counts(run) -> dict[str, int]:
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|error|errors|skipped|deselected)\b", run.text)}


@check(CAP, "Per-Item Degradation", "A misspelt binding fails only its scenario")
def check_misspelt_binding(proj):
    proj.edit(CHECKS, '@check("greeting", "Farewell", "Goodbye")', '@check("greeting", "Farewell", "Godbye")')
    run = proj.specgen("generate")
    assert run.rc == 1, run.text
    line = proj.read(CHECKS).splitlines().index('@check("greeting", "Farewell", "Godbye")') + 1
    assert re.search(rf"{CHECKS}:{line}: error: check_goodbye is bound to nothing", run.err), run.err
    tests = proj.pytest("-rf")
    assert _counts(tests) == {"failed": 1, "passed": 3}, tests.text
    failed = [ln for ln in tests.text.splitlines() if ln.startswith("FAILED")]
    assert len(failed) == 1, failed
    assert failed[0].startswith("FAILED generated/test_greeting.py::test_farewell__goodbye "), failed
    assert f'check_goodbye (greeting.py:{line}) is bound to greeting / "Farewell" / "Godbye"' in tests.text


@check(CAP, "Per-Item Degradation", "An unreadable check module is named and the rest compiles")
def check_unreadable_check_module(proj):
    (proj.root / "checks" / "latin1.py").write_bytes(b'"""caf\xe9"""\nfrom specgen import check\n')
    run = proj.specgen("generate")
    assert run.rc == 1 and "checks/latin1.py" in run.err and "UTF-8" in run.err, run.text
    check_run = proj.specgen("check")
    assert check_run.rc == 1 and "checks/latin1.py" in check_run.out, check_run.text
    tests = proj.pytest()
    assert tests.rc == 0 and _counts(tests) == {"passed": 4}, tests.text


@check(CAP, "Per-Item Degradation", "A check module that fails to import fails only its checks")
def check_failing_import(proj):
    proj.write(
        "checks/extra.py",
        'from specgen import check\n\nraise RuntimeError("no GPU here")\n\n\n'
        '@check("greeting", "Farewell", "Goodbye")\ndef check_goodbye_again():\n    assert True\n',
    )
    assert proj.specgen("generate").rc == 0
    tests = proj.pytest("-rf")
    assert _counts(tests) == {"failed": 1, "passed": 4}, tests.text
    failed = [ln for ln in tests.text.splitlines() if ln.startswith("FAILED")]
    assert failed == ["FAILED generated/test_greeting.py::test_farewell__goodbye__check_goodbye_again"], failed
    assert (
        "check module checks.extra failed to import, so check_goodbye_again cannot run: RuntimeError: no GPU here"
        in tests.text
    ), tests.text


# ---------------------------------------------------------------- imports and markers
@check(CAP, "Check Imports", "A checks folder without __init__.py is scanned and imported")
def check_namespace_checks_folder(proj):
    (proj.root / "checks" / "__init__.py").unlink()
    proj.edit("pyproject.toml", 'pythonpath = ["."]\n', "")
    assert json.loads(proj.specgen("check", "--format", "json").out)["summary"]["bindings"] == 3
    assert proj.specgen("generate").rc == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    # -P: the current folder is not put on sys.path, as with the `pytest` script
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "generated", "-q", "-p", "no:cacheprovider"],
        cwd=proj.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and re.search(r"\b4 passed\b", proc.stdout), proc.stdout[-2000:] + proc.stderr[-2000:]


MARKED = """import pytest

from specgen import check

pytestmark = pytest.mark.greeting


@check("greeting", "Greet by name", "Named person")
@pytest.mark.smoke
def check_named():
    assert True


@check("greeting/greet-by-name/empty-name")
def check_empty():
    assert True


@check("greeting", "Farewell", "Goodbye")
@pytest.mark.skip(reason="not today")
def check_goodbye():
    assert True
"""


@check(CAP, "Markers Reach Generated Tests", "A -m selection picks the same checks")
def check_marks_select(proj):
    proj.write(CHECKS, MARKED)
    assert proj.specgen("generate").rc == 0
    smoke = proj.pytest("-m", "smoke", "-rA")
    assert _counts(smoke) == {"passed": 1, "deselected": 2}, smoke.text
    assert "PASSED generated/test_greeting.py::test_greet_by_name__named_person" in smoke.text, smoke.text
    module = proj.pytest("-m", "greeting")
    assert _counts(module) == {"passed": 2, "skipped": 1}, module.text
    assert _counts(proj.pytest("-m", "not greeting")) == {"deselected": 3}


@check(CAP, "Markers Reach Generated Tests", "A skip mark never counts as verified")
def check_skip_is_not_verified(proj):
    proj.write(CHECKS, MARKED)
    gen, tests, gate = (proj.specgen("generate"), proj.pytest(), proj.specgen("report", "--gate"))
    assert gen.rc == 0 and _counts(tests) == {"passed": 2, "skipped": 1}, tests.text
    scenario = proj.scenario("greeting/farewell/goodbye")
    assert scenario["verdict"] == "skipped" and not scenario["verified"], scenario
    assert gate.rc == 1 and proj.requirement("Greet by name")["verified"]


# ---------------------------------------------------------------- several roots
MONOREPO = REPO / "tests" / "fixtures" / "monorepo"


@pytest.fixture
def mono(tmp_path):
    return Proj(tmp_path / "mono", MONOREPO)


@check(CAP, "Several OpenSpec Roots", "A two-root monorepo compiles, runs and reports in one run")
def check_two_roots_in_one_run(mono):
    gen, tests, gate = mono.pipeline()
    assert tests.rc == 0 and _counts(tests) == {"passed": 3}, tests.text
    assert gate.rc == 0, gate.text
    for name, ids in (
        ("alpha", ["alpha:greet/greet-by-name/named-person"]),
        ("beta", ["beta:greet/greet-by-name/named-person", "beta:greet/farewell/goodbye"]),
    ):
        assert f"== root {name} (packages/{name}/openspec)" in gen.out
        assert f'id="{ids[0]}"' in mono.read(f"generated/{name}/test_{name}__greet.py")
        assert all(f"{i} " in mono.read(f"specgen.{name}.lock") for i in ids)
        section = json.loads(mono.read(f"build/specgen/{name}/report.json"))
        assert [s["id"] for r in section["requirements"] for s in r["scenarios"]] == ids
        assert all(r["verified"] for r in section["requirements"])
    total = json.loads(mono.read("build/specgen/report.json"))
    assert [r["root"] for r in total["roots"]] == ["alpha", "beta"]
    assert total["total"] == {
        "requirements_total": 3,
        "requirements_verified": 3,
        "scenarios_total": 3,
        "scenarios_verified": 3,
    }
    assert "total over 2 roots: 3/3 requirements verified" in gate.out


@check(CAP, "Several OpenSpec Roots", "One root at a time")
def check_only_one_root(mono):
    assert mono.specgen("generate").rc == 0
    mono.write(
        "packages/alpha/openspec/specs/greet/spec.md",
        mono.read("packages/alpha/openspec/specs/greet/spec.md")
        + "\n#### Scenario: Empty name\n- **WHEN** the alpha greeter is given no name\n"
        "- **THEN** it greets a stranger\n",
    )
    alpha = mono.specgen("check", "--only", "alpha")
    assert alpha.rc == 1 and "== root beta" not in alpha.out, alpha.text
    assert "scenario alpha:greet/greet-by-name/empty-name has no check" in alpha.out, alpha.text
    beta = mono.specgen("check", "--only", "packages/beta/openspec")
    assert beta.rc == 0 and "== root alpha" not in beta.out, beta.text
    unknown = mono.specgen("check", "--only", "gamma")
    assert unknown.rc == 2 and "--only gamma: no such root" in unknown.err, unknown.text


@check(CAP, "Several OpenSpec Roots", "A single root keeps its ids")
def check_single_root_keeps_ids(proj, tmp_path):
    assert proj.specgen("generate").rc == 0
    before = {rel: proj.read(rel) for rel in (GEN, "specgen.lock")}
    proj.edit("pyproject.toml", 'specs = "openspec"\n', 'roots = ["open*"]\n')
    (proj.root / "specgen.lock").unlink()
    (proj.root / GEN).unlink()
    assert proj.specgen("generate").rc == 0
    assert {rel: proj.read(rel) for rel in before} == before
    assert proj.specgen("check").rc == 0


# ---------------------------------------------------------------- adoption and CI
def _files(proj) -> dict:
    return {p: p.read_bytes() for p in proj.root.rglob("*") if p.is_file() and "build" not in p.parts}


def _unbind_all(proj) -> None:
    proj.write(CHECKS, '"""No checks yet."""\n')


def _gate_lines(run) -> list[str]:
    return [ln for ln in run.err.splitlines() if ": not verified: " in ln]


GAP_REQUIREMENT = (
    "\n### Requirement: Wave\nThe greeter SHALL wave.\n\n#### Scenario: Wave hello\n"
    "- **WHEN** the greeter waves\n- **THEN** a hand is raised\n"
)


@check(CAP, "Gradual Adoption", "Init is idempotent and keeps the pyproject")
def check_init_idempotent(proj):
    proj.write("pyproject.toml", '[project]\nname = "greeter"\n')
    first = proj.specgen("init")
    assert first.rc == 0 and "appended [tool.specgen]" in first.out, first.text
    text = proj.read("pyproject.toml")
    assert text.startswith('[project]\nname = "greeter"\n') and 'pythonpath = ["."]' in text
    assert (proj.root / "tests" / "checks" / "__init__.py").is_file()
    assert "build/specgen/" in proj.read(".gitignore").splitlines()
    before = _files(proj)
    second = proj.specgen("init")
    assert second.rc == 0 and "nothing to do" in second.out and _files(proj) == before, second.text


@check(CAP, "Gradual Adoption", "A baseline lets the gate pass at zero coverage, and a new gap fails it")
def check_baseline_gate(proj):
    _unbind_all(proj)
    assert proj.specgen("generate").rc == 0
    assert proj.specgen("baseline").rc == 0
    gate = proj.specgen("report", "--gate")
    assert gate.rc == 0, gate.text
    assert {r["verdict"] for r in proj.report()["requirements"]} == {"baselined"}
    assert not any(r["verified"] for r in proj.report()["requirements"])
    proj.write(SPEC, proj.read(SPEC) + GAP_REQUIREMENT)
    assert proj.specgen("generate").rc == 0
    gate = proj.specgen("report", "--gate")
    assert gate.rc == 1 and len(_gate_lines(gate)) == 1 and "greeting / Wave" in _gate_lines(gate)[0], gate.text
    assert "greeting/wave/wave-hello" in gate.err


@check(CAP, "Gradual Adoption", "A fixed requirement still listed fails the gate")
def check_ratchet(proj):
    bound = proj.read(CHECKS)
    _unbind_all(proj)
    assert proj.specgen("generate").rc == 0
    assert proj.specgen("baseline").rc == 0
    proj.write(CHECKS, bound)
    assert proj.specgen("review", "--all").rc == 0  # the checks are new to the lock: read and reviewed
    _, _, gate = proj.pipeline()
    assert gate.rc == 1 and "ratchet: greeting/greet-by-name is verified now" in gate.err, gate.text
    assert not _gate_lines(gate)
    update = proj.specgen("baseline", "--update")
    assert update.rc == 0 and "dropped greeting/greet-by-name" in update.out, update.text
    assert proj.specgen("report", "--gate").rc == 0


@check(CAP, "CI Integrations", "Annotations are capped at ten")
def check_github_annotations_capped(proj):
    proj.write(
        SPEC,
        proj.read(SPEC)
        + "".join(
            f"\n### Requirement: Gap {k}\nThe greeter SHALL close gap {k}.\n\n#### Scenario: Gap {k} closes\n"
            f"- **WHEN** gap {k} is probed\n- **THEN** it is closed\n"
            for k in range(30)
        ),
    )
    run = proj.specgen("check", "--format", "github")
    lines = run.out.splitlines()
    errors = [ln for ln in lines if ln.startswith("::error ")]
    notices = [ln for ln in lines if ln.startswith("::notice ")]
    assert run.rc == 1 and len(errors) == 10 and len(notices) == 1, run.text
    assert all("uncovered-requirement" in ln for ln in errors)
    summary = json.loads(proj.specgen("check", "--format", "json").out)["summary"]
    total = summary["errors"] + summary["warnings"]  # the notice counts every other issue, warnings too
    assert f"::{total - 10} more issue(s)" in notices[0], (total, notices)


@check(CAP, "CI Integrations", "Test cases carry the importers' properties")
def check_junit_importer_properties(proj):
    proj.write(
        "pyproject.toml",
        proj.read("pyproject.toml") + "\n[tool.specgen.junit]\nxray = true\n"
        'testrail_ids = { "greeting/farewell/goodbye" = "C42" }\n',
    )
    _, tests, _ = proj.pipeline()
    assert tests.rc == 0, tests.text
    case = next(
        c
        for c in ET.parse(proj.root / "build/specgen/junit.xml").iter("testcase")
        if c.get("name") == "test_farewell__goodbye"
    )
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["test_id"] == "C42" and props["requirements"] == "greeting/farewell"
    assert props["test_summary"] == "Farewell: Goodbye" and props["scenario_id"] == "greeting/farewell/goodbye"


@check(CAP, "Rename Detection", "A rename is named with its anchor")
def check_rename_named(proj):
    assert proj.specgen("generate").rc == 0
    proj.edit(
        SPEC,
        "#### Scenario: Goodbye\n- **WHEN** the greeter says goodbye",
        "#### Scenario: Saying goodbye\n- **WHEN** the greeter says goodbye twice",
    )
    run = proj.specgen("check")
    assert run.rc == 1, run.text
    assert "greeting/farewell/goodbye -> greeting/farewell/saying-goodbye" in run.out, run.out
    assert "<!-- specgen-id: greeting/farewell/goodbye -->" in run.out


@check(CAP, "Rename Detection", "A moved binding is suspect until reviewed")
def check_moved_binding_suspect(proj):
    assert proj.specgen("generate").rc == 0
    proj.edit(
        SPEC,
        "#### Scenario: Goodbye\n- **WHEN** the greeter says goodbye",
        "#### Scenario: Saying goodbye\n- **WHEN** the greeter says goodbye twice",
    )
    proj.edit(CHECKS, '@check("greeting", "Farewell", "Goodbye")', '@check("greeting", "Farewell", "Saying goodbye")')
    assert proj.specgen("generate").rc == 0
    run = proj.specgen("check", "--format", "json")
    codes = [i["code"] for i in json.loads(run.out)["issues"]]
    assert run.rc == 1 and codes == ["suspect-binding"], run.text
    assert proj.specgen("review", "greeting/farewell/saying-goodbye").rc == 0
    assert proj.specgen("check").rc == 0


# ---------------------------------------------------------------- hostile trees
PAYLOAD = 'x"""+getattr(__import__("os"),"system")("touch PWNED")+"""'


@check(CAP, "Hostile Trees", "A name written as code stays text")
def check_name_written_as_code_stays_text(proj):
    proj.write(f"openspec/specs/{PAYLOAD}/spec.md", proj.read(SPEC).replace("# greeting", "# payload"))
    gen, tests, _ = proj.pipeline()
    assert not (proj.root / "PWNED").exists(), tests.text
    module = next(p for p in (proj.root / "generated").glob("test_x_*.py"))
    assert ast.get_docstring(ast.parse(module.read_text()), clean=False).startswith(PAYLOAD)
    assert "failed" in tests.text and not (proj.root / "PWNED").exists()


@check(CAP, "Hostile Trees", "A damaged lock reviews nothing")
def check_damaged_lock_reviews_nothing(proj):
    assert proj.pipeline()[2].rc == 0
    proj.edit(SPEC, '- **THEN** it returns "Bye."', '- **THEN** it returns "Bye." and slams the door')
    proj.write("specgen.lock", "")
    _, tests, gate = proj.pipeline()
    assert tests.rc == 0 and gate.rc == 1, gate.text
    assert "specgen review greeting/farewell/goodbye" in gate.text
    proj.write("specgen.lock", "specs greeting/farewell/goodbye\n")
    broken = proj.specgen("check")
    assert broken.rc == 2 and "specgen.lock:1: error: lock line needs 5 fields" in broken.err, broken.text


@check(CAP, "Hostile Trees", "A new binding is unreviewed until reviewed")
def check_new_binding_unreviewed(proj):
    assert proj.specgen("generate").rc == 0 and proj.specgen("check").rc == 0  # first run: the lock starts
    added = '\n\n@check("greeting", "Farewell", "Goodbye")\ndef check_goodbye_too():\n    assert True\n'
    proj.write(CHECKS, proj.read(CHECKS) + added)
    assert proj.specgen("generate").rc == 0
    run = proj.specgen("check", "--format", "json")
    codes = [i["code"] for i in json.loads(run.out)["issues"] if i["level"] == "error"]
    assert run.rc == 1 and codes == ["unreviewed-binding"], run.text


# ---------------------------------------------------------------- adoption on real trees (monorepos, baselines)
def _three_roots(root) -> Proj:
    """The two-root monorepo plus a third package, gamma, holding an active change."""
    m = Proj(root, MONOREPO)
    m.write(
        "packages/gamma/openspec/specs/greet/spec.md",
        m.read("packages/alpha/openspec/specs/greet/spec.md").replace("alpha", "gamma"),
    )
    change = "packages/gamma/openspec/changes/add-wave"
    m.write(f"{change}/proposal.md", "## Why\nThe gamma greeter waves too.\n\n## What Changes\n- greet: wave\n")
    m.write(f"{change}/specs/greet/spec.md", ADDED_DELTA)
    m.write(
        "checks/gamma.py",
        'from specgen import check\n\n\n@check("gamma:greet", "Greet by name", "Named person")\n'
        "def check_gamma_named():\n    assert 'Ada' in 'Hello, Ada!'\n",
    )
    return m


@check(CAP, "Several OpenSpec Roots", "Every command works on a three-root monorepo")
def check_every_command_three_roots(tmp_path):
    m = _three_roots(tmp_path / "mono3")
    heads = ["== root alpha (", "== root beta (", "== root gamma ("]
    listed = m.specgen("list", "--specs")
    assert listed.rc == 0 and all(h in listed.out for h in heads), listed.text
    as_json = json.loads(m.specgen("list", "--specs", "--json").out)
    assert [(r["name"], [s["id"] for s in r["specs"]]) for r in as_json["roots"]] == [
        ("alpha", ["greet"]),
        ("beta", ["greet"]),
        ("gamma", ["greet"]),
    ]
    ambiguous = m.specgen("show", "greet")
    assert ambiguous.rc == 2 and "pass one of alpha:greet, beta:greet, gamma:greet" in ambiguous.err, ambiguous.text
    shown = json.loads(m.specgen("show", "gamma:greet", "--json").out)
    assert shown["requirements"][0]["scenarios"][0]["id"] == "gamma:greet/greet-by-name/named-person"
    valid = m.specgen("validate", "--all")
    assert valid.rc == 0 and all(h in valid.out for h in heads), valid.text
    only = m.specgen("validate", "--specs", "--only", "beta")
    assert only.rc == 0 and "== root beta" in only.out and "== root alpha" not in only.out, only.text
    assert m.specgen("validate", "add-wave").rc == 0  # only gamma holds it
    assert m.specgen("validate", "alpha:greet").rc == 0
    for change in ("add-wave", "gamma:add-wave"):
        dry = m.specgen("apply", change, "--dry-run")
        assert dry.rc == 0 and "Dry run: would archive 'add-wave'" in dry.out, dry.text
    gen, tests, _ = m.pipeline()
    assert tests.rc == 1 and _counts(tests) == {"passed": 4, "failed": 1}, tests.text  # the change's Wave
    base = m.specgen("baseline")
    assert base.rc == 0 and all(h in base.out for h in heads), base.text
    assert all((m.root / f"specgen.baseline.{n}.json").is_file() for n in ("alpha", "beta", "gamma"))
    gate = m.specgen("report", "--gate")
    assert gate.rc == 0 and "total over 3 roots: 4/4 requirements verified" in gate.out, gate.text


@check(CAP, "Several OpenSpec Roots", "Init writes roots for several trees")
def check_init_writes_roots(tmp_path):
    m = _three_roots(tmp_path / "mono3")
    (m.root / "pyproject.toml").unlink()
    init = m.specgen("init")
    assert init.rc == 0, init.text
    assert 'roots = ["packages/*/openspec"]' in m.read("pyproject.toml"), m.read("pyproject.toml")
    assert "next: `specgen generate`, then `specgen baseline`" in init.out, init.out
    assert m.specgen("list", "--specs").rc == 0
    (tmp_path / "empty").mkdir()
    none = Proj(tmp_path / "none", tmp_path / "empty").specgen("check")
    assert none.rc == 2 and "tool.specgen.roots" in none.err and "no OpenSpec root" in none.err, none.text


@check(CAP, "Several OpenSpec Roots", "The pre-commit hook fires for any root")
@pytest.mark.reach_exception(
    "a static check of .pre-commit-hooks.yaml: its `files` pattern (read with yaml) matched against paths with re; "
    "pre-commit, not specgen, applies it, and no specgen function runs"
)
def check_hook_fires_for_any_root():
    import yaml

    pattern = re.compile(yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))[0]["files"])
    for path in (
        "packages/gamma/openspec/specs/greet/spec.md",
        "openspec/changes/add-wave/specs/greet/spec.md",
        "specgen.gamma.lock",
        "specgen.baseline.gamma.json",
        "tests/checks/greet.py",
    ):
        assert pattern.search(path), path
    assert not pattern.search("src/app/main.py") and not pattern.search("docs/guide.md")


def _collision_and_gbk(proj) -> None:
    """No checks; two scenarios of Farewell whose ids collide; a spec file saved in GBK."""
    _unbind_all(proj)
    proj.write(
        SPEC, proj.read(SPEC) + '\n#### Scenario: Goodbye!\n- **WHEN** it says goodbye loudly\n- **THEN** "BYE."\n'
    )
    gbk = "# hud\n\n## Purpose\n界面。\n\n## Requirements\n### Requirement: 显示血量\n系统 SHALL 显示血量。\n"
    (proj.root / "openspec/specs/hud").mkdir()
    (proj.root / "openspec/specs/hud/spec.md").write_bytes(gbk.encode("gbk"))


@check(CAP, "Gradual Adoption", "A baseline holds a tree with an id collision and a non-UTF-8 file")
def check_baseline_holds_problems(proj):
    _collision_and_gbk(proj)
    assert proj.specgen("generate").rc == 1  # two broken items and an unreadable file, named
    base = proj.specgen("baseline")
    assert base.rc == 0 and "and 3 static problem(s)" in base.out, base.text
    problems = json.loads(proj.read("specgen.baseline.json"))["problems"]
    assert sorted(p["code"] for p in problems) == ["id-collision", "id-collision", "unreadable-file"], problems
    assert proj.specgen("check").rc == 0
    tests = proj.pytest()
    assert tests.rc == 0 and "specgen: 4 baselined scenario(s) without a check not run" in tests.out, tests.text
    gate = proj.specgen("report", "--gate")
    assert gate.rc == 0, gate.text
    proj.write("openspec/specs/hud/spec.md", (proj.root / "openspec/specs/hud/spec.md").read_bytes().decode("gbk"))
    gate = proj.specgen("report", "--gate")
    assert gate.rc == 1 and "ratchet: unreadable-file in openspec/specs/hud/spec.md" in gate.err, gate.text


@check(CAP, "Gradual Adoption", "A new scenario under a baselined requirement is a new gap")
def check_new_scenario_under_baselined(proj):
    _unbind_all(proj)
    assert proj.specgen("generate").rc == 0
    assert proj.specgen("baseline").rc == 0
    proj.edit(
        SPEC,
        "### Requirement: Farewell",
        '#### Scenario: Nobody\n- **WHEN** nobody is named\n- **THEN** it returns "Hello?"\n\n'
        "### Requirement: Farewell",
    )
    assert proj.specgen("generate").rc == 0
    run = proj.specgen("check")
    assert run.rc == 1 and "scenario greeting/greet-by-name/nobody has no check" in run.out, run.text
    assert "empty-name has no check" not in run.out  # the listed ones stay out
    gate = proj.specgen("report", "--gate")
    assert gate.rc == 1 and "Nobody: missing" in gate.err and _gate_lines(gate)[0].count("greeting /") == 1, gate.text
    assert "def check_nobody():" in gate.err and "def check_empty_name():" not in gate.err  # the new one's code only


@check(CAP, "Pytest Plugin", "A partial run merges into the results")
def check_partial_run_merges(proj):
    _, full, gate = proj.pipeline()
    assert full.rc == 0 and gate.rc == 0, gate.text
    before = json.loads(proj.read("build/specgen/results.json"))["results"]
    part = proj.pytest("-k", "goodbye")
    assert part.rc == 0 and _counts(part) == {"passed": 1, "deselected": 3}, part.text
    after = json.loads(proj.read("build/specgen/results.json"))["results"]
    assert [r["nodeid"] for r in after] == [r["nodeid"] for r in before] and len(after) == 4
    assert proj.specgen("report", "--gate").rc == 0


@check(CAP, "Pytest Plugin", "Baselined gaps keep a plain pytest green and never count")
def check_baselined_gaps_skip(proj):
    _unbind_all(proj)
    assert proj.specgen("generate").rc == 0
    assert proj.specgen("baseline").rc == 0
    tests = proj.pytest()
    assert tests.rc == 0 and not _counts(tests), tests.text  # nothing left to run: exit 0, not 5
    assert "specgen: 3 baselined scenario(s) without a check not run (specgen.baseline.json)" in tests.out
    assert proj.specgen("report", "--gate").rc == 0
    assert not any(s["verified"] for r in proj.report()["requirements"] for s in r["scenarios"])
    proj.write(
        CHECKS,
        'from specgen import check\n\n\n@check("greeting", "Farewell", "Goodbye")\n'
        'def check_bye():\n    assert "Bye." == "Bye!"\n',
    )
    assert proj.specgen("generate").rc == 0
    tests = proj.pytest()
    assert tests.rc == 1 and _counts(tests) == {"failed": 1}, tests.text
    assert "2 baselined scenario(s) without a check not run" in tests.out
    assert "check_bye" in tests.text or "test_farewell__goodbye" in tests.text


# ---------------------------------------------------------------- renames that follow
@check(CAP, "Rename Detection", "The anchor advice keeps a check written by names")
def check_anchor_keeps_names_check(proj):
    assert proj.specgen("generate").rc == 0
    proj.edit(SPEC, "#### Scenario: Goodbye\n", "#### Scenario: Saying goodbye\n")
    advice = proj.specgen("check")
    anchor = "<!-- specgen-id: greeting/farewell/goodbye -->"
    assert advice.rc == 1 and anchor in advice.out, advice.text
    proj.edit(SPEC, "#### Scenario: Saying goodbye\n", f"#### Scenario: Saying goodbye\n{anchor}\n")
    assert proj.specgen("generate").rc == 0
    run = proj.specgen("check", "--format", "json")
    issues = json.loads(run.out)["issues"]
    assert run.rc == 1 and [(i["code"], "greeting/farewell/goodbye" in i["message"]) for i in issues] == [
        ("suspect-binding", True)
    ], run.text
    assert proj.specgen("review", "greeting/farewell/goodbye").rc == 0
    assert proj.specgen("check").rc == 0


@check(CAP, "Hostile Trees", "A file specgen did not write is never replaced")
def check_foreign_file_never_replaced(proj):
    proj.write(GEN, "def test_mine():\n    assert True\n")
    run = proj.specgen("generate")
    assert run.rc == 2 and "test_greeting.py" in run.err and "not written by specgen" in run.err, run.text
    assert proj.read(GEN) == "def test_mine():\n    assert True\n"


@check(CAP, "Hostile Trees", "Paths out of the project are refused")
@pytest.mark.parametrize("value", ["../outside", "/tmp/specgen-outside"])
def check_paths_out_of_project_refused(proj, value):
    proj.edit("pyproject.toml", 'output = "generated"', f"output = {value!r}")
    run = proj.specgen("generate")
    assert run.rc == 2 and "tool.specgen.output" in run.err, run.text
    assert not (proj.root.parent / "outside").exists()


@check(CAP, "Rename Detection", "A renamed requirement is named with its scenarios' anchors")
def check_renamed_requirement(proj):
    assert proj.specgen("generate").rc == 0
    proj.edit(SPEC, "### Requirement: Greet by name\n", "### Requirement: Greet a person by name\n")
    run = proj.specgen("check")
    assert run.rc == 1, run.text
    assert "requirement greeting/greet-by-name -> greeting/greet-a-person-by-name" in run.out, run.out
    for sid in ("greeting/greet-by-name/named-person", "greeting/greet-by-name/empty-name"):
        assert f"`<!-- specgen-id: {sid} -->`" in run.out, run.out
    for name, sid in (("Named person", "named-person"), ("Empty name", "empty-name")):
        proj.edit(
            SPEC,
            f"#### Scenario: {name}\n",
            f"#### Scenario: {name}\n<!-- specgen-id: greeting/greet-by-name/{sid} -->\n",
        )
    assert proj.specgen("generate").rc == 0
    assert proj.specgen("check").rc == 0  # anchors keep the ids; the scenario texts did not change
    _, tests, gate = proj.pipeline()
    assert tests.rc == 0 and gate.rc == 0, gate.text


# ---------------------------------------------------------------- the GitHub action, step by step
def _github_if(expr: str | None, inputs: dict, failed: bool) -> bool:
    """GitHub's `if:` for the expressions action.yml uses (status functions, inputs, ==, &&, ||, !)."""
    if expr is None:
        return not failed  # the implicit success()
    text = expr.strip().removeprefix("${{").removesuffix("}}").strip()
    if not re.search(r"\b(always|cancelled|failure|success)\(\)", text):
        text = f"success() && ({text})"
    text = re.sub(r"inputs\.([\w-]+)", lambda m: repr(inputs[m[1]]), text)
    text = text.replace("always()", "True").replace("cancelled()", "False")
    text = text.replace("failure()", repr(failed)).replace("success()", repr(not failed))
    text = text.replace("&&", " and ").replace("||", " or ").replace("!=", " <> ").replace("!", " not ")
    return bool(eval(text.replace(" <> ", " != "), {"__builtins__": {}}))  # noqa: S307 - our own YAML, our own words


def _run_action(proj, tmp_path, inputs: dict) -> list[tuple[str, int | None, str]]:
    """Each step of action.yml as the runner would take it: (name, exit status or None if skipped, output)."""
    import yaml

    action = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    inputs = {k: str(v.get("default", "")) for k, v in action["inputs"].items()} | inputs
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    (bin_dir / "python").chmod(0o755)  # a wrapper, not a link: a venv's python finds its venv from its own path
    summary = tmp_path / "step_summary.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GITHUB_")) and k != "CI"}
    env |= {
        "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
        "PYTHONPATH": str(REPO),
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(proj.root),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_ACTION_PATH": str(REPO),
        "CI": "true",
    }
    done, failed = [], False
    for step in action["runs"]["steps"]:
        if "run" not in step or "pip install" in step["run"]:
            continue  # setup-python and installing specgen: the harness runs this checkout in this venv
        assert "${{" not in step["run"], f"{step['name']}: an expression pasted into the shell line"
        if not _github_if(step.get("if"), inputs, failed):
            done.append((step["name"], None, ""))
            continue
        subst = {
            k: re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: inputs[m[1]], v)
            for k, v in step.get("env", {}).items()
        }
        cwd = proj.root / re.sub(
            r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: inputs[m[1]], step.get("working-directory", ".")
        )
        proc = subprocess.run(
            [step.get("shell", "bash"), "-e", "-c", step["run"]],
            cwd=cwd,
            env=env | subst,
            capture_output=True,
            text=True,
            timeout=600,
        )
        failed |= proc.returncode != 0
        done.append((step["name"], proc.returncode, proc.stdout + proc.stderr))
    return done


@check(CAP, "CI Integrations", "The action's steps run as users run them")
def check_action_steps(proj, tmp_path):
    assert proj.specgen("generate").rc == 0
    proj.write(SPEC, proj.read(SPEC) + GAP_REQUIREMENT)  # generated files now stale: `check` fails
    args = "--source-url 'https://example.com/$(touch${IFS}pwned)/' --no-manual"
    steps = _run_action(proj, tmp_path, {"args": args})
    status = {name: rc for name, rc, _ in steps}
    out = {name: text for name, _, text in steps}
    assert status["specgen check"] == 1, out["specgen check"]
    assert status["Run the generated tests"] == 0, out["Run the generated tests"]  # ran although check failed
    assert "generated -p no:cacheprovider --junitxml=build/specgen/junit.xml -n auto" in out["Run the generated tests"]
    assert "bringing up nodes" in out["Run the generated tests"] or " -n auto" in out["Run the generated tests"]
    assert json.loads(proj.read("build/specgen/results.json"))["results"], "the tests wrote no results"
    assert status["specgen report --gate"] == 1 and "::error " in out["specgen report --gate"], out
    assert not (proj.root / "pwned").exists()
    assert "https://example.com/$(touch${IFS}pwned)/" in proj.read("build/specgen/report.json")
    assert (tmp_path / "step_summary.md").stat().st_size > 0
    skipped = _run_action(proj, tmp_path / "again", {"run-tests": "false"})
    assert dict((n, rc) for n, rc, _ in skipped)["Run the generated tests"] is None


@check(CAP, "CI Integrations", "The step summary is capped at 64 KB")
def check_step_summary_capped(proj, tmp_path, monkeypatch):
    _unbind_all(proj)
    proj.write(
        SPEC,
        proj.read(SPEC)
        + "".join(
            f"\n### Requirement: Gap {k}\nThe greeter SHALL close gap {k}.\n\n#### Scenario: Gap {k} closes\n"
            f"- **WHEN** gap {k} is probed with a long enough sentence to make the row wide\n"
            "- **THEN** it is closed\n"
            for k in range(1500)
        ),
    )
    assert proj.specgen("generate").rc == 0
    assert proj.specgen("baseline").rc == 0
    listed = json.loads(proj.read("specgen.baseline.json"))
    listed["requirements"] = dict(sorted(listed["requirements"].items())[:1000])
    proj.write("specgen.baseline.json", json.dumps(listed))
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run = proj.specgen("report")
    assert run.rc == 0, run.text
    text = summary.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 64_000 < len(proj.read("build/specgen/report.md").encode("utf-8"))
    assert text.startswith("## specgen: 0/1502 requirements verified"), text[:200]
    assert text.index("missing |") < text.index("baselined |"), "the worst items first"
    assert text.rstrip().endswith("upload the folder as an artifact to keep it)._")
    assert "the full report is build/specgen/report.md" in text
    html = proj.read("build/specgen/report.html")
    assert '<span class="n">1000 req</span><span class="n">0 scn</span>' in html  # baselined
    assert '<span class="n">502 req</span><span class="n">1503 scn</span>' in html  # missing


# ---------------------------------------------------------------- the first hour
@check(CAP, "Stable Scenario Identity", "A name without ASCII letters keeps its own letters in the id")
def check_unicode_ids(proj):
    proj.write(
        "openspec/specs/hud/spec.md",
        "# hud\n\n## Purpose\n界面。\n\n## Requirements\n### Requirement: 显示血量\n系统 SHALL 显示血量。\n\n"
        "#### Scenario: 受伤\n- **WHEN** 受伤\n- **THEN** 血量减少\n",
    )
    proj.write(
        "checks/hud.py",
        'from specgen import check\n\n\n@check("hud", "显示血量", "受伤")\ndef check_hurt():\n    assert 1\n',
    )
    _, tests, gate = proj.pipeline()
    assert tests.rc == 0 and gate.rc == 0, tests.text + gate.text
    assert 'id="hud/显示血量/受伤"' in proj.read("generated/test_hud.py")
    assert "def test_显示血量__受伤():" in proj.read("generated/test_hud.py")
    assert proj.scenario("hud/显示血量/受伤")["verified"]


@check(CAP, "Static Gate", "The summary line is printed once")
def check_summary_once(proj):
    proj.pipeline()
    ok = proj.specgen("check")
    assert ok.rc == 0 and ok.text.count("specgen check: ok;") == 1, ok.text
    proj.write(SPEC, proj.read(SPEC) + GAP_REQUIREMENT)
    proj.pipeline()
    gate = proj.specgen("report", "--gate")
    assert gate.rc == 1 and gate.text.count("requirements verified") == 1, gate.text


@check(CAP, "Static Gate", "A missing OpenSpec folder is named first")
def check_missing_openspec_first(tmp_path):
    (tmp_path / "empty").mkdir()
    p = Proj(tmp_path / "bare", tmp_path / "empty")
    p.write("pyproject.toml", '[tool.specgen]\nchecks = ["nothere.checks"]\n')
    run = p.specgen("generate")
    assert run.rc == 2 and "no OpenSpec root" in run.err and "nothere" not in run.err, run.text


@check(CAP, "Per-Item Degradation", "A check module that does not parse is named in its scenarios' tests")
def check_syntax_error_named(proj):
    proj.edit(CHECKS, "def check_empty(greeter):", "def check_empty(greeter)")
    assert proj.specgen("generate").rc == 1
    tests = proj.pytest()
    assert tests.rc == 1 and _counts(tests) == {"failed": 3}, tests.text
    named = "is not checked: the check module checks.greeting (greeting.py:"
    assert tests.out.count(named) == 3 and "does not parse" in tests.out, tests.out
    assert "has no check" not in tests.out
