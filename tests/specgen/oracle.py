"""The official OpenSpec CLI, as the parity oracle for specgen's tests.

Installed by the project's own set-up (`make setup`: npm ci in tools/openspec). A missing
oracle is a failure, not a skip: parity is part of what the suite proves.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

from tests.specgen import corpora

REPO = Path(__file__).resolve().parents[2]
OPENSPEC = REPO / "tools" / "openspec" / "node_modules" / ".bin" / "openspec"
SHARED_CORPUS = corpora.corpus("openspec-self")
ENV = {
    **os.environ,
    "OPENSPEC_TELEMETRY": "0",
    "DO_NOT_TRACK": "1",
    "OPENSPEC_NO_UPDATE_CHECK": "1",
    "CI": "1",
    "NO_COLOR": "1",
}


def require_oracle() -> Path:
    if not OPENSPEC.exists():
        raise AssertionError(f"{OPENSPEC} is missing: run `make setup` (npm ci in tools/openspec)")
    return OPENSPEC


def run(root: Path | str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `openspec <args>` with `root` (the folder holding openspec/) as the working directory."""
    return subprocess.run(
        [str(require_oracle()), *args], cwd=str(root), env=ENV, capture_output=True, text=True, timeout=timeout
    )


@functools.cache
def run_json(root: str, *args: str):
    """(exit code, parsed JSON stdout). Cached: the oracle is slow (~0.5 s a call)."""
    proc = run(root, *args)
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError as exc:
        raise AssertionError(f"openspec {' '.join(args)} in {root}: stdout is not JSON: {exc}\n{proc.stdout[:500]}\n{proc.stderr[:500]}")
    return proc.returncode, data
