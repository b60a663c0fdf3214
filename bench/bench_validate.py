"""Benchmark: `specgen validate --all --json` against `openspec validate --all --json`.

Whole-process wall time on OpenSpec's own openspec/ tree (the `openspec-self` corpus under $SPECGEN_CORPORA,
see tests/specgen/corpora.py), the two commands
ALTERNATING so that machine load hits both alike; median of N runs each (default 7). Both
commands must exit the same way and print the same verdicts (checked once before timing).

specgen runs as an installed package runs: its bytecode is compiled once up front
(`python -m compileall`), as `pip install` does, since PYTHONDONTWRITEBYTECODE may be set.

usage: python bench/bench_validate.py [--runs N] [--corpus DIR] [--strict]
Prints both medians and the ratio; exits 1 when specgen is not at least 5x faster.
Also prints the median CPU time (user + system) of each, which a loaded machine disturbs less.
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
CORPUS = (REPO / os.environ.get("SPECGEN_CORPORA", "../shared/corpora")).resolve() / "openspec-self"
TARGET = 5.0
ENV = {**os.environ, "OPENSPEC_TELEMETRY": "0", "DO_NOT_TRACK": "1", "OPENSPEC_NO_UPDATE_CHECK": "1", "CI": "1",
       "NO_COLOR": "1"}


CPU: list[float] = []  # CPU seconds of the last _timed child


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    cpu, start = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - start
    CPU[:] = [_cpu() - cpu]
    return wall, proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args()
    if not OPENSPEC.exists():
        print(f"{OPENSPEC} missing: run `make setup`", file=sys.stderr)
        return 2
    python = str(PYTHON if PYTHON.exists() else Path(sys.executable))
    subprocess.run([python, "-m", "compileall", "-q", str(REPO / "specgen")], check=True, capture_output=True)
    flags = ["validate", "--all", "--json", *(["--strict"] if args.strict else [])]
    node = [str(OPENSPEC), *flags]
    ours = [python, "-m", "specgen", *flags, "--root", str(args.corpus)]

    _, a = _timed(node, args.corpus)
    _, b = _timed(ours, REPO)
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    same = (a.returncode == b.returncode and ja["summary"] == jb["summary"]
            and [(i["id"], i["valid"]) for i in ja["items"]] == [(i["id"], i["valid"]) for i in jb["items"]])
    if not same:
        print("specgen and openspec disagree on the corpus; fix parity before timing", file=sys.stderr)
        return 1

    t_node, t_ours, c_node, c_ours = [], [], [], []
    for _ in range(args.runs):
        t_node.append(_timed(node, args.corpus)[0])
        c_node.append(CPU[0])
        t_ours.append(_timed(ours, REPO)[0])
        c_ours.append(CPU[0])
    m_node, m_ours = statistics.median(t_node), statistics.median(t_ours)
    ratio = m_node / m_ours
    items = len(ja["items"])
    print(f"corpus: {args.corpus} ({items} items), {args.runs} alternating runs each")
    print(f"openspec validate --all --json: median {m_node * 1000:.0f} ms  (runs: "
          + ", ".join(f"{t * 1000:.0f}" for t in t_node) + ")")
    print(f"specgen  validate --all --json: median {m_ours * 1000:.0f} ms  (runs: "
          + ", ".join(f"{t * 1000:.0f}" for t in t_ours) + ")")
    cpu_node, cpu_ours = statistics.median(c_node), statistics.median(c_ours)
    print(f"CPU (user + system), medians: openspec {cpu_node * 1000:.0f} ms, specgen {cpu_ours * 1000:.0f} ms "
          f"({cpu_node / cpu_ours:.2f}x); load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"ratio: specgen is {ratio:.2f}x faster (target {TARGET:.0f}x)")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
