"""Shared pieces for inference tests: a tiny model folder, a small synthetic dataset with the
generator's pixel boxes recorded, and an InferConfig pointing at them."""

from __future__ import annotations

import functools
from pathlib import Path

from coordexp.infer.config import DecodingConfig, InferConfig, PromptConfig


def build_assets(root: Path, n_val: int = 6) -> dict:
    """{"model": dir, "jsonl": val JSONL, "drawn": {bins tuple: pixel box}} under ``root``."""
    from coordexp.smoke import synthetic
    from coordexp.smoke.tiny import save_tiny

    drawn: dict = {}
    real = synthetic.bbox_to_norm1000

    def recording(px, w, h):
        bins = real(px, w, h)
        drawn.setdefault((w, h, tuple(bins)), list(px))
        return bins

    synthetic.bbox_to_norm1000 = recording
    try:
        synthetic.make_dataset(root / "data", n_train=1, n_val=n_val, seed=23)
    finally:
        synthetic.bbox_to_norm1000 = real
    model = save_tiny(root / "tiny")
    return {"model": str(model), "jsonl": str(root / "data" / "val.coord.jsonl"), "drawn": drawn}


def infer_config(assets: dict, out: Path, **kw) -> InferConfig:
    base = dict(model=assets["model"], jsonl=assets["jsonl"], output_dir=str(out), batch_size=2, max_new_tokens=6,
                seed=5, progress=False, decoding=DecodingConfig(repetition_penalty=1.3),
                prompts=PromptConfig(field_order="desc_first"))
    base.update(kw)
    return InferConfig(**base)


@functools.cache
def loaded(model_dir: str):
    """(model, tokenizer) for inference from a model folder (once per process)."""
    from coordexp.infer.model import load_for_inference

    return load_for_inference(model_dir, None)


class Crash(RuntimeError):
    """Raised by a test to interrupt a run, as a kill would."""
