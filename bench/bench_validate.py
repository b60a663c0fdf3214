"""Benchmark: `specgen validate --all --json` against `openspec validate --all --json`, on any tree.

usage: python bench/bench_validate.py [TREE ...] [--runs N] [--strict] [--baseline DIR]

Each TREE is a folder holding `openspec/` (default: every public corpus under $SPECGEN_CORPORA, see
tests/specgen/corpora.py). Per tree: whole-process wall time of both commands, the commands
ALTERNATING so that machine load hits both alike, median of N runs each (default 7). Both commands
must exit the same way and print the same verdicts (checked once before timing).

`--baseline DIR` also times the specgen package found under DIR (for instance an earlier revision
exported with `git archive <rev> specgen | tar -x -C DIR`) in the same alternation, so a before/after
figure comes from the same load.

specgen runs as an installed package runs: its bytecode is compiled once up front
(`python -m compileall`), as `pip install` does, since PYTHONDONTWRITEBYTECODE may be set.

Prints, per tree, the medians, the median CPU time (user + system: a loaded machine disturbs it
less) and the ratio; exits 1 when specgen is not at least 5x faster on some tree.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPENSPEC = REPO / "tools" / "openspec" / "node_modules" / ".bin" / "openspec"
PYTHON = REPO / ".venv" / "bin" / "python"
CORPORA = (REPO / os.environ.get("SPECGEN_CORPORA", "../shared/corpora")).resolve()
TARGET = 5.0
ENV = {
    **os.environ,
    "OPENSPEC_TELEMETRY": "0",
    "DO_NOT_TRACK": "1",
    "OPENSPEC_NO_UPDATE_CHECK": "1",
    "CI": "1",
    "NO_COLOR": "1",
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds, CPU seconds (the child's user + system) and the finished process."""
    cpu, start = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, _cpu() - cpu, proc


def _verdicts(proc: subprocess.CompletedProcess) -> tuple:
    doc = json.loads(proc.stdout)
    return proc.returncode, doc["summary"], [(i["id"], i["valid"]) for i in doc["items"]]


def _tree(arg: str) -> Path:
    """A folder holding openspec/ (the openspec/ folder itself is accepted too)."""
    path = Path(arg).resolve()
    if path.name == "openspec" and not (path / "openspec").is_dir():
        path = path.parent
    if not (path / "openspec").is_dir():
        raise argparse.ArgumentTypeError(f"{arg}: no openspec/ folder there")
    return path


def _default_trees() -> list[Path]:
    return sorted(p.parent for p in CORPORA.glob("*/openspec") if p.is_dir())


def _shape(tree: Path) -> str:
    changes = tree / "openspec" / "changes"
    active = [p for p in changes.iterdir() if p.is_dir() and p.name != "archive"] if changes.is_dir() else []
    archive = changes / "archive"
    archived = [p for p in archive.iterdir() if p.is_dir()] if archive.is_dir() else []
    markdown = sum(1 for _ in (tree / "openspec").rglob("*.md"))
    return f"{len(active)} active change folders, {len(archived)} archived, {markdown} Markdown files"


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values)


def bench_tree(tree: Path, flags: list[str], runs: int, python: str, baseline: Path | None) -> float | None:
    """Times one tree; returns the wall ratio openspec/specgen, None when the two disagree."""
    node = [str(OPENSPEC), *flags]
    ours = [python, "-m", "specgen", *flags, "--root", str(tree)]
    # The specgen under test is the one this file sits beside; PYTHONPATH picks it (or the baseline).
    env_ours = {**ENV, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    commands = [("openspec", node, tree, ENV), ("specgen", ours, REPO, env_ours)]
    if baseline is not None:
        commands.append(("baseline", ours, Path(baseline), {**ENV, "PYTHONPATH": str(baseline)}))
    first = [_timed(cmd, cwd, env)[2] for _, cmd, cwd, env in commands]
    try:
        verdicts = [_verdicts(p) for p in first]
    except (json.JSONDecodeError, KeyError):
        print(f"{tree}: a command did not print a validate report", file=sys.stderr)
        return None
    if any(v != verdicts[0] for v in verdicts):
        print(f"{tree}: specgen and openspec disagree; fix parity before timing", file=sys.stderr)
        return None
    wall: dict[str, list[float]] = {name: [] for name, *_ in commands}
    cpu: dict[str, list[float]] = {name: [] for name, *_ in commands}
    for _ in range(runs):
        for name, cmd, cwd, env in commands:
            w, c, _ = _timed(cmd, cwd, env)
            wall[name].append(w)
            cpu[name].append(c)
    med = {name: statistics.median(v) for name, v in wall.items()}
    cmed = {name: statistics.median(v) for name, v in cpu.items()}
    print(f"tree: {tree} ({_shape(tree)}; {len(verdicts[0][2])} items), {runs} alternating runs each")
    for name in wall:
        print(
            f"  {name:8} wall median {med[name] * 1000:5.0f} ms (runs: {_ms(wall[name])}), "
            f"CPU {cmed[name] * 1000:.0f} ms"
        )
    ratio = med["openspec"] / med["specgen"]
    line = f"  ratio: specgen {ratio:.2f}x faster in wall time, {cmed['openspec'] / cmed['specgen']:.2f}x in CPU"
    if baseline is not None:
        line += (
            f"; baseline {med['openspec'] / med['baseline']:.2f}x wall, {cmed['openspec'] / cmed['baseline']:.2f}x CPU"
        )
    print(line, flush=True)
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trees", nargs="*", type=_tree, help="folders holding openspec/ (default: the public corpora)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--baseline", type=Path, help="a folder holding another specgen package, timed alongside")
    args = ap.parse_args()
    if not OPENSPEC.exists():
        print(f"{OPENSPEC} missing: run `make setup`", file=sys.stderr)
        return 2
    trees = args.trees or _default_trees()
    if not trees:
        print(f"no tree given and no corpus under {CORPORA}", file=sys.stderr)
        return 2
    python = str(PYTHON if PYTHON.exists() else Path(sys.executable))
    for pkg in [REPO / "specgen", *([args.baseline / "specgen"] if args.baseline else [])]:
        subprocess.run([python, "-m", "compileall", "-q", str(pkg)], check=True, capture_output=True)
    flags = ["validate", "--all", "--json", *(["--strict"] if args.strict else [])]
    ratios = [bench_tree(tree, flags, args.runs, python, args.baseline) for tree in trees]
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if any(r is None for r in ratios):
        return 1
    print(f"lowest ratio {min(ratios):.2f}x (target {TARGET:.0f}x)")
    return 0 if min(ratios) >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
