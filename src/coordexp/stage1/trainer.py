"""Stage-1 recipe: the SFT run behind ``scripts/train.sh`` for stage_1 configs.

Reads top to bottom: config in (overrides applied by ``load_config``) -> run settings ->
inputs ensured -> samples encoded -> static packing plan -> model (+ LoRA/DoRA, + coord-offset
adapter; + the resume checkpoint's weights) -> run manifest written (rank 0) -> Trainer.train
-> final weight-only checkpoint. Every stage-1 batch goes through the packing leak gate before
the forward. The shared pieces live in ``coordexp.training``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from coordexp.training.inputs import SampleDataset, TrainSamples, ensure_inputs, next_batches, record_dict
from coordexp.training.model import build_model
from coordexp.training.objectives import count_targets, stage1_loss, supervised_positions
from coordexp.training.packing import assert_packing_isolated, model_inputs
from coordexp.training.saving import final_checkpoint, restore_weights, write_json, write_manifest, write_text
from coordexp.training.settings import (
    RunSettings,
    TrainSetupError,
    loss_weights,
    training_arguments,
    training_overrides,
)
from coordexp.training.trainer import CoordExpTrainer, SaveDelay

log = logging.getLogger("coordexp.stage1")


def encode_split(path: str, tok, cfg, settings: RunSettings, *, limit: int | None, split: str) -> tuple[list, list]:
    """(records, their encoded samples in stored object order) of one split."""
    from coordexp.format.data import load_records

    records = load_records(
        path,
        stage="stage1",
        max_pixels=settings.max_pixels,
        object_ordering=cfg.custom.object_ordering,
        allow_outside_root=cfg.custom.allow_images_outside_jsonl_dir,
    )
    if limit is not None:
        log.info("%s: using the first %d of %d records (sample limit)", split, min(limit, len(records)), len(records))
        records = records[:limit]
    out = [encode_record(rec, tok, cfg, settings) for rec in records]
    if not out:
        raise TrainSetupError(f"{path}: no {split} samples")
    return records, out


def encode_record(rec, tok, cfg, settings: RunSettings, objects=None):
    """One record as a training sample; ``objects`` replaces the stored object order."""
    from coordexp.format.template import TemplateError, encode_sample

    where = f"{rec.source}:{rec.line}"
    try:
        enc = encode_sample(
            record_dict(rec, objects),
            tok,
            field_order=cfg.custom.object_field_order,
            prompt_variant=settings.prompt_variant,
            object_ordering=cfg.custom.object_ordering,
            max_pixels=settings.max_pixels,
            source=where,
        )
    except TemplateError as exc:
        raise TrainSetupError(str(exc)) from exc
    max_len = settings.max_length
    if max_len and len(enc.input_ids) > max_len and settings.truncation_strategy == "raise":
        raise TrainSetupError(
            f"{where}: {len(enc.input_ids)} tokens exceed template.max_length {max_len} "
            "(truncation_strategy: raise); raise global_max_length or shrink the sample"
        )
    return enc


def train_samples(cfg, settings: RunSettings, tok, records: list, samples: list, packs=None) -> TrainSamples:
    """The Trainer's dataset: each draw re-encodes its record in the drawn object order (`random`)."""

    def build(j, objects):
        enc = encode_record(records[j], tok, cfg, settings, objects)
        if len(enc.input_ids) != len(samples[j].input_ids):
            # The packing plan and the length limits were decided on the stored order's length.
            raise TrainSetupError(
                f"{records[j].source}:{records[j].line}: the shuffled objects encode to {len(enc.input_ids)} "
                f"tokens, the stored order to {len(samples[j].input_ids)}; object_ordering: random needs an "
                "order-independent length"
            )
        return enc

    return TrainSamples(samples, records, build, cfg.custom.object_ordering, cfg.dataset_seed, packs)


