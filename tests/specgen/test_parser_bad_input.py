"""Bad input: a clear one-line error naming the file (exit 2) or the CLI's behaviour; never a
traceback, never a hang, linear time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specgen.reader.changes import count_tasks, parse_proposal_text
from specgen.reader.deltas import parse_delta_text
from specgen.reader.specs import parse_spec_text
from specgen.rules.validate_spec import validate_spec_content
from tests.specgen.oracle import REPO
from tests.specgen.parity import run_specgen

SPEC = """# S

## Purpose
Something.

## Requirements

### Requirement: One
The system SHALL do one thing.

#### Scenario: First
- **WHEN** x
- **THEN** y
"""


def _project(tmp_path: Path, specs: dict[str, bytes | str]) -> Path:
    for sid, content in specs.items():
        p = tmp_path / "openspec" / "specs" / sid / "spec.md"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    (tmp_path / "openspec" / "changes").mkdir(parents=True, exist_ok=True)
    return tmp_path


def _one_line_error(err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_non_utf8_bytes_name_file_and_line(tmp_path):
    root = _project(tmp_path, {"ok": SPEC, "latin1": SPEC.replace("Something.", "Caf\xe9.").encode("latin-1")})
    rc, out, err = run_specgen("show", "latin1", "--root", str(root))
    assert rc == 2 and out == ""
    _one_line_error(err, "latin1/spec.md:4: error:", "not valid UTF-8")
    rc, out, err = run_specgen("list", "--specs", "--json", "--root", str(root))
    assert rc == 2
    listed = json.loads(out)  # still one JSON document on stdout: the rest listed, the bad file named
    assert listed["status"][0]["code"] == "list_error" and [s["id"] for s in listed["specs"]] == ["ok"]
    _one_line_error(err, "latin1/spec.md:4: error:")


def test_binary_spec_md(tmp_path):
    root = _project(tmp_path, {"bin": bytes(range(256)) * 64})
    rc, out, err = run_specgen("show", "bin", "--json", "--root", str(root))
    assert rc == 2
    assert json.loads(out)["status"][0]["code"] == "show_error"
    _one_line_error(err, "bin/spec.md:1: error:", "binary")


def test_spec_md_that_is_a_directory(tmp_path):
    root = _project(tmp_path, {})
    (root / "openspec" / "specs" / "d" / "spec.md" / "x").mkdir(parents=True)
    rc, out, err = run_specgen("show", "d", "--type", "spec", "--root", str(root))
    assert rc == 2
    _one_line_error(err, "d/spec.md: error:", "directory")


@pytest.mark.parametrize("layout", ["missing", "empty", "file"])
def test_missing_or_empty_openspec(tmp_path, layout):
    if layout == "empty":
        (tmp_path / "openspec").mkdir()
    elif layout == "file":
        (tmp_path / "openspec").write_text("not a folder")
    for argv in (["list", "--json"], ["list", "--specs", "--json"], ["show", "x", "--json"]):
        rc, out, err = run_specgen(*argv, "--root", str(tmp_path))
        assert rc == 2
        status = json.loads(out)["status"][0]
        assert status["code"] == "no_openspec_root"  # the CLI's JSON failure payload
        # Located at the folder that is there: the openspec/ folder when it exists, else the root.
        _one_line_error(err, "openspec: error:" if layout == "empty" else f"{tmp_path}: error:", "no OpenSpec root")


def test_root_that_does_not_exist(tmp_path):
    rc, out, err = run_specgen("list", "--root", str(tmp_path / "nope"))
    assert rc == 2
    _one_line_error(err, "nope", "no such folder")


def test_unknown_and_ambiguous_ids(tmp_path):
    root = _project(tmp_path, {"auth": SPEC})
    rc, out, err = run_specgen("show", "auht", "--json", "--root", str(root))
    assert rc == 2
    assert json.loads(out)["status"][0] == {
        "severity": "error", "code": "unknown_item", "message": "Unknown item 'auht'. Did you mean: auth?"}
    _one_line_error(err, "error: Unknown item 'auht'")
    (root / "openspec" / "changes" / "auth").mkdir()
    rc, out, err = run_specgen("show", "auth", "--root", str(root))
    assert rc == 2
    _one_line_error(err, "Ambiguous item 'auth'")
    rc, out, err = run_specgen("show", "auth", "--type", "spec", "--json", "--root", str(root))
    assert rc == 0 and json.loads(out)["id"] == "auth"


def test_symlink_loops_under_openspec(tmp_path):
    root = _project(tmp_path, {"ok": SPEC})
    specs = root / "openspec" / "specs"
    (specs / "loopdir").mkdir()
    os.symlink("..", specs / "loopdir" / "up")  # a directory loop: never followed
    os.symlink(specs, root / "openspec" / "changes" / "loop")
    rc, out, err = run_specgen("list", "--specs", "--json", "--root", str(root))
    assert rc == 0, err
    assert [s["id"] for s in json.loads(out)["specs"]] == ["ok"]
    rc, out, err = run_specgen("list", "--json", "--root", str(root))
    assert rc == 0, err
    # a spec.md that links to itself: the CLI fails (ELOOP); so does specgen, naming the file
    (specs / "self").mkdir()
    os.symlink("spec.md", specs / "self" / "spec.md")
    rc, out, err = run_specgen("list", "--specs", "--root", str(root))
    assert rc == 2
    _one_line_error(err, "self/spec.md: error:")


def test_deep_folder_nesting(tmp_path):
    root = _project(tmp_path, {})
    deep = root / "openspec" / "specs"
    parts = ["d"] * 150
    target = deep.joinpath(*parts)
    target.mkdir(parents=True)
    (target / "spec.md").write_text(SPEC)
    rc, out, err = run_specgen("list", "--specs", "--json", "--root", str(root))
    assert rc == 0, err
    assert json.loads(out)["specs"] == [{"id": "/".join(parts), "requirementCount": 1}]


def test_deep_heading_and_list_nesting_is_fast():
    lines = ["## Purpose", "x", "## Requirements", "### Requirement: R", "The system SHALL nest."]
    for i in range(100_000):  # headings climbing and falling through all six levels
        lines.append("#" * (i % 6 + 1) + f" h{i}")
    for depth in range(3000):  # a list nested 3000 levels deep
        lines.append("  " * depth + f"- item {depth}")
    lines += ["#### Scenario: After", "- **THEN** ok"]
    text = "\n".join(lines)
    t = time.perf_counter()
    parsed = parse_spec_text(text)
    assert time.perf_counter() - t < 30
    assert parsed.error is None


def test_unterminated_fence_runs_to_the_end(tmp_path):
    root = _project(tmp_path, {"open": SPEC + "```\n#### Scenario: swallowed\n### Requirement: Swallowed\n"})
    rc, out, err = run_specgen("show", "open", "--json", "--root", str(root))
    assert rc == 0, err
    reqs = json.loads(out)["requirements"]
    assert len(reqs) == 1 and reqs[0]["scenarios"][0]["rawText"].endswith("### Requirement: Swallowed")


def test_pathological_lines_stay_linear():
    """Lines that make a backtracking regex quadratic (long blank runs before a U+2028 or a
    stray character), as the CLI's own patterns would be, parse in linear time here."""
    sp = " " * 1_000_000
    spec = (SPEC + "# " + sp + "x\u2028y\n#### " + sp + "a\u2028b#\n### Requirement: " + sp + "#" + sp + "#x#\n")
    delta = ("## REMOVED Requirements\n- `### Requirement: a" + sp + "b\n### Requirement: " + sp + "\u2028x\n"
             "## RENAMED Requirements\n- FROM: ### Requirement: a" + sp + "b\n"
             "## ADDED Requirements\n### Requirement: x" + sp + "\u2028y\n")
    proposal = "# " + sp + "\n## Why\nx\n## What Changes\n- **a**: " + sp + "\u2028b\n"
    t = time.perf_counter()
    parse_spec_text(spec)
    parse_delta_text(delta)
    parse_proposal_text(proposal, "x")
    count_tasks("- [" + sp + "x\n- [ ]" + sp + "\n")
    validate_spec_content("s", spec + "### Requirement: x" + sp + "\u2028y\n")  # the structural check too
    assert time.perf_counter() - t < 20


