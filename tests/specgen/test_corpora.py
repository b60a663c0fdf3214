"""The public corpora setting (tests/specgen/corpora.py, tests/specgen/conftest.py), from a pytest run as a user
starts it: with the corpora absent, their tests are not run, one loud line says so and the run passes; with
SPECGEN_REQUIRE_CORPORA=1 the same run fails naming them. Under xdist too (the names travel in the reports)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.specgen import corpora

# Four parity tests that read openspec-self and nothing else.
TARGET = ["tests/specgen/test_parity_oracle.py", "-k", "openspec-self"]


def _pytest(tmp_path, *extra: str, require: bool) -> tuple[int, str]:
    env = {**os.environ, corpora.ENV_DIR: str(tmp_path / "nowhere")}
    env.pop(corpora.ENV_REQUIRE, None)
    if require:
        env[corpora.ENV_REQUIRE] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *TARGET, "-q", "-p", "no:cacheprovider", *extra],
        cwd=corpora.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _loud_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "corpus tests" in line and line.startswith("!")]


@pytest.mark.parametrize("xdist", [[], ["-n", "1"]], ids=["serial", "xdist"])
def test_absent_corpora_are_not_run_and_said_once(tmp_path, xdist):
    rc, out = _pytest(tmp_path, *xdist, require=False)
    assert rc == 0, out
    lines = _loud_lines(out)
    assert len(lines) == 1, out
    assert "4 corpus tests NOT RUN: missing openspec-self" in lines[0], lines[0]
    assert str(tmp_path / "nowhere") in lines[0]
    assert "4 skipped" in out


@pytest.mark.parametrize("xdist", [[], ["-n", "1"]], ids=["serial", "xdist"])
def test_required_corpora_fail_the_run_naming_them(tmp_path, xdist):
    rc, out = _pytest(tmp_path, *xdist, require=True)
    assert rc == 1, out
    assert "4 errors" in out
    lines = _loud_lines(out)
    assert len(lines) == 1 and "4 corpus tests FAILED: missing openspec-self" in lines[0], out


def test_ci_requires_the_corpora():
    assert f"export {corpora.ENV_REQUIRE}=1" in (corpora.REPO / ".ci" / "run").read_text()


def test_relative_setting_is_taken_from_the_repository_root(monkeypatch):
    monkeypatch.setenv(corpora.ENV_DIR, "some/where")
    assert corpora.corpus("agent-validator") == corpora.REPO / "some" / "where" / "agent-validator"
