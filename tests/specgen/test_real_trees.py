"""What real OpenSpec trees hold and the public corpora lack, through the command line only: nested
capability folders, slug collisions (in a spec, resolved by an anchor, inside an active change), a spec
file that is not UTF-8, a checks folder without `__init__.py`, a project without pytest's `pythonpath`,
a relocated `specs = "docs/openspec"`, and a 5,000-scenario spec.

The behaviour each must have: every project compiles, nothing crashes; a collision is reported with
file:line, all of them in one run, blocks only its own scenarios (their requirement is unverified) and
gates nothing inside an active change, and an anchor resolves it; an unreadable file is an error naming
it while the rest of the tree is listed and compiled; a checks folder without `__init__.py` is scanned or
named; the generated tests import their checks, or `specgen check` names the missing setting; every
command honours `specs` and `--root` is the project root everywhere.

Fixture trees: tests/fixtures/real-trees/ (the big spec is written at test time). Every project is built
as a new user builds one (tests/specgen/cli_project.py), and no command may crash on any of them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.specgen import cli_project as P

FIXTURES = P.REPO / "tests" / "fixtures" / "real-trees"


def _project(tmp_path: Path, fixture: str, specs: str = "openspec") -> Path:
    return P.make_project(tmp_path / "project", FIXTURES / fixture / "openspec", specs=specs)


def _run_all(project: Path, *, gate_rc: int, passed: int, failed: int | None = None, select: tuple = ()) -> dict:
    """generate, pytest tests/generated [select], report --gate in `project`; the report's JSON."""
    generate = P.specgen(project, "generate")
    P.assert_no_crash(generate, "specgen generate")
    assert generate.returncode in (0, 1), P.output(generate)[-2000:]
    tests = P.pytest_run(project, "tests/generated", "-q", "--tb=short", "-p", "no:cacheprovider", *select)
    P.assert_no_crash(tests, "pytest tests/generated")
    counts = P.pytest_counts(tests)
    assert counts["error"] == 0 and counts["passed"] == passed, P.output(tests)[-3000:]
    if failed is not None:
        assert counts["failed"] == failed, P.output(tests)[-3000:]
    report = P.specgen(project, "report", "--gate")
    P.assert_no_crash(report, "specgen report --gate")
    assert report.returncode == gate_rc, P.output(report)[-2000:]
    return P.report_json(project)


def _checks(project: Path, module: str, bindings: list[tuple[str, str, str]]) -> None:
    """A check module binding each (capability, requirement, scenario) by name to a passing check."""
    lines = ["from specgen import check", ""]
    for n, (cap, req, scn) in enumerate(bindings):
        lines += ["", f"@check({cap!r}, {req!r}, {scn!r})", f"def check_{n}():", "    assert True", ""]
    (project / "tests" / "checks" / f"{module}.py").write_text("\n".join(lines), encoding="utf-8")


def _verified(report: dict) -> dict[str, bool]:
    return {r["name"]: r["verified"] for r in report["requirements"]}


# --------------------------------------------------------------------------------------------
# nested capability folders
# --------------------------------------------------------------------------------------------


def test_nested_capabilities_compile_with_unique_readable_ids(tmp_path):
    project = _project(tmp_path, "nested")
    ids = P.unbound_ids(project)
    assert len(ids) == 6 and len(set(ids)) == 6, ids
    P.bind_passing(project, ids)
    report = _run_all(project, gate_rc=0, passed=6, failed=0)
    assert report["summary"]["requirements_total"] == 5 and report["summary"]["requirements_verified"] == 5
    scenario_ids = [s["id"] for r in report["requirements"] for s in r["scenarios"]]
    assert sorted(scenario_ids) == sorted(ids)
    for group, leaf in (("billing", "api"), ("search", "api"), ("auth", "login")):
        assert any(group in i and leaf in i for i in scenario_ids), f"no readable id for {group}/{leaf}"
    check = P.specgen(project, "check")
    assert check.returncode == 0, P.output(check)[-2000:]


# --------------------------------------------------------------------------------------------
# slug collisions
# --------------------------------------------------------------------------------------------

SPEC = "openspec/specs/emoji/spec.md"
DELTA = "openspec/changes/add-party/specs/emoji/spec.md"


def test_collisions_are_reported_at_once_with_lines_and_an_anchor_resolves_one(tmp_path):
    project = _project(tmp_path, "collisions")
    check = P.specgen(project, "check")
    P.assert_no_crash(check, "specgen check")
    text = P.output(check)
    problems = [] if check.returncode == 1 else [f"exit {check.returncode} (1: the gate names the collisions)"]
    for path, lines in ((SPEC, (10, 14)), (SPEC, (21, 25)), (DELTA, (5, 9))):
        if not re.search(rf"{re.escape(path)}:({lines[0]}|{lines[1]})\b.*collid", text):
            problems.append(f"the collision at {path} lines {lines} is not reported")
    if re.search(rf"{re.escape(SPEC)}:(32|36)\b.*collid", text):  # (their unbound-scenario lines are fine)
        problems.append("the pair an anchor resolves is reported")
    assert not problems, "\n".join(problems) + f"\n--- specgen check:\n{text[-3000:]}"


