"""Whole-process timing for the benchmarks (imported by bench_*.py; not a benchmark itself).

Each command runs as a user runs it: a fresh interpreter, `python -m specgen ...`, with specgen taken
from this checkout (a scratch folder holding a link to `specgen/` is the only PYTHONPATH entry) and its
bytecode compiled once up front, as an installed package has it. For every run: wall time, CPU time
(user + sys of that child alone) and its peak RSS, read from `os.wait4`.
"""

from __future__ import annotations

import compileall
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    cpu: float  # seconds, user + sys
    rss_mb: float  # peak resident set size
    rc: int | None  # None: killed at the timeout
    out: str


@functools.cache
def env() -> dict[str, str]:
    site = Path(tempfile.mkdtemp(prefix="specgen-bench-site-"))
    (site / "specgen").symlink_to(REPO / "specgen", target_is_directory=True)
    compileall.compile_dir(str(REPO / "specgen"), quiet=1)
    keep = {k: v for k, v in os.environ.items() if k != "SPECGEN_NO_CACHE"}
    return {
        **keep,
        "PYTHONPATH": str(site),
        "NO_COLOR": "1",
        "OPENSPEC_TELEMETRY": "0",
        "DO_NOT_TRACK": "1",
        "OPENSPEC_NO_UPDATE_CHECK": "1",
        "CI": "1",
    }


def run(argv: list[str], cwd: Path, timeout: float | None = None) -> Run:
    """Run `argv` to completion (or kill it at `timeout` seconds); its own wall, CPU and peak RSS."""
    with tempfile.TemporaryFile() as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env(), stdout=sink, stderr=subprocess.STDOUT)
        rc, ru = _wait(proc, timeout)
        wall = time.perf_counter() - start
        sink.seek(0)
        out = sink.read().decode("utf-8", "replace")
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, rc, out)


def _wait(proc: subprocess.Popen, timeout: float | None):
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru
        if time.monotonic() > deadline:
            proc.kill()
            _, _, ru = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return None, ru
        time.sleep(0.01)


def specgen(args: list[str], cwd: Path, timeout: float | None = None) -> Run:
    return run([sys.executable, "-P", "-m", "specgen", *args], cwd, timeout)


def median(runs: list[Run]) -> Run:
    """Median wall and CPU time of `runs`, their largest peak RSS, and the rc and output of the last."""
    return Run(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        max(r.rss_mb for r in runs),
        runs[-1].rc,
        runs[-1].out,
    )


def load() -> str:
    return f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s)"
