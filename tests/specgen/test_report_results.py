"""`specgen report` says loudly when its test results are missing, stale or from another run, and
`--gate` fails on it (specgen/report/freshness.py): through the command line, in a project built as a
new user builds one (tests/specgen/cli_project.py), with the real pytest plugin writing the results.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.specgen import cli_project as P

FIXTURE = P.REPO / "tests" / "fixtures" / "real-trees" / "fingerprints"


def _project(tmp_path: Path) -> Path:
    project = P.make_project(tmp_path / "project", FIXTURE / "openspec")
    shutil.copy(FIXTURE / "checks" / "export.py", project / "tests" / "checks" / "export.py")
    generate = P.specgen(project, "generate")
    assert generate.returncode == 0, P.output(generate)
    return project


def _report(project: Path, *args: str):
    proc = P.specgen(project, "report", *args)
    P.assert_no_crash(proc, "specgen report")
    return proc


def _run_tests(project: Path) -> Path:
    tests = P.pytest_run(project, "tests/generated", "-q", "-p", "no:cacheprovider")
    assert P.pytest_counts(tests)["passed"] == 1, P.output(tests)[-2000:]
    return project / "build" / "specgen" / "results.json"


def test_missing_results_warn_and_fail_the_gate(tmp_path):
    project = _project(tmp_path)
    plain = _report(project)
    assert plain.returncode == 0 and "warning: no test results" in plain.stderr, P.output(plain)
    gated = _report(project, "--gate")
    assert gated.returncode == 1 and "[missing-results]" in gated.stderr, P.output(gated)


def test_fresh_results_pass_and_stale_ones_fail_the_gate(tmp_path):
    project = _project(tmp_path)
    results = _run_tests(project)
    fresh = _report(project, "--gate")
    assert fresh.returncode == 0 and "warning" not in fresh.stderr, P.output(fresh)
    inputs = ["tests/checks/export.py", "tests/generated/test_export.py"]
    for newer in inputs:
        for name in inputs:  # every input well before the run ...
            os.utime(project / name, (1_000_000, 1_000_000))
        os.utime(results, (2_000_000, 2_000_000))
        assert _report(project, "--gate").returncode == 0
        os.utime(project / newer, (3_000_000, 3_000_000))  # ... then one of them changes after it
        stale = _report(project, "--gate")
        assert stale.returncode == 1 and f"older than {newer}" in stale.stderr, (newer, P.output(stale))
        assert "[stale-results]" in stale.stderr, P.output(stale)
    os.utime(project / "specgen.lock", (4_000_000, 4_000_000))  # `specgen review` changes no test: still fresh
    os.utime(results, (3_500_000, 3_500_000))
    assert _report(project, "--gate").returncode == 0

def test_results_from_another_run_fail_the_gate(tmp_path):
    project = _project(tmp_path)
    results = _run_tests(project)
    data = json.loads(results.read_text(encoding="utf-8"))
    for rec in data["results"]:
        rec["scenario_id"] = "other/project/scenario"
    results.write_text(json.dumps(data), encoding="utf-8")
    gated = _report(project, "--gate")
    assert gated.returncode == 1 and "from another run" in gated.stderr, P.output(gated)
