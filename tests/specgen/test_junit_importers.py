"""junit.xml as test-management importers read it: [tool.specgen.junit] maps spec ids to Xray's and
TestRail's property names, and TestRail's own importer (trcli, from the dev extra) parses the file.

A fixture project runs through the command line (`specgen generate`, `pytest --junitxml`); the file is then
read by trcli's JUnit parser class, as `trcli parse_junit` reads it, with case matching by property.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.specgen import cli_project as P

SPEC = """# gaps Specification

## Purpose
Two requirements, one verified and one not, for the importers.

## Requirements
### Requirement: Gap one
The system SHALL close gap one.

#### Scenario: Gap one closes
- **WHEN** gap one is probed
- **THEN** it is closed

### Requirement: Gap two
The system SHALL close gap two.

#### Scenario: Gap two closes
- **WHEN** gap two is probed
- **THEN** it is closed
"""
JUNIT = """
[tool.specgen.junit]
xray = true
requirements = { "gaps/gap-one" = "PROJ-7" }
test_keys = { "gaps/gap-one/gap-one-closes" = "PROJ-101" }
testrail_ids = { "gaps/gap-one/gap-one-closes" = "C1234", "gaps/gap-two/gap-two-closes" = "C1235" }
"""


def _junit(tmp_path: Path) -> Path:
    project = P.make_project(tmp_path / "proj")
    (project / "openspec" / "specs" / "gaps").mkdir(parents=True)
    (project / "openspec" / "changes").mkdir()
    (project / "openspec" / "specs" / "gaps" / "spec.md").write_text(SPEC, encoding="utf-8")
    with (project / "pyproject.toml").open("a", encoding="utf-8") as fh:
        fh.write(JUNIT)
    P.bind_passing(project, ["gaps/gap-one/gap-one-closes"])
    assert P.specgen(project, "generate").returncode == 0
    ran = P.pytest_run(project, "-q", "-p", "no:cacheprovider", "tests/generated", "--junitxml=build/junit.xml")
    assert P.pytest_counts(ran) == {"passed": 1, "failed": 1, "error": 0, "skipped": 0}, P.output(ran)
    return project / "build" / "junit.xml"


def test_junit_cases_carry_the_importers_properties(tmp_path):
    cases = {
        c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")}
        for c in ET.parse(_junit(tmp_path)).iter("testcase")
    }
    one, two = cases["test_gap_one__gap_one_closes"], cases["test_gap_two__gap_two_closes"]
    assert one["scenario_id"] == "gaps/gap-one/gap-one-closes" and one["requirement"] == "Gap one"
    assert (one["requirements"], one["test_key"], one["test_id"]) == ("PROJ-7", "PROJ-101", "C1234")
    assert one["test_summary"] == "Gap one: Gap one closes"
    # Unmapped: Xray's requirement falls back to the spec id; no test key is invented.
    assert two["requirements"] == "gaps/gap-two" and "test_key" not in two and two["test_id"] == "C1235"


def test_trcli_parses_our_junit_and_finds_the_case_ids(tmp_path):
    pytest.importorskip("trcli", reason="TestRail's importer is in the dev extra: pip install -e '.[dev]'")
    from trcli.cli import Environment
    from trcli.readers.junit_xml import JunitParser

    env = Environment(cmd="parse_junit")
    env.file, env.case_matcher, env.special_parser = str(_junit(tmp_path)), "property", None
    suites = JunitParser(env).parse_file()
    found = {c.title: (c.case_id, c.result.status_id) for s in suites for sec in s.testsections for c in sec.testcases}
    # trcli's statuses: 1 passed, 5 failed.
    assert found == {"test_gap_one__gap_one_closes": (1234, 1), "test_gap_two__gap_two_closes": (1235, 5)}, found
