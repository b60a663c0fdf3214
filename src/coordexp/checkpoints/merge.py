"""Fold a stage_1 checkpoint (LoRA/DoRA adapter + coord offsets) into a plain model folder.

A stage_1 checkpoint holds ``adapter_model.safetensors`` + ``adapter_config.json`` (PEFT; its
``base_model_name_or_path`` names the model it was trained on) or a full model's weights, and,
when ``custom.coord_offset`` was enabled, ``coord_offset.safetensors``: the tables ``embed``
(and ``head`` unless ``tie_head``), 1000 x hidden, with metadata ``start`` (the first coord id).
During training those offsets act through hooks (``coordexp.training.model.CoordOffset``):
``embed(x) += D_embed[x - start]`` for coord ids, ``logits[:, start + k] += h . D_head[k]``.

Merging makes them part of the weights: embedding rows ``start..start+999`` += ``D_embed``
and LM-head rows += ``D_head`` (``D_embed`` when ``tie_head``). On a tied model (one table)
with ``tie_head`` one addition serves both; a tied model with a separate head offset is untied
first (the head becomes its own tensor), since one table cannot carry two offsets. The result
loads with ``Qwen3VLForConditionalGeneration.from_pretrained`` and no adapter code: stage_2
(``model.model``) and inference start from it.

``verify_merge`` proves it: the merged model's logits equal the adapter model's (base + PEFT
adapter + coord-offset hooks) on a probe sample with text, an image and coord tokens.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from coordexp.checkpoints.files import CheckpointError, copy_side_files, model_folder, write_json
from coordexp.format.coord import COORD_BINS

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
COORD_OFFSET = "coord_offset.safetensors"
REPORT = "merge_report.json"


@dataclass(frozen=True)
class MergeReport:
    checkpoint: str
    base: str
    out: str
    adapter: str  # "lora", "dora" or "none" (a full-model checkpoint)
    coord_offset: str  # "tied", "separate head" or "none"
    coord_start: int | None
    tie_word_embeddings: bool
    untied: bool  # the merge had to untie embedding and head


@dataclass(frozen=True)
class CoordOffsetTables:
    start: int
    embed: object  # torch.Tensor [1000, hidden]
    head: object | None  # None: tie_head (the head offset is ``embed``)


def read_coord_offset(checkpoint: Path) -> CoordOffsetTables | None:
    from safetensors import safe_open

    f = Path(checkpoint) / COORD_OFFSET
    if not f.is_file():
        return None
    with safe_open(str(f), framework="pt") as h:
        meta = h.metadata() or {}
        names = set(h.keys())
        if "embed" not in names or "start" not in meta:
            raise CheckpointError(f"{f}: not a coord-offset file (needs tensor 'embed' and metadata 'start')")
        embed = h.get_tensor("embed")
        head = h.get_tensor("head") if "head" in names else None
    if embed.shape[0] != COORD_BINS or (head is not None and head.shape != embed.shape):
        raise CheckpointError(f"{f}: offset tables must be {COORD_BINS} x hidden, got {tuple(embed.shape)}")
    return CoordOffsetTables(int(meta["start"]), embed, head)


def base_of(checkpoint: Path) -> Path | None:
    """The model the adapter was trained on, as PEFT recorded it (None: no adapter)."""
    cfg = Path(checkpoint) / ADAPTER_CONFIG
    if not cfg.is_file():
        return None
    base = json.loads(cfg.read_text()).get("base_model_name_or_path")  # inventory: json-ok(PEFT adapter_config.json)
    if not base:
        raise CheckpointError(f"{cfg}: no base_model_name_or_path; pass --base <model folder>")
    return Path(base)


def load_unmerged(checkpoint: Path, base: Path | None = None, *, dtype: str = "auto"):
    """(model, adapter kind, base folder): the base with the checkpoint's adapter applied, unmerged
    (a full-model checkpoint loads as it is)."""
    from transformers import Qwen3VLForConditionalGeneration

    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise CheckpointError(f"{checkpoint}: not a checkpoint folder")
    recorded = base_of(checkpoint)
    if recorded is None:  # a full-model checkpoint
        return (
            _load(Qwen3VLForConditionalGeneration, model_folder(checkpoint, "the checkpoint"), dtype),
            "none",
            checkpoint,
        )
    base = model_folder(Path(base or recorded), "the adapter's base model (--base)")
    if not (checkpoint / ADAPTER_WEIGHTS).is_file():
        raise CheckpointError(f"{checkpoint}: {ADAPTER_CONFIG} without {ADAPTER_WEIGHTS}")
    from peft import PeftModel

    model = PeftModel.from_pretrained(_load(Qwen3VLForConditionalGeneration, base, dtype), str(checkpoint))
    cfg = json.loads((checkpoint / ADAPTER_CONFIG).read_text())  # inventory: json-ok(PEFT adapter_config.json)
    return model, "dora" if cfg.get("use_dora") else "lora", base


def _load(cls, folder: Path, dtype: str):
    import torch

    return cls.from_pretrained(
        folder, dtype=dtype if dtype == "auto" else getattr(torch, dtype), local_files_only=True
    ).eval()


def fold_coord_offset(model, tables: CoordOffsetTables) -> bool:
    """Add the offsets into the embedding and LM-head rows, in place; returns whether it untied them."""
    import torch

    emb = model.get_input_embeddings().weight
    head_mod = model.get_output_embeddings()
    rows = slice(tables.start, tables.start + COORD_BINS)
    if emb.shape[0] < tables.start + COORD_BINS:
        raise CheckpointError(f"coord offsets start at {tables.start} but the model has {emb.shape[0]} rows")
    tied = head_mod.weight.data_ptr() == emb.data_ptr()
    untie = tied and tables.head is not None
    if untie:
        head_mod.weight = torch.nn.Parameter(emb.detach().clone())
        model.config.tie_word_embeddings = False
        text = getattr(model.config, "text_config", None)
        if text is not None and hasattr(text, "tie_word_embeddings"):
            text.tie_word_embeddings = False
    head = head_mod.weight
    with torch.no_grad():
        emb[rows] = (emb[rows].float() + tables.embed.float()).to(emb.dtype)
        if head.data_ptr() != emb.data_ptr():
            d = tables.embed if tables.head is None else tables.head
            head[rows] = (head[rows].float() + d.float()).to(head.dtype)
    return untie


def merge_checkpoint(checkpoint: str | Path, out: str | Path, *, base: str | Path | None = None) -> MergeReport:
    """Write ``out``: a plain Qwen3-VL folder with the checkpoint's adapter and coord offsets merged."""
    from transformers import AutoTokenizer

    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and any(out.iterdir()):
        raise CheckpointError(f"{out}: exists and is not empty; give a new --out folder")
    model, kind, base_dir = load_unmerged(checkpoint, Path(base) if base else None)
    if kind != "none":
        model = model.merge_and_unload()
    tables = read_coord_offset(checkpoint)
    untied = fold_coord_offset(model, tables) if tables is not None else False
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    copy_side_files(base_dir, out)
    offset = "none" if tables is None else ("tied" if tables.head is None else "separate head")
    report = MergeReport(
        str(checkpoint),
        str(base_dir),
        str(out),
        kind,
        offset,
        None if tables is None else tables.start,
        bool(model.config.tie_word_embeddings),
        untied,
    )
    write_json(out / REPORT, asdict(report))
    return report


