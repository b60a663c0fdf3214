"""Running under coverage.py: the generated tests (one dynamic context per binding) and the entrypoints.

Both runs measure every Python process they start, through coverage.py's own start-up hook: the
environment names a config file (``COVERAGE_PROCESS_START``) with ``parallel = true``, so each process
(an xdist worker, a training launcher's child, a shell script's ``python``) writes its own data file;
:func:`combined` merges them. Only the ``source`` folders are measured. coverage.py is imported here
and only by ``specgen proof`` (specgen's start-up stays light).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from specgen import fsio
from specgen.errors import SpecgenError
from specgen.proof.names import CONTEXT_ENV, EXCEPTIONS_ENV, ONLY_ENV

RESULTS = "results.json"  # the proof run's own test results, in <report dir>/proof/


@dataclass(frozen=True)
class Run:
    command: str
    exit: int
    seconds: float
    tail: str = ""  # the end of its output, for a failed run


def source_dirs(root: Path, source: list[str]) -> list[Path]:
    out = []
    for entry in source:
        path = (root / entry).resolve()
        if not path.exists() or not path.is_relative_to(root.resolve()):
            raise SpecgenError(
                f"tool.specgen.proof.source: {entry!r} is not a folder or file inside the project; fix the path",
                root / "pyproject.toml",
            )
        out.append(path)
    return out


def _rcfile(folder: Path, sources: list[Path], context: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "[run]",
        *([f"context = ${{{context}-}}"] if context else []),
        "parallel = true",
        "sigterm = true",
        f"data_file = {folder / '.coverage'}",
        "source =",
        *[f"    {s}" for s in sources],
        "disable_warnings =",
        "    no-data-collected",
        "    module-not-measured",
        "    module-not-imported",
        "    couldnt-parse",
        "",
    ]
    rc = folder / "coveragerc"
    fsio.write_text(rc, "\n".join(lines))
    return rc


def _fresh(folder: Path) -> None:
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _env(rc: Path, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["COVERAGE_PROCESS_START"] = str(rc)
    # A proof run started inside a measured one (a check of specgen proof, under `specgen proof`) is measured on
    # its own terms: the outer run's context, selection and exceptions folder must not leak into it.
    for name in ("COVERAGE_RCFILE", CONTEXT_ENV, ONLY_ENV, EXCEPTIONS_ENV):
        env.pop(name, None)
    env.update(extra or {})
    return env


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-12:])[-1500:]


def run_tests(
    root: Path, work: Path, sources: list[Path], tests: list[str], jobs: int, only: set[str] | None = None
) -> Run:
    """The generated tests under coverage.py, one context per binding; their results go to work/results.json
    (merged by test id, as the plugin does). `only`: the context names of the bindings to run (an incremental
    run); the plugin deselects every other generated test. None: all of them."""
    folder = work / "tests"
    _fresh(folder)
    rc = _rcfile(folder, sources, CONTEXT_ENV)
    extra = {EXCEPTIONS_ENV: str(folder)}
    if only is not None:
        if not only:
            return Run("(no generated test to rerun)", 0, 0.0)
        selection = folder / "only.json"
        fsio.write_text(selection, json.dumps(sorted(only)) + "\n")
        extra[ONLY_ENV] = str(selection)
    argv = [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "-p", "specgen.proof.contexts"]
    argv += ["--specgen-results", str(work / RESULTS)]
    if jobs > 1:
        argv += ["-n", str(jobs)]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=root, env=_env(rc, extra), capture_output=True, text=True, check=False)
    code = proc.returncode
    if only is not None and code == 5:  # every selected binding lacks a generated test: nothing ran, no error
        code = 0
    return Run(" ".join(argv[1:]), code, time.monotonic() - start, _tail(proc.stdout + proc.stderr))


def run_entrypoint(root: Path, folder: Path, sources: list[Path], command: str) -> Run:
    """One entrypoint (a shell command, run in the project root) with every Python process it starts measured;
    its data goes to `folder` (emptied first)."""
    _fresh(folder)
    rc = _rcfile(folder, sources)
    start = time.monotonic()
    proc = subprocess.run(command, shell=True, cwd=root, env=_env(rc), capture_output=True, text=True, check=False)
    return Run(command, proc.returncode, time.monotonic() - start, _tail(proc.stdout + proc.stderr))


def combined(folder: Path, pattern: str = ".coverage.*"):
    """The CoverageData of every data file one run left in `folder` (`pattern`: "*/.coverage.*" for the
    entrypoints, each in its own subfolder; empty when none)."""
    import coverage

    rc = folder / "coveragerc"
    (folder / ".coverage").unlink(missing_ok=True)  # combine writes its result there: never a base for the next
    cov = coverage.Coverage(data_file=str(folder / ".coverage"), config_file=str(rc) if rc.is_file() else False)
    parts = sorted(folder.glob(pattern))
    if parts:
        cov.combine([str(p) for p in parts], keep=True)
    return cov.get_data()


def exceptions(work: Path) -> dict[str, str]:
    """context name -> reason, from every process's exceptions file."""
    out: dict[str, str] = {}
    for path in sorted((work / "tests").glob("exceptions-*.json")):
        try:
            out.update(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out
