"""Removed and legacy keys, each with its own migration message.

A key listed here is never "unknown": the user gets told what replaced it. Keys are matched by
dotted path with list indices removed; an entry ending in ``.*`` matches the whole subtree.
"""

from __future__ import annotations

from typing import Any

from .issues import KeyPath

_CHANNEL_B = "stage2_ab.channel_b"

REMOVED: dict[str, str] = {
    # training
    "training.packing_length": "removed: the packing length is `global_max_length` (it sets template.max_length "
    "and model.max_model_len); set `global_max_length` instead",
    # custom
    "custom.sample_limit": "removed: use `custom.train_sample_limit` and/or `custom.val_sample_limit`",
    "custom.extra.rollout_matching.*": "moved: rollout knobs live in the top-level `rollout_matching:` section "
    "(e.g. custom.extra.rollout_matching.max_new_tokens -> rollout_matching.max_new_tokens)",
    "custom.coord_expectation_metrics": "removed: coordinate supervision is configured by `custom.coord_soft_ce_w1` "
    "(enabled, soft_ce_weight, w1_weight, gate_weight, temperature, target_sigma)",
    "custom.hard_sample_mining": "removed: hard-sample mining is not part of this pipeline; delete the key",
    "custom.images_per_user_turn": "removed: every user turn holds exactly the record's images; delete the key",
    "custom.summary_ratio": "removed: summary mixing is not supported; delete the key",
    "custom.user_prompt": "prompts are fixed in code (coordexp.format.prompts) and chosen by "
    "`custom.object_field_order`, `custom.object_ordering` and `custom.extra.prompt_variant`; delete the key",
    # rollout_matching
    "rollout_matching.temperature": "moved: use `rollout_matching.decoding.temperature`",
    "rollout_matching.top_p": "moved: use `rollout_matching.decoding.top_p`",
    "rollout_matching.top_k": "moved: use `rollout_matching.decoding.top_k`",
    "rollout_matching.rollout_buffer": "removed: Channel-B rollouts per optimizer step are budgeted by "
    "`training.effective_batch_size`; delete the key",
    "rollout_matching.rollout_generate_batch_size": "removed: use `rollout_matching.decode_batch_size` "
    "(the per-rollout-GPU decode cap)",
    "rollout_matching.rollout_infer_batch_size": "removed: use `rollout_matching.decode_batch_size`",
    "rollout_matching.post_rollout_pack_scope": "removed: post-rollout packing is always per channel and per "
    "optimizer step; delete the key",
    "rollout_matching.channel_b_decode_batch_size": "a later-CoordExp name: this pipeline uses "
    "`rollout_matching.decode_batch_size`",
    "rollout_matching.eval_decode_batch_size": "a later-CoordExp name: this pipeline uses "
    "`rollout_matching.decode_batch_size` (eval batch size = decode batch size)",
    "rollout_matching.train_monitor_dump.*": "a later-CoordExp name: use `rollout_matching.monitor_dump`",
    "rollout_matching.eval_monitor_dump.*": "a later-CoordExp name: use `rollout_matching.monitor_dump`",
    "rollout_matching.vllm.server.base_url": "moved: list servers as `rollout_matching.vllm.server.servers: "
    "[{base_url: ..., group_port: ...}]`",
    "rollout_matching.vllm.server.group_port": "moved: set `group_port` on the entry in "
    "`rollout_matching.vllm.server.servers[]`",
    # stage2_ab
    "stage2_ab.schedule.pattern": "removed: the A/B schedule is the deterministic rule over "
    "`stage2_ab.schedule.b_ratio` (B iff floor((s+1)b) > floor(sb)); set b_ratio, e.g. 0.85",
    "stage2_ab.bbox_l1_weight": "removed: Stage-2 uses SmoothL1 on expected coordinates; use "
    "`stage2_ab.bbox_smoothl1_weight`",
    "stage2_ab.bbox_giou_weight": "removed: GIoU is forbidden in Stage-2; use `stage2_ab.bbox_ciou_weight`",
    "stage2_ab.pipeline.*": "a later-CoordExp loss registry: this pipeline uses the flat `stage2_ab.*_weight` keys",
    "stage2_ab.coord_ctx_embed_mode": "a post-audit knob (2026-02-24..2026-03-21) not in this pipeline: Channel-A "
    "uses the soft self-context (`n_softctx_iter`, `softctx_grad_mode`, `softctx_temperature`)",
    "stage2_ab.coord_decode_mode": "a post-audit knob (2026-02-24..2026-03-21) not in this pipeline: coordinates are "
    "decoded as the expectation over the coord bins",
    f"{_CHANNEL_B}.mode": "removed: Channel-B always runs rollout -> parse -> match -> FN injection; delete the key",
    f"{_CHANNEL_B}.async": "removed: Channel-B is synchronous per optimizer step; delete the key",
    f"{_CHANNEL_B}.rollouts_per_step": "removed: rollouts per step = `training.effective_batch_size`",
    f"{_CHANNEL_B}.enable_pipeline": "removed: vLLM server mode always pipelines rollout chunks (queue of 1); "
    "delete the key",
    f"{_CHANNEL_B}.rollout_decode_batch_size": "removed: use `rollout_matching.decode_batch_size`",
    f"{_CHANNEL_B}.reordered_gt_sft": "removed: FN objects are appended in GT order; delete the key",
    f"{_CHANNEL_B}.desc_ce_weight_matched": "removed: matched desc tokens get no CE; FN desc tokens use "
    "`stage2_ab.desc_ce_weight`",
    f"{_CHANNEL_B}.semantic_desc_gate": "removed: matching is geometric (maskIoU gate); delete the key",
    f"{_CHANNEL_B}.stop_neutral": "removed: closure supervision is always on (the outer `}` and `<|im_end|>` "
    "are supervised); delete the key",
    # ms-swift fields that would bypass a coordexp contract
    "template.system": "prompts are fixed in code (coordexp.format.prompts): the system prompt is chosen by "
    "`custom.object_field_order`, `custom.object_ordering` and `custom.extra.prompt_variant`; delete the key",
    "template.norm_bbox": "coordexp never lets ms-swift rescale boxes (the JSONL is already norm1000; "
    "`custom.coord_tokens.skip_bbox_norm` is always on): delete the key",
    # tuner (ms-swift 3.x -> 4.x rename)
    "tuner.train_type": "renamed in ms-swift 4.x: use `tuner.tuner_type` (e.g. lora)",
    # top level
    "extra.*": "top-level `extra` is not a section: `custom.extra` is the only open bucket",
}

