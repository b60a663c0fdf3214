"""The Stage-2 prod/smoke leaf contract: one-hop `extends` and explicitly pinned keys.

A run must be auditable from its one leaf file: every leaf under ``configs/stage2_ab/prod/`` or
``configs/stage2_ab/smoke/`` extends exactly ``../base.yaml`` and writes the high-signal keys
itself, so that a change to the base can never silently change a production run's learning rate,
batch, schedule or evaluation cadence.
"""

from __future__ import annotations

from pathlib import Path

from .issues import Issue, Loc
from .yaml_source import YamlDoc

PROFILE_DIRS = ("prod", "smoke")
REQUIRED_EXTENDS = "../base.yaml"
PINNED_KEYS: tuple[str, ...] = (
    "model.model",
    "training.run_name",
    "training.output_dir",
    "training.logging_dir",
    "training.learning_rate",
    "training.vit_lr",
    "training.aligner_lr",
    "training.effective_batch_size",
    "training.eval_strategy",
    "training.eval_steps",
    "training.save_strategy",
    "training.save_steps",
    "stage2_ab.schedule.b_ratio",
    "stage2_ab.n_softctx_iter",
)


def is_profile_leaf(path: Path) -> bool:
    p = Path(path).resolve()
    return (
        p.parent.name in PROFILE_DIRS
        and p.parent.parent.name == "stage2_ab"
        and p.parent.parent.parent.name == "configs"
    )


def check_profile_leaf(doc: YamlDoc) -> list[Issue]:
    """Problems of a prod/smoke leaf, read from the file as written (not the merged tree)."""
    file = str(doc.path)
    top = Loc(file, 1)
    issues: list[Issue] = []
    raw = doc.data
    where = f"configs/stage2_ab/{doc.path.parent.name}/ leaves"
    if "inherit" in raw:
        issues.append(
            Issue(
                doc.marks.get(("inherit",), top),
                "inherit",
                f"{where} must use `extends: {REQUIRED_EXTENDS}` (not the `inherit` alias)",
            )
        )
    ext = raw.get("extends")
    if ext != REQUIRED_EXTENDS and not ("inherit" in raw and ext is None):
        got = "nothing" if ext is None else repr(ext)
        issues.append(
            Issue(
                doc.marks.get(("extends",), top),
                "extends",
                f"{where} must extend exactly one parent, `extends: {REQUIRED_EXTENDS}` (got {got}); "
                "put shared settings in configs/stage2_ab/base.yaml",
            )
        )
    for key in PINNED_KEYS:
        node = raw
        found = True
        for part in key.split("."):
            if not isinstance(node, dict) or node.get(part) is None:
                found = False
                break
            node = node[part]
        if not found:
            parent = tuple(key.split(".")[:-1])
            loc = doc.marks.get(parent, top) if parent else top
            issues.append(
                Issue(
                    loc,
                    key,
                    f"{where} must pin this key explicitly (inheriting it from the base is not "
                    "allowed, so the leaf alone shows what the run trains)",
                )
            )
    return issues
