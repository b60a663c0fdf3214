"""Stage-1 training entrypoint: ``python -m coordexp.train <config.yaml>`` (behind ``scripts/train.sh``).

Reads top to bottom: config in -> inputs ensured -> samples encoded -> static packing plan ->
model (+ LoRA/DoRA, + coord-offset adapter) -> run manifest written -> Trainer.train -> final
weight-only checkpoint. Every stage-1 batch goes through the packing leak gate before the forward.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("coordexp.train")


class TrainSetupError(RuntimeError):
    """The run cannot start as configured; the message names the key or file and what to do."""


# ----------------------------------------------------------------------------- config mapping

# training.* keys handed to transformers.TrainingArguments (name there, if different).
_TRAINING_ARGS = {
    "output_dir": None, "run_name": None, "seed": None, "data_seed": None, "num_train_epochs": None,
    "max_steps": None, "per_device_train_batch_size": None, "per_device_eval_batch_size": None,
    "gradient_accumulation_steps": None, "learning_rate": None, "weight_decay": None,
    "lr_scheduler_type": None, "logging_steps": None, "eval_strategy": None, "eval_steps": None,
    "save_strategy": None, "save_steps": None, "save_total_limit": None, "save_only_model": None,
    "metric_for_best_model": None, "greater_is_better": None, "bf16": None, "fp16": None, "use_cpu": None,
    "dataloader_num_workers": None, "dataloader_drop_last": None, "report_to": None, "max_grad_norm": None,
    "adam_beta1": None, "adam_beta2": None, "adam_epsilon": None, "gradient_checkpointing": None,
    "warmup_ratio": "warmup_steps",  # transformers 5: a float in [0, 1) is a ratio of the total steps
    "warmup_steps": None,
}
# training.* keys this module implements itself.
_HANDLED = {"vit_lr", "aligner_lr", "optimizer", "effective_batch_size", "save_delay_steps", "save_last_epoch",
            "safe_serialization", "packing", "packing_mode", "packing_min_fill_ratio", "packing_drop_last",
            "packing_allow_single_long", "eval_packing", "packing_collator", "logging_dir", "packing_buffer",
            "packing_avg_samples", "packing_wait_timeout_s", "packing_length_cache_persist_every",
            "save_delay_epochs"}
_OPTIMIZERS = (None, "default", "multimodal", "multimodal_coord_offset")


def _training_arguments(cfg) -> Any:
    from transformers import TrainingArguments

    tr = dict(cfg.training)
    unknown = sorted(k for k, v in tr.items() if k not in _TRAINING_ARGS and k not in _HANDLED and v is not None)
    if unknown:
        raise TrainSetupError(f"{cfg.config_path}: training.{unknown[0]} is not supported by the stage-1 entrypoint "
                              f"(also: {', '.join(unknown[1:]) or 'none'}); delete it or implement it in coordexp.train")
    if tr.get("report_to") and tr.get("report_to") != "none" and tr.get("logging_dir"):
        log.info("logging_dir %s: reporting integrations use their own default folders", tr["logging_dir"])
    if tr.get("optimizer") not in _OPTIMIZERS:
        raise TrainSetupError(f"{cfg.config_path}: training.optimizer {tr['optimizer']!r} is not one of "
                              f"{', '.join(repr(o) for o in _OPTIMIZERS[1:])}")
    if tr.get("safe_serialization") is False:
        raise TrainSetupError(f"{cfg.config_path}: training.safe_serialization must be true (safetensors only)")
    kwargs = {(_TRAINING_ARGS[k] or k): v for k, v in tr.items() if k in _TRAINING_ARGS and v is not None}
    kwargs.setdefault("save_only_model", True)
    if kwargs["save_only_model"] is not True:
        raise TrainSetupError(f"{cfg.config_path}: training.save_only_model must be true: stage-1 checkpoints are "
                              "weight-only (no optimizer, scheduler or RNG state)")
    kwargs.update(remove_unused_columns=False, label_names=["labels"], disable_tqdm=False, logging_first_step=True,
                  data_seed=kwargs.get("data_seed", cfg.dataset_seed), seed=kwargs.get("seed", cfg.dataset_seed))
    if kwargs.get("report_to") in ([], None):
        kwargs["report_to"] = "none"
    return TrainingArguments(**kwargs)


def _loss_weights(cfg):
    from coordexp.objectives import CoordLossWeights

    sc = cfg.custom.coord_soft_ce_w1
    if not sc.enabled:
        return CoordLossWeights(soft_ce=0.0, w1=0.0, gate=0.0, ce=0.0)
    return CoordLossWeights(soft_ce=sc.soft_ce_weight, w1=sc.w1_weight, gate=sc.gate_weight, ce=sc.ce_weight,
                            temperature=sc.temperature, sigma=sc.target_sigma, radius=sc.target_truncate)


# ----------------------------------------------------------------------------- inputs


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def ensure_inputs(cfg) -> None:
    """Build the tiny model and the synthetic data when the config points at them under build/ and they are missing."""
    build = Path(cfg.repo_root) / "build"
    model_dir = Path(cfg.model.get("model") or "")
    if not model_dir.exists():
        if not _under(model_dir, build):
            raise TrainSetupError(f"{cfg.config_path}: model.model {model_dir} does not exist")
        from coordexp.tiny import save_tiny

        log.info("building the tiny Qwen3-VL into %s", model_dir)
        save_tiny(model_dir)
    for key in ("train_jsonl", "val_jsonl"):
        p = getattr(cfg.custom, key)
        if p is None or Path(p).exists():
            continue
        if not _under(Path(p), build):
            raise TrainSetupError(f"{cfg.config_path}: custom.{key} {p} does not exist")
        from coordexp.synthetic import make_dataset

        log.info("writing the synthetic dataset into %s", Path(p).parent)
        make_dataset(Path(p).parent, seed=cfg.dataset_seed)
        if not Path(p).exists():
            raise TrainSetupError(f"custom.{key}: {p} was not produced by the synthetic generator; "
                                  "point it at <dir>/train.coord.jsonl or <dir>/val.coord.jsonl")


def _record_dict(rec) -> dict:
    from coordexp.coord import coord_token

    objects = [{"desc": o.desc, o.geometry: [coord_token(v) for v in o.values]} for o in rec.objects]
    return {"images": list(rec.images), "width": rec.width, "height": rec.height, "objects": objects}


def encode_split(path: str, tok, cfg, *, limit: int | None, split: str) -> list:
    from coordexp.data import load_records
    from coordexp.template import TemplateError, encode_sample

    max_pixels = cfg.template.get("max_pixels", 786432)
    records = load_records(path, stage="stage1", max_pixels=max_pixels, object_ordering=cfg.custom.object_ordering)
    if limit is not None:
        log.info("%s: using the first %d of %d records (sample limit)", split, min(limit, len(records)), len(records))
        records = records[:limit]
    max_len = cfg.template.get("max_length") or cfg.global_max_length
    out = []
    for rec in records:
        where = f"{rec.source}:{rec.line}"
        try:
            enc = encode_sample(_record_dict(rec), tok, field_order=cfg.custom.object_field_order,
                                prompt_variant=cfg.custom.extra.get("prompt_variant", "default"),
                                object_ordering=cfg.custom.object_ordering, max_pixels=max_pixels, source=where)
        except TemplateError as exc:
            raise TrainSetupError(str(exc)) from exc
        if max_len and len(enc.input_ids) > max_len and cfg.template.get("truncation_strategy", "raise") == "raise":
            raise TrainSetupError(f"{where}: {len(enc.input_ids)} tokens exceed template.max_length {max_len} "
                                  "(truncation_strategy: raise); raise global_max_length or shrink the sample")
        out.append(enc)
    if not out:
        raise TrainSetupError(f"{path}: no {split} samples")
    return out


# ----------------------------------------------------------------------------- model


def build_model(cfg):
    import torch

    from coordexp.coord import coord_token_ids, load_tokenizer

    path = cfg.model["model"]
    attn = cfg.model.get("attn_impl") or "sdpa"
    dtype = getattr(torch, cfg.model.get("torch_dtype") or "float32")
    from transformers import Qwen3VLForConditionalGeneration

    model = Qwen3VLForConditionalGeneration.from_pretrained(path, attn_implementation=attn, dtype=dtype,
                                                            local_files_only=True)
    model.config.use_cache = False
    model.config.text_config.use_cache = False
    tok = load_tokenizer(path)
    ids = coord_token_ids(tok)
    off = cfg.custom.coord_offset
    if off.enabled and (ids[0], ids[-1]) != (off.ids.start, off.ids.end):
        raise TrainSetupError(f"{cfg.config_path}: custom.coord_offset.ids {off.ids.start}..{off.ids.end} but the "
                              f"tokenizer's coord ids are {ids[0]}..{ids[-1]}")
    if model.get_input_embeddings().weight.shape[0] < ids[-1] + 1:
        raise TrainSetupError(f"{path}: embedding has {model.get_input_embeddings().weight.shape[0]} rows, "
                              f"fewer than the coord vocabulary needs ({ids[-1] + 1})")
    adapter = None
    if off.enabled:
        adapter = CoordOffsetAdapter(model, start=ids[0], tie_head=off.tie_head)
    model = _apply_tuner(cfg, model)
    if adapter is not None:
        adapter.train()
        for p in adapter.parameters():
            p.requires_grad_(True)
    return model, tok, adapter


def _apply_tuner(cfg, model):
    tuner = cfg.tuner or {}
    kind = tuner.get("tuner_type", "full")
    freeze = {"visual.": tuner.get("freeze_vit"), "model.language_model.": tuner.get("freeze_llm")}
    if kind == "full":
        for name, p in model.named_parameters():
            if any(flag and name.startswith(("model." + pre) if not pre.startswith("model.") else pre)
                   for pre, flag in freeze.items()):
                p.requires_grad_(False)
        return model
    if kind != "lora":
        raise TrainSetupError(f"{cfg.config_path}: tuner.tuner_type {kind!r} is not supported (full or lora)")
    if any(tuner.get(k) for k in ("freeze_vit", "freeze_llm", "freeze_aligner")):
        raise TrainSetupError(f"{cfg.config_path}: tuner.freeze_* with lora is not supported by the stage-1 "
                              "entrypoint; set them false")
    from peft import LoraConfig, get_peft_model

    target = tuner.get("target_modules") or ["all-linear"]
    lcfg = LoraConfig(r=tuner.get("lora_rank", 8), lora_alpha=tuner.get("lora_alpha", 32),
                      lora_dropout=tuner.get("lora_dropout", 0.0), use_dora=bool(tuner.get("use_dora", False)),
                      target_modules=target[0] if target == ["all-linear"] else target, task_type="CAUSAL_LM")
    return get_peft_model(model, lcfg)


def _coord_offset_module():
    import torch
    from torch import nn

    class CoordOffset(nn.Module):
        """Trainable offsets on the 1000 coord rows: embed(x) += D[id], logits[coord] += h . D_head^T."""

        def __init__(self, model, start: int, tie_head: bool):
            super().__init__()
            emb = model.get_input_embeddings()
            hidden = emb.weight.shape[1]
            self.start, self.tie_head = start, tie_head
            self.embed = nn.Parameter(torch.zeros(1000, hidden, dtype=emb.weight.dtype))
            self.head = None if tie_head else nn.Parameter(torch.zeros(1000, hidden, dtype=emb.weight.dtype))
            emb.register_forward_hook(self._embed_hook)
            model.get_output_embeddings().register_forward_hook(self._head_hook)

        def _embed_hook(self, module, args, output):
            ids = args[0]
            rel = ids - self.start
            is_coord = (rel >= 0) & (rel < 1000)
            delta = self.embed[rel.clamp(0, 999)] * is_coord.unsqueeze(-1).to(output.dtype)
            return output + delta

        def _head_hook(self, module, args, output):
            h = args[0]
            d = self.embed if self.tie_head else self.head
            pad_l = self.start
            pad_r = output.shape[-1] - self.start - 1000
            extra = torch.nn.functional.pad(h @ d.t(), (pad_l, pad_r))
            return output + extra

    return CoordOffset


def CoordOffsetAdapter(model, *, start: int, tie_head: bool):  # noqa: N802 (a class built lazily: torch import)
    return _coord_offset_module()(model, start, tie_head)


# ----------------------------------------------------------------------------- datasets


@dataclass
class PackedDataset:
    samples: list
    packs: tuple

    def __len__(self):
        return len(self.packs)

    def __getitem__(self, i):
        return [self.samples[j] for j in self.packs[i]]


@dataclass
class SampleDataset:
    samples: list

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


# ----------------------------------------------------------------------------- trainer


def next_batches(epoch_iterator, n: int) -> list:
    """Up to `n` batches of one accumulation window (fewer at the end of an epoch)."""
    batches = []
    for _ in range(n):
        try:
            batches.append(next(epoch_iterator))
        except StopIteration:
            break
    return batches


def restore_transformers_callbacks(handler) -> int:
    """Put transformers' own flow/progress/printer callbacks back where a subclass stands.

    Importing any ``swift.trainers`` module (ms-swift's rollout protocol pulls it in) replaces
    ``transformers.trainer.DEFAULT_CALLBACKS`` process-wide with ms-swift's subclasses, whose flow
    callback reads ms-swift-only arguments (``args.max_epochs``) and fails on plain
    ``TrainingArguments``. Replaced in place: the order against our SaveDelay callback matters.
    Returns how many were replaced.
    """
    from transformers import trainer_callback as tc

    replaced = 0
    for i, cb in enumerate(handler.callbacks):
        for original in (tc.DefaultFlowCallback, tc.ProgressCallback, tc.PrinterCallback):
            if isinstance(cb, original) and type(cb) is not original:
                handler.callbacks[i] = original()
                replaced += 1
                break
    return replaced


def _trainer_class():
    import torch
    from transformers import Trainer, TrainerCallback

    from coordexp.objectives import count_targets, stage1_loss_targets, supervised_positions
    from coordexp.packing import assert_packing_isolated, model_inputs

    class Stage1Trainer(Trainer):
        """transformers' Trainer with the stage-1 loss, the packing gate, token-count normalisation
        over the whole optimizer step, multimodal LR buckets and weight-only saves."""

        # compute_loss normalises by the step-wide token counts: the Trainer must not divide by GAS again.
        loss_is_scaled_for_ga = True

        def __init__(self, *args, coord_start: int, loss_weights, packing: bool, pad_token_id: int,
                     coord_offset=None, lr_buckets: dict | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            restore_transformers_callbacks(self.callback_handler)
            self.coord_start, self.loss_weights, self.packing = coord_start, loss_weights, packing
            self.pad_token_id, self.coord_offset = pad_token_id, coord_offset
            if coord_offset is not None:
                # The adapter is not a submodule of the model (its weights are saved apart), so the
                # Trainer's move of the model to args.device does not move it: found on CUDA.
                coord_offset.to(self.args.device)
            self.lr_buckets = lr_buckets or {}
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
                cfg = getattr(model, "config", None)
                attn = getattr(getattr(cfg, "text_config", cfg), "_attn_implementation", None)
                assert_packing_isolated(inputs, attn_implementation=attn, use_cache=False)
                self.gated_batches += 1
                fwd = model_inputs(inputs)
            else:
                fwd = {k: v for k, v in inputs.items() if k != "labels"}
            out, outputs = self._scored(model, fwd, inputs["labels"], num_text=n_text, num_coord=n_coord,
                                        world_size=world)
            if model.training:
                for k in ("soft_ce", "w1", "gate", "token_acc"):
                    self._terms.setdefault(k, []).append(getattr(out, k))
            return (out.loss, outputs) if return_outputs else out.loss

        def _scored(self, model, fwd, labels, **norm):
            # Only the positions whose next label is supervised are projected onto the 152k vocabulary.
            idx = supervised_positions(labels)
            outputs = model(**fwd, use_cache=False, logits_to_keep=idx)
            out = stage1_loss_targets(outputs.logits, labels[:, idx + 1], coord_start=self.coord_start,
                                      weights=self.loss_weights, **norm)
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
            metrics = {f"{metric_key_prefix}_loss": tot["loss"] / n, f"{metric_key_prefix}_token_acc": tot["acc"] / n,
                       f"{metric_key_prefix}_tokens": tot["tokens"]}
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

        # -- optimizer: LR buckets (LLM / ViT / aligner / coord offset) through the Trainer helpers
        def create_optimizer(self, model=None):
            if self.optimizer is not None:
                return self.optimizer
            model = model if model is not None else self.model
            decay = set(self.get_decay_parameter_names(model))
            groups: dict[tuple, list] = {}
            for name, p in model.named_parameters():
                if not p.requires_grad:
                    continue
                lr = self.args.learning_rate
                if ".visual." in f".{name}":
                    is_aligner = "merger" in name
                    lr = self.lr_buckets.get("aligner_lr" if is_aligner else "vit_lr") or lr
                wd = self.args.weight_decay if name in decay else 0.0
                groups.setdefault((lr, wd), []).append(p)
            param_groups = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in sorted(groups.items())]
            if self.coord_offset is not None:
                off = self.lr_buckets.get("coord_offset", {})
                param_groups.append({"params": [self.coord_offset.embed], "lr": off.get("embed_lr") or
                                     self.args.learning_rate, "weight_decay": off.get("weight_decay", 0.0)})
                if self.coord_offset.head is not None:
                    param_groups.append({"params": [self.coord_offset.head], "lr": off.get("head_lr") or
                                         self.args.learning_rate, "weight_decay": off.get("weight_decay", 0.0)})
            cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            kwargs.pop("lr", None)
            self.optimizer = cls(param_groups, lr=self.args.learning_rate, **kwargs)
            return self.optimizer

        # -- weight-only saves: the model's weights (+ the coord-offset adapter), nothing else
        def save_model(self, output_dir=None, _internal_call=False):
            super().save_model(output_dir, _internal_call=_internal_call)
            if self.coord_offset is not None and self.args.should_save:
                from safetensors.torch import save_file

                out = Path(output_dir or self.args.output_dir)
                tensors = {"embed": self.coord_offset.embed.detach().cpu().contiguous()}
                if self.coord_offset.head is not None:
                    tensors["head"] = self.coord_offset.head.detach().cpu().contiguous()
                save_file(tensors, str(out / "coord_offset.safetensors"),
                          metadata={"start": str(self.coord_offset.start), "tie_head": str(self.coord_offset.tie_head)})

    class SaveDelay(TrainerCallback):
        """No checkpoint before `save_delay_steps` (the final one is written after training anyway)."""

        def __init__(self, delay: int):
            self.delay = delay

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step < self.delay:
                control.should_save = False
            return control

    return Stage1Trainer, SaveDelay


# ----------------------------------------------------------------------------- main


@dataclass
class RunResult:
    output_dir: Path
    plan_summary: str
    logged_losses: list = field(default_factory=list)
    gated_batches: int = 0
    final_checkpoint: Path | None = None


def run(config_path: str | Path, *, overrides: dict | None = None, callbacks: list | None = None) -> RunResult:
    import json

    import torch

    from coordexp.artifacts import write_run_manifest
    from coordexp.config import load_config
    from coordexp.packing import PackedCollator, PackingPolicy, collate_padded, plan_packs

    cfg = load_config(config_path)
    if cfg.is_stage2:
        raise TrainSetupError(f"{cfg.config_path}: a stage_2 config: run it through coordexp.train's main "
                              "(scripts/train.sh) or scripts/train_stage2.sh, not the stage_1 run()")
    for k, v in (overrides or {}).items():  # tests shorten runs; never used by the CLI
        cfg.training[k] = v
    ensure_inputs(cfg)
    torch.manual_seed(cfg.dataset_seed)

    args = _training_arguments(cfg)
    model, tok, adapter = build_model(cfg)
    train = encode_split(cfg.custom.train_jsonl, tok, cfg, limit=cfg.custom.train_sample_limit, split="train")
    val = encode_split(cfg.custom.val_jsonl, tok, cfg, limit=cfg.custom.val_sample_limit, split="val") \
        if cfg.custom.val_jsonl else None

    ex = cfg.extras
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if ex.packing and ex.packing_collator != "padding_free_4row":
        raise TrainSetupError(f"{cfg.config_path}: training.packing_collator {ex.packing_collator!r} is not "
                              "implemented by the stage-1 entrypoint; use padding_free_4row")
    if ex.packing:
        policy = PackingPolicy(packing_length=int(cfg.global_max_length or cfg.template.get("max_length")),
                               allow_single_long=ex.packing_allow_single_long,
                               min_fill_ratio=ex.packing_min_fill_ratio, world_size=cfg.world_size,
                               drop_last=bool(cfg.training.get("dataloader_drop_last")))
        plan = plan_packs([len(s.input_ids) for s in train], policy)
        summary = plan.report.summary()
        (out_dir / "packing_plan.json").write_text(plan.to_json() + "\n")
        train_ds = PackedDataset(train, plan.packs)
        sms = model.config.vision_config.spatial_merge_size
        collator = PackedCollator(image_token_id=model.config.image_token_id, spatial_merge_size=sms)
        if ex.packing_drop_last:
            log.info("packing_drop_last: static packing keeps underfilled packs (counted in the report), "
                     "it never drops them")
    else:
        summary = f"packing off: {len(train)} samples, padded batches"
        train_ds = SampleDataset(train)
        collator = None
    log.info(summary)
    print(summary, flush=True)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0

    def padded(samples):
        return collate_padded(samples, pad_token_id=pad_id, image_token_id=model.config.image_token_id)

    repo = Path(cfg.repo_root)
    write_run_manifest(out_dir, config_path=cfg.config_path,
                       base_config_path=cfg.base_config_paths[-1] if cfg.base_config_paths else None,
                       resolved=cfg.to_dict(), dataset_seed=cfg.dataset_seed, repo_root=repo,
                       run_name=cfg.training.get("run_name"))

    Stage1Trainer, SaveDelay = _trainer_class()
    from coordexp.coord import coord_token_ids

    off = cfg.custom.coord_offset
    trainer = Stage1Trainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=SampleDataset(val) if val else None,
        data_collator=collator or padded, coord_start=coord_token_ids(tok)[0], loss_weights=_loss_weights(cfg),
        packing=ex.packing, pad_token_id=pad_id, coord_offset=adapter,
        lr_buckets={"vit_lr": cfg.training.get("vit_lr"), "aligner_lr": cfg.training.get("aligner_lr"),
                    "coord_offset": {"embed_lr": off.embed_lr, "head_lr": off.head_lr,
                                     "weight_decay": off.weight_decay}},
        callbacks=[SaveDelay(int(cfg.training.get("save_delay_steps") or 0)), *(callbacks or [])],
    )
    if val:
        # eval is never packed: padded batches
        trainer.get_eval_dataloader = _padded_eval_loader(trainer, SampleDataset(val), padded)
    trainer.train()
    final = out_dir / f"checkpoint-{trainer.state.global_step}"
    if not final.exists():
        trainer.save_model(str(final))
    if val and not any("eval_loss" in h for h in trainer.state.log_history):
        trainer.evaluate()
    (out_dir / "train_summary.json").write_text(json.dumps(
        {"plan": summary, "logged_losses": trainer.logged_losses, "gated_batches": trainer.gated_batches,
         "global_step": trainer.state.global_step}, indent=2, sort_keys=True) + "\n")
    return RunResult(out_dir, summary, list(trainer.logged_losses), trainer.gated_batches, final)


def _padded_eval_loader(trainer, dataset, collate):
    from torch.utils.data import DataLoader

    def get_eval_dataloader(eval_dataset=None):
        return DataLoader(eval_dataset or dataset, batch_size=trainer.args.per_device_eval_batch_size,
                          collate_fn=collate, shuffle=False)

    return get_eval_dataloader


def main(argv: list[str] | None = None) -> int:
    import argparse

    from coordexp.artifacts import ManifestError
    from coordexp.config import ConfigError, load_config
    from coordexp.data import DataError
    from coordexp.packing import PackingError, PackingLeakError

    ap = argparse.ArgumentParser(prog="coordexp.train",
                                 description="training from a YAML config: stage_1, or the stage_2 AB learner "
                                             "(custom.trainer_variant: stage2_ab_training)")
    ap.add_argument("config", help="a training config (YAML)")
    ns = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        if load_config(ns.config).is_stage2:  # the same entrypoint serves the stage_2 learner (scripts/train.sh)
            from coordexp.stage2.trainer import main as stage2_main

            return stage2_main(ns.config)
        result = run(ns.config)
    except ConfigError as exc:
        print(f"coordexp.train: config error:\n{exc}", file=sys.stderr)
        return 2
    except (TrainSetupError, DataError, PackingError, PackingLeakError, ManifestError) as exc:
        print(f"coordexp.train: error: {exc}", file=sys.stderr)
        return 2
    losses = result.logged_losses
    trend = f"loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else "no loss logged"
    print(f"coordexp.train: done: {result.output_dir} ({trend}, final checkpoint {result.final_checkpoint})")
    return 0 if losses and all(math.isfinite(x) for x in losses) else 1


if __name__ == "__main__":
    sys.exit(main())
