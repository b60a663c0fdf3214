"""`load_config(path) -> TrainingConfig`: extends, strict schema, invariants, coherence, profile contract.

Nothing runs before the whole config has been checked: a config with any problem raises
``ConfigError`` listing every problem, each at its file and line.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import rules
from .issues import ConfigError, ConfigWarning, Issue, Loc
from .legacy import DEPRECATED_NOOP_CUSTOM, INERT_ONLY_CUSTOM, is_inert, legacy_message
from .opening import open_config, reject_unknown_top_level
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
from .yaml_source import ConfigTree

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
    """Relative paths become absolute, against the file that set them (never the working directory)."""
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


@dataclass
class _Load:
    """What the steps of one load share: the merged tree, where problems go, and what is built so far."""

    tree: ConfigTree
    ctx: Ctx
    world_size: int | None
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    typed: dict[str, Any] = field(default_factory=dict)
    cfg: TrainingConfig | None = None

    @property
    def raw(self) -> dict:
        return self.tree.data


def _step_top_level(ld: _Load) -> None:
    reject_unknown_top_level(ld.raw, TOP_LEVEL, ld.ctx)


def _step_swift_sections(ld: _Load) -> None:
    """The ms-swift-bound sections keep only ms-swift's own field names (plus coordexp's training extras)."""
    try:
        train_allowed, rlhf_allowed = train_fields(), rlhf_fields()
    except SwiftUnavailable as exc:
        raise ConfigError([*ld.ctx.errors, Issue(ld.ctx.leaf, "", str(exc))]) from None
    for name in SWIFT_SECTIONS:
        allowed = train_allowed | (TRAINING_EXTRA_KEYS if name == "training" else frozenset())
        ld.sections[name] = _swift_section(name, ld.raw.get(name), allowed, ld.ctx)
    ld.sections["rlhf"] = _swift_section("rlhf", ld.raw.get("rlhf"), rlhf_allowed | {"llm_kd_weight"}, ld.ctx)


def _step_numbers(ld: _Load) -> None:
    _nonfinite(ld.raw, (), ld.ctx)
    _swift_numbers(ld.sections["training"], ld.ctx)


def _step_typed_sections(ld: _Load) -> None:
    """coordexp's own sections, parsed strictly; a section that does not parse falls back to its default so
    that the rules below still run (and report) on the rest."""
    raw, ctx, training = ld.raw, ld.ctx, ld.sections["training"]
    extras = parse_dataclass(
        TrainingExtras, {k: v for k, v in training.items() if k in TRAINING_EXTRA_KEYS}, ("training",), ctx
    )
    training.update(to_plain(extras))
    custom = coerce(CustomConfig, _custom_raw(raw.get("custom"), ctx), ("custom",), ctx)
    if not isinstance(custom, CustomConfig):  # missing or not a mapping: parse the empty one for its errors
        quiet = Ctx(ctx.marks, ctx.leaf) if raw.get("custom") is not None else ctx
        custom = parse_dataclass(CustomConfig, {}, ("custom",), quiet)
    optional = {
        name: coerce(cls, raw[name], (name,), ctx) if raw.get(name) is not None else None
        for name, cls in (("stage2_ab", Stage2ABConfig), ("rollout_matching", RolloutMatchingConfig))
    }
    debug = coerce(DebugConfig, raw.get("debug"), ("debug",), ctx)
    deepspeed = coerce(DeepspeedConfig, raw.get("deepspeed"), ("deepspeed",), ctx)
    gml = raw.get("global_max_length")
    if gml is not None and (isinstance(gml, bool) or not isinstance(gml, int) or gml < 1):
        ctx.error(("global_max_length",), f"must be a positive integer (tokens), got {gml!r}")
        gml = None
    ld.typed = {
        "extras": extras,
        "custom": custom,
        "stage2_ab": optional["stage2_ab"] if isinstance(optional["stage2_ab"], Stage2ABConfig) else None,
        "rollout_matching": (
            optional["rollout_matching"] if isinstance(optional["rollout_matching"], RolloutMatchingConfig) else None
        ),
        "debug": debug if isinstance(debug, DebugConfig) else DebugConfig(),
        "deepspeed": deepspeed if isinstance(deepspeed, DeepspeedConfig) else DeepspeedConfig(),
        "global_max_length": gml,
    }


def _step_materialize(ld: _Load) -> None:
    tree, s = ld.tree, ld.sections
    ld.cfg = TrainingConfig(
        **{name: s[name] for name in (*SWIFT_SECTIONS, "rlhf")},
        **ld.typed,
        config_path=str(tree.leaf),
        base_config_paths=[str(p) for p in tree.files[:-1]],
        repo_root=str(repo_root_for(tree.leaf)),
        world_size=_world_size(ld.world_size),
    )


def _step_dataset_seed(ld: _Load) -> None:
    ld.cfg.dataset_seed = rules.dataset_seed(ld.cfg, ld.ctx)


def _step_profile_leaf(ld: _Load) -> None:
    if is_profile_leaf(ld.tree.leaf) and ld.tree.leaf_doc is not None:
        ld.ctx.errors.extend(check_profile_leaf(ld.tree.leaf_doc))


# The load, in order: each step records its problems and the next runs on whatever parsed, so one load
# reports everything. A step that cannot let the load go on (ms-swift missing) raises ConfigError.
LOAD_STEPS: tuple[tuple[str, Callable[[_Load], None]], ...] = (
    ("top-level sections", _step_top_level),
    ("ms-swift sections", _step_swift_sections),
    ("finite, typed training numbers", _step_numbers),
    ("coordexp's typed sections", _step_typed_sections),
    ("materialize", _step_materialize),
    ("coord mode", lambda ld: rules.check_coord_mode(ld.cfg, ld.ctx)),
    ("custom", lambda ld: rules.check_custom(ld.cfg, ld.raw, ld.ctx)),
    ("variant sections", lambda ld: rules.check_variant_sections(ld.cfg, ld.raw, ld.ctx)),
    ("ms-swift keys the recipes read", lambda ld: rules.check_swift_sections(ld.cfg, ld.ctx)),
    ("global_max_length", lambda ld: rules.check_global_max_length(ld.cfg, ld.ctx)),
    ("placeholders", lambda ld: rules.check_placeholders(ld.cfg, ld.raw, ld.ctx)),
    ("template", lambda ld: rules.check_template(ld.cfg, ld.ctx)),
    ("rollout", lambda ld: rules.check_rollout(ld.cfg, ld.ctx)),
    ("batch", lambda ld: rules.check_batch(ld.cfg, ld.ctx, ld.cfg.world_size)),
    ("packing", lambda ld: rules.check_packing(ld.cfg, ld.ctx)),
    ("eval batch", lambda ld: rules.check_eval_batch(ld.cfg, ld.ctx)),
    ("dataset seed", _step_dataset_seed),
    ("paths", lambda ld: _resolve_paths(ld.cfg, ld.ctx)),
    ("profile leaf", _step_profile_leaf),
)


def load_config(
    path: str | os.PathLike, *, world_size: int | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainingConfig:
    """Load, validate and materialize a training config; raise ``ConfigError`` with every problem found.

    ``overrides`` maps dotted keys to values applied on top of the files (tests shorten runs with
    ``{"training.max_steps": 2}``); they pass through the same checks as the files' own keys.
    The checks are ``LOAD_STEPS``, run in order over the merged tree.
    """
    tree, ctx = open_config(path, legacy=legacy_message)
    ld = _Load(tree, ctx, world_size)
    if overrides:
        _apply_overrides(ld.raw, overrides, ld.ctx)
    for _name, step in LOAD_STEPS:
        step(ld)
    if ld.ctx.errors:
        raise ConfigError(ld.ctx.errors)
    cfg = ld.cfg
    cfg.warnings = [w.format() for w in sorted(ld.ctx.warnings, key=lambda i: (i.loc, i.key))]
    for w in cfg.warnings:
        warnings.warn(w, ConfigWarning, stacklevel=2)
    return cfg