def test_a_collision_blocks_only_the_colliding_scenarios(tmp_path):
    project = _project(tmp_path, "collisions")
    _checks(
        project,
        "bound",
        [
            ("emoji", "Plain text", "Ascii"),
            ("emoji", "Render sparkles", "Sparkles ✨ shine"),
            ("emoji", "Render sparkles", "Sparkles shine"),
            ("plain", "Echo", "Word"),
        ],
    )
    report = _run_all(project, gate_rc=1, passed=4)
    verdicts = _verified(report)
    assert verdicts == {
        "Render emoji": False,
        "Render flags": False,
        "Render sparkles": True,
        "Plain text": True,
        "Echo": True,
    }, verdicts


def test_a_collision_inside_an_active_change_gates_nothing(tmp_path):
    project = _project(tmp_path, "change-collision")
    _checks(project, "plain", [("plain", "Echo", "Word")])
    report = _run_all(project, gate_rc=0, passed=1)
    assert _verified(report) == {"Echo": True}
    check = P.specgen(project, "check")
    P.assert_no_crash(check, "specgen check")
    assert check.returncode == 0, P.output(check)[-2000:]


# --------------------------------------------------------------------------------------------
# a spec file that is not UTF-8
# --------------------------------------------------------------------------------------------

LATIN1 = "openspec/specs/latin1/spec.md"


def test_non_utf8_file_is_named_and_the_rest_is_listed_and_compiled(tmp_path):
    project = _project(tmp_path, "encoding")
    assert b"caf\xe9" in (project / LATIN1).read_bytes()  # git kept the bytes (.gitattributes: binary)
    listed = P.specgen(project, "list", "--specs")
    P.assert_no_crash(listed, "specgen list")
    assert {"alpha", "beta"} <= set(re.findall(r"^\s+(\w+)\s", listed.stdout, re.M)), P.output(listed)
    check = P.specgen(project, "check")
    P.assert_no_crash(check, "specgen check")
    assert check.returncode == 1 and LATIN1 in P.output(check), P.output(check)[-2000:]
    _checks(project, "good", [("alpha", "Alpha works", "Called"), ("beta", "Beta works", "Called")])
    generate = P.specgen(project, "generate")
    P.assert_no_crash(generate, "specgen generate")
    assert generate.returncode in (1, 2) and LATIN1 in P.output(generate), P.output(generate)[-2000:]
    tests = P.pytest_run(project, "tests/generated", "-q", "--tb=short", "-p", "no:cacheprovider")
    assert P.pytest_counts(tests)["passed"] == 2, P.output(tests)[-3000:]


# --------------------------------------------------------------------------------------------
# checks that pytest or specgen could miss
# --------------------------------------------------------------------------------------------


def _fingerprint_project(tmp_path: Path, specs: str = "openspec") -> Path:
    project = P.make_project(tmp_path / "project", FIXTURES / "fingerprints" / "openspec", specs=specs)
    shutil.copy(FIXTURES / "fingerprints" / "checks" / "export.py", project / "tests" / "checks" / "export.py")
    return project


def test_checks_folder_without_init_is_scanned_or_named(tmp_path):
    project = _fingerprint_project(tmp_path)
    (project / "tests" / "__init__.py").unlink()
    (project / "tests" / "checks" / "__init__.py").unlink()
    rc, report = P.check_json(project)
    named = [
        i
        for i in report["issues"]
        if "tests/checks" in (i.get("path", "") + i["message"]) or "tests.checks" in i["message"]
    ]
    assert report["summary"]["bindings"] == 1 or named, (
        f"tests/checks without __init__.py was scanned as nothing, without a word: {report}"
    )
    if report["summary"]["bindings"] == 1:  # scanned as a namespace package: it must run as one too
        _run_all(project, gate_rc=0, passed=1, failed=0)


def test_generated_tests_import_their_checks_or_check_names_the_missing_setting(tmp_path):
    project = _fingerprint_project(tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('pythonpath = ["."]\n', ""), encoding="utf-8")
    generate = P.specgen(project, "generate")
    P.assert_no_crash(generate, "specgen generate")
    tests = P.pytest_run(project, "tests/generated", "-q", "--tb=short", "-p", "no:cacheprovider")
    if P.pytest_counts(tests)["passed"] == 1:
        return
    check = P.specgen(project, "check")
    P.assert_no_crash(check, "specgen check")
    assert check.returncode != 0 and "pythonpath" in P.output(check), (
        "pytest tests/generated cannot import the checks, and specgen check does not say what is missing:\n"
        + P.output(tests)[-1500:]
        + "\n--- check\n"
        + P.output(check)[-1500:]
    )


