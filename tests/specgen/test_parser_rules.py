"""The line rules, one by one (each is also pinned against the CLI by the parity fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specgen.reader.blocks import delta_requirement_name
from specgen.reader.changes import count_tasks, proposal_title
from specgen.reader.deltas import parse_delta_text
from specgen.reader.markdown import (
    Document,
    fence_mask,
    header_parts,
    requirement_text,
    scenario_name,
    strip_closing_run,
    tail_text,
)
from specgen.reader.text import js_trim, normalize


def test_normalize_drops_one_bom_and_all_cr():
    assert normalize("\ufeff\ufeffa\r\nb\rc\n") == "\ufeffa\nb\nc\n"


def test_js_trim_uses_javascripts_whitespace():
    assert js_trim("\ufeff\xa0 x \u3000") == "x"
    assert js_trim("x\x85") == "x\x85" and js_trim("\x1cx") == "\x1cx"


@pytest.mark.parametrize("line, expected", [
    ("## Purpose", (2, "Purpose")),
    ("#\tTab", (1, "Tab")),
    ("###\xa0Requirement: X", (3, "Requirement: X")),
    ("## ", (2, None)),  # ends bodies, opens nothing
    ("##  ", (2, "")),  # a header with an empty title
    ("## a\u2028b", (2, None)),
    ("# \u2028x", (1, "x")),
    ("####### seven", None),
    ("#nospace", None),
    ("##\x1cx", None),  # U+001C is no blank to JavaScript
])
def test_header_parts(line, expected):
    assert header_parts(line) == expected


def test_tail_text_matches_javascripts_dot_and_dollar():
    assert tail_text("") is None and tail_text(" ") == "" and tail_text("\u2028") is None
    assert tail_text("  \u2028 x ") == "x" and tail_text("x\u2028") is None


@pytest.mark.parametrize("name, expected", [
    ("Foo ###", "Foo"), ("C#", "C#"), ("Foo\t#\t", "Foo"), ("Foo ## #", "Foo ##"), ("###", "###"), (" ###", ""),
])
def test_strip_closing_run(name, expected):
    assert strip_closing_run(name) == expected


def test_scenario_name_strips_run_then_prefix():
    assert scenario_name("Scenario: Sharp #") == "Sharp"
    assert scenario_name("scenario:\tLower") == "Lower"
    assert scenario_name("Edge case") == "Edge case"


def test_fences():
    lines = ["a", "  ````md", "```", "~~~", "````", "b", "~~~", "x", "~~~~ not a close", "~~~~"]
    assert fence_mask(lines) == [False, True, True, True, True, False, True, True, True, True]
    assert fence_mask(["```", "never closed", "# h"]) == [True, True, True]


def test_requirement_text_rules():
    assert requirement_text("Requirement: T", "**ID**: 1\nThe system SHALL x.\n```\nfenced\n```\nmore") == \
        "The system SHALL x.\nmore"
    assert requirement_text("Requirement: T", "**ID**: 1\n**P**: 2") == "**ID**: 1\n**P**: 2"
    assert requirement_text("Requirement: T", "#### x\nText") == "Requirement: T"
    assert requirement_text("Requirement: T", "") == "Requirement: T"


def test_document_fast_requirement_text_equals_the_reference():
    text = ("## Requirements\n### Requirement: A\n   #### indented first\nThe system SHALL a.\n"
            "### Requirement: B\nThe system SHALL b.\n######  \n### Requirement: C\n\n  \n")
    doc = Document(text)
    reqs = doc.find("Requirements").children
    for sec in reqs:
        assert doc.requirement_text(sec) == requirement_text(sec.title, doc.content(sec))
    # As the CLI reads them: an indented header becomes one once the body is trimmed, and a
    # trailing `######  ` (a header with an empty title) becomes text once it is trimmed.
    assert [doc.requirement_text(s) for s in reqs] == ["Requirement: A", "The system SHALL b.\n######", "Requirement: C"]


@pytest.mark.parametrize("line, expected", [
    ("### Requirement: Foo", "Foo"),
    ("###Requirement:Foo", "Foo"),
    ("### requirement: lower", "lower"),
    ("### Requirement: Foo ###", "Foo"),
    ("### Requirement:   ", ""),
    ("### Requirement:", None),
    ("### Requirement: Foo\u2028", "Foo"),
    ("### Requirement: Foo\u2028bar", None),
    ("#### Requirement: Foo", None),
])
def test_delta_requirement_name(line, expected):
    assert delta_requirement_name(line) == expected


def test_delta_sections_and_forms():
    dt = parse_delta_text("## added requirements\n### Requirement: A\nx\n### ADDED Requirements\n"
                          "## REMOVED Requirements\n- `### Requirement: B`\n* ### Requirement: C\n- ### requirement: d\n"
                          "## RENAMED Requirements\n- from: `### Requirement: X`\n- FROM: `### Requirement: E`\n"
                          "TO: ### Requirement: F\n")
    assert [b.name for b in dt.added] == ["A"]
    assert [r.name for r in dt.removed] == ["B", "C"]
    assert [(p.frm, p.to, p.line) for p in dt.renamed] == [("E", "F", 11)]


@pytest.mark.parametrize("raw, expected", [
    ("# Change: Foo\n", "Foo"),
    ("# Proposal\n## Why\n", "id"),
    ("\ufeff# Hidden\n", "id"),
    ("#\n\n## Why\n", "## Why"),
    ("# Title\r\n", "Title"),
    ("## Why\n", "id"),
])
def test_proposal_title(raw, expected):
    assert proposal_title(raw, "id") == expected


def test_task_lines():
    text = "\n".join(["- [ ] a", "* [x] b", "1. [X] c", "2) [~] d", "- [] e", "- [ x ] f", "- [A](u) no",
                      "- [ ](u) yes", "- [xx] no", "[x] no", "  + [x] g", "```", "- [x] fenced counts", "```"])
    assert count_tasks(text) == (9, 5)


def _blocks_line_by_line(content: str):
    """extract_requirements_section's block cut, spelled as the CLI's loop: line by line, a block
    runs from a `### Requirement:` header to the next one or the next `## ` header (not in a fence)."""
    from specgen.reader.blocks import LEVEL2_HEADER, REQUIREMENTS_HEADER, is_requirement_header

    lines = normalize(content).split("\n")
    mask = fence_mask(lines)
    idx = next((i for i, ln in enumerate(lines) if not mask[i] and REQUIREMENTS_HEADER.match(ln)), -1)
    if idx == -1:
        return None
    end = next((i for i in range(idx + 1, len(lines)) if not mask[i] and LEVEL2_HEADER.match(lines[i])), len(lines))
    body, bmask = lines[idx + 1 : end], mask[idx + 1 : end]

    def req(c):
        return not bmask[c] and is_requirement_header(body[c])

    def top(c):
        return not bmask[c] and LEVEL2_HEADER.match(body[c]) is not None

    cursor, preamble, blocks = 0, [], []
    while cursor < len(body) and not req(cursor):
        preamble.append(body[cursor])
        cursor += 1
    while cursor < len(body):
        if not req(cursor):
            cursor += 1
            continue
        start, cursor = cursor, cursor + 1
        while cursor < len(body) and not req(cursor) and not top(cursor):
            cursor += 1
        blocks.append((body[start], delta_requirement_name(body[start]), "\n".join(body[start:cursor]), idx + 2 + start))
    return "\n".join(preamble), blocks


def test_requirement_blocks_are_cut_as_line_by_line():
    """The block cut visits only the `##` lines; it must cut as the plain loop does."""
    import random

    from specgen.reader.blocks import extract_requirements_section
    from specgen.reader.text import js_trim_end

    pieces = ["## Requirements", "### Requirement: A", "### Requirement:", "###Requirement: B ##", "## Other",
              "##", "```", "~~~", "text SHALL", "#### Scenario: s", "- x", "", "  ### Requirement: C",
              "### requirement: d", "##\tTabbed", "###  Requirement:  \u2028x", "####", "### Other", "##x"]
    rnd = random.Random(11)
    texts = ["\n".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 30))) for _ in range(3000)]
    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    texts += [p.read_bytes().decode("utf-8", "replace") for p in sorted(fixtures.glob("**/spec.md")) if p.is_file()]
    cut = 0
    for text in texts:
        want = _blocks_line_by_line(text)
        if want is None:
            continue
        parts = extract_requirements_section(text)
        got = (parts.preamble, [(b.header_line, b.name, b.raw, b.line) for b in parts.body_blocks])
        assert got == (js_trim_end(want[0]), [(h, n, js_trim_end(r), ln) for h, n, r, ln in want[1]]), text
        cut += bool(want[1])
    assert cut > 300, "the texts must hold requirement blocks"


def test_js_len_counts_utf16_code_units():
    from specgen.reader.text import js_len

    assert [js_len(t) for t in ("", "abc", "é", "中文", "a\U0001f600", "\U0010ffff\U00010000", "\ud800", "\ufeffx")] == [
        0, 3, 1, 2, 3, 4, 1, 2,
    ]
