"""Every key of coordexp's own config schema is wired or refused: the registry.

A key that loads and does nothing is a silent knob: a user sets it, trains, and believes the
run used it. So each leaf of the typed sections (``custom``, ``stage2_ab``,
``rollout_matching``, ``debug``, ``deepspeed`` and the ``training`` extras) is in exactly one
of three tables, and a check (training-pipeline-audit, "Config Key Coverage") enumerates the
schema and proves each entry:

- ``PROBED``: key -> (consumer, probe value). The check loads a config with the key at its
  usual value and at the probe value and requires the consumer's output to differ. Consumers
  are what the trainers and the launcher are built from: ``stage2_engine`` (the Stage-2
  engine config), ``stage1_loss`` (the Stage-1 coord loss weights), ``launcher`` (the
  ``swift rollout`` command).
- ``CHECKED``: key -> the bound check (``tests/checks/<module>.py::<function>``) that
  exercises it; the coverage check requires the check to exist, be bound to a scenario, and
  name the key.
- ``REFUSED``: key -> a value the loader must refuse with an error naming the key. Keys that
  are parsed only for parity with the reference's configs and have no implementation are in
  ``NOT_IMPLEMENTED`` (any value other than the default is refused by ``refuse_not_implemented``).

Adding a field to a schema dataclass without adding it here fails the coverage check.

ms-swift's own sections (``model``, ``template``, ``data``, ``tuner``, ``quantization``) accept every
field of ms-swift's training arguments, but coordexp's recipes build the model, template, data and
tuner themselves: only the keys in ``SWIFT_HONOURED`` are read, each in one of the tables above, and
any other key is refused by ``config.rules.check_swift_sections`` with an error at the key
(``SWIFT_HINTS`` says where a misplaced one belongs).
"""

from __future__ import annotations

from typing import Any

from .typed import Ctx

# key -> (what is missing, what to do). Any value but the schema default is refused.
NOT_IMPLEMENTED: dict[str, tuple[str, str]] = {
    "deepspeed.enabled": (
        "DeepSpeed is not wired into coordexp's trainers (they run plain DDP)",
        "set it false (several ranks: NPROC_PER_NODE=N scripts/train.sh)",
    ),
    "deepspeed.config": ("DeepSpeed is not wired into coordexp's trainers", "delete it"),
    "debug.enabled": (
        "the debug section is not implemented",
        "use custom.train_sample_limit / custom.val_sample_limit and set it false",
    ),
    "debug.output_dir": ("the debug section is not implemented", "delete it (training.output_dir names the run)"),
    "debug.train_sample_limit": ("the debug section is not implemented", "use custom.train_sample_limit"),
    "debug.val_sample_limit": ("the debug section is not implemented", "use custom.val_sample_limit"),
    "rollout_matching.vllm.mode": (
        "colocate vLLM (rollouts inside the learner process) is not implemented; it "
        "also needs CUDA and vLLM, which a CPU machine has neither of",
        "use mode: server with scripts/train_stage2.sh",
    ),
    "rollout_matching.vllm.sync.mode": (
        "only full weight sync is implemented (the learner sends merged weights "
        "with ms-swift's flattened-bucket protocol); adapter sync is not",
        "set mode: full",
    ),
    "rollout_matching.vllm.sync.fallback_to_full": (
        "it applies only to adapter sync, which is not implemented",
        "delete it",
    ),
    "rollout_matching.vllm.sleep_level": ("vLLM sleep applies to colocate mode, which is not implemented", "set it 0"),
    "rollout_matching.eval_prompt_variant": (
        "a separate eval prompt variant is not implemented (eval uses custom.extra.prompt_variant)",
        "delete it",
    ),
    **{
        f"rollout_matching.{k}": (
            "Sinkhorn matching is not implemented (matching is Hungarian over boxes)",
            "delete it",
        )
        for k in ("ot_cost", "ot_epsilon", "ot_iters")
    },
    **{
        f"rollout_matching.{section}.{k}": (f"{what} is not implemented", "delete it")
        for section, what in (
            ("monitor_dump", "rollout monitor dumps"),
            ("vllm.server.debug_dump", "rollout-server debug dumps"),
        )
        for k in (
            "enabled",
            "every_steps",
            "out_dir",
            "max_events",
            "max_samples",
            "max_chars",
            "max_pending_writes",
            "min_free_gb",
        )
    },
    **{
        f"rollout_matching.offload.{k}": ("offloading during rollouts is not implemented", "set it false")
        for k in ("enabled", "offload_model", "offload_optimizer")
    },
    "rollout_matching.desc_monitor.enabled": ("the desc monitor is not implemented", "set it false"),
    **{
        f"training.{k}": ("not implemented by coordexp's trainers", "delete it")
        for k in (
            "save_delay_epochs",
            "save_last_epoch",
            "packing_avg_samples",
            "packing_wait_timeout_s",
            "packing_length_cache_persist_every",
        )
    },
    "training.packing_drop_last": (
        "static packing never drops underfilled packs (they are kept and counted in the packing report)",
        "delete it",
    ),
}