def test_a_foreign_tests_package_does_not_shadow_the_project_checks(tmp_path):
    """Some distributions install a top-level `tests` package into site-packages: the generated tests
    still import the project's own `tests.checks` under a plain `pytest tests/generated`."""
    project = _fingerprint_project(tmp_path / "project")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('pythonpath = ["."]\n', ""), encoding="utf-8")
    site = tmp_path / "site"
    (site / "tests").mkdir(parents=True)
    (site / "tests" / "__init__.py").write_text('"""A stray package, as some distributions ship."""\n')
    P.assert_no_crash(P.specgen(project, "generate"), "specgen generate")
    env = P.env()
    env["PYTHONPATH"] += os.pathsep + str(site)
    tests = subprocess.run([sys.executable, "-P", "-m", "pytest", "tests/generated", "-q", "-p", "no:cacheprovider"],
                           cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert P.pytest_counts(tests)["passed"] == 1, P.output(tests)[-1500:]


# --------------------------------------------------------------------------------------------
# a relocated OpenSpec folder, and --root
# --------------------------------------------------------------------------------------------

ADD_CSV = {
    "proposal.md": "## Why\nSome users want CSV.\n\n## What Changes\n- Export CSV.\n",
    "specs/export/spec.md": (
        "## ADDED Requirements\n### Requirement: Export CSV\nThe exporter SHALL write CSV.\n\n"
        "#### Scenario: One row per requirement\n- **WHEN** CSV is asked for\n"
        "- **THEN** each requirement is one row\n"
    ),
}


UNCONFIGURED = re.compile(r"(?<!docs)/openspec\b")  # a path to <project>/openspec, never configured

# command -> (arguments, exit codes that are right, what stdout must hold)
RELOCATED_COMMANDS = {
    "list --specs": (["list", "--specs", "--json"], (0,), '"export"'),
    "list": (["list", "--json"], (0,), '"add-csv"'),
    "show": (["show", "export", "--type", "spec", "--json"], (0,), '"requirementCount": 1'),
    "validate": (["validate", "--all", "--json"], (0,), '"id": "add-csv"'),
    "apply --dry-run": (["apply", "add-csv", "--dry-run"], (0,), ""),
    "check": (["check", "--format", "json"], (0, 1), '"scenarios": 1'),
    "show (unknown id)": (["show", "no-such-spec"], (1, 2), ""),
}


def test_relocated_specs_folder_is_honoured_by_every_command(tmp_path):
    project = _fingerprint_project(tmp_path, specs="docs/openspec")
    for rel, text in ADD_CSV.items():
        (project / "docs" / "openspec" / "changes" / "add-csv" / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / "docs" / "openspec" / "changes" / "add-csv" / rel).write_text(text, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    problems = []  # every command is tried, so one run lists them all
    for cwd, root in ((project, ()), (elsewhere, ("--root", str(project)))):
        for what, (args, codes, needle) in RELOCATED_COMMANDS.items():
            proc = P.specgen(cwd, *args, *root)
            P.assert_no_crash(proc, f"specgen {what}")
            where = f"specgen {what} {' '.join(root) or '(in the project)'}"
            if proc.returncode not in codes or needle not in proc.stdout:
                problems.append(f"{where}: exit {proc.returncode}: {P.output(proc).strip()[-300:]}")
            elif UNCONFIGURED.search(P.output(proc)):
                problems.append(f"{where} names a folder never configured: {P.output(proc).strip()[-300:]}")
    assert not problems, "\n".join(problems)
    report = _run_all(project, gate_rc=0, passed=1)
    assert report["summary"]["requirements_verified"] == 1


# --------------------------------------------------------------------------------------------
# a 5,000-scenario spec
# --------------------------------------------------------------------------------------------


def _big_spec(path: Path, requirements: int = 1000, scenarios: int = 5) -> None:
    lines = [
        "# big Specification",
        "",
        "## Purpose",
        "One spec with 5,000 scenarios, as a large capability has.",
        "",
        "## Requirements",
    ]
    for r in range(requirements):
        lines += [f"### Requirement: Rule {r}", f"The system SHALL apply rule {r}.", ""]
        for s in range(scenarios):
            lines += [
                f"#### Scenario: Case {r}.{s}",
                f"- **WHEN** case {s} of rule {r} happens",
                f"- **THEN** rule {r} holds",
                "",
            ]
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def test_five_thousand_scenario_spec_compiles(tmp_path):
    project = P.make_project(tmp_path / "project")
    _big_spec(project / "openspec" / "specs" / "big" / "spec.md")
    _checks(project, "big", [("big", "Rule 0", f"Case 0.{s}") for s in range(5)])
    check = P.specgen(project, "check")
    P.assert_no_crash(check, "specgen check")
    assert check.returncode == 1
    # Running the 4,995 failing tests (no check) takes pytest ~30 s here; the report counts them as missing.
    report = _run_all(project, gate_rc=1, passed=5, failed=0, select=("-k", "rule_0__"))
    summary = report["summary"]
    assert (summary["requirements_total"], summary["scenarios_total"]) == (1000, 5000)
    assert (summary["requirements_verified"], summary["scenarios_verified"]) == (1, 5)
