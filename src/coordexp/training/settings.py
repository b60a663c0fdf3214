"""Run settings: everything a stage recipe reads from the config, typed, read once.

``RunSettings.from_config(cfg)`` takes a loaded ``TrainingConfig`` (overrides are applied by
``load_config`` itself, so the ``training`` dict and the typed ``extras`` never disagree) and
returns one frozen value: the ``transformers.TrainingArguments`` keywords, the LR buckets, the
image cap, the save delay, the resume checkpoint. A ``training.*`` key no recipe implements is
refused here, by name, instead of being silently ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordexp.errors import CoordExpError
from coordexp.format.template import MAX_PIXELS

log = logging.getLogger("coordexp.training")


class TrainSetupError(CoordExpError, RuntimeError):
    """The run cannot start as configured; the message names the key or file and what to do."""


# training.* keys handed to transformers.TrainingArguments (name there, if different).
TRAINING_ARGS = {
    "output_dir": None,
    "run_name": None,
    "seed": None,
    "data_seed": None,
    "num_train_epochs": None,
    "max_steps": None,
    "per_device_train_batch_size": None,
    "per_device_eval_batch_size": None,
    "gradient_accumulation_steps": None,
    "learning_rate": None,
    "weight_decay": None,
    "lr_scheduler_type": None,
    "logging_steps": None,
    "eval_strategy": None,
    "eval_steps": None,
    "save_strategy": None,
    "save_steps": None,
    "save_total_limit": None,
    "save_only_model": None,
    "metric_for_best_model": None,
    "greater_is_better": None,
    "bf16": None,
    "fp16": None,
    "use_cpu": None,
    "dataloader_num_workers": None,
    "dataloader_drop_last": None,
    "report_to": None,
    "max_grad_norm": None,
    "adam_beta1": None,
    "adam_beta2": None,
    "adam_epsilon": None,
    "gradient_checkpointing": None,
    "warmup_ratio": "warmup_steps",  # transformers 5: a float in [0, 1) is a ratio of the total steps
    "warmup_steps": None,
    "ddp_backend": None,
}
# training.* keys the recipes implement themselves.
HANDLED = frozenset(
    {
        "vit_lr",
        "aligner_lr",
        "optimizer",
        "effective_batch_size",
        "save_delay_steps",
        "save_last_epoch",
        "safe_serialization",
        "packing",
        "packing_mode",
        "packing_min_fill_ratio",
        "packing_drop_last",
        "packing_allow_single_long",
        "eval_packing",
        "packing_collator",
        "logging_dir",
        "packing_buffer",
        "packing_avg_samples",
        "packing_wait_timeout_s",
        "packing_length_cache_persist_every",
        "save_delay_epochs",
        "resume_from_checkpoint",
    }
)
OPTIMIZERS = (None, "default", "multimodal", "multimodal_coord_offset")


@dataclass(frozen=True)
class LrBuckets:
    """Learning rates beside ``learning_rate``: ViT, aligner (merger) and the coord-offset rows."""

    vit_lr: float | None = None
    aligner_lr: float | None = None
    coord_embed_lr: float | None = None
    coord_head_lr: float | None = None
    coord_weight_decay: float = 0.0


@dataclass(frozen=True)
class RunSettings:
    config_path: str
    output_dir: Path
    run_name: str | None
    arguments: dict = field(repr=False)  # transformers.TrainingArguments keywords
    lr_buckets: LrBuckets = LrBuckets()
    save_delay_steps: int = 0
    max_pixels: int = MAX_PIXELS
    max_length: int | None = None
    truncation_strategy: str = "raise"
    prompt_variant: str = "default"
    drop_last: bool = False
    resume_from_checkpoint: Path | None = None

    @property
    def per_rank_batch(self) -> int:
        """Raw samples (or packs) one rank consumes per optimizer step."""
        return int(self.arguments.get("gradient_accumulation_steps", 1)) * int(
            self.arguments.get("per_device_train_batch_size", 1)
        )

    @classmethod
    def from_config(cls, cfg) -> RunSettings:
        tr = dict(cfg.training)
        where = cfg.config_path
        unknown = sorted(k for k, v in tr.items() if k not in TRAINING_ARGS and k not in HANDLED and v is not None)
        if unknown:
            raise TrainSetupError(
                f"{where}: training.{unknown[0]} is not supported by the coordexp trainers "
                f"(also: {', '.join(unknown[1:]) or 'none'}); delete it or implement it in "
                "coordexp.training"
            )
        if tr.get("optimizer") not in OPTIMIZERS:
            raise TrainSetupError(
                f"{where}: training.optimizer {tr['optimizer']!r} is not one of "
                f"{', '.join(repr(o) for o in OPTIMIZERS[1:])}"
            )
        if tr.get("data_seed") is not None and tr["data_seed"] != cfg.dataset_seed:
            raise TrainSetupError(
                f"{where}: training.data_seed {tr['data_seed']!r}: the training order is data.epoch_permutation "
                f"seeded by training.seed ({cfg.dataset_seed}), so another data_seed would change nothing; delete it"
            )
        if tr.get("safe_serialization") is False:
            raise TrainSetupError(f"{where}: training.safe_serialization must be true (safetensors only)")
        check_deepspeed(cfg)
        off = cfg.custom.coord_offset
        resume = tr.get("resume_from_checkpoint")
        return cls(
            config_path=where,
            output_dir=Path(tr["output_dir"]),
            run_name=tr.get("run_name"),
            arguments=_argument_kwargs(cfg, tr),
            lr_buckets=LrBuckets(tr.get("vit_lr"), tr.get("aligner_lr"), off.embed_lr, off.head_lr, off.weight_decay),
            save_delay_steps=int(tr.get("save_delay_steps") or 0),
            max_pixels=image_cap(cfg),
            max_length=cfg.template.get("max_length") or cfg.global_max_length,
            truncation_strategy=cfg.template.get("truncation_strategy", "raise"),
            prompt_variant=cfg.custom.extra.get("prompt_variant", "default"),
            drop_last=bool(tr.get("dataloader_drop_last")),
            resume_from_checkpoint=Path(resume) if resume else None,
        )


def image_cap(cfg) -> int:
    """``template.max_pixels`` (a hard cap on width*height), or the default ``format.template.MAX_PIXELS``."""
    return int(cfg.template.get("max_pixels") or MAX_PIXELS)


def _argument_kwargs(cfg, tr: dict) -> dict[str, Any]:
    if tr.get("report_to") and tr.get("report_to") != "none" and tr.get("logging_dir"):
        log.info("logging_dir %s: reporting integrations use their own default folders", tr["logging_dir"])
    kwargs = {(TRAINING_ARGS[k] or k): v for k, v in tr.items() if k in TRAINING_ARGS and v is not None}
    kwargs.setdefault("save_only_model", True)
    if kwargs["save_only_model"] is not True:
        raise TrainSetupError(
            f"{cfg.config_path}: training.save_only_model must be true: checkpoints are "
            "weight-only (no optimizer, scheduler or RNG state)"
        )
    kwargs.update(
        remove_unused_columns=False,
        label_names=["labels"],
        disable_tqdm=False,
        logging_first_step=True,
        data_seed=kwargs.get("data_seed", cfg.dataset_seed),
        seed=kwargs.get("seed", cfg.dataset_seed),
    )
    if kwargs.get("report_to") in ([], None):
        kwargs["report_to"] = "none"
    return kwargs


def check_deepspeed(cfg) -> None:
    """DeepSpeed is not wired into the coordexp trainers; on a CPU-only machine it cannot run at all."""
    if not cfg.deepspeed.enabled:
        return
    import torch

    if not torch.cuda.is_available():
        raise TrainSetupError(
            f"{cfg.config_path}: deepspeed.enabled: DeepSpeed needs CUDA GPUs and this machine "
            "has none; set deepspeed.enabled: false (several CPU ranks: NPROC_PER_NODE=2 "
            "scripts/train.sh <config>)"
        )
    raise TrainSetupError(
        f"{cfg.config_path}: deepspeed.enabled: the coordexp trainers run DDP only (torchrun "
        "through scripts/train.sh); set deepspeed.enabled: false"
    )


def training_overrides(overrides: dict | None) -> dict:
    """``load_config`` overrides from a recipe's ``run(overrides=...)``: bare keys are ``training.*``
    keys (tests shorten runs), dotted keys pass as they are."""
    return {(k if "." in k else f"training.{k}"): v for k, v in (overrides or {}).items()}


def training_arguments(settings: RunSettings):
    from transformers import TrainingArguments

    return TrainingArguments(**settings.arguments)


def loss_weights(cfg):
    """The stage-1 coord loss weights (``custom.coord_soft_ce_w1``); all zero when disabled."""
    from coordexp.training.objectives import CoordLossWeights, coord_loss_weights

    sc = cfg.custom.coord_soft_ce_w1
    if not sc.enabled:
        return CoordLossWeights(soft_ce=0.0, w1=0.0, gate=0.0, ce=0.0)
    return coord_loss_weights(sc)