def test_fifty_megabyte_spec_is_linear(tmp_path):
    block = ("### Requirement: R{i}\nThe system SHALL do thing {i}.\n**ID**: X-{i}\n\n#### Scenario: S{i}\n"
             "- **WHEN** {i}\n- **THEN** ok\n\n```\ncode {i}\n```\n\n#### Scenario: T{i}\n- **GIVEN** x\n\n")
    head = "# Big\n\n## Purpose\nA big spec.\n\n## Requirements\n\n"
    n = 50_000_000 // len(block.format(i=100000))
    text = head + "".join(block.format(i=i) for i in range(n))
    assert len(text) >= 49_000_000
    small = head + "".join(block.format(i=i) for i in range(n // 10))
    t = time.perf_counter()
    assert len(parse_spec_text(small).requirements) == n // 10
    t_small = time.perf_counter() - t
    t = time.perf_counter()
    parsed = parse_spec_text(text)
    t_big = time.perf_counter() - t
    assert len(parsed.requirements) == n
    assert parsed.requirements[-1].scenarios[1].name == f"T{n - 1}"
    # linear: ten times the text takes about ten times as long (generous bound for noisy CI)
    assert t_big < 25 * max(t_small, 0.05), (t_small, t_big)
    assert t_big < 120


def test_python_m_specgen_never_prints_a_traceback(tmp_path):
    root = _project(tmp_path, {"bad": b"\xff\xfe## Purpose\n"})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SPECGEN_DEBUG", None)
    for argv in (["show", "bad"], ["list", "--specs"], ["show", "nope", "--json"], ["list", "--root", "/nonexistent"]):
        proc = subprocess.run([sys.executable, "-m", "specgen", *argv, "--root", str(root)] if "--root" not in argv
                              else [sys.executable, "-m", "specgen", *argv],
                              cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("specgen: "), proc.stderr
