"""Typed schemas of the sections coordexp owns: `custom`, `stage2_ab`, `rollout_matching`, `debug`, `deepspeed`.

Defaults are the reference's audit-era defaults (docs/config-and-data.md, docs/reference-differences.md). Bounds live
in field
metadata (see typed.py). Keys that the reference accepted but coordexp does not implement are
handled in legacy.py, never accepted silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


def _f(default: Any = None, *, factory: Any = None, **meta: Any):
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _required(**meta: Any):
    return field(metadata=meta)


# ---------------------------------------------------------------- custom


@dataclass
class CoordTokensConfig:
    enabled: bool = True
    skip_bbox_norm: bool = True


@dataclass
class CoordIdsConfig:
    start: int = _f(151670, ge=0)
    end: int = _f(152669, ge=0)  # inclusive


@dataclass
class CoordOffsetConfig:
    enabled: bool = False
    tie_head: bool = True
    ids: CoordIdsConfig = _f(factory=CoordIdsConfig)
    embed_lr: float | None = _f(None, gt=0)
    head_lr: float | None = _f(None, gt=0)
    weight_decay: float = _f(0.0, ge=0)


@dataclass
class CoordSoftCEW1Config:
    enabled: bool = False
    ce_weight: float = _f(0.0, ge=0)
    soft_ce_weight: float = _f(1.0, ge=0)
    w1_weight: float = _f(1.0, ge=0)
    gate_weight: float = _f(1.0, ge=0)
    temperature: float = _f(1.0, gt=0)
    target_sigma: float = _f(2.0, gt=0)
    target_truncate: int | None = _f(None, ge=0)


@dataclass
class CustomConfig:
    object_field_order: Literal["desc_first", "geometry_first"] = _required(
        doc="'desc_first' or 'geometry_first'; there is no default because it decides what the model learns"
    )
    json_format: Literal["standard"] = _required(doc="must be 'standard'")
    emit_norm: Literal["none"] = _required(doc="must be 'none': the JSONL is already norm1000")
    train_jsonl: str | None = None
    val_jsonl: str | None = None
    # image paths may be absolute or leave the JSONL's folder through `..` (refused by default)
    allow_images_outside_jsonl_dir: bool = False
    object_ordering: Literal["sorted", "random"] = "sorted"
    coord_tokens: CoordTokensConfig = _f(factory=CoordTokensConfig)
    coord_offset: CoordOffsetConfig = _f(factory=CoordOffsetConfig)
    coord_soft_ce_w1: CoordSoftCEW1Config = _f(factory=CoordSoftCEW1Config)
    trainer_variant: Literal["stage2_ab_training"] | None = None
    train_sample_limit: int | None = _f(None, ge=1)
    val_sample_limit: int | None = _f(None, ge=1)
    extra: dict[str, Any] = _f(factory=dict)  # the one open bucket (prompt_variant is checked)


# ---------------------------------------------------------------- stage2_ab


@dataclass
class ScheduleConfig:
    b_ratio: float = _required(ge=0.0, le=1.0, doc="the Channel-B share in [0, 1], e.g. 0.85")


@dataclass
class ChannelBConfig:
    drop_invalid_struct_ce_multiplier: float = _f(1.0, ge=1.0, le=4.0)


@dataclass
class Stage2ABConfig:
    schedule: ScheduleConfig = _required(doc="a mapping with `b_ratio`")
    n_softctx_iter: int = _f(2, ge=1)
    softctx_grad_mode: Literal["unroll", "em_detach"] = "unroll"
    softctx_temperature: float = _f(1.0, gt=0)
    desc_ce_weight: float = _f(1.0, ge=0)
    bbox_smoothl1_weight: float = _f(1.0, ge=0)
    bbox_ciou_weight: float = _f(1.0, ge=0)
    coord_ce_weight: float = _f(0.0, ge=0)
    coord_el1_weight: float = _f(0.0, ge=0)
    coord_ehuber_weight: float = _f(0.0, ge=0)
    coord_entropy_weight: float = _f(0.0, ge=0)
    coord_gate_weight: float = _f(0.0, ge=0)
    coord_huber_delta: float = _f(0.001, gt=0)
    channel_b: ChannelBConfig = _f(factory=ChannelBConfig)


# ---------------------------------------------------------------- rollout_matching


@dataclass
class DecodingConfig:
    temperature: float = _f(0.0, ge=0)
    top_p: float = _f(1.0, gt=0, le=1.0)
    top_k: int = -1  # -1 (off) or >= 1; checked in rules.py


@dataclass
class DumpConfig:
    """Best-effort monitor/debug dumps : bounded, async, never fatal."""

    enabled: bool = False
    every_steps: int = _f(1, ge=1)
    out_dir: str | None = None
    max_events: int = _f(10, ge=0)
    max_samples: int = _f(4, ge=0)
    max_chars: int = 0  # <= 0: no clipping
    max_pending_writes: int = _f(2, ge=1)
    min_free_gb: float = _f(2.0, ge=0)


@dataclass
class ServerEntry:
    base_url: str = _required(doc="http(s)://host:port of the `swift rollout` server")
    group_port: int = _f(51216, ge=1, le=65535)


@dataclass
class ServerConfig:
    timeout_s: float = _f(240.0, gt=0)
    infer_timeout_s: float | None = _f(None, gt=0)  # null: no read timeout
    servers: list[ServerEntry] = _f(factory=list)
    debug_dump: DumpConfig = _f(factory=DumpConfig)


@dataclass
class SyncConfig:
    mode: Literal["full", "adapter", "auto"] = "full"
    fallback_to_full: bool = True


@dataclass
class VllmConfig:
    mode: Literal["server", "colocate"] = "server"
    tensor_parallel_size: int = _f(1, ge=1)
    max_model_len: int | None = _f(None, ge=1)
    gpu_memory_utilization: float = _f(0.75, gt=0, le=1.0)
    enable_lora: bool = False
    enable_prefix_caching: bool = True
    sleep_level: int = _f(0, ge=0, le=2)
    enforce_eager: bool = True
    mm_processor_kwargs: dict[str, Any] = _f(factory=dict)
    server: ServerConfig = _f(factory=ServerConfig)
    sync: SyncConfig = _f(factory=SyncConfig)


@dataclass
class OffloadConfig:
    enabled: bool = False
    offload_model: bool = False
    offload_optimizer: bool = False


@dataclass
class EvalDetectionConfig:
    enabled: bool = False


@dataclass
class DescMonitorConfig:
    enabled: bool = False


@dataclass
class RolloutMatchingConfig:
    rollout_backend: Literal["hf", "vllm"] = "hf"
    decode_batch_size: int = _f(1, ge=1)
    decode_mode: Literal["greedy", "beam"] = "greedy"
    max_new_tokens: int = _f(512, ge=1)
    num_beams: int = _f(1, ge=1)
    repetition_penalty: float = _f(1.0, gt=0)
    decoding: DecodingConfig = _f(factory=DecodingConfig)
    candidate_top_k: int = _f(5, ge=1)
    maskiou_gate: float = _f(0.3, ge=0, le=1.0)
    maskiou_resolution: int = _f(256, ge=8)
    fp_cost: float = _f(1.0, ge=0)
    fn_cost: float = _f(1.0, ge=0)
    ot_cost: Literal["l2", "l1"] = "l2"  # Sinkhorn knobs: unused for bbox-only AB, kept for config parity
    ot_epsilon: float = _f(10.0, gt=0)
    ot_iters: int = _f(1, ge=1)
    vllm: VllmConfig = _f(factory=VllmConfig)
    monitor_dump: DumpConfig = _f(factory=DumpConfig)
    eval_detection: EvalDetectionConfig = _f(factory=EvalDetectionConfig)
    eval_prompt_variant: str | None = None
    offload: OffloadConfig = _f(factory=OffloadConfig)
    desc_monitor: DescMonitorConfig = _f(factory=DescMonitorConfig)


# ---------------------------------------------------------------- debug, deepspeed


@dataclass
class DebugConfig:
    enabled: bool = False
    output_dir: str | None = None
    train_sample_limit: int | None = _f(None, ge=1)
    val_sample_limit: int | None = _f(None, ge=1)


@dataclass
class DeepspeedConfig:
    enabled: bool = False
    config: str | dict | None = None  # a preset name / JSON path, or an inline DeepSpeed config


# ---------------------------------------------------------------- training extras (beside ms-swift's fields)


@dataclass
class TrainingExtras:
    """coordexp's own `training.*` knobs; every other `training` key must be an ms-swift field."""

    effective_batch_size: int | None = _f(None, ge=1)
    save_delay_steps: int | None = _f(None, ge=0)
    save_delay_epochs: float | None = _f(None, ge=0)
    save_last_epoch: bool = True
    packing: bool = False
    packing_mode: Literal["static", "dynamic"] = "static"
    packing_buffer: int = _f(512, ge=1)
    packing_min_fill_ratio: float = _f(0.7, gt=0, le=1.0)
    packing_drop_last: bool = True
    packing_allow_single_long: bool = True
    eval_packing: bool = False
    packing_avg_samples: float | None = _f(None, gt=0)
    packing_wait_timeout_s: float | None = _f(None, gt=0)
    packing_length_cache_persist_every: int | None = _f(None, ge=1)
    # Which padding-free collator builds the packed rows. `padding_free_4row` (coordexp.training.packing) passes
    # position_ids [text; t; h; w], which makes transformers build a block-diagonal mask under sdpa/eager;
    # `swift_padding_free_3row` (ms-swift's stock collator, mRoPE rows only) isolates samples only under
    # flash-attention varlen (see UPSTREAM.md: 3 rows under sdpa leak attention across samples).
    packing_collator: Literal["padding_free_4row", "swift_padding_free_3row"] = "padding_free_4row"


TRAINING_EXTRA_KEYS = frozenset(f for f in TrainingExtras.__dataclass_fields__)
