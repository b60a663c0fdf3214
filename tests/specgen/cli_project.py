"""specgen as a user meets it, for CLI-level tests: a project folder with the README's configuration,
and the `specgen` / `pytest` commands run in it as separate processes.

Nothing here imports specgen. The processes see specgen (and only specgen) from this checkout: a scratch
folder holding a link to `specgen/` is their PYTHONPATH, so this repository's own `tests` package cannot
stand in for the project's. They run with `python -P`, as the `specgen` and `pytest` console scripts do:
the working folder is not put on sys.path.
"""

from __future__ import annotations

import functools
import json
import os
import re
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
    # Without CI/BUILD_NUMBER: under them pytest prints whole failure messages in its summary lines.
    out = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "SPECGEN_NO_CACHE")) and k not in ("CI", "BUILD_NUMBER")
    }
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
    return subprocess.run(
        [sys.executable, "-P", *argv], cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout
    )


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


def check_json(project: Path, *args: str) -> tuple[int, dict]:
    """(exit code, parsed `specgen check --format json`)."""
    proc = specgen(project, "check", "--format", "json", *args)
    assert_no_crash(proc, "specgen check")
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"specgen check --format json printed no JSON (exit {proc.returncode}):\n{output(proc)[-2000:]}"
        ) from None


def unbound_ids(project: Path) -> list[str]:
    """Scenario ids `specgen check` says have no check, in its order."""
    _, report = check_json(project)
    return [
        m[1]
        for i in report["issues"]
        if i["code"] == "unbound-scenario"
        for m in [re.search(r"scenario (\S+) has no check", i["message"])]
        if m
    ]


def bind_passing(project: Path, ids: list[str]) -> None:
    """What a user does for each id: `specgen stub ID --write`, then a body that passes."""
    for sid in ids:
        stub = specgen(project, "stub", sid, "--write")
        assert_no_crash(stub, "specgen stub --write")
        assert stub.returncode == 0, output(stub)
    for module in (project / "tests" / "checks").glob("*.py"):
        text = module.read_text(encoding="utf-8")
        module.write_text(re.sub(r"raise NotImplementedError\(.*\)", "assert True", text), encoding="utf-8")


def pytest_counts(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The counts of pytest's last summary line ({"failed": 3, "passed": 1, "error": 0, ...})."""
    lines = [ln for ln in output(proc).splitlines() if re.search(r"\d+ (failed|passed|errors?|skipped)", ln)]
    found = re.findall(r"(\d+) (failed|passed|errors?|skipped)", lines[-1] if lines else "")
    counts = {"failed": 0, "passed": 0, "error": 0, "skipped": 0}
    for n, key in found:
        counts[key.rstrip("s") if key.startswith("error") else key] += int(n)
    return counts


def report_json(project: Path) -> dict:
    return json.loads((project / "build" / "specgen" / "report.json").read_text(encoding="utf-8"))
