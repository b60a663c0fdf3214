#!/usr/bin/env python3
"""Fold a stage_1 checkpoint (LoRA/DoRA + coord offsets) into a plain model folder.

    scripts/tools/merge_checkpoint.py --checkpoint <run>/checkpoint-N --out <folder> [--base <model>]

The base defaults to the adapter's recorded base_model_name_or_path. After writing, the merged
model's logits are compared with the adapter model's on a probe sample (float32); exit 1 when
they differ by more than --tolerance, 2 on bad input. Procedure: docs/checkpoints.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def main(argv: list[str] | None = None) -> int:
    from coordexp.checkpoints.files import CheckpointError
    from coordexp.checkpoints.merge import merge_checkpoint, verify_merge

    ap = argparse.ArgumentParser(prog="merge_checkpoint.py", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="a stage_1 checkpoint-N folder")
    ap.add_argument("--out", type=Path, required=True, help="a new folder for the merged model")
    ap.add_argument(
        "--base",
        type=Path,
        default=None,
        help="the model the adapter was trained on (default: adapter_config.json's base)",
    )
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max |logit difference| accepted (default 1e-4)")
    ap.add_argument("--no-verify", action="store_true", help="skip the logit comparison (it loads the model twice)")
    ns = ap.parse_args(argv)
    try:
        rep = merge_checkpoint(ns.checkpoint, ns.out, base=ns.base)
        print(
            f"merge_checkpoint: {rep.out}: adapter {rep.adapter}, coord offsets {rep.coord_offset} "
            f"(start {rep.coord_start}), tied {rep.tie_word_embeddings}, base {rep.base}"
        )
        if ns.no_verify:
            return 0
        chk = verify_merge(ns.checkpoint, ns.out, base=ns.base)
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"merge_checkpoint: error: {exc}", file=sys.stderr)
        return 2
    ok = chk.max_abs_diff <= ns.tolerance
    print(
        f"merge_checkpoint: {'verified' if ok else 'error'}: max |merged - adapter| logit difference "
        f"{chk.max_abs_diff:.3g} (coord columns {chk.coord_max_abs_diff:.3g}, logits up to {chk.logit_scale:.3g}, "
        f"{chk.tokens} tokens), tolerance {ns.tolerance:g}",
        file=sys.stdout if ok else sys.stderr,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