# Audit-era `custom` keys for features coordexp does not implement. They are accepted only with an
# inert value (null, false, 0, empty, or a mapping with `enabled: false`), so that a reference config
# loads; an active value is an error, because accepting it would silently train something else.
INERT_ONLY_CUSTOM = {
    "val_sample_with_replacement": "sampling the val set with replacement",
    "use_summary": "summary mode",
    "system_prompt_summary": "summary mode",
    "augmentation": "image augmentation (it would move pixels under pre-quantized coordinates)",
    "augmentation_curriculum": "the augmentation curriculum",
    "bypass_prob": "augmentation bypass",
    "dump_conversation_text": "conversation dumps",
    "dump_conversation_path": "conversation dumps",
    "visual_kd": "visual knowledge distillation",
    "token_type_metrics": "token-type metrics",
    "fusion_config": "multi-dataset fusion (use `custom.train_jsonl`)",
}

DEPRECATED_NOOP_CUSTOM = {
    "coord_loss": "deprecated and ignored: coordinate supervision is `custom.coord_soft_ce_w1`; delete the key",
}


def _strip_indices(path: KeyPath) -> tuple[str, ...]:
    return tuple(p for p in path if not isinstance(p, int))


def legacy_message(path: KeyPath) -> str | None:
    parts = _strip_indices(path)
    name = ".".join(parts)
    if name in REMOVED:
        return REMOVED[name]
    for n in range(len(parts), 0, -1):
        wildcard = ".".join(parts[:n]) + ".*"
        if wildcard in REMOVED:
            return REMOVED[wildcard]
    return None


def is_inert(value: Any) -> bool:
    if value is None or value is False or value == "" or value == [] or value == {}:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return True
    return isinstance(value, dict) and value.get("enabled") is False
