"""Stage-2 AB training on transformers' Trainer (``custom.trainer_variant: stage2_ab_training``).

One optimizer step s trains one channel, ``schedule.channel_for_step(s, b_ratio)``:

- the raw budget is ``training.effective_batch_size`` samples per optimizer step (for B:
  rollouts); with per-device batch 1 the Trainer's GAS = effective / world, and each
  micro-step yields one raw sample per rank;
- micro-steps 1..GAS-1 only collect their raw samples and return 0; the last one builds all
  segments of the window (Channel-A: the GT targets; Channel-B: rollout -> parse -> match ->
  FN injection -> CE weights), puts them in the channel's post-rollout buffer, packs them
  (``stage2.post_pack``) and runs forward + backward per pack with
  ``loss × (segments in pack / segments in step)``; DDP syncs gradients on the last pack
  only; the Trainer then takes one optimizer step;
- Channel-A runs ``n_softctx_iter`` soft self-context iterations (``stage2.channel_a``);
  Channel-B is a single teacher-forced forward (N = 1);
- metrics (stage2-ab-training, Stage-2 Metric Aggregation) are aggregated per step with
  ``stage2.metrics.StepMetrics``, reduced
  over ranks with ``reduce_ranks`` and logged once per optimizer step (after the step);
  a Channel-A step carries no ``time/rollout_*`` key;
- checkpoints are weight-only (``coordexp.training.trainer.CoordExpTrainer.save_model``).

The rollout backend comes from config (``rollout_matching.rollout_backend``): ``hf`` is
``coordexp.generation.hf_backend.HFBackend`` on the learner's model, ``vllm`` is
``coordexp.generation.backend.ServerBackend`` on ``rollout_matching.vllm.server.servers[0]``.
A caller (tests, the launcher) may pass any object with the ``RolloutBackend`` interface.

Server mode (``vllm`` backend) keeps the server's weights fresh: before the rollouts of each
Channel-B step (and of each rollout eval) every rank calls ``weight_sync.maybe_sync`` keyed by
the number of optimizer steps the weights have taken; rank 0 alone pushes them on ms-swift's
sync protocol (``make_weight_push``: ``weight_sync.WeightPusher``), once per such step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from coordexp.config import load_config
from coordexp.errors import CoordExpError
from coordexp.format.coord import coord_token_ids
from coordexp.format.data import load_records
from coordexp.format.template import IMAGE_TOKEN_ID, TemplateError, build_messages, encode_sample
from coordexp.generation.backend import RolloutBackendError, ServerBackend
from coordexp.generation.chunking import ChunkingError
from coordexp.generation.client import RolloutClientError, server_chunk_size
from coordexp.generation.hf_backend import HFBackend
from coordexp.generation.request import DecodeSettings, from_messages, seed_base
from coordexp.generation.sync_client import SyncClientError
from coordexp.generation.weight_sync import SyncState, WeightPusher, WeightSyncError, check_servable, maybe_sync
from coordexp.stage2.channel_a import SoftContextConfig, soft_context_forward
from coordexp.stage2.channel_b import ChannelBConfig, ClosureError, build_target, rollout_prefix, teacher_forced_row
from coordexp.stage2.eval_detection import coco_metrics
from coordexp.stage2.matching import MatchConfig, Shape, match
from coordexp.stage2.metrics import StepMetrics, reduce_ranks
from coordexp.stage2.objective import Stage2LossWeights, pack_loss
from coordexp.stage2.post_pack import PostPackError, PostRolloutBuffers
from coordexp.stage2.schedule import CHANNEL_A, CHANNEL_B, RealizedRatio, channel_for_step
from coordexp.stage2.segments import channel_a_segment, channel_b_segment, collate_segments
from coordexp.training.entry import run_reported
from coordexp.training.inputs import SampleDataset, TrainSamples, ensure_inputs, next_batches, record_dict
from coordexp.training.model import build_model
from coordexp.training.packing import RopeIndex, assert_packing_isolated
from coordexp.training.saving import final_checkpoint, restore_weights, write_manifest, write_text
from coordexp.training.settings import RunSettings, image_cap, training_arguments, training_overrides
from coordexp.training.trainer import CoordExpTrainer, SaveDelay

log = logging.getLogger("coordexp.stage2.trainer")


class Stage2SetupError(CoordExpError, RuntimeError):
    """The Stage-2 run cannot start as configured; the message names the key and what to do."""


# ----------------------------------------------------------------------------- raw samples


@dataclass
class RawSample:
    """One dataset record, ready for either channel."""

    index: int
    enc: Any  # template.EncodedSample of the GT target (prompt ids, pixels, Channel-A row)
    request: dict  # RolloutInferRequest-shaped dict (Channel-B)
    gt_objects: list  # [{"desc", "bbox_2d": [bins]}] in GT order
    sample: str  # "file:line"
    record: Any = None  # the coordexp.format.data.Record (rollout eval's COCO rows need its image size and GT)

    @property
    def prompt_ids(self) -> list[int]:
        return list(self.enc.input_ids[: self.enc.prompt_len])


def prepare_samples(path: str, tok, cfg, *, limit: int | None, split: str) -> list[RawSample]:
    records = load_records(
        path,
        stage="stage2",
        max_pixels=image_cap(cfg),
        object_ordering=cfg.custom.object_ordering,
        allow_outside_root=cfg.custom.allow_images_outside_jsonl_dir,
    )
    if limit is not None:
        log.info("%s: using the first %d of %d records (sample limit)", split, min(limit, len(records)), len(records))
        records = records[:limit]
    out = [raw_sample(i, rec, tok, cfg) for i, rec in enumerate(records)]
    if not out:
        raise Stage2SetupError(f"{path}: no {split} samples")
    return out


def raw_sample(i: int, rec, tok, cfg, objects=None) -> RawSample:
    """One record as a Stage-2 sample; ``objects`` replaces the stored object order (GT target and GT list)."""
    fo = cfg.custom.object_field_order
    variant = cfg.custom.extra.get("prompt_variant", "default")
    where = f"{rec.source}:{rec.line}"
    d = record_dict(rec, objects)
    try:
        enc = encode_sample(
            d,
            tok,
            field_order=fo,
            prompt_variant=variant,
            object_ordering=cfg.custom.object_ordering,
            max_pixels=image_cap(cfg),
            source=where,
        )
        msgs = build_messages(
            d,
            field_order=fo,
            prompt_variant=variant,
            object_ordering=cfg.custom.object_ordering,
            with_assistant=False,
            source=where,
        )
    except TemplateError as exc:
        raise Stage2SetupError(str(exc)) from exc
    objs = rec.objects if objects is None else objects
    gt = [{"desc": o.desc, o.geometry: list(o.values)} for o in objs]
    return RawSample(i, enc, from_messages(msgs, sample=where), gt, where, rec)


def train_samples(cfg, tok, samples: list[RawSample]) -> TrainSamples:
    """The Trainer's dataset (``training.inputs.TrainSamples``): under `random` each draw rebuilds its
    sample with the drawn object order."""

    def build(j, objects):
        return raw_sample(samples[j].index, samples[j].record, tok, cfg, objects)

    return TrainSamples(samples, [s.record for s in samples], build, cfg.custom.object_ordering, cfg.dataset_seed)


# ----------------------------------------------------------------------------- engine


@dataclass
class EngineConfig:
    field_order: str
    coord_start: int
    b_ratio: float
    softctx: Any  # channel_a.SoftContextConfig
    loss_weights: Any  # objective.Stage2LossWeights
    channel_b: Any  # channel_b.ChannelBConfig
    decode: Any  # rollout.request.DecodeSettings
    packing_length: int
    packing_buffer: int
    training_seed: int = 17
    image_token_id: int = IMAGE_TOKEN_ID
    spatial_merge_size: int = 2
    decode_mode: str = "greedy"
    num_beams: int = 1
    eval_detection: bool = False  # rollout eval adds COCO bbox metrics (coordexp.stage2.eval_detection)


@dataclass
class StepResult:
    channel: str
    loss: float  # Σ_packs loss_pack × segments_in_pack / total_segments
    metrics: dict  # this rank's finalized step metrics
    packs: list = field(default_factory=list)  # [(segment samples,), ...] for inspection
    rows: list = field(default_factory=list)  # the PackedRows, when the engine keeps them (checks)


class Stage2Engine:
    """One optimizer step's work on one rank, independent of the Trainer (tests call it directly)."""

    def __init__(
        self, tokenizer, config: EngineConfig, backend=None, *, rank: int = 0, world_size: int = 1, weight_sync=None
    ):
        """``weight_sync(model)`` pushes the learner's weights to a rollout server (rank 0 runs
        it, through ``maybe_sync``); None = the backend needs no sync (the in-process HF one)."""

        self.tok, self.cfg, self.backend = tokenizer, config, backend
        self.rank, self.world_size = rank, world_size
        self.buffers = PostRolloutBuffers(config.packing_length, config.packing_buffer)
        self.realized = RealizedRatio()
        self._rope = None
        self.keep_rows = False  # checks inspect the packed rows of a step
        self.weight_sync = weight_sync
        self.sync_state = SyncState()

    def sync_weights(self, model, weights_step: int, timings: dict | None = None) -> bool:
        """Make the server's weights the learner's before rollouts (every rank calls this).

        ``weights_step`` is the number of optimizer steps the weights have taken, so a step's
        rollouts and an eval right before it share one push. Returns whether a push happened.
        """
        if self.weight_sync is None:
            return False

        t = time.perf_counter()
        pushed = maybe_sync(weights_step, self.sync_state, lambda: self.weight_sync(model))
        if timings is not None:
            timings["time/rollout_weight_sync_s"] = time.perf_counter() - t
        return pushed

    # -- segments
    def _a_segments(self, samples):

        return [
            channel_a_segment(
                s.enc,
                self.tok,
                field_order=self.cfg.field_order,
                desc_ce_weight=self.cfg.loss_weights.desc_ce_weight,
                sample=s.sample,
            )
            for s in samples
        ]

    def _b_segments(self, samples, global_step: int, timings: dict, counters: dict):

        if self.backend is None:
            raise Stage2SetupError("a Channel-B step needs a rollout backend (rollout_matching.rollout_backend)")
        base = seed_base(self.cfg.training_seed, global_step)
        t = time.perf_counter()
        outs = self.backend.generate(
            [s.request for s in samples], self.cfg.decode, seed_base=base, request_offset=self.rank * len(samples)
        )
        timings["time/rollout_generate_s"] = time.perf_counter() - t
        if len(outs) != len(samples):
            raise Stage2SetupError(f"the rollout backend returned {len(outs)} outputs for {len(samples)} requests")
        gen_tokens = sum(len(o.token_ids) for o in outs)
        segs, parse_s, enc_s = [], 0.0, 0.0
        for s, o in zip(samples, outs, strict=True):
            t = time.perf_counter()
            try:
                target = build_target(self.tok, o.token_ids, s.gt_objects, self.cfg.channel_b)
            except ClosureError as exc:
                log.warning("%s: Channel-B sample dropped: %s", s.sample, exc)
                for k in (
                    "stage2/raw_rollouts",
                    "stage2_ab/channel_b/closure_supervision/N_drop",
                    "stage2/invalid_rollout",
                    "stage2_ab/channel_b/invalid_rollout",
                ):
                    counters[k] = counters.get(k, 0) + 1
                parse_s += time.perf_counter() - t
                continue
            parse_s += time.perf_counter() - t
            t = time.perf_counter()
            row = teacher_forced_row(s.prompt_ids, o.prompt_token_ids, target, sample=s.sample)
            segs.append(channel_b_segment(row, s.enc, target, sample=s.sample))
            enc_s += time.perf_counter() - t
        timings["time/rollout_parse_match_s"] = parse_s
        timings["time/rollout_teacher_encode_s"] = enc_s
        gen_s = timings["time/rollout_generate_s"]
        counters["_gen_tokens"] = gen_tokens
        counters["_gen_tokens_per_s"] = gen_tokens / gen_s if gen_s > 0 else 0.0
        counters["_seed_base"] = base
        return segs

    def _rollout_flags(self) -> dict:
        d, name = self.cfg.decode, getattr(self.backend, "name", "hf")
        return {
            "rollout/backend_hf": float(name == "hf"),
            "rollout/backend_vllm": float(name == "vllm"),
            "rollout/decode_mode_greedy": float(self.cfg.decode_mode == "greedy"),
            "rollout/decode_mode_beam": float(self.cfg.decode_mode == "beam"),
            "rollout/temperature": float(d.temperature),
            "rollout/top_p": float(d.top_p),
            "rollout/top_k": float(d.top_k),
            "rollout/do_sample": float(d.temperature > 0),
            "rollout/max_new_tokens": float(d.max_tokens),
            "rollout/num_beams": float(self.cfg.num_beams),
            "rollout/repetition_penalty": float(d.repetition_penalty),
        }

    # -- the step
    def step(self, model, samples, channel: str, global_step: int, *, backward=None, no_sync=None) -> StepResult:
        """Build, pack, forward and backward one optimizer step's raw samples on this rank.

        ``backward(loss)`` defaults to ``loss.backward()``; ``no_sync()`` (a context manager
        factory, e.g. DDP's) wraps every pack but the last.
        """
        expected = channel_for_step(global_step, self.cfg.b_ratio)
        if channel != expected:
            raise ValueError(
                f"step {global_step} belongs to Channel-{expected} (b_ratio {self.cfg.b_ratio}), not Channel-{channel}"
            )
        timings: dict[str, float] = {}
        counters: dict[str, float] = {}
        if channel == CHANNEL_A:
            segs, softctx = self._channel_a_step(samples, timings)
        else:
            segs, softctx = self._channel_b_step(model, samples, global_step, timings, counters)
        buffer_before = self.buffers.occupancy
        packs = self._pack(channel, segs, timings)
        self.realized.record(global_step, channel == CHANNEL_B)
        loss_sum, step_metrics, done, rows = self._train_packs(
            model,
            channel,
            packs,
            softctx,
            backward or (lambda loss: loss.backward()),
            no_sync,
            first_pack={
                **timings,
                **{key: v for key, v in counters.items() if not key.startswith("_")},
                "packing/post_rollout_buffer": float(buffer_before + len(segs)),
            },
        )
        if not packs:  # every sample dropped: the step still logs its counters (and trains nothing)
            m = dict(timings)
            m.update({key: v for key, v in counters.items() if not key.startswith("_")})
            step_metrics.add(m, 1)
        metrics = step_metrics.finalize()
        if channel == CHANNEL_B:
            metrics.update(self._rollout_metrics(metrics, counters))
        if RealizedRatio.should_log(self.cfg.b_ratio):
            metrics["stage2_ab/b_ratio_realized"] = self.realized.value
        return StepResult(channel, loss_sum, dict(sorted(metrics.items())), done, rows)

    def _channel_a_step(self, samples, timings: dict):
        """Channel-A's segments (the GT targets) and its soft-context iterations."""
        t = time.perf_counter()
        segs = self._a_segments(samples)
        timings["time/channel_a_teacher_encode_s"] = time.perf_counter() - t
        return segs, self.cfg.softctx

    def _channel_b_step(self, model, samples, global_step: int, timings: dict, counters: dict):
        """Channel-B's segments (sync, rollout, parse, match, FN injection) and its single forward."""
        counters["_weight_synced"] = self.sync_weights(model, global_step, timings)
        segs = self._b_segments(samples, global_step, timings, counters)
        return segs, SoftContextConfig(1, self.cfg.softctx.grad_mode, self.cfg.softctx.temperature)

    def _pack(self, channel: str, segs, timings: dict) -> list:
        self.buffers.add(channel, segs)
        t = time.perf_counter()
        packs = list(self.buffers.drain(channel))
        pack_s = time.perf_counter() - t
        timings["time/channel_a_pack_s" if channel == CHANNEL_A else "time/post_rollout_pack_s"] = pack_s
        return packs

    def _train_packs(self, model, channel: str, packs, softctx, backward, no_sync, *, first_pack: dict):
        """Forward and backward every pack, ``loss × segments in pack / segments in step``; DDP
        syncs gradients on the last pack only. Returns (loss, StepMetrics, packs done, rows)."""
        step_metrics = StepMetrics(channel)
        total = sum(len(p) for p, _ in packs)
        attn = _attn_impl(model)
        device = next(model.parameters()).device
        loss_sum = 0.0
        done, rows = [], []
        for k, (pack, sel) in enumerate(packs):
            t = time.perf_counter()
            row = collate_segments(
                pack,
                image_token_id=self.cfg.image_token_id,
                spatial_merge_size=self.cfg.spatial_merge_size,
                rope=self._get_rope(),
            )
            assert_packing_isolated(row.batch, attn_implementation=attn, use_cache=False)
            batch = {k2: (v.to(device) if torch.is_tensor(v) else v) for k2, v in row.batch.items()}
            mask_s = time.perf_counter() - t
            t = time.perf_counter()
            ctx = no_sync() if (no_sync is not None and k < len(packs) - 1) else contextlib.nullcontext()
            with ctx:
                out = soft_context_forward(
                    model,
                    batch,
                    slot_positions=row.slot_positions,
                    ce_positions=row.ce_positions,
                    coord_start=self.cfg.coord_start,
                    config=softctx,
                )
                pl = pack_loss(
                    out.first_rows(row.ce_positions),
                    torch.tensor(row.ce_targets),
                    torch.tensor(row.ce_weights),
                    out.last_rows([p - 1 for p in row.slot_positions]),
                    torch.tensor(row.target_bins),
                    coord_start=self.cfg.coord_start,
                    weights=self.cfg.loss_weights,
                )
                scaled = pl.loss * (len(pack) / total)
                backward(scaled)
            loss_sum += float(scaled.detach())
            m = dict(pl.metrics)
            m.update(self._pack_metrics(channel, pack, sel, len(packs), out, row))
            m["time/forward_s"] = time.perf_counter() - t
            m["time/mask_build_s"] = mask_s
            if k == 0:
                m.update(first_pack)
            step_metrics.add(m, len(pack))
            done.append(tuple(s.sample for s in pack))
            if self.keep_rows:
                rows.append(row)
        return loss_sum, step_metrics, done, rows

    def _pack_metrics(self, channel, pack, sel, n_packs, out, row) -> dict:
        m = {
            "packing/post_rollout_fill": sel.tokens / self.cfg.packing_length,
            "packing/post_rollout_segments": float(len(pack)),
        }
        if channel == CHANNEL_B:
            for seg in pack:
                for key, v in seg.counters.items():
                    m[key] = m.get(key, 0.0) + float(v)
        else:
            m["coord_diag/slots"] = float(len(row.slot_positions))
            m["coord_diag/softctx_iters"] = float(out.iterations)
        return m

    def _rollout_metrics(self, metrics: dict, counters: dict) -> dict:
        out = self._rollout_flags()
        out["rollout/seed_base"] = float(counters.get("_seed_base", 0))
        out["rollout/gen_tokens_per_s"] = float(counters.get("_gen_tokens_per_s", 0.0))
        if self.weight_sync is not None:  # server mode: 1 when this step pushed the learner's weights
            out["rollout/weight_synced"] = float(bool(counters.get("_weight_synced")))
        tp, fp, fn = (metrics.get(k, 0.0) for k in ("rollout/matched", "rollout/fp", "rollout/fn"))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        out.update({"rollout/precision": p, "rollout/recall": r, "rollout/f1": 2 * p * r / (p + r) if p + r else 0.0})
        return out

    def _get_rope(self):
        if self._rope is None:
            self._rope = RopeIndex(self.cfg.spatial_merge_size)
        return self._rope

    # -- eval: rollout -> parse -> match, no teacher-forced loss
    def evaluate(self, samples, prefix: str = "eval_rollout", *, model=None, weights_step: int | None = None) -> dict:

        if self.backend is None or not samples:
            return {}
        if self.weight_sync is not None:
            if model is None or weights_step is None:
                raise Stage2SetupError("a server-mode rollout eval needs the model and its step (weight sync)")
            self.sync_weights(model, weights_step)
        outs = self.backend.generate(
            [s.request for s in samples],
            self.cfg.decode,
            seed_base=seed_base(self.cfg.training_seed, 0),
            request_offset=0,
        )
        tp = fp = fn = invalid = 0
        for s, o in zip(samples, outs, strict=True):
            pre = rollout_prefix(self.tok, o.token_ids, self.cfg.field_order)
            res = match([k.obj for k in pre.kept], [Shape.of(g) for g in s.gt_objects], self.cfg.channel_b.match)
            tp, fp, fn = tp + len(res.matched), fp + len(res.fp), fn + len(res.fn)
            invalid += int(pre.invalid_rollout)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out = {
            f"{prefix}/precision": p,
            f"{prefix}/recall": r,
            f"{prefix}/f1": f1,
            f"{prefix}/invalid_rollout": float(invalid),
            f"{prefix}/samples": float(len(samples)),
        }
        if self.cfg.eval_detection:
            out.update(coco_metrics(self.tok, samples, outs, self.cfg.field_order, prefix))
        return out


