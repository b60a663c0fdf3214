#!/usr/bin/env python3
"""Write the synthetic smoke dataset: train/val JSONL + PNG images, deterministic for a seed.

scripts/tools/make_synthetic_dataset.py --out build/synthetic --n-train 64 --n-val 16 --seed 17
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from coordexp.smoke.synthetic import make_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--n-val", type=int, default=16)
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--min-objects", type=int, default=1, help="per image (>= 1 keeps the data valid for Stage-2)")
    p.add_argument("--max-objects", type=int, default=6)
    p.add_argument("--min-side", type=float, default=0.0, help="smallest box side, as a fraction of the image side")
    p.add_argument("--max-side", type=float, default=0.5, help="largest box side, as a fraction of the image side")
    args = p.parse_args(argv)
    if args.n_train < 0 or args.n_val < 0:
        p.error("--n-train and --n-val must be >= 0")
    try:
        stats = make_dataset(
            args.out,
            n_train=args.n_train,
            n_val=args.n_val,
            seed=args.seed,
            min_objects=args.min_objects,
            max_objects=args.max_objects,
            min_side=args.min_side,
            max_side=args.max_side,
        )
    except (ValueError, OSError) as exc:
        print(f"make_synthetic_dataset: error: {exc}", file=sys.stderr)
        return 2
    for split, s in stats.items():
        print(
            f"{args.out / (split + '.coord.jsonl')}: {s.records} records, {s.objects} objects, "
            f"{s.negatives} without objects"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
