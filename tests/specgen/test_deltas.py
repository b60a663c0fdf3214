"""The delta engine: the requirement-block reader, apply_change (in memory), and `specgen apply`
(write + archive, and a dry run that never writes). Byte-for-byte parity with `openspec archive`
is in test_parity_validate.py; these tests pin the API and the CLI around it."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from specgen.archive import archive_change
from specgen.cli import main
from specgen.errors import SpecgenError
from specgen.model import Project
from specgen.reader.blocks import fold_requirement_name, normalize_requirement_name, parse_delta_spec
from specgen.rules.archive import apply_change
from specgen.rules.merge import ArchiveAbort, build_updated_spec

PROJECT = Path(__file__).resolve().parents[1] / "fixtures" / "parity-validate" / "changes-rules"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(PROJECT / "openspec", tmp_path / "openspec")
    return tmp_path


def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_parse_delta_spec_sections_and_lines():
    text = ("## ADDED Requirements\n### Requirement: A\nThe system SHALL a.\n\n#### Scenario: s\n- x\n\n"
            "## REMOVED Requirements\n- `### Requirement: Old`\n\n"
            "## RENAMED Requirements\n- FROM: `### Requirement: X`\n- TO: `### Requirement: Y`\n")
    plan = parse_delta_spec(text)
    assert [(b.name, b.line) for b in plan.added] == [("A", 2)]
    assert plan.added[0].raw.endswith("- x")
    assert [(r.name, r.line) for r in plan.removed] == [("Old", 9)]
    assert [(p.frm, p.to, p.line) for p in plan.renamed] == [("X", "Y", 12)]
    assert plan.section_presence == {"added": True, "modified": False, "removed": True, "renamed": True}


def test_fenced_headers_are_not_structure():
    text = "## ADDED Requirements\n### Requirement: A\nSHALL.\n```\n### Requirement: B\n## REMOVED Requirements\n```\n"
    plan = parse_delta_spec(text)
    assert [b.name for b in plan.added] == ["A"] and not plan.removed


def test_requirement_names_normalise_closing_hashes_only():
    assert normalize_requirement_name("  Foo ###  ") == "Foo"
    assert normalize_requirement_name("C#") == "C#"
    assert fold_requirement_name("Sign  Out") == fold_requirement_name("sign out")


def test_apply_change_merges_in_memory_and_returns_a_model(project: Path):
    before = _tree(project)
    result = apply_change(project, "renamed-then-modified")
    assert _tree(project) == before, "apply_change must not write"
    merged = result.specs["auth"]
    assert merged.changed and not merged.created
    assert merged.counts == {"added": 0, "modified": 1, "removed": 0, "renamed": 1}
    assert "### Requirement: Sign out" in merged.text and "### Requirement: Logout" not in merged.text
    assert merged.origins["Sign out"][0].name == "spec.md"
    assert isinstance(result.project, Project)
    assert "renamed-then-modified" not in {c.id for c in result.project.changes}
    auth = result.project.spec("auth")
    assert auth.path == project / "openspec/specs/auth/spec.md"
    assert "Sign out" in {r.name for r in auth.requirements}


def test_apply_change_creates_new_capabilities(project: Path):
    result = apply_change(project, "new-capability")
    spec = result.specs["payments"]
    assert spec.created and spec.text.startswith("# payments Specification\n\n## Purpose\nTake payments")
    assert result.project.spec("payments") is not None


@pytest.mark.parametrize("change,needle,line", [
    ("modified-missing", 'MODIFIED failed for header "### Requirement: Nonexistent" - not found', 2),
    ("added-exists", 'ADDED failed for header "### Requirement: Logout" - already exists', 2),
    ("renamed-missing-source", "source not found", 2),
    ("removed-near-miss", "REMOVED failed", 2),
    ("new-capability-modified", "only ADDED requirements are allowed for new specs", 2),
])
def test_abort_conditions_raise_with_the_delta_location(project: Path, change, needle, line):
    with pytest.raises(ArchiveAbort) as info:
        apply_change(project, change)
    exc = info.value
    assert isinstance(exc, SpecgenError) and needle in exc.message
    assert Path(exc.path).name == "spec.md" and exc.line == line


def test_unknown_change_is_bad_input(project: Path):
    with pytest.raises(SpecgenError, match="not found. Available changes:"):
        apply_change(project, "no-such-change")


def test_dry_run_never_writes(project: Path, capsys):
    before = _tree(project)
    assert main(["apply", "multi-spec", "--dry-run", "--root", str(project)]) == 1  # refuses: billing would break
    assert main(["apply", "renamed-then-modified", "--dry-run", "--root", str(project)]) == 0
    out = capsys.readouterr().out
    assert "==> openspec/specs/auth/spec.md (update" in out and "### Requirement: Sign out" in out
    assert "Nothing was written." in out
    assert _tree(project) == before


def test_apply_writes_specs_and_archives_the_change(project: Path, capsys):
    assert main(["apply", "added-ok", "--root", str(project)]) == 0
    today = dt.date.today().isoformat()
    assert (project / f"openspec/changes/archive/{today}-added-ok/proposal.md").is_file()
    assert not (project / "openspec/changes/added-ok").exists()
    assert "### Requirement: Password reset" in (project / "openspec/specs/auth/spec.md").read_text()
    assert f"archived as '{today}-added-ok'" in capsys.readouterr().out


def test_refused_apply_writes_nothing_and_exits_1(project: Path, capsys):
    before = _tree(project)
    assert main(["apply", "modified-drops-scenario", "--root", str(project)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("openspec/changes/modified-drops-scenario/specs/auth/spec.md:2: error: auth MODIFIED failed")
    assert "Aborted. No files were changed." in err
    assert _tree(project) == before


def test_crlf_specs_keep_their_line_endings(project: Path):
    spec = project / "openspec/specs/auth/spec.md"
    spec.write_bytes(spec.read_bytes().replace(b"\n", b"\r\n"))
    archive_change(project, "added-ok")
    data = spec.read_bytes()
    assert b"Password reset" in data and data.count(b"\r\n") == data.count(b"\n")


def test_archive_dated_change_keeps_its_name_and_refuses_a_taken_destination(project: Path):
    out = archive_change(project, "2026-02-02-dated")
    assert out.archived_as == "2026-02-02-dated"
    shutil.copytree(project / "openspec/changes/added-ok", project / "openspec/changes/archive/2026-01-01-added-ok")
    with pytest.raises(ArchiveAbort, match="already exists"):
        archive_change(project, "added-ok", today=dt.date(2026, 1, 1))


def test_retirement_deletes_the_emptied_spec_only_when_declared(project: Path):
    with pytest.raises(ArchiveAbort) as info:
        archive_change(project, "removed-all", dry_run=True)
    assert info.value.code == "archive_spec_validation_failed" and "retire_capabilities: true" in info.value.fix
    out = archive_change(project, "removed-all-retire")
    assert out.outcomes == {"empty-ish": "retire"}
    assert not (project / "openspec/specs/empty-ish").exists()


def test_merged_text_matches_build_updated_spec_formatting():
    target = "# t\n\n## Purpose\nP.\n## Requirements\n### Requirement: A\nThe system SHALL a.\n\n\n\n#### Scenario: s\n- x\n"
    delta = "## ADDED Requirements\n### Requirement: B\nThe system SHALL b.\n\n#### Scenario: s\n- y\n"
    res = build_updated_spec("t", delta, target, "c")
    assert res.rebuilt == ("# t\n\n## Purpose\nP.\n\n## Requirements\n\n### Requirement: A\nThe system SHALL a.\n\n"
                           "#### Scenario: s\n- x\n\n### Requirement: B\nThe system SHALL b.\n\n#### Scenario: s\n- y\n")


def test_a_failed_move_puts_the_written_specs_back(project: Path):
    archive = project / "openspec/changes/archive"
    shutil.rmtree(archive, ignore_errors=True)
    archive.write_text("not a folder")  # the move into changes/archive/ must fail
    before = _tree(project)
    with pytest.raises(OSError):
        archive_change(project, "added-ok")
    assert _tree(project) == before