def _attn_impl(model) -> str | None:
    cfg = getattr(getattr(model, "module", model), "config", None)
    return getattr(getattr(cfg, "text_config", cfg), "_attn_implementation", None)


def reduce_step_metrics(metrics: dict) -> dict:
    """Combine this rank's step metrics with every other rank's (``reduce_ranks``); the union
    of keys is gathered with ``all_gather_object``, so this must run on every rank."""

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, metrics)
        return reduce_ranks(gathered)
    return reduce_ranks([metrics])


# ----------------------------------------------------------------------------- config -> engine


def engine_config(cfg, tok, model) -> EngineConfig:

    s2, rm = cfg.stage2_ab, cfg.rollout_matching
    if s2 is None or rm is None:
        raise Stage2SetupError(f"{cfg.config_path}: a stage_2 config needs the stage2_ab and rollout_matching sections")
    if rm.decode_mode != "greedy":
        raise Stage2SetupError(
            f"{cfg.config_path}: rollout_matching.decode_mode {rm.decode_mode!r}: the Stage-2 "
            "trainer decodes greedily or by sampling (num_beams 1); set decode_mode: greedy"
        )
    packing_length = int(cfg.global_max_length or cfg.template.get("max_length") or 0)
    if packing_length < 1:
        raise Stage2SetupError(f"{cfg.config_path}: global_max_length is required (the post-rollout pack length)")
    match = MatchConfig(
        candidate_top_k=rm.candidate_top_k,
        maskiou_gate=rm.maskiou_gate,
        maskiou_resolution=rm.maskiou_resolution,
        fp_cost=rm.fp_cost,
        fn_cost=rm.fn_cost,
    )
    vc = getattr(model, "config", None)
    return EngineConfig(
        field_order=cfg.custom.object_field_order,
        coord_start=coord_token_ids(tok)[0],
        b_ratio=s2.schedule.b_ratio,
        softctx=SoftContextConfig(s2.n_softctx_iter, s2.softctx_grad_mode, s2.softctx_temperature),
        loss_weights=Stage2LossWeights.from_config(cfg),
        channel_b=ChannelBConfig(
            cfg.custom.object_field_order, s2.desc_ce_weight, s2.channel_b.drop_invalid_struct_ce_multiplier, match
        ),
        decode=DecodeSettings.from_decoding(
            rm.decoding, max_tokens=rm.max_new_tokens, repetition_penalty=rm.repetition_penalty
        ),
        packing_length=packing_length,
        packing_buffer=int(cfg.extras.packing_buffer),
        training_seed=cfg.dataset_seed,
        image_token_id=getattr(vc, "image_token_id", IMAGE_TOKEN_ID),
        spatial_merge_size=getattr(getattr(vc, "vision_config", None), "spatial_merge_size", 2),
        decode_mode=rm.decode_mode,
        num_beams=rm.num_beams,
        eval_detection=rm.eval_detection.enabled,
    )


