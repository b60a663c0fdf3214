"""`specgen evidence` writes the manual evidence record the report reads; a record made on a dirty tree,
or for a commit that is not an ancestor of HEAD, is flagged (verdict suspect, never counted).

A fixture project in a git repository, through the command line only.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.specgen import cli_project as P

SPEC = """# gpu Specification

## Purpose
A scenario only a person on a GPU machine can verify.

## Requirements
### Requirement: Smoke
The trainer SHALL run one step on a GPU.

#### Scenario: One step runs
- **WHEN** the smoke procedure runs
- **THEN** one step completes
"""
CHECK = """from specgen import check


@check("gpu", "Smoke", "One step runs", manual="tests/manual/smoke.md")
def check_smoke():
    ...
"""
SID = "gpu/smoke/one-step-runs"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def _project(tmp_path: Path) -> Path:
    project = P.make_project(tmp_path / "proj")
    (project / "openspec" / "specs" / "gpu").mkdir(parents=True)
    (project / "openspec" / "changes").mkdir()
    (project / "openspec" / "specs" / "gpu" / "spec.md").write_text(SPEC, encoding="utf-8")
    (project / "tests" / "checks" / "gpu.py").write_text(CHECK, encoding="utf-8")
    (project / "tests" / "manual").mkdir()
    (project / "tests" / "manual" / "smoke.md").write_text("Run one step on a GPU.\n", encoding="utf-8")
    (project / ".gitignore").write_text("build/\n__pycache__/\n", encoding="utf-8")
    assert P.specgen(project, "generate").returncode == 0
    assert P.specgen(project, "review", "--all").returncode == 0
    _git(project, "init", "-q", "-b", "main")
    _git(project, "config", "user.name", "Jane Doe")
    _git(project, "config", "user.email", "jane@example.org")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "start")
    return project


def _scenario_verdict(project: Path) -> dict:
    proc = P.specgen(project, "report")
    P.assert_no_crash(proc, "specgen report")
    (req,) = P.report_json(project)["requirements"]
    return req["scenarios"][0]


def test_evidence_writes_a_record_the_report_counts(tmp_path):
    project = _project(tmp_path)
    proc = P.specgen(project, "evidence", SID, "--result", "pass", "--notes", "H100, 3 min")
    assert proc.returncode == 0 and "wrote tests/manual/evidence/" in proc.stdout, P.output(proc)
    (path,) = (project / "tests" / "manual" / "evidence").glob("*.yaml")
    record = yaml.safe_load(path.read_text(encoding="utf-8"))
    shown = json.loads(
        (project / "tests" / "generated" / "test_gpu.py")
        .read_text(encoding="utf-8")
        .split("spec_fingerprint=")[1]
        .split(",")[0]
    )
    assert record["fingerprint"] == shown and record["commit"] == _git(project, "rev-parse", "HEAD")
    assert record["who"] == "Jane Doe <jane@example.org>" and record["dirty"] is False and record["machine"]
    assert record["result"] == "pass" and record["notes"] == "H100, 3 min"
    scn = _scenario_verdict(project)
    assert scn["verdict"] == "manual" and scn["verified"], scn


def test_dirty_tree_evidence_is_flagged(tmp_path):
    project = _project(tmp_path)
    (project / "tests" / "manual" / "smoke.md").write_text("Run two steps.\n", encoding="utf-8")
    proc = P.specgen(project, "evidence", SID, "--result", "pass")
    assert proc.returncode == 0 and "flagged (made on a work tree with uncommitted changes)" in proc.stderr
    scn = _scenario_verdict(project)
    assert scn["verdict"] == "suspect" and not scn["verified"] and "uncommitted" in scn["reason"], scn


def test_evidence_for_a_commit_not_in_history_is_flagged(tmp_path):
    project = _project(tmp_path)
    _git(project, "checkout", "-q", "-b", "elsewhere")
    (project / "notes.txt").write_text("x\n", encoding="utf-8")
    _git(project, "add", "notes.txt")
    _git(project, "commit", "-qm", "elsewhere")
    assert P.specgen(project, "evidence", SID, "--result", "pass").returncode == 0
    _git(project, "checkout", "-q", "main")
    scn = _scenario_verdict(project)
    assert scn["verdict"] == "suspect" and "is not an ancestor of HEAD" in scn["reason"], scn
