"""The model a run trains: Qwen3-VL from a local folder, its tuner, and the coord-offset adapter.

``build_model(cfg)`` returns ``(model, tokenizer, adapter)``; ``adapter`` is the
``CoordOffset`` (``custom.coord_offset.enabled``) or None. The adapter is not a submodule of
the model: its two tables are saved beside the model's weights (``coord_offset.safetensors``)
and folded into the embedding / LM-head rows by ``coordexp.checkpoints.merge``.
"""

from __future__ import annotations

import torch
from torch import nn

from coordexp.format.coord import COORD_BINS
from coordexp.training.settings import TrainSetupError


class CoordOffset(nn.Module):
    """Trainable offsets on the 1000 coord rows: embed(x) += D[id], logits[coord] += h . D_head^T.

    With ``tie_head`` the head offset is the embedding offset (one table), as the tied
    Qwen3-VL embedding/head it sits on.
    """

    def __init__(self, model, start: int, tie_head: bool):
        super().__init__()
        emb = model.get_input_embeddings()
        hidden = emb.weight.shape[1]
        self.start, self.tie_head = start, tie_head
        self.embed = nn.Parameter(torch.zeros(COORD_BINS, hidden, dtype=emb.weight.dtype))
        self.head = None if tie_head else nn.Parameter(torch.zeros(COORD_BINS, hidden, dtype=emb.weight.dtype))
        emb.register_forward_hook(self._embed_hook)
        model.get_output_embeddings().register_forward_hook(self._head_hook)

    def _embed_hook(self, module, args, output):
        ids = args[0]
        rel = ids - self.start
        is_coord = (rel >= 0) & (rel < COORD_BINS)
        delta = self.embed[rel.clamp(0, COORD_BINS - 1)] * is_coord.unsqueeze(-1).to(output.dtype)
        return output + delta

    def _head_hook(self, module, args, output):
        h = args[0]
        d = self.embed if self.tie_head else self.head
        pad_l = self.start
        pad_r = output.shape[-1] - self.start - COORD_BINS
        extra = torch.nn.functional.pad(h @ d.t(), (pad_l, pad_r))
        return output + extra


def load_qwen3vl(path: str, *, attn_impl: str = "sdpa", dtype: str = "float32"):
    """Qwen3VLForConditionalGeneration from a local folder, KV cache off (training never uses it)."""
    from transformers import Qwen3VLForConditionalGeneration

    model = Qwen3VLForConditionalGeneration.from_pretrained(
        path, attn_implementation=attn_impl, dtype=getattr(torch, dtype), local_files_only=True
    )
    model.config.use_cache = False
    model.config.text_config.use_cache = False
    return model


def build_model(cfg):
    from coordexp.format.coord import coord_token_ids, load_tokenizer

    path = cfg.model["model"]
    model = load_qwen3vl(
        path, attn_impl=cfg.model.get("attn_impl") or "sdpa", dtype=cfg.model.get("torch_dtype") or "float32"
    )
    tok = load_tokenizer(path)
    ids = coord_token_ids(tok)
    off = cfg.custom.coord_offset
    if off.enabled and (ids[0], ids[-1]) != (off.ids.start, off.ids.end):
        raise TrainSetupError(
            f"{cfg.config_path}: custom.coord_offset.ids {off.ids.start}..{off.ids.end} but the "
            f"tokenizer's coord ids are {ids[0]}..{ids[-1]}"
        )
    if model.get_input_embeddings().weight.shape[0] < ids[-1] + 1:
        raise TrainSetupError(
            f"{path}: embedding has {model.get_input_embeddings().weight.shape[0]} rows, "
            f"fewer than the coord vocabulary needs ({ids[-1] + 1}); expand it first "
            "(scripts/tools/expand_coord_vocab.py)"
        )
    adapter = None
    if off.enabled:
        adapter = CoordOffset(model, start=ids[0], tie_head=off.tie_head)
    model = apply_tuner(cfg, model)
    if adapter is not None:
        adapter.train()
        for p in adapter.parameters():
            p.requires_grad_(True)
    return model, tok, adapter


def apply_tuner(cfg, model):
    tuner = cfg.tuner or {}
    kind = tuner.get("tuner_type", "full")
    freeze = {"visual.": tuner.get("freeze_vit"), "model.language_model.": tuner.get("freeze_llm")}
    if kind == "full":
        for name, p in model.named_parameters():
            if any(
                flag and name.startswith(("model." + pre) if not pre.startswith("model.") else pre)
                for pre, flag in freeze.items()
            ):
                p.requires_grad_(False)
        return model
    if kind != "lora":
        raise TrainSetupError(f"{cfg.config_path}: tuner.tuner_type {kind!r} is not supported (full or lora)")
    if any(tuner.get(k) for k in ("freeze_vit", "freeze_llm", "freeze_aligner")):
        raise TrainSetupError(
            f"{cfg.config_path}: tuner.freeze_* with lora is not supported by the coordexp trainers; set them false"
        )
    from peft import LoraConfig, get_peft_model

    target = tuner.get("target_modules") or ["all-linear"]
    lcfg = LoraConfig(
        r=tuner.get("lora_rank", 8),
        lora_alpha=tuner.get("lora_alpha", 32),
        lora_dropout=tuner.get("lora_dropout", 0.0),
        use_dora=bool(tuner.get("use_dora", False)),
        target_modules=target[0] if target == ["all-linear"] else target,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lcfg)
