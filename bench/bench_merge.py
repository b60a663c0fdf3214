"""Benchmark: `specgen validate <change>` on a change that ADDs N requirements to one spec.

The delta merge must be linear: for N = 5,000 / 20,000 / 50,000 added requirements (one scenario each) the
whole-process time of `specgen validate add-many` is measured (median of --runs runs); targets: the 50k/5k
ratio below 12, and 50k under 10 s. A size whose run passes --timeout is reported as such and the larger
sizes are not run. For reference, the official OpenSpec CLI validates the 5k change once (capped by
--cli-timeout). Every specgen run must exit 0 (the change is valid).

usage: python bench/bench_merge.py [--runs N] [--timeout S] [--quick] [--sizes 5000,20000,50000]
--quick: one run per size, sizes 1,000 / 2,000 / 5,000, no CLI run (targets scaled to the sizes).
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import timing

OPENSPEC = timing.REPO / "tools" / "openspec" / "node_modules" / ".bin" / "openspec"
SIZES = (5_000, 20_000, 50_000)
QUICK_SIZES = (1_000, 2_000, 5_000)
RATIO_TARGET, BIG_TARGET_S = 12.0, 10.0


def synth(root: Path, n: int) -> None:
    """A project whose spec `ledger` has two requirements, and a change `add-many` that ADDs `n` more."""
    spec = root / "openspec" / "specs" / "ledger" / "spec.md"
    spec.parent.mkdir(parents=True)
    base = [
        "# ledger Specification",
        "",
        "## Purpose",
        "A ledger whose change adds very many requirements at once.",
        "",
        "## Requirements",
    ]
    for r in ("Open account", "Close account"):
        base += [
            f"### Requirement: {r}",
            f"The ledger SHALL {r.lower()}.",
            "",
            "#### Scenario: Done",
            f"- **WHEN** a clerk asks to {r.lower()}",
            "- **THEN** it is done",
            "",
        ]
    spec.write_text("\n".join(base), encoding="utf-8")
    change = root / "openspec" / "changes" / "add-many"
    (change / "specs" / "ledger").mkdir(parents=True)
    (change / "proposal.md").write_text(
        f"## Why\nA bulk import of {n} rules.\n\n## What Changes\n- Add {n} rules.\n", encoding="utf-8"
    )
    delta = ["## ADDED Requirements"]
    for i in range(n):
        delta += [
            f"### Requirement: Rule {i:06d}",
            f"The ledger SHALL enforce rule {i}.",
            "",
            "#### Scenario: Enforced",
            f"- **WHEN** an entry breaks rule {i}",
            "- **THEN** it is refused",
            "",
        ]
    (change / "specs" / "ledger" / "spec.md").write_text("\n".join(delta), encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per specgen run")
    ap.add_argument("--cli-timeout", type=float, default=300.0)
    ap.add_argument("--sizes", default=None, help="comma-separated sizes")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    runs = 1 if args.quick else args.runs
    print(f"specgen validate add-many (ADDs N requirements), median of {runs} run(s); {timing.load()}")
    figures: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as tmp:
        for n in sizes:
            root = Path(tmp) / f"n{n}"
            synth(root, n)
            done = [
                timing.specgen(["validate", "add-many", "--root", str(root)], root, args.timeout) for _ in range(runs)
            ]
            if any(r.rc is None for r in done):
                print(f"  N={n:>6,}: over the {args.timeout:.0f} s timeout; larger sizes not run")
                break
            if any(r.rc != 0 for r in done):
                print(f"  N={n:>6,}: specgen exited {done[-1].rc}:\n{done[-1].out[-1500:]}")
                return 1
            m = timing.median(done)
            figures[n] = m.wall
            print(
                f"  N={n:>6,}: wall {m.wall:7.2f} s  cpu {m.cpu:7.2f} s  peak RSS {m.rss_mb:6.0f} MB  "
                f"(runs: {', '.join(f'{r.wall:.2f}' for r in done)})"
            )
        if not args.quick and 5_000 in sizes and OPENSPEC.exists():
            root = Path(tmp) / "n5000"
            cli = timing.run([str(OPENSPEC), "validate", "add-many", "--type", "change"], root, args.cli_timeout)
            state = f"{cli.wall:.1f} s (exit {cli.rc})" if cli.rc is not None else f"over {args.cli_timeout:.0f} s"
            print(f"  official CLI, N=5,000, one run: {state}")
    return _verdict(figures, sizes)


def _verdict(figures: dict[int, float], sizes: list[int]) -> int:
    """50k/5k below 12 and 50k below 10 s; other sizes scale both targets (1.2x the size ratio, 0.2 ms a rule)."""
    small, big = min(sizes), max(sizes)
    ratio_target, big_target = RATIO_TARGET * (big / small) / 10, BIG_TARGET_S * big / 50_000
    if big not in figures:
        print(f"targets: MISSED (N={big:,} did not finish)")
        return 1
    ratio = figures[big] / figures[small]
    print(
        f"ratio {big:,}/{small:,}: {ratio:.1f} (target < {ratio_target:.1f}); "
        f"N={big:,}: {figures[big]:.2f} s (target < {big_target:.1f} s)"
    )
    ok = ratio < ratio_target and figures[big] < big_target
    print("targets:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
