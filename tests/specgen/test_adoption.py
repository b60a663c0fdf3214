"""Adoption: each public corpus compiled as a new user would, through the command line only.

The corpus's openspec/ is copied into a fresh project with the README's configuration
(tests/specgen/cli_project.py), then, as the README's loop runs them: `specgen check`, `specgen generate`,
`pytest tests/generated`, `specgen report --gate`. Before generating, the user writes their first checks:
`specgen stub <id> --write` for each scenario of the first uncovered requirement `check` names, and a body
that passes. No step may crash (traceback, internal error); exit codes are the README's (check and the gate
fail with 1: the other requirements have no check; generate exits 0 or 1, never 2); every generated test is
collected (the checks import), those of the first requirement pass and all others fail; the report counts
as many requirements and scenarios as the official OpenSpec CLI shows for openspec/specs, one verified.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.specgen import cli_project as P
from tests.specgen import corpora
from tests.specgen.oracle_batch import run_batch


def _cli_counts(openspec_root: Path) -> tuple[int, int]:
    """(requirements, scenarios) of openspec/specs as the official CLI shows them."""
    listed = json.loads(run_batch([{"cmd": "list", "cwd": str(openspec_root), "mode": "specs"}])[0]["stdout"])
    counts = {s["id"]: s["requirementCount"] for s in listed["specs"]}
    shown = run_batch([{"cmd": "show", "cwd": str(openspec_root), "id": i, "type": "spec"} for i in counts])
    scns = sum(
        len(r["scenarios"]) for res in shown if res["exitCode"] == 0 for r in json.loads(res["stdout"])["requirements"]
    )
    return sum(counts.values()), scns


def _first_checks(project: Path) -> list[str]:
    """Bind passing checks to every scenario of the first uncovered requirement; their ids."""
    _, report = P.check_json(project)
    first = next(
        re.search(r"\((\S+)\) has no scenario", i["message"])[1]
        for i in report["issues"]
        if i["code"] == "uncovered-requirement"
    )
    ids = [sid for sid in P.unbound_ids(project) if sid.startswith(first + "/")]
    P.bind_passing(project, ids)
    return ids


@pytest.mark.parametrize("name", [pytest.param(n, marks=corpora.marks(n)) for n in corpora.NAMES])
def test_corpus_compiles_as_a_new_project(tmp_path: Path, name: str):
    project = P.make_project(tmp_path / name, corpora.corpus(name) / "openspec")
    reqs, scns = _cli_counts(project)
    assert reqs > 0 and scns > 0

    check = P.specgen(project, "check")
    P.assert_no_crash(check, "specgen check")
    assert check.returncode == 1, P.output(check)[-2000:]
    bound = _first_checks(project)
    assert bound

    generate = P.specgen(project, "generate")
    P.assert_no_crash(generate, "specgen generate")
    assert generate.returncode in (0, 1), P.output(generate)[-2000:]
    assert (project / "tests" / "generated").is_dir()

    tests = P.pytest_run(project, "tests/generated", "-q", "--tb=no", "-p", "no:cacheprovider")
    P.assert_no_crash(tests, "pytest tests/generated")
    counts = P.pytest_counts(tests)
    assert tests.returncode == 1, P.output(tests)[-3000:]
    assert counts["error"] == 0 and counts["passed"] == len(bound), P.output(tests)[-3000:]
    assert counts["failed"] >= scns - len(bound), (counts, scns)
    assert (project / "build" / "specgen" / "results.json").is_file(), "the plugin wrote no results"

    report = P.specgen(project, "report", "--gate")
    P.assert_no_crash(report, "specgen report --gate")
    assert report.returncode == 1, P.output(report)[-2000:]
    summary = P.report_json(project)["summary"]
    assert (summary["requirements_total"], summary["scenarios_total"]) == (reqs, scns)
    assert (summary["requirements_verified"], summary["scenarios_verified"]) == (1, len(bound))
    assert f"1/{reqs} requirements verified" in P.output(report)
