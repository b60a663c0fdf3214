"""specgen for teams, where a user stands: a copy of a public tree at 0% coverage, adopted through the
command line only (init, generate, baseline, report --gate), then tightened.

- after `init`, `generate` and `baseline`, `report --gate` exits 0 (every gap is baselined);
- a new requirement with an unbound scenario makes the gate exit 1 naming that scenario only;
- a baselined requirement bound and verified, but still in the baseline, makes it exit 1 with the ratchet
  message; `baseline --update` shrinks the file and the gate passes again;
- `check --format github` on 30 gaps prints 10 `::error` lines, worst first, and one notice for the rest.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.specgen import cli_project as P
from tests.specgen import corpora

CORPUS = "agent-validator"
NEW_REQ = """
### Requirement: Team Adoption Probe
The validator SHALL report adoption probes.

#### Scenario: Probe is reported
- **WHEN** a probe runs
- **THEN** it is reported
"""


def _adopted(tmp_path: Path) -> Path:
    project = tmp_path / "proj"
    project.mkdir()
    shutil.copytree(corpora.corpus(CORPUS) / "openspec", project / "openspec", copy_function=shutil.copy)
    for p in [project / "openspec", *(project / "openspec").rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    (project / "pyproject.toml").write_text('[project]\nname = "adopter"\n', encoding="utf-8")
    for argv in (("init",), ("generate",), ("baseline",)):
        if argv[0] == "generate":
            _gate_valid_specs(project)
        proc = P.specgen(project, *argv)
        P.assert_no_crash(proc, f"specgen {argv[0]}")
        assert proc.returncode == 0, P.output(proc)
    return project


def _gate_valid_specs(project: Path) -> None:
    """Some of the corpus's main specs do not validate (five are written as deltas, `## ADDED Requirements`):
    the gate fails closed on each, naming it, and the team gates the others ([tool.specgen] gate)."""
    check = P.specgen(project, "check")
    P.assert_no_crash(check, "specgen check")
    named = set(
        re.findall(r"^openspec/specs/([^/:]+)/spec\.md:\d+: error: gated spec .*\[invalid-spec\]$", check.stdout, re.M)
    )
    deltas = {
        p.parent.name
        for p in (project / "openspec" / "specs").glob("*/spec.md")
        if re.search(r"^## ADDED Requirements", p.read_text(encoding="utf-8"), re.M)
    }
    assert check.returncode == 1 and len(deltas) == 5 and deltas <= named, P.output(check)[-3000:]
    valid = sorted(p.name for p in (project / "openspec" / "specs").iterdir() if p.name not in named)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(
        text.replace("[tool.specgen]\n", f"[tool.specgen]\ngate = {json.dumps(valid)}\n", 1), encoding="utf-8"
    )


def _gate(project: Path):
    proc = P.specgen(project, "report", "--gate")
    P.assert_no_crash(proc, "specgen report --gate")
    return proc


def _not_verified(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ": not verified: " in ln]


@pytest.mark.corpus(CORPUS)
def test_init_is_idempotent_and_keeps_the_pyproject(tmp_path):
    project = _adopted(tmp_path)
    text = (project / "pyproject.toml").read_text(encoding="utf-8")
    assert (
        text.startswith('[project]\nname = "adopter"\n') and "[tool.specgen]" in text and 'pythonpath = ["."]' in text
    )
    assert (project / "tests" / "checks" / "__init__.py").is_file()
    assert "build/specgen/" in (project / ".gitignore").read_text(encoding="utf-8").splitlines()
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and "build" not in p.parts}
    again = P.specgen(project, "init")
    assert again.returncode == 0 and "nothing to do" in again.stdout, P.output(again)
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and "build" not in p.parts} == before


@pytest.mark.corpus(CORPUS)
def test_baseline_gate_new_gap_and_ratchet(tmp_path):
    project = _adopted(tmp_path)
    baseline = json.loads((project / "specgen.baseline.json").read_text(encoding="utf-8"))
    assert len(baseline["requirements"]) > 100
    gate = _gate(project)
    assert gate.returncode == 0, P.output(gate)[-3000:]
    report = P.report_json(project)
    assert not any(r["verified"] for r in report["requirements"])  # baselined is never verified
    assert {r["verdict"] for r in report["requirements"]} == {"baselined"}

    # A new requirement with an unbound scenario: the gate names it, and nothing else.
    spec = next(iter(sorted((project / "openspec" / "specs").glob("*/spec.md"))))
    original = spec.read_text(encoding="utf-8")
    spec.write_text(original.rstrip("\n") + "\n" + NEW_REQ, encoding="utf-8")
    assert P.specgen(project, "generate").returncode == 0
    gate = _gate(project)
    assert gate.returncode == 1, P.output(gate)[-3000:]
    lines = _not_verified(gate)
    assert len(lines) == 1 and "Team Adoption Probe" in lines[0], lines
    assert "probe-is-reported" in gate.stderr
    spec.write_text(original, encoding="utf-8")
    assert P.specgen(project, "generate").returncode == 0

    # Bind every scenario of a baselined requirement, verify it, leave it listed: the ratchet.
    req = sorted(baseline["requirements"])[0]
    ids = [s["id"] for r in report["requirements"] if r["id"] == req for s in r["scenarios"]]
    assert ids and not P.unbound_ids(project)  # `check` shows no baselined gap
    P.bind_passing(project, ids)
    assert P.specgen(project, "generate").returncode == 0
    assert P.specgen(project, "review", req + "/").returncode == 0
    cap = req.split("/")[0]
    ran = P.pytest_run(
        project,
        "-q",
        "-p",
        "no:cacheprovider",
        f"tests/generated/test_{cap.replace('-', '_')}.py",
        "-k",
        req.split("/")[1].replace("-", "_"),
    )
    assert P.pytest_counts(ran)["passed"] == len(ids), P.output(ran)[-3000:]
    gate = _gate(project)
    assert gate.returncode == 1, P.output(gate)[-3000:]
    assert re.search(
        rf"ratchet: {re.escape(req)} is verified now but is still listed in specgen.baseline.json", gate.stderr
    )
    assert not _not_verified(gate)
    update = P.specgen(project, "baseline", "--update")
    assert update.returncode == 0 and f"dropped {req}" in update.stdout, P.output(update)
    assert req not in json.loads((project / "specgen.baseline.json").read_text(encoding="utf-8"))["requirements"]
    assert _gate(project).returncode == 0


def _tree_with_gaps(root: Path, n: int) -> Path:
    reqs = "".join(
        f"### Requirement: Gap {k}\nThe system SHALL close gap {k}.\n\n#### Scenario: Gap {k} closes\n"
        f"- **WHEN** gap {k} is probed\n- **THEN** it is closed\n\n"
        for k in range(n)
    )
    spec = root / "openspec" / "specs" / "gaps" / "spec.md"
    spec.parent.mkdir(parents=True)
    spec.write_text(
        f"# gaps Specification\n\n## Purpose\nGaps to close, one per requirement.\n\n## Requirements\n{reqs}",
        encoding="utf-8",
    )
    (root / "openspec" / "changes").mkdir()
    P.make_project(root)
    return root


def test_check_format_github_caps_annotations_worst_first(tmp_path):
    project = _tree_with_gaps(tmp_path, 30)
    proc = P.specgen(project, "check", "--format", "github")
    P.assert_no_crash(proc, "specgen check --format github")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    errors = [ln for ln in lines if ln.startswith("::error ")]
    notices = [ln for ln in lines if ln.startswith("::notice ")]
    assert len(errors) == 10 and len(notices) == 1, proc.stdout
    # Worst first: uncovered requirements before their unbound scenarios; the rest counted in the notice.
    assert all("uncovered-requirement" in ln for ln in errors), errors
    total = json.loads(P.specgen(project, "check", "--format", "json").stdout)["summary"]["errors"]
    assert re.search(rf"::{total - 10} more issue\(s\) not annotated", notices[0]), (total, notices)


def test_report_appends_the_step_summary(tmp_path, monkeypatch):
    project = _tree_with_gaps(tmp_path, 3)
    assert P.specgen(project, "generate").returncode == 0
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    proc = P.specgen(project, "report", "--gate", "--format", "github")
    assert proc.returncode == 1
    assert len([ln for ln in proc.stdout.splitlines() if ln.startswith("::error ")]) == 3, proc.stdout
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n## specgen: 0/3 requirements verified"), text[:300]


def test_the_pre_commit_hook_and_the_action_run_the_gate():
    import yaml

    (hook,) = yaml.safe_load((P.REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["entry"] == "specgen check" and hook["pass_filenames"] is False
    files = re.compile(hook["files"])
    assert files.search("openspec/specs/auth/spec.md") and files.search("tests/checks/auth.py")
    assert not files.search("src/app/main.py")
    action = yaml.safe_load((P.REPO / "action.yml").read_text(encoding="utf-8"))
    assert set(action["inputs"]) >= {"root", "python-version", "args"}
    steps = [step for step in action["runs"]["steps"] if "run" in step]
    runs = " ".join(step["run"] for step in steps)
    assert "${{" not in runs  # inputs and paths reach the shell only through the environment
    assert "python -m specgen.cli.action check" in runs and "python -m specgen.cli.action report" in runs
    assert {step.get("env", {}).get("SPECGEN_ARGS") for step in steps} >= {"${{ inputs.args }}"}