def _get(obj: Any, dotted: str) -> tuple[bool, Any]:
    for part in dotted.split("."):
        if obj is None or not hasattr(obj, part):
            return False, None
        obj = getattr(obj, part)
    return True, obj


def _default(root_cls, dotted: str) -> Any:
    """The schema default of a dotted key (nested dataclasses are built from their defaults)."""
    return _get(root_cls(), dotted)[1]


def refuse_not_implemented(cfg, ctx: Ctx) -> None:
    """Record an error at every NOT_IMPLEMENTED key whose value is not the schema default."""
    from .sections import DebugConfig, DeepspeedConfig, RolloutMatchingConfig, TrainingExtras

    roots = {
        "deepspeed": (cfg.deepspeed, DeepspeedConfig),
        "debug": (cfg.debug, DebugConfig),
        "rollout_matching": (cfg.rollout_matching, RolloutMatchingConfig),
        "training": (cfg.extras, TrainingExtras),
    }
    for key, (what, fix) in NOT_IMPLEMENTED.items():
        section, rest = key.split(".", 1)
        obj, cls = roots[section]
        present, value = _get(obj, rest)
        if not present:
            continue
        default = _default(cls, rest)
        if value != default:
            ctx.error(
                tuple(key.split(".")),
                f"{what}: `{rest.rsplit('.', 1)[-1]}: {value!r}` would be a silent "
                f"knob, so it is refused; {fix} (the default is {default!r})",
            )


# ----------------------------------------------------------------------------- ms-swift's sections
SWIFT_OWNED_SECTIONS = ("model", "template", "data", "tuner", "quantization")
# key -> who reads it. Everything else in those sections is refused.
SWIFT_HONOURED: dict[str, str] = {
    "model.model": "every recipe's model folder (training.model.build_model)",
    "model.torch_dtype": "the dtype the model is loaded in",
    "model.attn_impl": "the attention implementation the model is loaded with",
    "template.template": "the server's --template (qwen3_vl, the only chat template coordexp renders)",
    "template.max_pixels": "the hard image cap (training.settings.image_cap)",
    "template.max_length": "the packing length and the length gate (global_max_length sets it)",
    "template.truncation_strategy": "the length gate (raise only)",
    "data.dataset": "the [dummy] placeholder (records come from custom.train_jsonl)",
    "data.val_dataset": "the [dummy] placeholder (records come from custom.val_jsonl)",
    **{
        f"tuner.{k}": "training.model.apply_tuner, with ms-swift's meaning"
        for k in (
            "tuner_type",
            "use_dora",
            "lora_rank",
            "lora_alpha",
            "lora_dropout",
            "lora_bias",
            "target_modules",
            "target_regex",
            "modules_to_save",
            "freeze_llm",
            "freeze_vit",
            "freeze_aligner",
        )
    },
}
SWIFT_HINTS: dict[str, str] = {
    "model.max_pixels": "the image cap is template.max_pixels",
    "model.max_model_len": "global_max_length sets it",
    "data.dataloader_num_workers": "it is a training key: training.dataloader_num_workers",
    "data.dataset_num_proc": "records are read from custom.train_jsonl by coordexp, not by ms-swift's dataset loader",
    "template.loss_scale": "the loss weights are custom.coord_soft_ce_w1.* (stage_1) and stage2_ab.* (stage_2)",
}


def swift_key_problem(section: str, key: str) -> str | None:
    """Why ``section.key`` is refused, or None when a recipe reads it."""
    dotted = f"{section}.{key}"
    if dotted in SWIFT_HONOURED:
        return None
    hint = SWIFT_HINTS.get(dotted, "delete it")
    return (
        f"ms-swift accepts it, but coordexp's recipes build the model, template, data and tuner "
        f"themselves and never read it, so it would be a silent knob; {hint}"
    )


