"""End-to-end smoke wall time: ``scripts/smoke_e2e.sh`` as a whole process, median of several runs.

Each run is a full ``scripts/smoke_e2e.sh`` (write the e2e synthetic set, train the tiny stage_1
until it has learnt it, infer, eval, vis into ``build/e2e/``); the script prints every step's wall
time, so the same run also gives the peer, its own training step, and the ratio total / train says
what inference, evaluation and the pictures add on top of training. The target is a total under
300 s on 2 CPU cores. On a shared machine the wall time says more about the neighbours than
about the smoke, so each run also reports its CPU time (user + system of the whole process
tree) and the smoke's own ``bbox_AP50``.

    .venv/bin/python bench/bench_smoke_e2e.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEP = re.compile(r"== smoke_e2e: (\w+) done in (\d+) s")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def one_run() -> dict[str, float]:
    cpu0 = _children_cpu()
    t0 = time.monotonic()
    r = subprocess.run(
        ["bash", "scripts/smoke_e2e.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
    )
    total = time.monotonic() - t0
    cpu = _children_cpu() - cpu0
    if r.returncode != 0:
        sys.exit(f"bench_smoke_e2e: the smoke failed (exit {r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    steps = {m.group(1): float(m.group(2)) for m in STEP.finditer(r.stdout)}
    ap50 = json.loads((REPO / "build/e2e/metrics.json").read_text())["bbox_AP50"]
    return {"total": total, "cpu": cpu, "AP50": ap50, **steps}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ns = ap.parse_args(argv)
    runs = [one_run() for _ in range(ns.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    for k in ("total", "cpu", "data", "train", "infer", "eval", "vis", "AP50"):
        unit, nd = ("", 3) if k == "AP50" else (" s", 1)
        each = [round(r.get(k, float("nan")), nd) for r in runs]
        print(f"{k:6s} median {med.get(k, float('nan')):7.{nd}f}{unit}   runs {each}")
    print(
        f"total / train = {med['total'] / med['train']:.2f}; target: total < 300 s -> "
        f"{'ok' if med['total'] < 300 else 'OVER'}"
    )
    return 0 if med["total"] < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
