"""One project model (specgen/config.py): `--root` is the project root for every command, and
`[tool.specgen] specs` is honoured by every command, list/show/validate/apply included."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.specgen.parity import FIXTURES, run_specgen

COMPILER_BASIC = FIXTURES.parent / "compiler-basic"
PYPROJECT = """[tool.specgen]
specs = "docs/openspec"
checks = ["checks"]
output = "generated"
manual = "manual"
"""


def _nested_project(tmp_path: Path) -> Path:
    """compiler-basic with its OpenSpec folder moved to docs/openspec, plus an active change."""
    root = tmp_path / "proj"
    shutil.copytree(COMPILER_BASIC, root)
    (root / "docs").mkdir()
    shutil.move(str(root / "openspec"), str(root / "docs" / "openspec"))
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    change = root / "docs/openspec/changes/add-farewell"
    (change / "specs/greeting").mkdir(parents=True)
    (change / "proposal.md").write_text("# Add farewell\n\n## Why\nPeople leave.\n\n## What Changes\n"
                                        "- Add a farewell.\n", encoding="utf-8")
    (change / "specs/greeting/spec.md").write_text(
        "## ADDED Requirements\n\n### Requirement: Departure\nThe greeter SHALL say goodbye.\n\n"
        "#### Scenario: Leaving\n- **WHEN** a person leaves\n- **THEN** the greeter says goodbye\n", encoding="utf-8")
    return root


@pytest.fixture()
def project(tmp_path):
    return _nested_project(tmp_path)


def test_every_reading_command_honours_the_configured_specs_folder(project):
    rc, out, err = run_specgen("list", "--specs", "--json", "--root", str(project))
    assert rc == 0, err
    data = json.loads(out)
    assert [s["id"] for s in data["specs"]] == ["greeting"]
    assert data["root"]["path"] == os.path.realpath(project / "docs")  # the folder holding openspec/, as the CLI
    rc, out, err = run_specgen("list", "--json", "--root", str(project))
    assert rc == 0 and [c["name"] for c in json.loads(out)["changes"]] == ["add-farewell"], err
    rc, out, err = run_specgen("show", "greeting", "--json", "--root", str(project))
    assert rc == 0 and json.loads(out)["id"] == "greeting", err
    rc, out, err = run_specgen("validate", "--all", "--json", "--root", str(project))
    assert rc == 0, out + err
    assert {i["id"] for i in json.loads(out)["items"]} == {"greeting", "add-farewell"}
    rc, out, err = run_specgen("apply", "add-farewell", "--dry-run", "--root", str(project))
    assert rc == 0, err
    assert "### Requirement: Departure" in out and "Nothing was written" in out


def test_without_root_the_project_is_found_from_the_current_folder(project, monkeypatch):
    monkeypatch.chdir(project / "checks")
    rc, out, err = run_specgen("list", "--specs", "--json")
    assert rc == 0 and [s["id"] for s in json.loads(out)["specs"]] == ["greeting"], err
    rc, out, err = run_specgen("validate", "greeting")
    assert rc == 0, err


def test_compile_commands_take_the_same_root(project):
    rc, out, err = run_specgen("generate", "--root", str(project))
    assert rc == 0, err
    assert (project / "generated/test_greeting.py").is_file()
    assert (project / "generated/changes/test_add_farewell__greeting.py").is_file()


def test_a_missing_configured_folder_is_named_as_configured(project):
    shutil.rmtree(project / "docs")
    for argv in (["list", "--specs"], ["validate", "--all"], ["check"], ["generate"]):
        rc, out, err = run_specgen(*argv, "--root", str(project))
        assert rc == 2, (argv, out, err)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert "tool.specgen.specs" in lines[0] and "docs/openspec" in lines[0], lines[0]
        assert "pyproject.toml" in lines[0], lines[0]


def test_an_unconfigured_project_never_names_a_folder_it_does_not_have(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    for argv in (["list"], ["show", "x"], ["validate", "--all"], ["apply", "x"], ["check"]):
        rc, out, err = run_specgen(*argv, "--root", str(tmp_path))
        assert rc == 2, (argv, err)
        assert "run `openspec init`" in err and "tool.specgen.specs" in err, (argv, err)
        assert str(tmp_path / "openspec") not in err, err  # the default folder is not there: not named


def test_the_specs_folder_must_be_called_openspec(project):
    (project / "pyproject.toml").write_text(PYPROJECT.replace("docs/openspec", "docs"), encoding="utf-8")
    rc, _, err = run_specgen("list", "--root", str(project))
    assert rc == 2 and "tool.specgen.specs" in err and "openspec" in err, err


def test_root_is_never_searched_upwards(project):
    # --root names the project root itself: a sub-folder of a project is not that project.
    rc, _, err = run_specgen("validate", "--all", "--root", str(project / "checks"))
    assert rc == 2 and "openspec init" in err, err