def make_weight_push(
    base_url: str, *, timeout_s: float = 240.0, group_port: int = 51216, model=None, coord_offset=None, where=""
):
    """``weight_sync`` for server mode: ``weight_sync.WeightPusher`` (ms-swift's sequence; its
    ``VLLMClient`` on CUDA, a gloo group on CPU). Call ``close()`` at the end of the run.

    ``coord_offset`` (the run's ``CoordOffset`` or None) is folded into every push, so the server
    rolls out the learner's effective policy; offsets the server cannot carry are refused here,
    before training (``weight_sync.check_servable`` on ``model``), and so is a CUDA learner
    without vLLM talking to a ``swift rollout`` server (``sync_client.choose_transport``)."""

    try:
        if model is not None:
            check_servable(model, coord_offset)
        return WeightPusher(
            base_url,
            group_port=group_port,
            timeout_s=timeout_s,
            log=lambda m: print(f"learner: {m}", file=sys.stderr, flush=True),
            coord_offset=coord_offset,
        )
    except (WeightSyncError, SyncClientError) as exc:
        raise Stage2SetupError(f"{where}: {exc}" if where else str(exc)) from None


def make_backend(cfg, model, tok):
    """The rollout backend named by ``rollout_matching.rollout_backend``."""
    rm = cfg.rollout_matching
    if rm.rollout_backend == "hf":
        return HFBackend(model, tok, max_pixels=image_cap(cfg))

    servers = rm.vllm.server.servers  # exactly one: config.rules refuses any other count at load time
    try:  # the server's reported world size (GET /get_world_size/), never an assumed one
        chunk = server_chunk_size(
            servers[0].base_url, rm.decode_batch_size, cfg.world_size, timeout_s=rm.vllm.server.timeout_s
        )
    except ChunkingError as exc:
        raise Stage2SetupError(f"{cfg.config_path}: {exc}") from None
    return ServerBackend(
        servers[0].base_url,
        timeout_s=rm.vllm.server.timeout_s,
        infer_timeout_s=rm.vllm.server.infer_timeout_s,
        chunk_size=chunk,
    )


