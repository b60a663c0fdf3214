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


# Qwen3-VL's parts as ms-swift 4.6 names them (swift.model.model_arch, MLLMModelArch.qwen3_vl): the merger and the
# deepstack mergers are the aligner, inside the vision tower but governed by freeze_aligner alone.
LLM_PARTS = ("model.language_model", "lm_head")
ALIGNER_PARTS = ("model.visual.merger", "model.visual.deepstack_merger_list")
VISION_PARTS = ("model.visual",)
# ms-swift's defaults for the multimodal freeze flags (swift.arguments.tuner_args.TunerArguments).
FREEZE_DEFAULTS = {"freeze_llm": False, "freeze_vit": True, "freeze_aligner": True}


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def model_part(name: str) -> str | None:
    """``llm``, ``vit`` or ``aligner`` for a parameter or module name of Qwen3VLForConditionalGeneration."""
    if _under(name, ALIGNER_PARTS):
        return "aligner"
    if _under(name, VISION_PARTS):
        return "vit"
    if _under(name, LLM_PARTS):
        return "llm"
    return None


def frozen_parts(tuner: dict) -> set[str]:
    """The parts the freeze flags take out of training, with ms-swift's defaults for unset flags."""
    flags = {k: bool(tuner.get(k, d)) for k, d in FREEZE_DEFAULTS.items()}
    return {
        part
        for part, key in (("llm", "freeze_llm"), ("vit", "freeze_vit"), ("aligner", "freeze_aligner"))
        if flags[key]
    }


def lora_targets(model, tuner: dict) -> str | list[str]:
    """PEFT ``target_modules`` as ms-swift resolves them: ``target_regex`` wins; ``all-linear`` is every linear
    layer of the parts not frozen (the aligner by freeze_aligner alone, never the LM head), plus named modules."""
    if tuner.get("target_regex"):
        return str(tuner["target_regex"])
    names = list(tuner.get("target_modules") or ["all-linear"])
    out = [n for n in names if n != "all-linear"]
    if "all-linear" in names:
        frozen = frozen_parts(tuner)
        out += [
            name
            for name, module in model.named_modules()
            if isinstance(module, nn.Linear)
            and model_part(name) not in (None, *frozen)
            and not _under(name, ("lm_head",))
        ]
    if not out:
        raise TrainSetupError("tuner: the freeze flags leave no module for LoRA to train; unfreeze a part")
    return out


def apply_tuner(cfg, model):
    """``tuner.*`` as ms-swift 4.6 means them (full: the freeze flags; lora/DoRA: targets, bias, modules_to_save)."""
    tuner = cfg.tuner or {}
    kind = tuner.get("tuner_type", "full")
    if kind == "full":
        frozen = frozen_parts(tuner)
        for name, p in model.named_parameters():
            if model_part(name) in frozen:
                p.requires_grad_(False)
        return model
    if kind != "lora":
        raise TrainSetupError(f"{cfg.config_path}: tuner.tuner_type {kind!r} is not supported (full or lora)")
    from peft import LoraConfig, get_peft_model

    try:
        target = lora_targets(model, tuner)
    except TrainSetupError as exc:
        raise TrainSetupError(f"{cfg.config_path}: {exc}") from None
    lcfg = LoraConfig(
        r=tuner.get("lora_rank", 8),
        lora_alpha=tuner.get("lora_alpha", 32),
        lora_dropout=tuner.get("lora_dropout", 0.0),
        use_dora=bool(tuner.get("use_dora", False)),
        bias=tuner.get("lora_bias") or "none",
        modules_to_save=list(tuner.get("modules_to_save") or []) or None,
        target_modules=target,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lcfg)
