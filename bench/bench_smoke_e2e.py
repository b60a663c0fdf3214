"""End-to-end smoke wall time: ``scripts/smoke_e2e.sh`` as a whole process, median of several runs.

Each run is a full ``scripts/smoke_e2e.sh`` (train the tiny stage_1, infer, eval, vis into
``build/e2e/``); the script prints every step's wall time, so the same run also gives the peer,
its own training step, and the ratio total / train says what inference, evaluation and the
pictures add on top of training. The target is a total under 300 s on the CPU.

    .venv/bin/python bench/bench_smoke_e2e.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEP = re.compile(r"== smoke_e2e: (\w+) done in (\d+) s")


def one_run() -> dict[str, float]:
    t0 = time.monotonic()
    r = subprocess.run(["bash", "scripts/smoke_e2e.sh"], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    total = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"bench_smoke_e2e: the smoke failed (exit {r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    steps = {m.group(1): float(m.group(2)) for m in STEP.finditer(r.stdout)}
    return {"total": total, **steps}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ns = ap.parse_args(argv)
    runs = [one_run() for _ in range(ns.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    for k in ("total", "train", "infer", "eval", "vis"):
        print(f"{k:6s} median {med.get(k, float('nan')):7.1f} s   runs {[round(r.get(k, float('nan')), 1) for r in runs]}")
    print(f"total / train = {med['total'] / med['train']:.2f}; target: total < 300 s -> "
          f"{'ok' if med['total'] < 300 else 'OVER'}")
    return 0 if med["total"] < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
