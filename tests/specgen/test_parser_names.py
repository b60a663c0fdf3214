"""What the OpenSpec CLI does not print, so the parity tests cannot check: requirement and
scenario names, line numbers, anchors, and the model fields specgen adds."""

from __future__ import annotations

from pathlib import Path

import pytest

from specgen.model import ADDED, MODIFIED, REMOVED, RENAMED
from specgen.reader.blocks import delta_requirement_name
from specgen.reader.changes import parse_change
from specgen.reader.load import load_tree
from specgen.reader.markdown import header_of
from specgen.reader.specs import parse_spec, parse_spec_text
from specgen.reader.text import normalize
from tests.specgen.parity import CORPORA, FIXTURES

STRUCT = FIXTURES / "specs-structure" / "openspec" / "specs"
DELTAS = FIXTURES / "changes-deltas" / "openspec" / "changes"


def _lines(path: Path) -> list[str]:
    return normalize(path.read_text(encoding="utf-8")).split("\n")


def _names(spec_id: str, root: Path = STRUCT):
    spec = parse_spec(root / spec_id / "spec.md", spec_id)
    return [(r.name, [s.name for s in r.scenarios]) for r in spec.requirements]


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_every_line_points_at_its_header(corpus):
    """Requirement and scenario `line`s are the header lines, and the names are read from them."""
    root = CORPORA[corpus]
    if not (root / "openspec").is_dir():
        pytest.skip("no openspec/ here yet")
    project = load_tree(root)
    checked = 0
    for spec in project.specs:
        lines = _lines(spec.path)
        for req in spec.requirements:
            h = header_of(lines[req.line - 1])
            assert h and h[0] >= 2, (spec.path, req.line, lines[req.line - 1])
            for sc in req.scenarios:
                hs = header_of(lines[sc.line - 1])
                assert hs and hs[0] > h[0], (spec.path, sc.line)
                checked += 1
    for change in project.changes + project.archived:
        for d in change.deltas:
            lines = _lines(d.path)
            line = lines[d.line - 1]
            if d.from_proposal:
                assert "**" in line
            elif d.operation == RENAMED:
                assert "FROM:" in line and d.rename_from in line
            elif d.operation in (ADDED, MODIFIED) or (d.operation == REMOVED and line.lstrip().startswith("###")):
                assert delta_requirement_name(line) == d.requirement.name, (d.path, d.line, line)
                for sc in d.requirement.scenarios:
                    assert header_of(lines[sc.line - 1])[0] >= 4, (d.path, sc.line)
            else:  # a REMOVED bullet
                assert d.name in line
            checked += 1
    assert checked or not (project.specs or project.changes or project.archived)


def test_names_drop_prefix_and_closing_run():
    assert _names("closing-hashes") == [
        ("Closed header", ["Closed scenario"]),
        ("C# support", ["Sharp"]),  # `#### Scenario: Sharp #` renders as "Sharp" (ATX closing run)
        ("Trailing blanks", ["Padded"]),
    ]


def test_names_of_unprefixed_headers_are_the_titles():
    assert _names("scenario-shapes")[4] == ("Plain title without the Requirement prefix", ["Not prefixed with Scenario"])
    assert _names("level-skip") == [("Orphan level four", []), ("Normal", ["Normal scenario"])]


def test_duplicate_and_non_ascii_names_are_kept():
    assert _names("duplicates") == [("Same name", ["Same scenario", "Same scenario"]), ("Same name", ["Same scenario"])]
    assert _names("non-ascii") == [("Café naïve résumé", ["Ünïcödé ✓"]), ("日本語の要件", ["🚀 launch"])]


def test_empty_scenarios_are_not_scenarios_and_lines_are_header_lines():
    spec = parse_spec(STRUCT / "scenario-shapes" / "spec.md")
    req = spec.requirements[1]
    assert (req.name, req.line, [(s.name, s.line) for s in req.scenarios]) == ("Empty scenario", 11, [("Real", 20)])


def test_anchor_comment_sets_anchor_and_stays_in_raw_text():
    spec = parse_spec(STRUCT / "scenario-shapes" / "spec.md")
    sc = spec.requirements[5].scenarios[0]
    assert sc.anchor == "shapes/anchored-1"
    assert sc.raw_text.startswith("<!-- specgen-id: shapes/anchored-1 -->\n")
    assert all(s.anchor is None for r in spec.requirements[:5] for s in r.scenarios)