# ----------------------------------------------------------------------------- Trainer


class Stage2ABTrainer(CoordExpTrainer):
    """The shared trainer's optimizer buckets and weight-only saves, with the Stage-2 step."""

    def __init__(self, *args, engine: Stage2Engine, eval_samples=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.engine = engine
        self.eval_samples = eval_samples or []
        self._window: list = []
        self._micro = 0
        self.step_log: list[dict] = []  # every optimizer step's reduced metrics (also in log_history)
        self._pending: dict | None = None
        self.add_callback(_StepLogger(self))

    # the window's raw samples arrive together (transformers prefetches GAS batches)
    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches = next_batches(epoch_iterator, num_batches)
        self._window = [s for b in batches for s in b]
        self._micro = 0
        self._window_batches = len(batches)
        return batches, None

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._micro += 1
        device = self.args.device
        if self._micro < self._window_batches:
            return torch.zeros((), device=device)  # micro-steps 1..GAS-1 only collect
        model.train()
        step = self.state.global_step
        channel = channel_for_step(step, self.engine.cfg.b_ratio)
        no_sync = None
        if self.accelerator.num_processes > 1:
            no_sync = lambda: self.accelerator.no_sync(model)  # noqa: E731
        res = self.engine.step(model, self._window, channel, step, backward=self.accelerator.backward, no_sync=no_sync)
        self._pending = reduce_step_metrics(res.metrics)
        return torch.tensor(res.loss, device=device)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        raise RuntimeError("the Stage-2 trainer computes its loss per pack in training_step")

    def floating_point_ops(self, inputs):
        return 0

    def _track_num_input_tokens(self, inputs):
        return None

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        was = self.model.training
        metrics = self.engine.evaluate(
            self.eval_samples,
            prefix=f"{metric_key_prefix}_rollout",
            model=self.model,
            weights_step=self.state.global_step,
        )
        self.model.train(was)
        if metrics:
            metrics[f"{metric_key_prefix}_rollout/f1"] = metrics[f"{metric_key_prefix}_rollout/f1"]
            # metric_for_best_model "rollout/f1" is looked up as eval_rollout/f1
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class _StepLogger(TrainerCallback):
    """Logs the step's Stage-2 metrics once, after its optimizer step (global_step = s + 1)."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer._pending is not None:
            m, self.trainer._pending = self.trainer._pending, None
            m = {k: v for k, v in m.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
            self.trainer.step_log.append(dict(m, step=state.global_step))
            self.trainer.log(dict(m))
        return control


def check_learner_devices(cfg, settings) -> None:
    """Several CUDA devices in one learner process are refused: transformers would wrap the model
    in ``nn.DataParallel`` (one process driving every device), which the Stage-2 step (per-pack
    backward, rank-0 weight sync) does not support. Several devices take one process each (torchrun)."""

    if settings.arguments.get("use_cpu") or not torch.cuda.is_available():
        return
    n = torch.cuda.device_count()
    if n > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        raise Stage2SetupError(
            f"{cfg.config_path}: the learner sees {n} CUDA devices but runs as one process (transformers would "
            "wrap the model in nn.DataParallel); start one process per device with torchrun "
            "(NPROC_PER_NODE=N or COORDEXP_STAGE2_LEARNER_GPUS with scripts/train_stage2.sh), or make one "
            "device visible (CUDA_VISIBLE_DEVICES)"
        )


def _identity(batch):
    return list(batch)


@dataclass
class Stage2RunResult:
    output_dir: Path
    step_log: list
    final_checkpoint: Path | None


def run(
    config_path, *, overrides: dict | None = None, backend=None, weight_sync=None, callbacks: list | None = None
) -> Stage2RunResult:
    """Train from a stage_2 YAML config: setup, train, cleanup. ``backend`` (and its
    ``weight_sync``) replace the configured rollout backend (tests); ``overrides`` patch
    ``training.*`` (tests shorten runs). The configured server backend (``vllm``) gets
    ``make_weight_push`` to its one server."""
    cfg, settings = load_run_config(config_path, overrides)
    model, tok, adapter, train, val = build_inputs(cfg, settings)
    if backend is None:
        backend, weight_sync = configured_rollouts(cfg, model, tok, adapter)
    trainer = build_trainer(cfg, settings, model, tok, adapter, train, val, backend, weight_sync, callbacks)
    try:
        trainer.train()
    finally:
        close_rollouts(backend, weight_sync)
    return finish_run(trainer, settings.output_dir)


def load_run_config(config_path, overrides: dict | None):
    """(cfg, RunSettings): a stage_2 config with packing, on the devices it may use."""
    cfg = load_config(config_path, overrides=training_overrides(overrides))
    if not cfg.is_stage2:
        raise Stage2SetupError(
            f"{cfg.config_path}: custom.trainer_variant is not stage2_ab_training; use scripts/train.sh for stage_1"
        )
    if not cfg.extras.packing:
        raise Stage2SetupError(
            f"{cfg.config_path}: training.packing must be true (Stage-2 step mode packs post-rollout segments)"
        )
    settings = RunSettings.from_config(cfg)
    check_learner_devices(cfg, settings)
    if cfg.extras.packing_buffer < settings.per_rank_batch:
        raise Stage2SetupError(
            f"{cfg.config_path}: training.packing_buffer {cfg.extras.packing_buffer} is below the "
            f"per-rank raw budget {settings.per_rank_batch} (effective_batch_size / world): raise it"
        )
    return cfg, settings


def build_inputs(cfg, settings):
    """(model, tokenizer, coord-offset adapter, train samples, val samples); the manifest written."""
    ensure_inputs(cfg)
    torch.manual_seed(cfg.dataset_seed)
    model, tok, adapter = build_model(cfg)
    if settings.resume_from_checkpoint:
        restore_weights(model, adapter, settings.resume_from_checkpoint, where=cfg.config_path)
    train = prepare_samples(cfg.custom.train_jsonl, tok, cfg, limit=cfg.custom.train_sample_limit, split="train")
    val = (
        prepare_samples(cfg.custom.val_jsonl, tok, cfg, limit=cfg.custom.val_sample_limit, split="val")
        if cfg.custom.val_jsonl
        else []
    )
    write_manifest(cfg, settings)
    return model, tok, adapter, train, val


def configured_rollouts(cfg, model, tok, adapter):
    """(backend, weight_sync) named by the config: the weight push only in server mode."""
    backend = make_backend(cfg, model, tok)
    if cfg.rollout_matching.rollout_backend != "vllm":
        return backend, None
    server = cfg.rollout_matching.vllm.server
    weight_sync = make_weight_push(
        server.servers[0].base_url,
        timeout_s=server.timeout_s,
        group_port=server.servers[0].group_port,
        model=model,
        coord_offset=adapter,
        where=str(cfg.config_path),
    )
    log.info(
        "server mode: the learner's weights are pushed to %s before each Channel-B step's rollouts",
        server.servers[0].base_url,
    )
    return backend, weight_sync


def build_trainer(cfg, settings, model, tok, adapter, train, val, backend, weight_sync, callbacks):
    args = training_arguments(settings)
    engine = Stage2Engine(
        tok, engine_config(cfg, tok, model), backend, world_size=cfg.world_size, weight_sync=weight_sync
    )
    trainer = Stage2ABTrainer(
        model=model,
        args=args,
        train_dataset=train_samples(cfg, tok, train),
        eval_dataset=SampleDataset(val) if val else None,
        data_collator=_identity,
        coord_offset=adapter,
        lr_buckets=settings.lr_buckets,
        callbacks=[SaveDelay(settings.save_delay_steps), *(callbacks or [])],
        engine=engine,
        eval_samples=val,
    )
    # the Trainer's arguments know the process's place once torchrun's group is up
    engine.rank, engine.world_size = trainer.args.process_index, trainer.args.world_size
    return trainer


def close_rollouts(backend, weight_sync) -> None:
    if hasattr(backend, "close"):
        backend.close()
    if hasattr(weight_sync, "close"):
        weight_sync.close()


def finish_run(trainer, out_dir: Path) -> Stage2RunResult:
    """The final checkpoint and the step log (rank 0 writes)."""
    final = final_checkpoint(trainer, out_dir)
    write_text(
        out_dir / "stage2_step_log.jsonl", "".join(json.dumps(m, sort_keys=True) + "\n" for m in trainer.step_log)
    )
    return Stage2RunResult(out_dir, list(trainer.step_log), final)


def main(config_path) -> int:
    """The ``coordexp.train`` dispatch target for ``custom.trainer_variant: stage2_ab_training``."""

    own = (Stage2SetupError, RolloutBackendError, PostPackError, WeightSyncError, RolloutClientError)
    result, status = run_reported("coordexp.train (stage_2)", run, config_path, own)
    if result is None:
        return status
    losses = [m["loss/total"] for m in result.step_log if "loss/total" in m]
    chans = "".join("B" if m.get("stage2/channel_b") else "A" for m in result.step_log)
    print(
        f"coordexp.train (stage_2): done: {result.output_dir} (channels {chans}, "
        f"final checkpoint {result.final_checkpoint})"
    )
    return 0 if losses and all(math.isfinite(x) for x in losses) else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sys.exit(main(sys.argv[1]))
