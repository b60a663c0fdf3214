#!/usr/bin/env python3
"""Add the coord vocabulary to a Qwen3-VL model folder: --src <stock model> --dst <new folder>.

Writes the model and tokenizer with <|coord_*|> then <|coord_0|>..<|coord_999|> (ids 151669,
151670..152669), coord_tokens.json and coord_vocab.json (what was done), then verifies the
result by reloading it (coordexp.checkpoints.vocab). Exit 0 verified, 1 verification failed,
2 bad input. Procedure for a real 2B/4B checkpoint: docs/checkpoints.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def main(argv: list[str] | None = None) -> int:
    from coordexp.checkpoints.files import CheckpointError
    from coordexp.checkpoints.vocab import expand_coord_vocab, verify_expanded

    ap = argparse.ArgumentParser(prog="expand_coord_vocab.py", description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, required=True, help="a stock Qwen3-VL model folder (no coord tokens)")
    ap.add_argument("--dst", type=Path, required=True, help="a new folder for the expanded model")
    ap.add_argument("--seed", type=int, default=0, help="seed of the new rows' draw (default 0)")
    ns = ap.parse_args(argv)
    try:
        rep = expand_coord_vocab(ns.src, ns.dst, seed=ns.seed)
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"expand_coord_vocab: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"expand_coord_vocab: {rep.dst}: tokenizer {rep.tokenizer_before} -> {rep.tokenizer_after}, rows "
        f"{rep.rows_before} -> {rep.rows_after} ({rep.new_rows} new), wildcard {rep.wildcard_id}, coords "
        f"{rep.first_coord_id}..{rep.last_coord_id}, tied {rep.tie_word_embeddings}"
    )
    problems = verify_expanded(ns.src, ns.dst)
    for p in problems:
        print(f"expand_coord_vocab: error: {p}", file=sys.stderr)
    if not problems:
        print("expand_coord_vocab: verified (reloaded: ids contiguous, one token each, old rows unchanged)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
