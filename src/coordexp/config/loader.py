"""`load_config(path) -> TrainingConfig`: extends, strict schema, invariants, coherence, profile contract.

Nothing runs before the whole config has been checked: a config with any problem raises
``ConfigError`` listing every problem, each at its file and line.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import rules
from .issues import ConfigError, ConfigWarning, Issue, Loc
from .legacy import DEPRECATED_NOOP_CUSTOM, INERT_ONLY_CUSTOM, is_inert, legacy_message
from .paths import repo_root_for, resolve_path
from .profiles import check_profile_leaf, is_profile_leaf
from .sections import (
    TRAINING_EXTRA_KEYS,
    CustomConfig,
    DebugConfig,
    DeepspeedConfig,
    RolloutMatchingConfig,
    Stage2ABConfig,
    TrainingExtras,
)
from .swift_fields import SwiftUnavailable, rlhf_fields, train_fields
from .typed import Ctx, coerce, parse_dataclass, to_plain
from .yaml_source import load_tree

SWIFT_SECTIONS = ("model", "quantization", "template", "data", "tuner", "training")
TOP_LEVEL = (
    *SWIFT_SECTIONS,
    "rlhf",
    "custom",
    "stage2_ab",
    "rollout_matching",
    "debug",
    "deepspeed",
    "global_max_length",
    "prompts",
)


@dataclass
class TrainingConfig:
    """The materialized config. Sections bound to ms-swift stay dicts (ms-swift parses them); coordexp's
    own sections are typed. ``training`` holds ms-swift fields plus coordexp's extras with their defaults
    filled in; ``extras`` is the typed view of those extras."""

    model: dict[str, Any]
    quantization: dict[str, Any]
    template: dict[str, Any]
    data: dict[str, Any]
    tuner: dict[str, Any]
    training: dict[str, Any]
    rlhf: dict[str, Any]
    custom: CustomConfig
    stage2_ab: Stage2ABConfig | None
    rollout_matching: RolloutMatchingConfig | None
    debug: DebugConfig
    deepspeed: DeepspeedConfig
    global_max_length: int | None
    extras: TrainingExtras
    config_path: str = ""
    base_config_paths: list[str] = field(default_factory=list)  # bases in merge order (leaf excluded)
    repo_root: str = ""
    world_size: int = 1
    dataset_seed: int = rules.DEFAULT_SEED
    warnings: list[str] = field(default_factory=list)

    @property
    def is_stage2(self) -> bool:
        return self.custom.trainer_variant == rules.STAGE2_VARIANT

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready); `extras` is folded into `training` already, so it is not repeated."""
        out = to_plain(self)
        out.pop("extras")
        return out


# ms-swift's numeric training arguments that a typo would break only deep inside the trainer (or not at
# all: `max_steps: true` is 1 step). Each: (kind, lower bound, inclusive, upper bound); `max_steps` also
# takes -1, transformers' "train by num_train_epochs".
_SWIFT_NUMBERS: dict[str, tuple[type, float, bool, float | None]] = {
    "learning_rate": (float, 0.0, False, None),
    "vit_lr": (float, 0.0, False, None),
    "aligner_lr": (float, 0.0, False, None),
    "weight_decay": (float, 0.0, True, None),
    "warmup_ratio": (float, 0.0, True, 1.0),
    "max_grad_norm": (float, 0.0, True, None),
    "num_train_epochs": (float, 0.0, False, None),
    "max_steps": (int, 1, True, None),
    "warmup_steps": (int, 0, True, None),
}
_MAX_INT = 2**63 - 1  # what the trainer's integer arguments hold


def _nonfinite(value: Any, path: tuple, ctx: Ctx) -> None:
    """NaN and infinity are never a config value: a `.nan` learning rate trains nothing, silently."""
    if isinstance(value, float) and not math.isfinite(value):
        ctx.error(path, f"must be a finite number, got {value!r}")
    elif isinstance(value, dict):
        for k, v in value.items():
            _nonfinite(v, (*path, k), ctx)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _nonfinite(v, (*path, i), ctx)


