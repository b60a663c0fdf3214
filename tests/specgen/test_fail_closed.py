"""The gate fails closed: `check` and `report --gate` exit 1 when the gate's scope holds 0 requirements or a
gated main spec does not validate, with one line naming the spec (or the setting) and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.specgen import cli_project as P

SPEC = """\
# auth Specification

## Purpose
Authentication of users who sign in with a password and a second factor.

## {header}

### Requirement: Login
The system SHALL log users in.

#### Scenario: Good password
- **WHEN** a user gives the right password
- **THEN** the response status is `200`
"""


def _project(tmp_path: Path, header: str | None, gate: str = "") -> Path:
    root = P.make_project(tmp_path / "proj")
    (root / "openspec" / "specs").mkdir(parents=True)
    if header is not None:
        (root / "openspec" / "specs" / "auth").mkdir()
        (root / "openspec" / "specs" / "auth" / "spec.md").write_text(SPEC.format(header=header), encoding="utf-8")
    if gate:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
        (root / "pyproject.toml").write_text(text.replace("[tool.specgen]\n", f"[tool.specgen]\n{gate}\n"), "utf-8")
    return root


def _both(root: Path) -> list:
    out = []
    for argv in (("check",), ("report", "--gate")):
        proc = P.specgen(root, *argv)
        P.assert_no_crash(proc, f"specgen {' '.join(argv)}")
        out.append(proc)
    return out


@pytest.mark.parametrize(
    ("header", "gate", "where", "words"),
    [
        (None, "", "pyproject.toml: error: the gate holds 0 requirements", "holds no spec; write one"),
        ("ADDED Requirements", "", "openspec/specs/auth/spec.md:6: error: gated spec auth", "`## Requirements`"),
        (
            "Requirements",
            'gate = ["billing"]',
            "pyproject.toml: error: the gate holds 0 requirements",
            "fix the patterns",
        ),
    ],
    ids=["empty-openspec", "main-spec-written-as-delta", "gate-matches-nothing"],
)
def test_an_empty_or_unreadable_scope_fails_check_and_the_gate(tmp_path, header, gate, where, words):
    root = _project(tmp_path, header, gate)
    for proc in _both(root):
        text = P.output(proc)
        assert proc.returncode == 1, text
        lines = [ln for ln in text.splitlines() if ln.startswith(where)]
        assert len(lines) == 1 and words in lines[0], text


def test_a_valid_gated_spec_with_a_requirement_passes_the_scope_rule(tmp_path):
    root = _project(tmp_path, "Requirements")
    P.bind_passing(root, P.unbound_ids(root))
    assert P.specgen(root, "generate").returncode == 0
    check = P.specgen(root, "check")
    assert check.returncode == 0 and "empty-gate" not in check.stdout and "invalid-spec" not in check.stdout, P.output(
        check
    )
