"""specgen installs on its own: a wheel of the repository root holds specgen alone.

Builds the wheel from a copy of what the root pyproject.toml packages (``pip wheel --no-deps``), installs
it into a fresh venv under tmp (its dependencies from the configured package index), and runs the
installed ``specgen`` command there. Unmarked, so ``make test`` runs it (about 30 s: one venv, one install).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*cmd, cwd=None) -> subprocess.CompletedProcess:
    # Without PYTHONPATH: the user's environment has no checkout on its path.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_wheel_installs_specgen_alone(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "specgen", src / "specgen", ignore=skip)
    # coordexp beside it, as in the repository: the root's packaging must leave it out.
    shutil.copytree(REPO / "src" / "coordexp", src / "src" / "coordexp", ignore=skip)
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", src)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith("specgen_openspec-"), wheel.name
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert "specgen" in tops and not any(t.startswith("coordexp") for t in tops), tops

    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    installed = _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    assert installed.returncode == 0, installed.stderr
    version = _run(venv / "bin" / "specgen", "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("specgen "), version.stdout + version.stderr
    # No coordexp (and none of the pipeline's packages) in the user's environment.
    for module in ("coordexp", "torch"):
        probe = _run(venv / "bin" / "python", "-c", f"import {module}", cwd=tmp_path)
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, (module, probe.stderr)