def _swift_numbers(training: dict[str, Any], ctx: Ctx) -> None:
    """The numeric training arguments typed and bounded here, naming the key, before ms-swift sees them."""
    for key, (kind, low, inclusive, high) in _SWIFT_NUMBERS.items():
        value = training.get(key)
        if value is None:
            continue
        path = ("training", key)
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > _MAX_INT:
                ctx.error(path, f"must be an integer, got {value!r}")
            elif key == "max_steps" and value == -1:
                pass
            elif value < low:
                ctx.error(
                    path, f"must be >= {low}{' (or -1: train by epochs)' if key == 'max_steps' else ''}, got {value}"
                )
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.error(path, f"must be a number, got {value!r}")
        elif not math.isfinite(value):
            continue  # reported by _nonfinite
        elif value < low or (value == low and not inclusive) or (high is not None and value > high):
            words = f"{'>=' if inclusive else '>'} {low:g}" + (f" and <= {high:g}" if high is not None else "")
            ctx.error(path, f"must be {words}, got {value!r}")


def _world_size(explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError([Issue(Loc("<env>", 0), "WORLD_SIZE", f"must be an integer, got {raw!r}")]) from None
    return max(1, value)


def _swift_section(name: str, value: Any, allowed: frozenset[str], ctx: Ctx) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.error((name,), f"must be a mapping, got {value!r}")
        return {}
    out = {}
    for key, v in value.items():
        if legacy_message((name, key)):  # removed or contract-bypassing keys, even when ms-swift knows them
            ctx.error((name, key), legacy_message((name, key)))
            continue
        if key not in allowed:
            ctx.unknown((name, key), allowed)
            continue
        out[key] = v
    return out


def _custom_raw(raw: Any, ctx: Ctx) -> dict:
    """`custom` without the inert-only and deprecated keys (each one checked or warned about)."""
    if not isinstance(raw, dict):
        return {} if raw is None else raw
    out = {}
    for key, value in raw.items():
        if key in DEPRECATED_NOOP_CUSTOM:
            ctx.warn(("custom", key), DEPRECATED_NOOP_CUSTOM[key])
        elif key in INERT_ONLY_CUSTOM:
            if not is_inert(value):
                ctx.error(
                    ("custom", key),
                    f"{INERT_ONLY_CUSTOM[key]} is not implemented in coordexp, so this value "
                    "would be silently ignored: delete the key (or set it to null/false)",
                )
        else:
            out[key] = value
    return out


def _resolve_paths(cfg: TrainingConfig, ctx: Ctx) -> None:
    """Relative paths become absolute, against the file that set them (audit P1.1: never the cwd)."""
    targets = [
        (cfg.custom, "train_jsonl", ("custom", "train_jsonl")),
        (cfg.custom, "val_jsonl", ("custom", "val_jsonl")),
    ]
    for obj, attr, path in targets:
        value = getattr(obj, attr)
        if isinstance(value, str) and value:
            setattr(obj, attr, str(resolve_path(value, Path(ctx.loc(path).file))))
    for section, key in (("model", "model"), ("training", "output_dir"), ("training", "logging_dir")):
        d = getattr(cfg, section)
        value = d.get(key)
        if isinstance(value, str) and value:
            d[key] = str(resolve_path(value, Path(ctx.loc((section, key)).file)))
        elif value is not None:
            ctx.error((section, key), f"must be a path string, got {value!r}")


def _apply_overrides(raw: dict, overrides: Mapping[str, Any], ctx: Ctx) -> None:
    """Set dotted keys (``training.max_steps``) in the merged tree, before anything is checked:
    an override is validated, typed and reported exactly as if the leaf file had said it."""
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = raw
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                ctx.error(tuple(parents[: i + 1]), f"override {dotted}: not a mapping here")
                break
            node = child
        else:
            node[last] = value


def load_config(
    path: str | os.PathLike, *, world_size: int | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainingConfig:
    """Load, validate and materialize a training config; raise ``ConfigError`` with every problem found.

    ``overrides`` maps dotted keys to values applied on top of the files (tests shorten runs with
    ``{"training.max_steps": 2}``); they pass through the same checks as the files' own keys.
    """
    path = Path(path)
    issues: list[Issue] = []
    if not path.is_file():
        raise ConfigError([Issue(Loc(str(path), 1), "", "config file not found")])
    tree = load_tree(path, issues)
    if tree is None:
        raise ConfigError(issues)
    ctx = Ctx(tree.marks, Loc(str(tree.leaf), 1), errors=issues, legacy=legacy_message)
    raw = tree.data
    if overrides:
        _apply_overrides(raw, overrides, ctx)

    for key in raw:
        if key not in TOP_LEVEL:
            ctx.unknown((key,), TOP_LEVEL)

    try:
        train_allowed, rlhf_allowed = train_fields(), rlhf_fields()
    except SwiftUnavailable as exc:
        raise ConfigError([*issues, Issue(ctx.leaf, "", str(exc))]) from None
    sections = {
        name: _swift_section(
            name, raw.get(name), train_allowed | (TRAINING_EXTRA_KEYS if name == "training" else frozenset()), ctx
        )
        for name in SWIFT_SECTIONS
    }
    rlhf = _swift_section("rlhf", raw.get("rlhf"), rlhf_allowed | {"llm_kd_weight"}, ctx)

    _nonfinite(raw, (), ctx)
    _swift_numbers(sections["training"], ctx)

    extras_raw = {k: v for k, v in sections["training"].items() if k in TRAINING_EXTRA_KEYS}
    extras = parse_dataclass(TrainingExtras, extras_raw, ("training",), ctx)
    sections["training"].update(to_plain(extras))

    custom = coerce(CustomConfig, _custom_raw(raw.get("custom"), ctx), ("custom",), ctx)
    stage2 = coerce(Stage2ABConfig, raw["stage2_ab"], ("stage2_ab",), ctx) if raw.get("stage2_ab") is not None else None
    rollout = (
        coerce(RolloutMatchingConfig, raw["rollout_matching"], ("rollout_matching",), ctx)
        if raw.get("rollout_matching") is not None
        else None
    )
    debug = coerce(DebugConfig, raw.get("debug"), ("debug",), ctx)
    deepspeed = coerce(DeepspeedConfig, raw.get("deepspeed"), ("deepspeed",), ctx)
    gml = raw.get("global_max_length")
    if gml is not None and (isinstance(gml, bool) or not isinstance(gml, int) or gml < 1):
        ctx.error(("global_max_length",), f"must be a positive integer (tokens), got {gml!r}")
        gml = None
    if not isinstance(custom, CustomConfig):  # `custom` missing or not a mapping: parse the empty one for its errors
        if raw.get("custom") is not None:
            custom = parse_dataclass(CustomConfig, {}, ("custom",), Ctx(ctx.marks, ctx.leaf))
        else:
            custom = parse_dataclass(CustomConfig, {}, ("custom",), ctx)
    stage2 = stage2 if isinstance(stage2, Stage2ABConfig) else None
    rollout = rollout if isinstance(rollout, RolloutMatchingConfig) else None
    debug = debug if isinstance(debug, DebugConfig) else DebugConfig()
    deepspeed = deepspeed if isinstance(deepspeed, DeepspeedConfig) else DeepspeedConfig()

    ws = _world_size(world_size)
    cfg = TrainingConfig(
        model=sections["model"],
        quantization=sections["quantization"],
        template=sections["template"],
        data=sections["data"],
        tuner=sections["tuner"],
        training=sections["training"],
        rlhf=rlhf,
        custom=custom,
        stage2_ab=stage2,
        rollout_matching=rollout,
        debug=debug,
        deepspeed=deepspeed,
        global_max_length=gml,
        extras=extras,
        config_path=str(tree.leaf),
        base_config_paths=[str(p) for p in tree.files[:-1]],
        repo_root=str(repo_root_for(tree.leaf)),
        world_size=ws,
    )

    rules.check_coord_mode(cfg, ctx)
    rules.check_custom(cfg, raw, ctx)
    rules.check_variant_sections(cfg, raw, ctx)
    rules.check_global_max_length(cfg, ctx)
    rules.check_placeholders(cfg, raw, ctx)
    rules.check_template(cfg, ctx)
    rules.check_rollout(cfg, ctx)
    rules.check_batch(cfg, ctx, ws)
    rules.check_packing(cfg, ctx)
    rules.check_eval_batch(cfg, ctx)
    cfg.dataset_seed = rules.dataset_seed(cfg, ctx)
    _resolve_paths(cfg, ctx)
    if is_profile_leaf(tree.leaf) and tree.leaf_doc is not None:
        ctx.errors.extend(check_profile_leaf(tree.leaf_doc))

    if ctx.errors:
        raise ConfigError(ctx.errors)
    cfg.warnings = [w.format() for w in sorted(ctx.warnings, key=lambda i: (i.loc, i.key))]
    for w in cfg.warnings:
        warnings.warn(w, ConfigWarning, stacklevel=2)
    return cfg
