"""A tiny Qwen3-VL (random weights, real architecture, real coord-extended tokenizer).

Used by the checks and the CPU smoke profiles: the same model class, attention masks,
mRoPE and vision tower as the real Qwen3-VL, small enough that a forward pass over a
few hundred tokens takes a fraction of a second on a CPU. The weights are random but
deterministic (seeded), so two builds give the same tensors.

The tokenizer is ``coordexp.format.coord.load_tokenizer()`` (the real Qwen3 vocabulary plus the
1000 coord tokens, len 152670); the embedding matrix is sized to it exactly.

``save_tiny_base`` writes the same architecture as a stock Qwen3-VL release is shipped:
the plain Qwen3 tokenizer (151669 tokens, no coord vocabulary) and 151936 embedding rows
(the released checkpoints pad their vocabulary past the tokenizer), the input of
``scripts/tools/expand_coord_vocab.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from coordexp.checkpoints.files import TINY_MARKER
from coordexp.format.template import IMAGE_TOKEN_ID, VIDEO_TOKEN_ID, VISION_END_TOKEN_ID, VISION_START_TOKEN_ID

BASE_VOCAB_ROWS = 151936  # the embedding rows of the released Qwen3-VL checkpoints


@dataclass(frozen=True)
class TinySpec:
    """The knobs of the tiny model. mrope_section must sum to head_dim // 2."""

    vocab_size: int = 152670
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 16
    mrope_section: tuple[int, int, int] = (4, 2, 2)
    max_position_embeddings: int = 32768
    vision_depth: int = 1
    vision_hidden_size: int = 32
    vision_heads: int = 2
    vision_intermediate_size: int = 64
    patch_size: int = 16
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    seed: int = 0


def tiny_config(spec: TinySpec = TinySpec(), attn_implementation: str = "sdpa"):
    from transformers import Qwen3VLConfig

    if sum(spec.mrope_section) * 2 != spec.head_dim:
        raise ValueError(f"mrope_section {spec.mrope_section} must sum to head_dim/2 = {spec.head_dim // 2}")
    text = {
        "vocab_size": spec.vocab_size,
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 5_000_000.0,
            "mrope_section": list(spec.mrope_section),
            "mrope_interleaved": True,
        },
        # Training never wants a KV cache; the packing gate also checks each forward call.
        "use_cache": False,
    }
    vision = {
        "depth": spec.vision_depth,
        "hidden_size": spec.vision_hidden_size,
        "intermediate_size": spec.vision_intermediate_size,
        "num_heads": spec.vision_heads,
        "patch_size": spec.patch_size,
        "temporal_patch_size": spec.temporal_patch_size,
        "spatial_merge_size": spec.spatial_merge_size,
        "out_hidden_size": spec.hidden_size,
        "num_position_embeddings": 256,
        "deepstack_visual_indexes": [0],
    }
    cfg = Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=IMAGE_TOKEN_ID,
        video_token_id=VIDEO_TOKEN_ID,
        vision_start_token_id=VISION_START_TOKEN_ID,
        vision_end_token_id=VISION_END_TOKEN_ID,
        tie_word_embeddings=True,
    )
    cfg._attn_implementation = attn_implementation
    return cfg


def build_tiny_model(spec: TinySpec = TinySpec(), attn_implementation: str = "sdpa"):
    """A randomly initialised Qwen3VLForConditionalGeneration, same weights for the same seed."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    cfg = tiny_config(spec, attn_implementation)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(spec.seed)
        model = Qwen3VLForConditionalGeneration(cfg)
    finally:
        torch.random.set_rng_state(state)  # do not perturb the caller's RNG stream
    return model.eval()


def save_tiny(out: str | Path, spec: TinySpec = TinySpec()) -> Path:
    """Build and save model + coord tokenizer into ``out`` (safetensors, offline-loadable)."""
    from coordexp.format.coord import load_tokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer()
    if len(tok) != spec.vocab_size:
        raise ValueError(f"tokenizer has {len(tok)} tokens but the tiny spec's vocab_size is {spec.vocab_size}")
    model = build_tiny_model(spec)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    marker = {
        "schema_version": 1,
        "spec": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.__dict__.items()},
    }
    (out / TINY_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return out


def save_tiny_base(out: str | Path, spec: TinySpec = TinySpec(vocab_size=BASE_VOCAB_ROWS)) -> Path:
    """A tiny model shaped like a stock Qwen3-VL release: no coord vocabulary, padded rows."""
    from transformers import AutoTokenizer

    from coordexp.format.coord import qwen_tokenizer_dir

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(qwen_tokenizer_dir())
    if len(tok) > spec.vocab_size:
        raise ValueError(f"tokenizer has {len(tok)} tokens, more than the spec's {spec.vocab_size} rows")
    build_tiny_model(spec).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def is_built(path: str | Path) -> bool:
    path = Path(path)
    return (path / TINY_MARKER).is_file() and (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def load_tiny(path: str | Path, attn_implementation: str = "sdpa"):
    """Load (model, tokenizer) from a folder written by ``save_tiny``; never touches the network."""
    from transformers import Qwen3VLForConditionalGeneration

    from coordexp.format.coord import load_tokenizer

    path = Path(path)
    if not is_built(path):
        raise FileNotFoundError(
            f"{path}: no tiny model here; build it with `python scripts/tools/build_tiny_model.py --out {path}`"
        )
    model = Qwen3VLForConditionalGeneration.from_pretrained(
        path, attn_implementation=attn_implementation, local_files_only=True
    )
    tok = load_tokenizer(path)
    return model.eval(), tok
