#!/usr/bin/env python3
"""Pre-check training JSONL files before any GPU is allocated (the launcher runs this).

    scripts/tools/validate_jsonl.py train.coord.jsonl [val.coord.jsonl ...] \
        --max-pixels 786432 --multiple-of 32 --check-images 256 --stage stage2

Checks every record against the JSONL contract (fields, types, desc, exactly one geometry,
coord values, object order, Stage-2 rules, width*height <= max-pixels, sides multiple of 32),
that every image path stays under the JSONL's folder (no absolute path, no '..' leaving it, unless
--allow-images-outside-jsonl-dir), that every image exists and its folder is not a symlink, and
opens the first N structurally valid rows of each file to compare the on-disk size with the JSONL
width/height (--check-images N; -1 opens all rows, 0 none).

One line per problem: ``file:line: error: json.path: message``. Exit 0 when all files are valid,
1 when a file breaks the contract, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from coordexp.format.data import DataError, load_records  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("jsonl", nargs="+", type=Path)
    p.add_argument("--max-pixels", type=int, default=786432, help="hard cap on width*height (equality allowed)")
    p.add_argument("--multiple-of", type=int, default=32, help="width and height must be multiples of this (0: off)")
    p.add_argument(
        "--check-images",
        type=int,
        default=256,
        metavar="N",
        help="open the first N structurally valid rows per file and compare sizes (-1: all, 0: none)",
    )
    p.add_argument("--stage", choices=("stage1", "stage2"), default="stage1")
    p.add_argument("--object-ordering", choices=("sorted", "random"), default="sorted")
    p.add_argument(
        "--allow-images-outside-jsonl-dir",
        action="store_true",
        help="accept absolute image paths and '..' paths leaving the JSONL's folder "
        "(custom.allow_images_outside_jsonl_dir)",
    )
    args = p.parse_args(argv)
    if args.max_pixels <= 0:
        p.error("--max-pixels must be > 0")
    if args.multiple_of < 0 or args.check_images < -1:
        p.error("--multiple-of must be >= 0 and --check-images >= -1")
    check = True if args.check_images == -1 else args.check_images
    failed = 0
    for path in args.jsonl:
        try:
            records = load_records(
                path,
                stage=args.stage,
                max_pixels=args.max_pixels,
                multiple_of=args.multiple_of or None,
                check_images=check,
                object_ordering=args.object_ordering,
                allow_outside_root=args.allow_images_outside_jsonl_dir,
            )
        except DataError as exc:
            failed += 1
            for issue in exc.errors:
                print(issue.format())
            print(f"{path}: {len(exc.errors)} problem{'s' if len(exc.errors) != 1 else ''}", file=sys.stderr)
            continue
        n_obj = sum(len(r.objects) for r in records)
        opened = len(records) if check is True else min(check, len(records))
        print(f"{path}: ok ({len(records)} records, {n_obj} objects, {opened} images opened)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