def test_anchor_inside_a_fence_is_not_an_anchor():
    text = ("## Purpose\nx\n## Requirements\n### Requirement: A\nThe system SHALL x.\n#### Scenario: S\n"
            "```\n<!-- specgen-id: fenced -->\n```\n<!-- specgen-id:   real-one   -->\n- **THEN** y\n")
    sc = parse_spec_text(text).requirements[0].scenarios[0]
    assert sc.anchor == "real-one"


def test_spec_fields_beyond_the_cli():
    spec = parse_spec(STRUCT / "non-ascii" / "spec.md", "non-ascii")
    assert (spec.id, spec.title, spec.heading, spec.error) == ("non-ascii", "non-ascii", "Non-ASCII — naïve", None)
    bad = parse_spec(STRUCT / "purpose-closed" / "spec.md")
    assert bad.error == "Spec must have a Purpose section" and bad.requirements == ()
    assert parse_spec(STRUCT / "no-requirements" / "spec.md").error == "Spec must have a Requirements section"


def test_crlf_bom_and_lone_cr_give_the_same_lines():
    enc = FIXTURES / "specs-encoding" / "openspec" / "specs"
    got = {sid: [(r.name, r.line, [(s.name, s.line) for s in r.scenarios]) for r in parse_spec(enc / sid / "spec.md").requirements]
           for sid in ("crlf", "bom-crlf", "lone-cr")}
    assert got["crlf"] == got["bom-crlf"] == got["lone-cr"] == [
        ("Normalized", 8, [("Lines joined with LF", 12)]), ("Second", 20, [("Two", 23)])]


def test_unicode_whitespace_follows_javascript():
    spec = parse_spec(FIXTURES / "specs-encoding" / "openspec" / "specs" / "unicode-space" / "spec.md")
    assert [r.name for r in spec.requirements] == ["After NBSP", "Tab\tseparated"]
    # JavaScript's trim() keeps U+0085 and drops U+FEFF; Python's strip() does the opposite.
    assert [s.name for s in spec.requirements[0].scenarios] == [
        "After ideographic space", "Trailing NEL kept\x85", "Zero width no-break"]


def test_change_deltas_names_lines_and_order():
    ch = parse_change(DELTAS / "basic")
    assert [(d.operation, d.spec, d.name, d.rename_from, d.line) for d in ch.deltas] == [
        (ADDED, "auth", "Logout", "", 3),
        (MODIFIED, "auth", "Login", "", 12),
        (REMOVED, "auth", "Legacy login", "", 21),
        (RENAMED, "auth", "Sign in", "Login", 26),
    ]
    assert ch.title == "Basic deltas" and (ch.tasks_done, ch.tasks_total) == (1, 2)
    assert ch.deltas[0].requirement.scenarios[0].name == "Logout"
    assert ch.deltas[0].description == "Add requirement: The system SHALL log users out."


def test_removed_bullet_forms_and_lowercase_markers():
    ch = parse_change(DELTAS / "removed-forms")
    assert [d.name for d in ch.deltas] == [
        "Dash backticked", "Star bare", "Plus", "No space after dash", "Indented bullet", "Header form",
        "Twice", "Twice", "Closed", "Invoices"]
    low = parse_change(DELTAS / "lowercase")
    # `## added requirements` and `### requirement:` count; `- from:` and a lower-case bullet do not.
    assert [(d.operation, d.name, d.rename_from) for d in low.deltas] == [
        (ADDED, "lower-case header", ""), (REMOVED, "Upper bullet", ""), (RENAMED, "New", "Old")]


def test_wrong_level_sections_fall_back_to_what_changes():
    ch = parse_change(DELTAS / "wrong-level")
    assert all(d.from_proposal and d.path.name == "proposal.md" for d in ch.deltas)
    assert [(d.spec, d.operation) for d in ch.deltas][:3] == [("auth", ADDED), ("auth", REMOVED), ("billing", RENAMED)]


def test_change_errors_are_recorded_not_raised():
    assert parse_change(DELTAS / "missing-why").error == "Change must have a Why section"
    assert parse_change(DELTAS / "empty-what").error == "Change must have a What Changes section"
    nop = parse_change(DELTAS / "no-proposal")
    assert not nop.has_proposal and nop.error and nop.tasks_total == 1


def test_load_project_reads_archive():
    project = load_tree(FIXTURES / "changes-deltas")
    assert [c.id for c in project.archived] == ["2025-01-01-old", "2025-02-02-renamed"]
    assert all(c.archived for c in project.archived)
    assert ".hidden-change" not in [c.id for c in project.changes]
    assert project.archived[1].deltas[0].rename_from == "Login"
