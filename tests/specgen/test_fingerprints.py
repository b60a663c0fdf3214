"""Fingerprints follow docs/compiler.md ("re-wrapping is not a change; a different word is"), through the
command line: in a copy of tests/fixtures/real-trees/fingerprints, whose one scenario
is bound and reviewed, each edit of the spec text is followed by `specgen generate` and `specgen check`.
Re-wrapping a THEN line onto a continuation line, re-indenting continuation lines, trailing spaces and
blank lines leave the binding as reviewed; a changed word makes it suspect."""

from __future__ import annotations

import shutil

import pytest

from tests.specgen import cli_project as P

FIXTURE = P.REPO / "tests" / "fixtures" / "real-trees" / "fingerprints"
SPEC = "openspec/specs/export/spec.md"
THEN = (
    "- **THEN** every requirement appears once, in the order of the spec file,\n"
    "  with its verdict and the reason for it\n"
)

SAME = {
    "then-rewrapped-across-lines": lambda t: t.replace(
        THEN,
        (
            "- **THEN** every requirement appears once, in the order of the spec file, with\n"
            "  its verdict and the reason for it\n"
        ),
    ),
    "then-onto-continuation-lines": lambda t: t.replace(
        THEN,
        (
            "- **THEN** every requirement appears once,\n  in the order of the spec file,\n"
            "  with its verdict\n  and the reason for it\n"
        ),
    ),
    "when-wrapped-onto-a-continuation-line": lambda t: t.replace(
        "a project with many requirements", "a project\n  with many requirements"
    ),
    "continuation-indented-deeper": lambda t: t.replace("  with its verdict", "        with its verdict"),
    "continuation-unindented": lambda t: t.replace("  with its verdict", "with its verdict"),
    "trailing-spaces": lambda t: t.replace("\n", "   \n"),
    "trailing-tab": lambda t: t.replace("counts them\n", "counts them\t\n"),
    "blank-lines-between-steps": lambda t: t.replace("\n- **", "\n\n- **"),
    "blank-lines-after-heading": lambda t: t.replace("Many requirements\n", "Many requirements\n\n\n"),
    "requirement-text-rewrapped": lambda t: t.replace("requirement,\nin the order", "requirement, in the order"),
}

CHANGED = {
    "word-in-then-line": lambda t: t.replace("appears once", "appears twice"),
    "word-in-continuation-line": lambda t: t.replace("the reason for it", "the cause of it"),
    "word-in-when-line": lambda t: t.replace("many requirements\n", "few requirements\n"),
    "step-added": lambda t: t.replace("counts them\n", "counts them\n- **AND** the file ends with a newline\n"),
}


@pytest.fixture
def project(tmp_path):
    """The fixture project, generated (which stamps the new binding) and green under `specgen check`."""
    root = P.make_project(tmp_path / "project", FIXTURE / "openspec")
    shutil.copy(FIXTURE / "checks" / "export.py", root / "tests" / "checks" / "export.py")
    generate = P.specgen(root, "generate")
    assert generate.returncode == 0, P.output(generate)
    rc, report = P.check_json(root)
    assert rc == 0 and report["ok"], report
    return root


def _edit_and_check(project, edit) -> tuple[int, list[dict]]:
    path = project / SPEC
    before = path.read_text(encoding="utf-8")
    after = edit(before)
    assert after != before, "the edit did not apply to the fixture text"
    path.write_text(after, encoding="utf-8")
    generate = P.specgen(project, "generate")
    P.assert_no_crash(generate, "specgen generate")
    rc, report = P.check_json(project)
    return rc, [i for i in report["issues"] if i["code"] == "suspect-binding"]


@pytest.mark.parametrize("edit", SAME.values(), ids=SAME.keys())
def test_layout_edits_leave_the_binding_reviewed(project, edit):
    rc, suspect = _edit_and_check(project, edit)
    assert not suspect, suspect
    assert rc == 0


@pytest.mark.parametrize("edit", CHANGED.values(), ids=CHANGED.keys())
def test_a_changed_word_makes_the_binding_suspect(project, edit):
    rc, suspect = _edit_and_check(project, edit)
    assert rc == 1
    assert len(suspect) == 1 and "export/export-report/many-requirements" in suspect[0]["message"], suspect
