"""A specgen run killed at any moment (SIGKILL: no cleanup runs) leaves the tree consistent: every generated
file whole (its header's digest matches its body), the lock readable, each spec either as it was or as
apply leaves it, and an apply cut short put right by the next one (docs/compiler.md, "Hostile input")."""

from __future__ import annotations

import ast
import hashlib
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specgen.compile import lock
from specgen.compile.generator import DIGEST, MARKER
from tests.specgen import cli_project as P

CAPS = ("alpha", "beta", "gamma")
RUNS = 50
SEED = 17

SPEC = """# {cap}

## Purpose
What {cap} does for the people who use it, said in one line.

## Requirements

### Requirement: Greet
The system SHALL greet the user.

#### Scenario: Hello
- **WHEN** a user arrives
- **THEN** the system greets them
"""

DELTA = """## ADDED Requirements

### Requirement: Wave
The system SHALL wave.

#### Scenario: Wave back
- **WHEN** a user waves
- **THEN** the system waves back
"""


def _pristine(base: Path) -> Path:
    """A reviewed project whose specs then changed (review has work), with stale generated files (generate
    has work) and an active change over every capability (apply has work)."""
    root = P.make_project(base / "pristine")
    body = "from specgen import check\n"
    for n, cap in enumerate(CAPS):
        (root / "openspec" / "specs" / cap).mkdir(parents=True)
        (root / "openspec" / "specs" / cap / "spec.md").write_text(SPEC.format(cap=cap), encoding="utf-8")
        body += f"\n\n@check({cap!r}, 'Greet', 'Hello')\ndef check_hello_{n}():\n    assert True\n"
    (root / "tests" / "checks" / "greet.py").write_text(body, encoding="utf-8")
    change = root / "openspec" / "changes" / "add-wave"
    change.mkdir(parents=True)
    (change / "proposal.md").write_text("## Why\nPeople wave.\n\n## What Changes\n- wave back\n", encoding="utf-8")
    for cap in CAPS:
        (change / "specs" / cap).mkdir(parents=True)
        (change / "specs" / cap / "spec.md").write_text(DELTA, encoding="utf-8")
    assert P.specgen(root, "generate").returncode == 0
    for cap in CAPS:
        spec = root / "openspec" / "specs" / cap / "spec.md"
        spec.write_text(spec.read_text().replace("greets them", "greets them warmly"), encoding="utf-8")
    shutil.rmtree(root / "build", ignore_errors=True)
    return root


def _specs(root: Path) -> dict[str, bytes]:
    return {cap: (root / "openspec" / "specs" / cap / "spec.md").read_bytes() for cap in CAPS}


def _assert_consistent(root: Path, before: dict[str, bytes], after: dict[str, bytes], what: str) -> None:
    for path in sorted((root / "tests" / "generated").rglob("test_*.py")):
        data = path.read_bytes()
        first, second, body = data.split(b"\n", 2)
        assert first.startswith(MARKER.encode()), f"{what}: {path.name} lost its header"
        digest = second.decode().rsplit("output=", 1)[-1]
        assert second.startswith(DIGEST.encode()) and digest == hashlib.sha256(body).hexdigest()[:16], (
            f"{what}: {path.name} is not whole"
        )
        ast.parse(data)
    lock.read(root / "specgen.lock")  # raises on a torn line
    specs = _specs(root)
    for cap in CAPS:
        assert specs[cap] in (before[cap], after[cap]), f"{what}: openspec/specs/{cap}/spec.md is torn"


def _kill_after(root: Path, args: list[str], delay: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "specgen", *args],
        cwd=root,
        env=P.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_at_random_moments_leaves_the_tree_consistent(tmp_path):
    pristine = _pristine(tmp_path)
    applied = tmp_path / "applied"
    shutil.copytree(pristine, applied, symlinks=True)
    assert P.specgen(applied, "apply", "add-wave").returncode == 0, "the change applies when left alone"
    before, after = _specs(pristine), _specs(applied)
    assert before != after
    rng = random.Random(SEED)
    commands = (["generate"], ["review", "--all"], ["apply", "add-wave"])
    recovered = 0
    for n in range(RUNS):
        root = tmp_path / f"run{n}"
        shutil.copytree(pristine, root, symlinks=True)
        args = commands[n % len(commands)]
        _kill_after(root, args, rng.uniform(0.0, 0.8))
        _assert_consistent(root, before, after, f"run {n} ({' '.join(args)})")
        if args[0] == "apply" and (root / "openspec" / "changes" / "add-wave").is_dir():
            # Cut short (or never started): the next apply finishes the job from a clean state.
            done = P.specgen(root, "apply", "add-wave")
            assert done.returncode == 0, P.output(done)
            assert _specs(root) == after, f"run {n}: apply after a kill did not reach the applied state"
            recovered += 1
        shutil.rmtree(root)
    assert recovered >= 1  # at least one apply was killed before it finished


_KILL_AT_WRITE = """
import os, sys
from specgen import fsio
from specgen.cli import main
real, left = fsio.write_bytes, int(sys.argv[1])
def dying(*a, **k):
    global left
    if left == 0:
        os._exit(9)  # as SIGKILL: no cleanup, no finally
    left -= 1
    real(*a, **k)
fsio.write_bytes = dying
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("writes", [1, 2, 3])
def test_apply_killed_between_spec_writes_is_put_right_by_the_next_apply(tmp_path, writes):
    pristine = _pristine(tmp_path)
    before = _specs(pristine)
    root = tmp_path / "root"
    shutil.copytree(pristine, root, symlinks=True)
    # The journal is the first write; then one write per spec: `writes` lets through the journal and
    # writes - 1 specs, so the tree is left half-applied.
    proc = P.run(root, "-c", _KILL_AT_WRITE, str(writes), "apply", "add-wave")
    assert proc.returncode == 9, P.output(proc)
    changed = [cap for cap in CAPS if _specs(root)[cap] != before[cap]]
    assert len(changed) == writes - 1
    done = P.specgen(root, "apply", "add-wave")
    assert done.returncode == 0, P.output(done)
    assert "interrupted" in done.stderr
    good = tmp_path / "good"
    shutil.copytree(pristine, good, symlinks=True)
    assert P.specgen(good, "apply", "add-wave").returncode == 0
    assert _specs(root) == _specs(good)
    assert not list((root / "openspec" / "changes" / "archive").rglob("*journal*"))