# ----------------------------------------------------------------------------- the registry
# Consumers (see the module docstring): stage2_engine, stage1_run, launcher. A probe value is a
# YAML value for the key, or a dict of dotted key -> value when the key needs company to load.
PROBED: dict[str, tuple[str, Any]] = {
    "custom.object_field_order": ("stage2_engine", "desc_first"),
    "stage2_ab.schedule.b_ratio": ("stage2_engine", 0.25),
    "stage2_ab.n_softctx_iter": ("stage2_engine", 3),
    "stage2_ab.softctx_grad_mode": ("stage2_engine", "em_detach"),
    "stage2_ab.softctx_temperature": ("stage2_engine", 0.5),
    "stage2_ab.desc_ce_weight": ("stage2_engine", 0.5),
    "stage2_ab.bbox_smoothl1_weight": ("stage2_engine", 0.7),
    "stage2_ab.bbox_ciou_weight": ("stage2_engine", 0.3),
    "stage2_ab.coord_ce_weight": ("stage2_engine", 0.1),
    "stage2_ab.coord_el1_weight": ("stage2_engine", 0.1),
    "stage2_ab.coord_ehuber_weight": ("stage2_engine", 0.1),
    "stage2_ab.coord_entropy_weight": ("stage2_engine", 0.1),
    "stage2_ab.coord_gate_weight": ("stage2_engine", 0.5),
    "stage2_ab.coord_huber_delta": ("stage2_engine", 0.01),
    "stage2_ab.channel_b.drop_invalid_struct_ce_multiplier": ("stage2_engine", 2.0),
    "rollout_matching.decode_mode": (
        "stage2_engine",
        {"rollout_matching.decode_mode": "beam", "rollout_matching.num_beams": 2},
    ),
    "rollout_matching.max_new_tokens": ("stage2_engine", 8),
    "rollout_matching.repetition_penalty": ("stage2_engine", 1.2),
    "rollout_matching.decoding.temperature": ("stage2_engine", 0.7),
    "rollout_matching.decoding.top_p": ("stage2_engine", 0.9),
    "rollout_matching.decoding.top_k": ("stage2_engine", 5),
    "rollout_matching.candidate_top_k": ("stage2_engine", 3),
    "rollout_matching.maskiou_gate": ("stage2_engine", 0.5),
    "rollout_matching.maskiou_resolution": ("stage2_engine", 128),
    "rollout_matching.fp_cost": ("stage2_engine", 0.25),
    "rollout_matching.fn_cost": ("stage2_engine", 3.0),
    "rollout_matching.eval_detection.enabled": ("stage2_engine", True),  # its effect: check_eval_detection_*
    "training.packing_buffer": ("stage2_engine", 32),
    "rollout_matching.rollout_backend": ("launcher", "hf"),
    "rollout_matching.vllm.tensor_parallel_size": ("launcher", 2),
    "rollout_matching.vllm.max_model_len": ("launcher", 4096),
    "rollout_matching.vllm.gpu_memory_utilization": ("launcher", 0.5),
    "rollout_matching.vllm.enable_lora": ("launcher", True),
    "rollout_matching.vllm.enable_prefix_caching": ("launcher", False),
    "rollout_matching.vllm.enforce_eager": ("launcher", False),
    "rollout_matching.vllm.mm_processor_kwargs": (
        "launcher",
        {"rollout_matching.vllm.mm_processor_kwargs": {"do_resize": False, "min_pixels": 3136}},
    ),
    "custom.object_ordering": ("stage1_run", "random"),
    "custom.extra": ("stage1_run", {"custom.extra": {"prompt_variant": "default"}}),  # the smoke uses coco_80
    "custom.train_sample_limit": ("stage1_run", 3),
    "custom.val_sample_limit": ("stage1_run", 1),
    "custom.coord_offset.enabled": ("stage1_run", False),  # the stage_1 smoke enables it, with a tied head
    "custom.coord_offset.tie_head": (
        "stage1_run",
        {"custom.coord_offset.enabled": True, "custom.coord_offset.tie_head": False},
    ),
    "custom.coord_offset.ids.start": (
        "stage1_run",
        {"custom.coord_offset.enabled": True, "custom.coord_offset.ids.start": 5, "custom.coord_offset.ids.end": 1004},
    ),
    "custom.coord_offset.ids.end": (
        "stage1_run",
        {"custom.coord_offset.enabled": True, "custom.coord_offset.ids.start": 6, "custom.coord_offset.ids.end": 1005},
    ),
    "custom.coord_offset.embed_lr": ("stage1_run", 3.0e-4),
    "custom.coord_offset.head_lr": ("stage1_run", 4.0e-4),
    "custom.coord_offset.weight_decay": ("stage1_run", 0.05),
    "custom.coord_soft_ce_w1.enabled": ("stage1_run", False),
    "custom.coord_soft_ce_w1.ce_weight": ("stage1_run", 0.3),
    "custom.coord_soft_ce_w1.soft_ce_weight": ("stage1_run", 0.3),
    "custom.coord_soft_ce_w1.w1_weight": ("stage1_run", 0.3),
    "custom.coord_soft_ce_w1.gate_weight": ("stage1_run", 0.3),
    "custom.coord_soft_ce_w1.temperature": ("stage1_run", 0.5),
    "custom.coord_soft_ce_w1.target_sigma": ("stage1_run", 3.0),
    "custom.coord_soft_ce_w1.target_truncate": ("stage1_run", 4),
    "training.effective_batch_size": ("stage1_run", 2),
    "training.save_delay_steps": ("stage1_run", 5),
    "training.packing": ("stage1_run", False),
    "training.packing_min_fill_ratio": ("stage1_run", 0.9),
    "training.packing_allow_single_long": ("stage1_run", False),
    "training.packing_collator": ("stage1_run", "swift_padding_free_3row"),
    # ms-swift's sections (SWIFT_HONOURED); the smoke is LoRA + DoRA with every freeze flag false
    "model.torch_dtype": ("stage1_run", "bfloat16"),
    "model.attn_impl": ("stage1_run", "eager"),
    "template.max_pixels": ("stage1_run", 4096),
    "tuner.tuner_type": ("stage1_run", "full"),
    "tuner.use_dora": ("stage1_run", False),
    "tuner.lora_rank": ("stage1_run", 4),
    "tuner.lora_alpha": ("stage1_run", 8),
    "tuner.lora_dropout": ("stage1_run", 0.2),
    "tuner.lora_bias": ("stage1_run", "all"),
    "tuner.target_modules": ("stage1_run", ["q_proj", "v_proj"]),
    "tuner.target_regex": ("stage1_run", r".*language_model.*\.q_proj"),
    "tuner.modules_to_save": ("stage1_run", ["model.visual.merger"]),
    "tuner.freeze_llm": ("stage1_run", True),
    "tuner.freeze_vit": ("stage1_run", True),
    "tuner.freeze_aligner": ("stage1_run", True),
}

