"""Invariants and coherence gates over the parsed config (openspec/specs/training-config; docs/config-and-data.md).

Each rule records its problems at the key to edit; rules run even after earlier problems, on
whatever parsed, so one load reports everything. Rules that derive a value (GAS, template
max_length, the eval batch) write it into the config, and refuse a conflicting explicit value
rather than overriding it in silence.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .typed import Ctx

FLASH_ATTN = ("flash_attention_2", "flash_attn_2", "flash_attn")
MASK_FROM_POSITION_IDS = ("sdpa", "eager")
STAGE2_VARIANT = "stage2_ab_training"
DEFAULT_SEED = 42  # transformers' TrainingArguments default, used when training.seed is unset


def _prompt_variants() -> tuple[str, ...]:
    from coordexp.format.prompts import PROMPT_VARIANTS

    return tuple(PROMPT_VARIANTS)


def check_coord_mode(cfg, ctx: Ctx) -> None:
    ct = cfg.custom.coord_tokens
    for name in ("enabled", "skip_bbox_norm"):
        if getattr(ct, name) is not True:
            ctx.error(
                ("custom", "coord_tokens", name),
                "must be true: training data is pre-quantized norm1000 coord tokens; turning this off would "
                "re-normalize (or de-tokenize) coordinates and silently change the targets",
            )
    off = cfg.custom.coord_offset
    if off.enabled and off.ids.end - off.ids.start + 1 != 1000:
        ctx.error(
            ("custom", "coord_offset", "ids"),
            f"must span exactly the 1000 coord ids (start..end inclusive), got {off.ids.start}..{off.ids.end}",
        )
    sc = cfg.custom.coord_soft_ce_w1
    if sc.enabled and not any((sc.ce_weight, sc.soft_ce_weight, sc.w1_weight, sc.gate_weight)):
        ctx.error(
            ("custom", "coord_soft_ce_w1"),
            "enabled with every weight 0: it would train nothing; set a weight or `enabled: false`",
        )


def check_custom(cfg, raw: dict, ctx: Ctx) -> None:
    custom = raw.get("custom") if isinstance(raw.get("custom"), dict) else {}
    if cfg.custom.train_jsonl is None and "train_jsonl" not in custom:
        ctx.error(
            ("custom", "train_jsonl"),
            "required key is missing (the training JSONL, e.g. "
            "public_data/coco/rescale_32_768_bbox_max60/train.coord.jsonl)",
        )
    extra = cfg.custom.extra
    if "rollout_matching" in extra:
        ctx.error(("custom", "extra", "rollout_matching"), ctx.legacy(("custom", "extra", "rollout_matching")))
    variant = extra.get("prompt_variant")
    if "prompt_variant" in extra and variant not in _prompt_variants():
        ctx.error(
            ("custom", "extra", "prompt_variant"),
            f"must be one of {', '.join(map(repr, _prompt_variants()))}; got {variant!r}",
        )
    rm = cfg.rollout_matching
    if rm is not None and rm.eval_prompt_variant is not None and rm.eval_prompt_variant not in _prompt_variants():
        ctx.error(
            ("rollout_matching", "eval_prompt_variant"),
            f"must be one of {', '.join(map(repr, _prompt_variants()))}; got {rm.eval_prompt_variant!r}",
        )


def check_variant_sections(cfg, raw: dict, ctx: Ctx) -> None:
    variant_raw = (raw.get("custom") or {}).get("trainer_variant") if isinstance(raw.get("custom"), dict) else None
    if variant_raw == "stage2_two_channel":
        ctx.errors[:] = [e for e in ctx.errors if e.key != "custom.trainer_variant"]
        ctx.error(
            ("custom", "trainer_variant"),
            f"`stage2_two_channel` is the later-CoordExp name: this pipeline's Stage-2 variant is `{STAGE2_VARIANT}`",
        )
    if cfg.custom.trainer_variant == STAGE2_VARIANT:
        for section in ("stage2_ab", "rollout_matching"):
            if section not in raw:
                ctx.error((section,), f"required when custom.trainer_variant is {STAGE2_VARIANT!r}")
        if cfg.training.get("effective_batch_size") is None:
            ctx.error(
                ("training", "effective_batch_size"),
                f"required when custom.trainer_variant is {STAGE2_VARIANT!r}: it is the raw sample (and "
                "rollout) budget per optimizer step",
            )
    elif variant_raw != "stage2_two_channel":
        for section in ("stage2_ab", "rollout_matching"):
            if raw.get(section) not in (None, {}):
                ctx.error(
                    (section,),
                    f"set, but custom.trainer_variant is not {STAGE2_VARIANT!r}, so it would be "
                    f"ignored: remove the section or set custom.trainer_variant: {STAGE2_VARIANT}",
                )


def check_global_max_length(cfg, ctx: Ctx) -> None:
    gml = cfg.global_max_length
    if gml is None:
        return
    for section, key in (("template", "max_length"), ("model", "max_model_len")):
        d = getattr(cfg, section)
        if d.get(key) is not None and d[key] != gml:
            ctx.error(
                (section, key),
                f"is {d[key]!r} but global_max_length is {gml}: global_max_length sets it; delete this key",
            )
        d[key] = gml


def check_placeholders(cfg, raw: dict, ctx: Ctx) -> None:
    prompts = raw.get("prompts")
    if prompts not in (None, {}, [], ""):
        ctx.error(
            ("prompts",),
            "prompts are fixed in code (coordexp.format.prompts) and picked by custom.object_field_order, "
            "custom.object_ordering and custom.extra.prompt_variant; remove the `prompts` section",
        )
    for key in ("dataset", "val_dataset"):
        value = cfg.data.get(key)
        if value is not None and value != ["dummy"]:
            ctx.error(
                ("data", key),
                f"must be [dummy] (got {value!r}): the real data comes from custom.train_jsonl / "
                "custom.val_jsonl, and a real ms-swift dataset here would be trained instead",
            )
        cfg.data[key] = ["dummy"]


def check_swift_sections(cfg, ctx: Ctx) -> None:
    """Every key of ms-swift's own sections is read by a recipe or refused (``coverage.SWIFT_HONOURED``).

    Runs on the sections as the loader kept them (ms-swift fields, legacy keys already reported), before
    any rule fills in a derived key (``check_global_max_length``, ``check_placeholders``)."""
    from .coverage import SWIFT_OWNED_SECTIONS, swift_key_problem

    for section in SWIFT_OWNED_SECTIONS:
        for key in getattr(cfg, section):
            why = swift_key_problem(section, str(key))
            if why:
                ctx.error((section, key), why)


def check_template(cfg, ctx: Ctx) -> None:
    mp = cfg.template.get("max_pixels")
    if mp is not None and (isinstance(mp, bool) or not isinstance(mp, int) or mp <= 0):
        ctx.error(("template", "max_pixels"), f"must be a positive integer (a hard cap, e.g. 786432), got {mp!r}")
    name = cfg.template.get("template")
    if name is not None and name != "qwen3_vl":
        ctx.error(
            ("template", "template"),
            f"is {name!r}, but coordexp renders the Qwen3-VL chat template only (the learner's prompt ids must "
            "equal the server's): set qwen3_vl",
        )
    ts = cfg.template.get("truncation_strategy")
    if ts is not None and ts != "raise":
        ctx.error(
            ("template", "truncation_strategy"),
            f"is {ts!r}, but the recipes never truncate a sample (a cut target would teach a truncated answer): "
            "set raise, and shorten the sample or raise global_max_length",
        )


def check_rollout(cfg, ctx: Ctx) -> None:
    # Parsed for parity with the reference's configs, but coordexp has no implementation: set to
    # anything but the default they would do nothing, so they are refused rather than ignored. In
    # every config: the debug, deepspeed and training keys reach stage_1 configs too.
    from .coverage import refuse_not_implemented

    refuse_not_implemented(cfg, ctx)
    rm = cfg.rollout_matching
    if rm is None:
        return
    top_k = rm.decoding.top_k
    if top_k != -1 and top_k < 1:
        ctx.error(("rollout_matching", "decoding", "top_k"), f"must be -1 (off) or >= 1, got {top_k}")
    if rm.decode_mode == "greedy" and rm.num_beams != 1:
        ctx.error(
            ("rollout_matching", "num_beams"),
            f"is {rm.num_beams} but decode_mode is 'greedy': set decode_mode: beam or num_beams: 1",
        )
    if rm.decode_mode == "beam" and rm.num_beams < 2:
        ctx.error(("rollout_matching", "num_beams"), "decode_mode 'beam' needs num_beams >= 2")
    if rm.rollout_backend != "vllm":
        return
    v = rm.vllm
    if v.max_model_len is None:
        ctx.error(
            ("rollout_matching", "vllm", "max_model_len"),
            "required with rollout_backend: vllm (e.g. 12000, >= global_max_length)",
        )
    else:
        if rm.max_new_tokens >= v.max_model_len:
            ctx.error(
                ("rollout_matching", "max_new_tokens"),
                f"must be < rollout_matching.vllm.max_model_len ({rm.max_new_tokens} >= {v.max_model_len}): "
                "the prompt would leave no room to generate",
            )
        if cfg.global_max_length is None:
            ctx.error(
                ("global_max_length",),
                "required with rollout_backend: vllm (the server's max_model_len must "
                "cover the learner's sequence length)",
            )
        elif v.max_model_len < cfg.global_max_length:
            ctx.error(
                ("rollout_matching", "vllm", "max_model_len"),
                f"must be >= global_max_length ({v.max_model_len} < {cfg.global_max_length}): the server would "
                "truncate sequences the learner trains on",
            )
    if v.mode == "server":
        servers = v.server.servers
        if not servers:
            ctx.error(
                ("rollout_matching", "vllm", "server", "servers"),
                "server mode needs exactly one entry: [{base_url: http://127.0.0.1:8000, group_port: 51216}]",
            )
        elif len(servers) > 1:
            ctx.error(
                ("rollout_matching", "vllm", "server", "servers", 1),
                f"{len(servers)} servers listed, but the launcher starts and syncs exactly one: keep one entry",
            )
        for i, entry in enumerate(servers):
            url = entry.base_url or ""
            parts = urlsplit(url)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
                ctx.error(
                    ("rollout_matching", "vllm", "server", "servers", i, "base_url"),
                    f"must be http(s)://host:port with an explicit port, got {url!r}",
                )


def _training_int(cfg, key: str, ctx: Ctx, *, minimum: int = 1) -> Any:
    value = cfg.training.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        ctx.error(("training", key), f"must be an integer >= {minimum}, got {value!r}")
        return None
    return value


def check_batch(cfg, ctx: Ctx, world_size: int) -> None:
    """effective_batch_size = per_device * world * GAS; GAS is derived, never guessed."""
    ex = cfg.extras
    per_device = _training_int(cfg, "per_device_train_batch_size", ctx)
    gas = _training_int(cfg, "gradient_accumulation_steps", ctx)
    if ex.packing and per_device not in (None, 1):
        ctx.error(
            ("training", "per_device_train_batch_size"),
            f"must be 1 with training.packing: true (one pack per device step), got {per_device}; "
            "effective_batch_size then counts packs per optimizer step",
        )
        per_device = 1
    if ex.packing:
        cfg.training["per_device_train_batch_size"] = 1
    eff = ex.effective_batch_size
    if eff is None:
        return
    per_device = per_device or 1
    denom = per_device * world_size
    if eff % denom:
        ctx.error(
            ("training", "effective_batch_size"),
            f"{eff} is not divisible by per_device_train_batch_size x world_size = {per_device} x {world_size}; "
            f"use a multiple of {denom}",
        )
        return
    derived = eff // denom
    if gas is not None and gas != derived:
        ctx.error(
            ("training", "gradient_accumulation_steps"),
            f"is {gas} but effective_batch_size {eff} / ({per_device} x {world_size}) = {derived}: delete "
            "gradient_accumulation_steps (it is derived)",
        )
    cfg.training["gradient_accumulation_steps"] = derived
    cfg.training["per_device_train_batch_size"] = per_device


def check_packing(cfg, ctx: Ctx) -> None:
    ex = cfg.extras
    if ex.eval_packing:
        ctx.error(
            ("training", "eval_packing"),
            "must be false: packing is static-only and eval is never packed (set eval_packing: false)",
        )
    if not ex.packing:
        return
    if ex.packing_mode != "static":
        ctx.error(
            ("training", "packing_mode"),
            f"{ex.packing_mode!r} is no longer allowed: packing is static "
            "(a deterministic per-epoch plan); set packing_mode: static",
        )
    attn = cfg.model.get("attn_impl")
    if attn in FLASH_ATTN:
        pass  # varlen flash attention over cu_seqlens isolates samples with either collator
    elif attn in MASK_FROM_POSITION_IDS:
        if ex.packing_collator != "padding_free_4row":
            ctx.error(
                ("training", "packing_collator"),
                f"{ex.packing_collator!r} with model.attn_impl {attn!r} lets packed samples attend to each "
                "other: use packing_collator: padding_free_4row (position_ids [text; t; h; w]) or "
                "flash_attention_2",
            )
    else:
        ctx.error(
            ("model", "attn_impl"),
            f"training.packing: true needs an attention backend that isolates packed samples: "
            f"flash_attention_2, or sdpa/eager with training.packing_collator: padding_free_4row; got {attn!r}",
        )
    if cfg.custom.trainer_variant == STAGE2_VARIANT:
        if not ex.packing_drop_last:
            ctx.error(
                ("training", "packing_drop_last"), "must be true for Stage-2 post-rollout packing (carry-only mode)"
            )
        if cfg.training.get("dataloader_drop_last") is not True:
            ctx.error(("training", "dataloader_drop_last"), "must be true for Stage-2 packing")


def check_eval_batch(cfg, ctx: Ctx) -> None:
    rm = cfg.rollout_matching
    if cfg.custom.trainer_variant != STAGE2_VARIANT or rm is None:
        return
    explicit = cfg.training.get("per_device_eval_batch_size")
    if explicit is not None and explicit != rm.decode_batch_size:
        ctx.error(
            ("training", "per_device_eval_batch_size"),
            f"is {explicit!r} but Stage-2 eval is rollout-based with batch = rollout_matching.decode_batch_size "
            f"({rm.decode_batch_size}): delete it or make them equal",
        )
    cfg.training["per_device_eval_batch_size"] = rm.decode_batch_size


def dataset_seed(cfg, ctx: Ctx) -> int:
    seed = cfg.training.get("seed")
    if seed is None:
        ctx.warn(
            ("training", "seed"),
            f"unset: using {DEFAULT_SEED} (the transformers default) as the dataset seed; "
            "set training.seed to make it explicit",
        )
        cfg.training["seed"] = DEFAULT_SEED
        return DEFAULT_SEED
    if isinstance(seed, bool) or not isinstance(seed, int):
        ctx.error(("training", "seed"), f"must be an integer, got {seed!r}")
        return DEFAULT_SEED
    return seed
