"""Load what inference runs: a Qwen3-VL model directory, optionally with a stage_1 checkpoint on top.

A stage_1 checkpoint (``coordexp.train``, weight-only) holds the LoRA/DoRA adapter
(``adapter_config.json`` + ``adapter_model.safetensors``) and, when ``custom.coord_offset`` was
on, ``coord_offset.safetensors``: offsets D on the 1000 coord rows, applied in training as

    embed(id) += D_embed[id - start]                  for coord ids
    logits[:, start:start+1000] += h @ D_head^T       (D_head = D_embed when tie_head)

Both are linear in the weights, so inference folds them in once instead of hooking every
forward: the embedding rows [start, start+1000) gain D_embed and the LM-head rows gain D_head.
When the model ties its LM head to the embedding and the offsets are tied too, adding D once
to the shared matrix does both; untied offsets on a tied model untie the head first (a copy).
The adapter is then merged (``merge_and_unload``), so generation runs on a plain model.
"""

from __future__ import annotations

from pathlib import Path

from coordexp.errors import CoordExpError
from coordexp.format.coord import COORD_BINS, coord_token_ids, load_tokenizer

ADAPTER_CONFIG = "adapter_config.json"
COORD_OFFSET_FILE = "coord_offset.safetensors"


class ModelLoadError(CoordExpError, RuntimeError):
    """The model or checkpoint cannot be loaded as asked (the message says what to fix)."""


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"infer.device is {name!r} but no CUDA device is available; use device: cpu")
    return torch.device(name)


def fold_coord_offset(model, embed, head, start: int) -> None:
    """Add the coord offsets to the model's embedding and LM-head rows (in place)."""
    import torch

    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    if emb.shape[0] < start + COORD_BINS:
        raise ModelLoadError(
            f"the embedding has {emb.shape[0]} rows; coord offsets need rows {start}..{start + COORD_BINS - 1}"
        )
    tied = out.weight.data_ptr() == emb.data_ptr()
    with torch.no_grad():
        emb[start : start + COORD_BINS] += embed.to(emb.dtype)
        if head is None and tied:
            return  # the shared matrix already carries D for the head
        if tied:  # untied offsets on a tied model: the head gets its own copy first
            out.weight = torch.nn.Parameter(emb.detach().clone() - _pad_rows(embed, emb, start))
            model.config.tie_word_embeddings = False
            if hasattr(model.config, "text_config"):
                model.config.text_config.tie_word_embeddings = False
        d_head = embed if head is None else head
        out.weight[start : start + COORD_BINS] += d_head.to(out.weight.dtype)


def _pad_rows(delta, like, start):
    import torch

    full = torch.zeros_like(like)
    full[start : start + COORD_BINS] = delta.to(like.dtype)
    return full


def load_coord_offset(path: Path, expected_start: int):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if "embed" not in tensors or tensors["embed"].shape[0] != COORD_BINS:
        raise ModelLoadError(f"{path}: expected an `embed` tensor of {COORD_BINS} rows")
    start = int(meta.get("start", expected_start))
    if start != expected_start:
        raise ModelLoadError(
            f"{path}: offsets start at id {start} but the tokenizer's coord ids start at {expected_start}"
        )
    return tensors["embed"], tensors.get("head")


def load_for_inference(
    model_dir: str,
    checkpoint: str | None,
    *,
    torch_dtype: str = "float32",
    device: str = "cpu",
    attn_impl: str = "sdpa",
    tokenizer: str | None = None,
):
    """(model in eval mode on its device, coord-extended tokenizer from ``tokenizer`` or else ``model_dir``)."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    mdir = Path(model_dir)
    if not (mdir / "config.json").is_file():
        raise ModelLoadError(f"{mdir}: no config.json: infer.model must be a Qwen3-VL model directory")
    model = Qwen3VLForConditionalGeneration.from_pretrained(
        str(mdir), dtype=getattr(torch, torch_dtype), attn_implementation=attn_impl, local_files_only=True
    )
    tdir = Path(tokenizer) if tokenizer else mdir
    if not (tdir / "tokenizer_config.json").is_file():
        raise ModelLoadError(
            f"{tdir}: no tokenizer here (a full-tuning checkpoint saves none): set infer.tokenizer to the "
            "model folder it was trained from"
        )
    tok = load_tokenizer(tdir)
    ids = coord_token_ids(tok)
    if checkpoint:
        model = _apply_checkpoint(model, Path(checkpoint), ids[0])
    model.config.use_cache = True
    return model.to(_device(device)).eval(), tok


def _apply_checkpoint(model, ckpt: Path, start: int):
    if not ckpt.is_dir():
        raise ModelLoadError(f"{ckpt}: infer.checkpoint is not a directory")
    has_adapter = (ckpt / ADAPTER_CONFIG).is_file()
    has_offset = (ckpt / COORD_OFFSET_FILE).is_file()
    if not (has_adapter or has_offset):
        raise ModelLoadError(
            f"{ckpt}: neither {ADAPTER_CONFIG} nor {COORD_OFFSET_FILE}: not a stage_1 checkpoint "
            "(a full model directory goes in infer.model instead)"
        )
    if has_offset:
        embed, head = load_coord_offset(ckpt / COORD_OFFSET_FILE, start)
        fold_coord_offset(model, embed, head, start)
    if has_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(ckpt), is_trainable=False).merge_and_unload()
    return model
