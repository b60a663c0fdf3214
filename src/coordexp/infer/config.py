"""`load_pipeline_config(path) -> PipelineConfig`: the inference / evaluation / visualisation profile.

One YAML file (with `extends`, like the training configs) holds up to three sections, each read
by its own command:

    infer:  scripts/infer.sh <config>   a checkpoint over a JSONL -> the artifact gt_vs_pred.jsonl
    eval:   scripts/eval.sh <config>    the artifact -> metrics.json
    vis:    python -m coordexp.eval.vis      the artifact -> overlay PNGs + index.html

It goes through the training loader's machinery (``coordexp.config``): the same YAML reader
(line marks, duplicate keys refused, YAML 1.2 floats), the same strict typed schema (unknown
keys, wrong types and bounds are errors at their file:line and dotted key), and the same
cwd-independent path rule (relative paths resolve against the repo root, ``./x`` against the
file). Every problem is collected before ``ConfigError`` is raised.

Derived defaults: ``eval.artifact`` and ``vis.artifact`` default to the artifact that ``infer``
writes; ``eval.output_dir`` and ``vis.output_dir`` default to ``<artifact dir>/eval`` and
``<artifact dir>/vis``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coordexp.config.issues import ConfigError
from coordexp.config.opening import open_config, reject_unknown_top_level
from coordexp.config.paths import resolve_path
from coordexp.config.typed import Ctx, parse_dataclass
from coordexp.format.template import MAX_PIXELS

ARTIFACT_NAME = "gt_vs_pred.jsonl"


def _f(default: Any = None, *, factory: Any = None, **meta: Any):
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DecodingConfig:
    """Decoding knobs (the rollout backends' DecodeSettings). Greedy by default."""

    temperature: float = _f(0.0, ge=0)
    top_p: float = _f(1.0, gt=0, le=1)
    top_k: int = _f(-1, ge=-1)
    repetition_penalty: float = _f(1.0, gt=0)


@dataclass
class PromptConfig:
    """Must match what the checkpoint was trained with (custom.object_field_order, ...)."""

    field_order: Literal["desc_first", "geometry_first"] = "desc_first"
    object_ordering: Literal["sorted", "random"] = "sorted"
    prompt_variant: str = "default"


@dataclass
class InferConfig:
    model: str = field(metadata={"doc": "a Qwen3-VL model directory with the coord vocabulary (plain or merged)"})
    jsonl: str = field(metadata={"doc": "the records to run, in the project's JSONL contract"})
    output_dir: str = field(metadata={"doc": "where gt_vs_pred.jsonl and the run manifest go"})
    checkpoint: str | None = None  # a stage_1 checkpoint (LoRA adapter and/or coord_offset.safetensors)
    tokenizer: str | None = None  # the coord tokenizer's folder when `model` has none (a full-tuning checkpoint)
    backend: Literal["hf", "vllm"] = "hf"
    server_url: str | None = None  # backend vllm: a running `swift rollout` server
    batch_size: int = _f(4, ge=1)
    limit: int | None = _f(None, ge=1)
    max_new_tokens: int = _f(512, ge=1)
    seed: int = _f(17, ge=0)
    torch_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto"
    attn_impl: str = "sdpa"
    max_pixels: int = _f(MAX_PIXELS, ge=1)
    decoding: DecodingConfig = _f(factory=DecodingConfig)
    prompts: PromptConfig = _f(factory=PromptConfig)
    progress: bool = True

    @property
    def artifact(self) -> Path:
        return Path(self.output_dir) / ARTIFACT_NAME


@dataclass
class EvalConfig:
    artifact: str | None = None  # default: the infer section's artifact
    output_dir: str | None = None  # default: <artifact dir>/eval
    iou_thresholds: list[float] = _f(factory=lambda: [0.3, 0.5])  # F1-style matching thresholds
    pred_scope: Literal["annotated", "all"] = "annotated"


@dataclass
class VisConfig:
    artifact: str | None = None  # default: the infer section's artifact
    output_dir: str | None = None  # default: <artifact dir>/vis
    limit: int | None = _f(None, ge=1)  # overlays for the first N samples (None: all)
    iou_threshold: float = _f(0.5, gt=0, le=1)  # what counts as matched in the pictures


@dataclass
class PipelineConfig:
    infer: InferConfig | None = None
    eval: EvalConfig | None = None
    vis: VisConfig | None = None
    config_path: str = ""


SECTIONS = {"infer": InferConfig, "eval": EvalConfig, "vis": VisConfig}


def _resolve(ctx: Ctx, obj: Any, attr: str, path: tuple) -> None:
    value = getattr(obj, attr)
    if isinstance(value, str) and value:
        setattr(obj, attr, str(resolve_path(value, Path(ctx.loc(path).file))))


def load_pipeline_config(path: str | os.PathLike, *, require: tuple[str, ...] = ()) -> PipelineConfig:
    """Load and check the file; ``require`` names the sections the caller needs."""
    tree, ctx = open_config(path)
    raw = tree.data
    reject_unknown_top_level(raw, SECTIONS, ctx)
    cfg = PipelineConfig(config_path=str(tree.leaf))
    for name, cls in SECTIONS.items():
        if raw.get(name) is None:
            if name in require:
                ctx.error(
                    (name,),
                    f"required section is missing: this command reads `{name}:` (see docs/inference-and-evaluation.md)",
                )
            continue
        if not isinstance(raw[name], dict):
            ctx.error((name,), f"must be a mapping, got {raw[name]!r}")
            continue
        setattr(cfg, name, parse_dataclass(cls, raw[name], (name,), ctx))
    _finish(cfg, ctx)
    if ctx.errors:
        raise ConfigError(ctx.errors)
    return cfg


def _finish(cfg: PipelineConfig, ctx: Ctx) -> None:
    """Paths made absolute, derived defaults filled, cross-key rules checked."""
    inf = cfg.infer
    if inf is not None:
        for attr in ("model", "jsonl", "output_dir", "checkpoint", "tokenizer"):
            _resolve(ctx, inf, attr, ("infer", attr))
        if inf.backend == "vllm" and not inf.server_url:
            ctx.error(
                ("infer", "server_url"),
                "required with backend: vllm (the `swift rollout` server's base URL, e.g. http://127.0.0.1:8000)",
            )
        if not (inf.device in ("cpu", "cuda", "auto") or inf.device.startswith("cuda:")):
            ctx.error(("infer", "device"), f"must be cpu, cuda, cuda:N or auto, got {inf.device!r}")
    for name in ("eval", "vis"):
        sec = getattr(cfg, name)
        if sec is None:
            continue
        _resolve(ctx, sec, "artifact", (name, "artifact"))
        _resolve(ctx, sec, "output_dir", (name, "output_dir"))
        if sec.artifact is None:
            if inf is None:
                ctx.error((name, "artifact"), "required when the file has no `infer:` section (the artifact to read)")
                continue
            sec.artifact = str(inf.artifact)
        if sec.output_dir is None:
            sec.output_dir = str(Path(sec.artifact).parent / name)
    if cfg.eval is not None:
        thr = cfg.eval.iou_thresholds
        if not thr or any(not 0 < t <= 1 for t in thr):
            ctx.error(("eval", "iou_thresholds"), f"must be a non-empty list of IoU values in (0, 1], got {thr!r}")
