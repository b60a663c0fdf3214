"""Where the public OpenSpec corpora live: one setting for every test and benchmark that reads them.

`SPECGEN_CORPORA` names the folder holding them (relative paths are taken from the repository
root); its default is `../shared/corpora`. Each corpus is a folder holding `openspec/` (and its
licence): `openspec-self` (OpenSpec's own tree), `intellij-openspec`, `agent-validator`.

A test that reads a corpus carries `@pytest.mark.corpus(name)` (see tests/specgen/conftest.py):
where the corpus is absent the test is not run and the session ends with one summary line naming
what was missing; with `SPECGEN_REQUIRE_CORPORA=1` (set by `.ci/run`) its absence is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV_DIR = "SPECGEN_CORPORA"
ENV_REQUIRE = "SPECGEN_REQUIRE_CORPORA"
DEFAULT_DIR = "../shared/corpora"
NAMES = ("openspec-self", "intellij-openspec", "agent-validator")


def corpora_dir() -> Path:
    """The folder holding the corpora, as configured (it may not exist)."""
    return (REPO / os.environ.get(ENV_DIR, DEFAULT_DIR)).resolve()


def corpus(name: str) -> Path:
    """The folder holding `openspec/` for corpus `name` (it may not exist)."""
    if name not in NAMES:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(NAMES)}")
    return corpora_dir() / name


def present(name: str) -> bool:
    return (corpus(name) / "openspec").is_dir()


def required() -> bool:
    """True when a missing corpus must fail the run (CI) rather than leave its tests not run."""
    return os.environ.get(ENV_REQUIRE, "") not in ("", "0")


def marks(*names: str | None) -> list:
    """The `corpus` mark for those of `names` that are public corpora (fixtures and this project need none)."""
    public = [n for n in names if n in NAMES]
    return [pytest.mark.corpus(*public)] if public else []


def name_of(root: Path) -> str | None:
    """The corpus name of a folder holding `openspec/`, or None when it is not a public corpus."""
    return next((n for n in NAMES if corpus(n) == root), None)
