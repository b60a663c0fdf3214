"""A renamed scenario: `check` says old id -> new id and shows the anchor; a binding moved by editing the
@check names is suspect until `specgen review`. Through the command line, on a fixture project."""

from __future__ import annotations

import json

from tests.specgen import cli_project as P

SPEC = """# greeting Specification

## Purpose
Greets people.

## Requirements
### Requirement: Greet
The system SHALL greet.

#### Scenario: {name}
- **WHEN** a person arrives
- **THEN** {then}
"""
CHECK = """from specgen import check


@check("greeting", "Greet", "{name}")
def check_greets():
    assert True
"""


def _write(project, name: str, then: str, check_name: str) -> None:
    (project / "openspec" / "specs" / "greeting" / "spec.md").write_text(SPEC.format(name=name, then=then))
    (project / "tests" / "checks" / "greeting.py").write_text(CHECK.format(name=check_name))


def _check(project) -> tuple[int, list[dict]]:
    proc = P.specgen(project, "check", "--format", "json")
    P.assert_no_crash(proc, "specgen check")
    return proc.returncode, json.loads(proc.stdout)["issues"]


def test_rename_is_named_and_a_moved_binding_is_suspect_until_reviewed(tmp_path):
    project = P.make_project(tmp_path / "proj")
    (project / "openspec" / "specs" / "greeting").mkdir(parents=True)
    (project / "openspec" / "changes").mkdir()
    _write(project, "Hello", "it is greeted", "Hello")
    assert P.specgen(project, "generate").returncode == 0
    assert _check(project)[0] == 0

    _write(project, "Hello there", "it is greeted warmly", "Hello")  # renamed, and its meaning changed
    rc, issues = _check(project)
    renamed = [i for i in issues if i["code"] == "renamed-scenario"]
    assert rc == 1 and len(renamed) == 1, issues
    assert "greeting/greet/hello -> greeting/greet/hello-there" in renamed[0]["message"]
    assert "<!-- specgen-id: greeting/greet/hello -->" in renamed[0]["message"]

    _write(project, "Hello there", "it is greeted warmly", "Hello there")  # the binding moved by hand
    assert P.specgen(project, "generate").returncode == 0
    rc, issues = _check(project)
    assert rc == 1 and [i["code"] for i in issues] == ["suspect-binding"], issues
    assert "greeting/greet/hello-there" in issues[0]["message"]
    assert P.specgen(project, "review", "greeting/greet/hello-there").returncode == 0
    assert _check(project) == (0, [])


def test_show_json_lists_scenario_ids(tmp_path):
    project = P.make_project(tmp_path / "proj")
    (project / "openspec" / "specs" / "greeting").mkdir(parents=True)
    (project / "openspec" / "changes").mkdir()
    _write(project, "Hello", "it is greeted", "Hello")
    shown = json.loads(P.specgen(project, "show", "greeting", "--json").stdout)
    assert shown["requirements"][0]["scenarios"][0]["id"] == "greeting/greet/hello"
