"""Running the tiny smoke configs in a subprocess: the repository's paths, a clean environment, leaf configs."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "stage1" / "smoke" / "tiny_cpu.yaml"


def run_env(**extra) -> dict:
    """This environment with this checkout importable, one thread, and no torchrun variables left over."""
    env = dict(
        os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'src'}", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false"
    )
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE", "NNODES"):
        env.pop(k, None)
    env.update(extra)
    return env


def leaf_config(path: Path, extends: Path, body: str) -> Path:
    """A leaf config at ``path`` that extends ``extends`` with the YAML ``body``."""
    path.write_text(f"extends: {extends}\n{body}")
    return path
