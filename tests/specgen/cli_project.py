"""specgen as a user meets it, for CLI-level tests: a project folder with the README's configuration,
and the `specgen` / `pytest` commands run in it as separate processes.

Nothing here imports specgen. The processes see specgen (and only specgen) from this checkout: a scratch
folder holding a link to `specgen/` is their PYTHONPATH, so this repository's own `tests` package cannot
stand in for the project's. They run with `python -P`, as the `specgen` and `pytest` console scripts do:
the working folder is not put on sys.path.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The configuration the README gives a new project.
PYPROJECT = """\
[tool.specgen]
specs = "{specs}"
checks = ["tests.checks"]
output = "tests/generated"

[tool.pytest.ini_options]
pythonpath = ["."]
"""

# What a run may never print, whatever its exit status.
CRASH_MARKERS = ("Traceback (most recent call last)", "internal error", "INTERNALERROR")


@functools.cache
def _site() -> str:
    site = Path(tempfile.mkdtemp(prefix="specgen-site-"))
    (site / "specgen").symlink_to(REPO / "specgen", target_is_directory=True)
    return str(site)


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SPECGEN_NO_CACHE"))}
    out.update(PYTHONPATH=_site(), NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
    return out


def make_project(root: Path, openspec: Path | None = None, specs: str = "openspec") -> Path:
    """A project at `root` as a new user sets one up: `tests/checks/` (a package, empty), pyproject.toml,
    and a copy of `openspec` (a folder holding specs/ and changes/) at `root/<specs>` when given."""
    (root / "tests" / "checks").mkdir(parents=True, exist_ok=True)
    (root / "tests" / "__init__.py").touch()
    (root / "tests" / "checks" / "__init__.py").touch()
    (root / "pyproject.toml").write_text(PYPROJECT.format(specs=specs), encoding="utf-8")
    if openspec is not None:
        shutil.copytree(openspec, root / specs, copy_function=shutil.copy)
        for p in [root / specs, *(root / specs).rglob("*")]:  # copies of read-only corpora stay editable
            p.chmod(p.stat().st_mode | 0o200)
    return root


def run(cwd: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-P", *argv], cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=timeout)


def specgen(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return run(cwd, "-m", "specgen", *args, timeout=timeout)


def pytest_run(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return run(cwd, "-m", "pytest", *args, timeout=timeout)


def output(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def assert_no_crash(proc: subprocess.CompletedProcess, what: str) -> None:
    text = output(proc)
    for marker in CRASH_MARKERS:
        assert marker not in text, f"{what} (exit {proc.returncode}) printed {marker!r}:\n{text[-3000:]}"
