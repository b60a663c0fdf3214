#!/usr/bin/env python
"""Show one JSONL record as the learner sees it: rendered chat, token ids and label mask.

    inspect_chat_template.py data/train.coord.jsonl --index 3 --field-order geometry_first

The rendered text is printed with the supervised span between the markers ⟦ and ⟧ (taken
from the labels, not assumed) and runs of <|image_pad|> collapsed to one entry with a
count. `--tokens` adds one line per token: position, id, label, piece.

Exit status: 0 shown, 2 bad input (missing file, a line that is not a JSON object, an
index past the end, a record the template refuses), 1 an internal error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from coordexp.format.prompts import FIELD_ORDERS, OBJECT_ORDERINGS, PROMPT_VARIANTS, PromptConfigError
from coordexp.format.template import (
    IGNORE_INDEX,
    IMAGE_PAD,
    MAX_PIXELS,
    TemplateError,
    build_messages,
    check_images,
    decode,
    decode_pieces,
    encode_sample,
)

PROG = "inspect_chat_template"
SUP_OPEN, SUP_CLOSE = "⟦", "⟧"
_PAD_RUN = re.compile("(?:" + re.escape(IMAGE_PAD) + ")+")


class BadInput(Exception):
    """Bad user input: reported in one line, exit 2."""


def read_record(path: Path, index: int) -> tuple[dict, int]:
    """The record at 0-based `index` (one JSON object per line) and its 1-based line number."""
    if index < 0:
        raise BadInput(f"--index {index}: must be >= 0")
    if not path.is_file():
        raise BadInput(f"{path}: no such file; pass a JSONL file")
    lineno = 0
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if lineno - 1 < index:
                    continue
                if not line.strip():
                    raise BadInput(f"{path}:{lineno}: blank line; a JSONL file holds one JSON object per line")
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BadInput(
                        f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}); fix the line"
                    ) from None
                if not isinstance(record, dict):
                    raise BadInput(f"{path}:{lineno}: a record must be a JSON object, got {type(record).__name__}")
                return record, lineno
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    raise BadInput(f"{path}: --index {index} is past the end ({lineno} records)")


def resolve_images(record: dict, base: Path) -> dict:
    """Image paths are relative to the JSONL directory (the record contract)."""
    images = record.get("images")
    if isinstance(images, list) and all(isinstance(p, str) for p in images):
        record = dict(record, images=[os.path.abspath(base / p) for p in images])
    return record


def masked_text(tokenizer, input_ids: list[int], labels: list[int]) -> str:
    """Decode runs of equal supervision, wrapping supervised runs in the markers."""
    out, start = [], 0
    for i in range(1, len(input_ids) + 1):
        if i == len(input_ids) or (labels[i] == IGNORE_INDEX) != (labels[start] == IGNORE_INDEX):
            text = decode(tokenizer, input_ids[start:i])
            out.append(text if labels[start] == IGNORE_INDEX else f"{SUP_OPEN}{text}{SUP_CLOSE}")
            start = i
    return _PAD_RUN.sub(lambda m: f"{IMAGE_PAD}x{len(m.group()) // len(IMAGE_PAD)}", "".join(out))


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("jsonl", type=Path, help="a JSONL file of records")
    ap.add_argument("--index", type=int, default=0, help="0-based record index (default 0)")
    ap.add_argument("--field-order", choices=FIELD_ORDERS, default="desc_first")
    ap.add_argument("--prompt-variant", choices=PROMPT_VARIANTS, default="default")
    ap.add_argument("--object-ordering", choices=OBJECT_ORDERINGS, default="sorted")
    ap.add_argument("--max-pixels", type=int, default=MAX_PIXELS)
    ap.add_argument("--tokens", action="store_true", help="also print one line per token")
    return ap


def run(args: argparse.Namespace, out) -> None:
    record, lineno = read_record(args.jsonl, args.index)
    record = resolve_images(record, args.jsonl.parent)
    source = f"{args.jsonl}:{lineno}"
    settings = dict(
        field_order=args.field_order, prompt_variant=args.prompt_variant, object_ordering=args.object_ordering
    )
    try:
        # Validate before loading the tokenizer (seconds): bad input fails fast.
        counts = check_images(record, max_pixels=args.max_pixels, source=source)
        build_messages(record, **settings, source=source)
        from coordexp.format.coord import load_tokenizer

        tok = load_tokenizer()
        enc = encode_sample(record, tok, **settings, max_pixels=args.max_pixels, source=source)
    except (TemplateError, PromptConfigError) as exc:
        raise BadInput(str(exc)) from None
    n_sup = sum(1 for x in enc.labels if x != IGNORE_INDEX)
    print(f"sample: {source} (index {args.index})", file=out)
    print(
        "settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + f", max_pixels={args.max_pixels}", file=out
    )
    grids = enc.image_grid_thw.tolist() if enc.image_grid_thw is not None else []
    for path, grid, n in zip(record["images"], grids, counts, strict=True):
        print(f"image: {path} {record['width']}x{record['height']} grid {grid} -> {n} image tokens", file=out)
    last = decode(tok, enc.input_ids[-1:])
    print(
        f"tokens: {len(enc.input_ids)} total, prompt_len {enc.prompt_len}, supervised {n_sup} (last: {last})", file=out
    )
    print(f"--- rendered text (supervised span in {SUP_OPEN} {SUP_CLOSE}; {IMAGE_PAD} runs collapsed) ---", file=out)
    print(masked_text(tok, enc.input_ids, enc.labels), file=out)
    if args.tokens:
        print("--- tokens (position, id, label, piece) ---", file=out)
        pieces = decode_pieces(tok, enc.input_ids)
        for i, (tid, lab, piece) in enumerate(zip(enc.input_ids, enc.labels, pieces, strict=True)):
            print(f"{i:6d} {tid:7d} {lab:7d} {piece!r}", file=out)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run(args, sys.stdout)
    except BadInput as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: still one line, and a distinct status
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}; please report it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