# key -> a bound check that exercises it ("<module>::<function>" under tests/checks/).
_LAUNCHER_SMOKE = "rollout_server_side::check_the_cpu_launcher_smoke_syncs_on_the_protocol"
_WORLD_SIZE = "rollout_server_contract::check_the_learner_asks_the_server_for_its_world_size"
CHECKED: dict[str, str] = {
    "custom.train_jsonl": _LAUNCHER_SMOKE,
    "custom.val_jsonl": _LAUNCHER_SMOKE,
    "custom.trainer_variant": "training_config::check_stage2_requires_sections",
    "rollout_matching.decode_batch_size": _WORLD_SIZE,
    "rollout_matching.vllm.server.timeout_s": _WORLD_SIZE,
    "rollout_matching.vllm.server.infer_timeout_s": _WORLD_SIZE,
    "rollout_matching.vllm.server.servers[].base_url": _LAUNCHER_SMOKE,
    "rollout_matching.vllm.server.servers[].group_port": _LAUNCHER_SMOKE,
    "model.model": "training_config::check_unread_swift_keys_are_refused",
    "custom.allow_images_outside_jsonl_dir": "jsonl_contract::check_image_paths_stay_under_the_jsonl_folder",
}

# key -> a YAML value the loader refuses with an error at that key (besides NOT_IMPLEMENTED).
REFUSED: dict[str, Any] = {
    "custom.json_format": "compact",
    "custom.emit_norm": "norm1000",
    "custom.coord_tokens.enabled": False,
    "custom.coord_tokens.skip_bbox_norm": False,
    "rollout_matching.num_beams": 2,
    "training.packing_mode": "dynamic",
    "training.eval_packing": True,
    "template.template": "qwen2_vl",
    "template.truncation_strategy": "delete",
    "template.max_length": 7,  # global_max_length sets it
    "data.dataset": ["coco"],
    "data.val_dataset": ["coco"],
}
