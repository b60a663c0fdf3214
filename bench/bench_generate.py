"""Benchmarks for the compiler (not timed tests): prints figures, exits 1 when a budget is missed.

- `specgen generate` on a synthetic project of 1,000 specs x 10 scenarios (half of them bound): < 2 s
- a no-op regeneration of the same project: < 0.5 s
- `specgen check` on this repository: < 1 s
Each figure is the median of 5 runs of the CLI in a fresh process (interpreter start-up included).
Two figures per run: wall time, and CPU time (user + sys of the child). The budget is judged on CPU
time, which a loaded machine (several jobs on 2 cores) does not inflate the way it inflates wall time;
the load average is printed so a wall figure can be read in context.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPECS, REQS, SCNS = 1000, 2, 5  # 1,000 specs x 10 scenarios
BUDGETS = {"generate (cold)": 2.0, "generate (no-op)": 0.5, "check (this repo)": 1.0}


def synth(root: Path) -> None:
    (root / "pyproject.toml").write_text('[tool.specgen]\nchecks = ["checks"]\noutput = "generated"\n')
    (root / "checks").mkdir()
    (root / "checks" / "__init__.py").write_text("")
    for s in range(SPECS):
        cap = f"cap-{s:04d}"
        lines = [f"# {cap} Specification", "", "## Purpose", f"Synthetic capability {s}.", "", "## Requirements"]
        checks = ["from specgen import check", ""]
        for r in range(REQS):
            lines += [f"### Requirement: Requirement {r}", f"The system SHALL do thing {r} of {cap}.", ""]
            for c in range(SCNS):
                lines += [f"#### Scenario: Scenario {c}", f"- **WHEN** input {c} arrives at {cap}",
                          f"- **THEN** output {c} is produced", "- **AND** nothing else changes", ""]
                if c % 2 == 0:
                    checks += [f'@check("{cap}", "Requirement {r}", "Scenario {c}")',
                               f"def check_r{r}_s{c}():", f"    assert {c} == {c}", "", ""]
        folder = root / "openspec" / "specs" / cap
        folder.mkdir(parents=True)
        (folder / "spec.md").write_text("\n".join(lines))
        (root / "checks" / f"cap_{s:04d}.py").write_text("\n".join(checks))


def timed(args: list[str], cwd: Path, reset=None, runs: int = 5, ok=(0,)) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds) of `python -m specgen ARGS` in `cwd`."""
    walls, cpus = [], []
    for _ in range(runs):
        if reset:
            reset()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "specgen", *args], cwd=cwd, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode not in ok:
            raise SystemExit(f"specgen {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synth(root)

        def wipe():
            shutil.rmtree(root / "generated", ignore_errors=True)
            (root / "specgen.lock").unlink(missing_ok=True)

        figures = {
            "generate (cold)": timed(["generate"], root, reset=wipe),
            "generate (no-op)": timed(["generate"], root),
        }
        files = len(list((root / "generated").glob("test_*.py")))
    # The check runs against whatever this checkout holds (exit 1 on a stale tree still measures the work).
    figures["check (this repo)"] = timed(["check"], REPO, ok=(0, 1))
    print(f"synthetic project: {SPECS} specs x {REQS * SCNS} scenarios, {files} generated files")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s)")
    ok = True
    for name, (wall, cpu) in figures.items():
        within = cpu < BUDGETS[name]
        ok &= within
        print(f"{name:20s} cpu {cpu:6.3f} s  wall {wall:6.3f} s  (budget {BUDGETS[name]:.1f} s) "
              f"{'ok' if within else 'OVER BUDGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
