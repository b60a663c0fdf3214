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
"""

from __future__ import annotations

from typing import Any

from .typed import Ctx

# key -> (what is missing, what to do). Any value but the schema default is refused.
NOT_IMPLEMENTED: dict[str, tuple[str, str]] = {
    "deepspeed.enabled": ("DeepSpeed is not wired into coordexp's trainers (they run plain DDP)", "set it false"),
    "deepspeed.config": ("DeepSpeed is not wired into coordexp's trainers", "delete it"),
    "debug.enabled": ("the debug section is not implemented", "use custom.train_sample_limit / "
                                                               "custom.val_sample_limit and set it false"),
    "debug.output_dir": ("the debug section is not implemented", "delete it (training.output_dir names the run)"),
    "debug.train_sample_limit": ("the debug section is not implemented", "use custom.train_sample_limit"),
    "debug.val_sample_limit": ("the debug section is not implemented", "use custom.val_sample_limit"),
    "rollout_matching.vllm.mode": ("colocate vLLM (rollouts inside the learner process) is not implemented; it "
                                   "also needs CUDA and vLLM, which a CPU machine has neither of",
                                   "use mode: server with scripts/train_stage2.sh"),
    "rollout_matching.vllm.sync.mode": ("only full weight sync is implemented (the learner sends merged weights "
                                        "with ms-swift's flattened-bucket protocol); adapter sync is not",
                                        "set mode: full"),
    "rollout_matching.vllm.sync.fallback_to_full": ("it applies only to adapter sync, which is not implemented",
                                                    "delete it"),
    "rollout_matching.vllm.sleep_level": ("vLLM sleep applies to colocate mode, which is not implemented",
                                          "set it 0"),
    "rollout_matching.eval_prompt_variant": ("a separate eval prompt variant is not implemented (eval uses "
                                             "custom.extra.prompt_variant)", "delete it"),
    **{f"rollout_matching.{k}": ("Sinkhorn matching is not implemented (matching is Hungarian over boxes)",
                                 "delete it") for k in ("ot_cost", "ot_epsilon", "ot_iters")},
    **{f"rollout_matching.{section}.{k}": (f"{what} is not implemented", "delete it")
       for section, what in (("monitor_dump", "rollout monitor dumps"),
                             ("vllm.server.debug_dump", "rollout-server debug dumps"))
       for k in ("enabled", "every_steps", "out_dir", "max_events", "max_samples", "max_chars",
                 "max_pending_writes", "min_free_gb")},
    "rollout_matching.eval_detection.enabled": ("COCO mAP evaluation is not implemented", "set it false"),
    **{f"rollout_matching.offload.{k}": ("offloading during rollouts is not implemented", "set it false")
       for k in ("enabled", "offload_model", "offload_optimizer")},
    "rollout_matching.desc_monitor.enabled": ("the desc monitor is not implemented", "set it false"),
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
    from .sections import DebugConfig, DeepspeedConfig, RolloutMatchingConfig

    roots = {"deepspeed": (cfg.deepspeed, DeepspeedConfig), "debug": (cfg.debug, DebugConfig),
             "rollout_matching": (cfg.rollout_matching, RolloutMatchingConfig)}
    for key, (what, fix) in NOT_IMPLEMENTED.items():
        section, rest = key.split(".", 1)
        obj, cls = roots[section]
        present, value = _get(obj, rest)
        if not present:
            continue
        default = _default(cls, rest)
        if value != default:
            ctx.error(tuple(key.split(".")), f"{what}: `{rest.rsplit('.', 1)[-1]}: {value!r}` would be a silent "
                                             f"knob, so it is refused; {fix} (the default is {default!r})")
