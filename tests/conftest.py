"""Session set-up shared by every test folder.

The smoke profiles (``configs/*/smoke/``) name a tiny model and a synthetic dataset under ``build/``. The training
recipes only require them to exist (``scripts/train.sh`` builds them with ``python -m coordexp.smoke.inputs``), so a
session that runs coordexp's tests or checks builds them once, before its first test, when they are missing. A lock
file keeps two xdist workers from writing the same files at once.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMOKE_PROFILES = (
    REPO / "configs" / "stage1" / "smoke" / "tiny_cpu.yaml",
    REPO / "configs" / "stage2_ab" / "smoke" / "tiny_cpu.yaml",
)
SMOKE_INPUTS = (
    REPO / "build" / "tiny-qwen3vl" / "config.json",
    REPO / "build" / "synthetic" / "train.coord.jsonl",
    REPO / "build" / "synthetic" / "val.coord.jsonl",
)


SPECGEN_ONLY = ("tests/specgen/", "tests/generated/test_spec_test_compiler.py")


def _needs_pipeline(session) -> bool:
    return any(not item.nodeid.startswith(SPECGEN_ONLY) for item in session.items)


@pytest.fixture(scope="session", autouse=True)
def smoke_inputs(request):
    """Build the smoke profiles' inputs under build/ when a coordexp test may read them and they are missing."""
    if all(p.is_file() for p in SMOKE_INPUTS) or not _needs_pipeline(request.session):
        return
    from coordexp.config import load_config
    from coordexp.smoke.inputs import build_missing

    (REPO / "build").mkdir(exist_ok=True)
    with open(REPO / "build" / ".smoke-inputs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for profile in SMOKE_PROFILES:
            build_missing(load_config(profile), log=lambda msg: None)