# ----------------------------------------------------------------------------- verification


def probe_inputs(config, *, seed: int = 0, text_len: int = 24):
    """A sample that exercises every merged part: text ids, one image (vision LoRA), the wildcard
    and coord ids from both ends of the block. Shapes come from the model's config."""
    import torch

    g = torch.Generator().manual_seed(seed)
    vc = config.vision_config
    grid = (1, 4, 4)
    merged = grid[0] * grid[1] * grid[2] // vc.spatial_merge_size**2
    coords = [151669, 151670, 151671, 152168, 152668, 152669]
    text = torch.randint(0, 150000, (text_len,), generator=g).tolist()
    ids = (
        text[:4]
        + [config.vision_start_token_id]
        + [config.image_token_id] * merged
        + [config.vision_end_token_id]
        + text[4:]
        + coords
        + text[:3]
    )
    dim = getattr(vc, "in_channels", 3) * vc.temporal_patch_size * vc.patch_size**2
    input_ids = torch.tensor([ids])
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "mm_token_type_ids": (input_ids == config.image_token_id).to(torch.int32),
        "pixel_values": torch.randn(grid[0] * grid[1] * grid[2], dim, generator=g),
        "image_grid_thw": torch.tensor([list(grid)]),
    }


def adapter_logits(checkpoint: Path, base: Path | None, inputs: dict):
    """Logits of the model as trained: base + adapter (unmerged) + coord-offset hooks, float32."""
    import torch

    from coordexp.training.model import CoordOffset

    model, _, _ = load_unmerged(checkpoint, base, dtype="float32")
    tables = read_coord_offset(checkpoint)
    if tables is not None:
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        hooks = CoordOffset(inner, start=tables.start, tie_head=tables.head is None)
        hooks.embed.data.copy_(tables.embed.float())
        if tables.head is not None:
            hooks.head.data.copy_(tables.head.float())
    with torch.no_grad():
        return model(**inputs, use_cache=False).logits


def merged_logits(merged: Path, inputs: dict):
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    model = _load(Qwen3VLForConditionalGeneration, model_folder(merged, "the merged model"), "float32")
    with torch.no_grad():
        return model(**inputs, use_cache=False).logits


@dataclass(frozen=True)
class MergeCheck:
    max_abs_diff: float
    coord_max_abs_diff: float  # over the coord columns
    logit_scale: float  # max |logit|, to read the difference against
    tokens: int


def verify_merge(
    checkpoint: str | Path, merged: str | Path, *, base: str | Path | None = None, seed: int = 0
) -> MergeCheck:
    """Compare the merged model's logits with the adapter model's on ``probe_inputs`` (float32)."""
    from transformers import AutoConfig

    merged = Path(merged)
    inputs = probe_inputs(AutoConfig.from_pretrained(merged), seed=seed)
    a = adapter_logits(Path(checkpoint), Path(base) if base else None, inputs)
    b = merged_logits(merged, inputs)
    if a.shape != b.shape:
        raise CheckpointError(
            f"{merged}: logits shape {tuple(b.shape)} differs from the adapter model's {tuple(a.shape)}"
        )
    diff = (a - b).abs()
    tables = read_coord_offset(Path(checkpoint))
    start = tables.start if tables is not None else 151670
    return MergeCheck(
        float(diff.max()), float(diff[..., start : start + COORD_BINS].max()), float(a.abs().max()), int(a.shape[1])
    )