class Stage1Trainer(CoordExpTrainer):
    """The shared trainer with the stage-1 loss, the packing gate and token-count normalisation
    over the whole optimizer step."""

    # compute_loss normalises by the step-wide token counts: the Trainer must not divide by GAS again.
    loss_is_scaled_for_ga = True

    def __init__(self, *args, coord_start: int, loss_weights, packing: bool, pad_token_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.coord_start, self.loss_weights, self.packing = coord_start, loss_weights, packing
        self.pad_token_id = pad_token_id
        self.gated_batches = 0
        self.logged_losses: list[float] = []
        self._terms: dict[str, list[float]] = {}

    # -- normalisation: count (non-coord, coord) targets over the whole accumulation window
    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches = next_batches(epoch_iterator, num_batches)
        counts = torch.tensor([0, 0], dtype=torch.long)
        for b in batches:
            counts += torch.tensor(count_targets(b["labels"], self.coord_start))
        if self.args.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
        return batches, counts

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        world = self.args.world_size if model.training else 1
        if model.training and torch.is_tensor(num_items_in_batch) and num_items_in_batch.shape == (2,):
            n_text, n_coord = (int(x) for x in num_items_in_batch)
        else:  # eval, or a caller without step-wide counts: a per-batch token mean
            n_text = n_coord = None
            world = 1
        if "cu_seq_lens_q" in inputs:
            cfg = getattr(getattr(model, "module", model), "config", None)  # DDP wraps the model
            attn = getattr(getattr(cfg, "text_config", cfg), "_attn_implementation", None)
            assert_packing_isolated(inputs, attn_implementation=attn, use_cache=False)
            self.gated_batches += 1
            fwd = model_inputs(inputs)
        else:
            fwd = {k: v for k, v in inputs.items() if k != "labels"}
        out, outputs = self._scored(model, fwd, inputs["labels"], num_text=n_text, num_coord=n_coord, world_size=world)
        if model.training:
            for k in ("soft_ce", "w1", "gate", "token_acc"):
                self._terms.setdefault(k, []).append(getattr(out, k))
        return (out.loss, outputs) if return_outputs else out.loss

    def _scored(self, model, fwd, labels, **norm):
        # Only the positions whose next label is supervised are projected onto the 152k vocabulary.
        idx = supervised_positions(labels)
        outputs = model(**fwd, use_cache=False, logits_to_keep=idx)
        out = stage1_loss(
            outputs.logits, labels, positions=idx, coord_start=self.coord_start, weights=self.loss_weights, **norm
        )
        return out, outputs

    def log(self, logs, start_time=None):
        if "loss" in logs:
            self.logged_losses.append(float(logs["loss"]))
            for k, v in self._terms.items():
                if v:
                    logs[f"train_{k}"] = round(sum(v) / len(v), 6)
            self._terms = {}
        return super().log(logs, start_time)

    # -- eval: token-weighted loss and accuracy (eval_token_acc drives save_strategy: best)
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        loader = self.get_eval_dataloader(eval_dataset)
        model = self.model
        model.eval()
        tot = {"loss": 0.0, "acc": 0.0, "tokens": 0}
        with torch.no_grad():
            for batch in loader:
                batch = self._prepare_inputs(batch)
                fwd = {k: v for k, v in batch.items() if k != "labels"}
                out, _ = self._scored(model, fwd, batch["labels"])
                n = out.num_text + out.num_coord
                tot["loss"] += out.loss.item() * n
                tot["acc"] += out.token_acc * n
                tot["tokens"] += n
        n = max(tot["tokens"], 1)
        metrics = {
            f"{metric_key_prefix}_loss": tot["loss"] / n,
            f"{metric_key_prefix}_token_acc": tot["acc"] / n,
            f"{metric_key_prefix}_tokens": tot["tokens"],
        }
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


# ----------------------------------------------------------------------------- the run


@dataclass
class RunResult:
    output_dir: Path
    plan_summary: str
    logged_losses: list = field(default_factory=list)
    gated_batches: int = 0
    final_checkpoint: Path | None = None


def _train_dataset(cfg, settings, tok, records, train, model):
    """(dataset, collator or None, plan summary); the packing plan is written on rank 0."""
    from coordexp.training.packing import PackedCollator, PackingPolicy, plan_packs

    ex = cfg.extras
    if ex.packing and ex.packing_collator != "padding_free_4row":
        raise TrainSetupError(
            f"{cfg.config_path}: training.packing_collator {ex.packing_collator!r} is not "
            "implemented by the stage-1 entrypoint; use padding_free_4row"
        )
    if not ex.packing:
        summary = f"packing off: {len(train)} samples, padded batches"
        return train_samples(cfg, settings, tok, records, train), None, summary
    policy = PackingPolicy(
        packing_length=int(cfg.global_max_length or cfg.template.get("max_length")),
        allow_single_long=ex.packing_allow_single_long,
        min_fill_ratio=ex.packing_min_fill_ratio,
        world_size=cfg.world_size,
        drop_last=settings.drop_last,
    )
    plan = plan_packs([len(s.input_ids) for s in train], policy)
    write_text(settings.output_dir / "packing_plan.json", plan.to_json() + "\n")
    sms = model.config.vision_config.spatial_merge_size
    collator = PackedCollator(image_token_id=model.config.image_token_id, spatial_merge_size=sms)
    if ex.packing_drop_last:
        log.info(
            "packing_drop_last: static packing keeps underfilled packs (counted in the report), it never drops them"
        )
    # the fingerprint names the plan in the log: two runs packed alike print the same one
    summary = f"{plan.report.summary()}; plan {plan.fingerprint} (packing_plan.json)"
    return train_samples(cfg, settings, tok, records, train, plan.packs), collator, summary


def run(config_path: str | Path, *, overrides: dict | None = None, callbacks: list | None = None) -> RunResult:
    from coordexp.config import load_config
    from coordexp.format.coord import coord_token_ids
    from coordexp.training.packing import collate_padded

    cfg = load_config(config_path, overrides=training_overrides(overrides))
    if cfg.is_stage2:
        raise TrainSetupError(
            f"{cfg.config_path}: a stage_2 config: run it through coordexp.train's main "
            "(scripts/train.sh) or scripts/train_stage2.sh, not the stage_1 run()"
        )
    settings = RunSettings.from_config(cfg)
    ensure_inputs(cfg)
    torch.manual_seed(cfg.dataset_seed)

    args = training_arguments(settings)
    model, tok, adapter = build_model(cfg)
    if settings.resume_from_checkpoint:
        restore_weights(model, adapter, settings.resume_from_checkpoint, where=cfg.config_path)
    records, train = encode_split(
        cfg.custom.train_jsonl, tok, cfg, settings, limit=cfg.custom.train_sample_limit, split="train"
    )
    # eval keeps the stored object order (one fixed target per record)
    val = (
        encode_split(cfg.custom.val_jsonl, tok, cfg, settings, limit=cfg.custom.val_sample_limit, split="val")[1]
        if cfg.custom.val_jsonl
        else None
    )

    out_dir = settings.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    train_ds, collator, summary = _train_dataset(cfg, settings, tok, records, train, model)
    log.info(summary)
    print(summary, flush=True)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0

    def padded(samples):
        return collate_padded(samples, pad_token_id=pad_id, image_token_id=model.config.image_token_id)

    write_manifest(cfg, settings)
    trainer = Stage1Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=SampleDataset(val) if val else None,
        data_collator=collator or padded,
        coord_start=coord_token_ids(tok)[0],
        loss_weights=loss_weights(cfg),
        packing=cfg.extras.packing,
        pad_token_id=pad_id,
        coord_offset=adapter,
        lr_buckets=settings.lr_buckets,
        callbacks=[SaveDelay(settings.save_delay_steps), *(callbacks or [])],
    )
    if val:
        # eval is never packed: padded batches
        trainer.get_eval_dataloader = _padded_eval_loader(trainer, SampleDataset(val), padded)
    trainer.train()
    final = final_checkpoint(trainer, out_dir)
    if val and not any("eval_loss" in h for h in trainer.state.log_history):
        trainer.evaluate()
    write_json(
        out_dir / "train_summary.json",
        {
            "plan": summary,
            "logged_losses": trainer.logged_losses,
            "gated_batches": trainer.gated_batches,
            "global_step": trainer.state.global_step,
        },
    )
    return RunResult(out_dir, summary, list(trainer.logged_losses), trainer.gated_batches, final)


def _padded_eval_loader(trainer, dataset, collate):
    from torch.utils.data import DataLoader

    def get_eval_dataloader(eval_dataset=None):
        return DataLoader(
            eval_dataset or dataset,
            batch_size=trainer.args.per_device_eval_batch_size,
            collate_fn=collate,
            shuffle=False,
        )

    return get_eval_dataloader


def main(config_path) -> int:
    """The ``coordexp.train`` dispatch target for stage_1 configs."""
    from coordexp.training.entry import run_reported

    result, status = run_reported("coordexp.train", run, config_path)
    if result is None:
        return status
    losses = result.logged_losses
    trend = f"loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else "no loss logged"
    print(f"coordexp.train: done: {result.output_dir} ({trend}, final checkpoint {result.final_checkpoint})")
    return 0 if losses and all(math.isfinite(x) for x in losses) else 1
