"""What a run writes, and on which rank; and the weight-only resume.

Under torchrun every rank runs the same recipe, so every write here goes through
``is_main_process()``: the run manifest, the packing plan, the summaries and the coord-offset
tables are written by global rank 0 only (the Trainer's own checkpoint writes follow
``args.should_save``, which is rank 0's too).

Resume (``training.resume_from_checkpoint``): checkpoints are weight-only (no optimizer,
scheduler, RNG or trainer state), so a resume restores the weights (the LoRA/DoRA adapter or
the full model, and the coord-offset tables) and restarts everything else: the optimizer, the
LR schedule (warmup included), the step counter and the data order start from zero, as for a
new run. ``restore_weights`` logs exactly that.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from coordexp.training.settings import TrainSetupError

log = logging.getLogger("coordexp.training")

COORD_OFFSET_FILE = "coord_offset.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"


def global_rank() -> int:
    """This process's rank: torch.distributed's once initialised, torchrun's RANK before that."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0") or 0)


def is_main_process() -> bool:
    return global_rank() == 0


def write_manifest(cfg, settings) -> list[Path]:
    """The run manifest (``coordexp.training.artifacts``), on rank 0; other ranks write nothing."""
    from coordexp.training.artifacts import write_run_manifest

    settings.output_dir.mkdir(parents=True, exist_ok=True)
    if not is_main_process():
        return []
    return write_run_manifest(
        settings.output_dir,
        config_path=cfg.config_path,
        base_config_path=cfg.base_config_paths[-1] if cfg.base_config_paths else None,
        resolved=cfg.to_dict(),
        dataset_seed=cfg.dataset_seed,
        repo_root=Path(cfg.repo_root),
        run_name=settings.run_name,
    )


def write_text(path: Path, text: str) -> bool:
    """Write a run file on rank 0; returns whether this rank wrote it."""
    if not is_main_process():
        return False
    Path(path).write_text(text)
    return True


def write_json(path: Path, doc) -> bool:
    return write_text(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def save_coord_offset(adapter, output_dir) -> Path:
    from safetensors.torch import save

    out = Path(output_dir) / COORD_OFFSET_FILE
    tensors = {"embed": adapter.embed.detach().cpu().contiguous()}
    if adapter.head is not None:
        tensors["head"] = adapter.head.detach().cpu().contiguous()
    # Serialised in memory and written by Python (1000 x hidden: a few MB), so the write is a
    # Python-level open that the multi-process write audit sees.
    out.write_bytes(save(tensors, metadata={"start": str(adapter.start), "tie_head": str(adapter.tie_head)}))
    return out


def final_checkpoint(trainer, output_dir: Path) -> Path:
    """``checkpoint-<global_step>``, saved unless a step save wrote it already (every rank calls this)."""
    from coordexp.training.artifacts import checkpoint_problems

    final = Path(output_dir) / f"checkpoint-{trainer.state.global_step}"
    if not final.exists():
        trainer.save_model(str(final))
    if is_main_process():
        # The resume semantics above hold only for weight-only folders: a run that wrote optimizer or RNG
        # state (a changed Trainer default, a stray save_only_model) fails here instead of misleading a resume.
        problems = [p for ck in sorted(Path(output_dir).glob("checkpoint-*")) for p in checkpoint_problems(ck)]
        if problems:
            raise TrainSetupError("checkpoints must be weight-only: " + "; ".join(problems))
    return final


# ----------------------------------------------------------------------------- resume


def load_checkpoint_file(f: Path, key: str) -> dict:
    """The tensors of one checkpoint file, or ``TrainSetupError`` naming the file and what is wrong.

    A resume meets files a crash, a full disk or a wrong copy left behind: an empty, truncated or
    garbage file is the user's to fix (one line), never a safetensors traceback. Only a regular file
    is opened, so a FIFO or device in the folder cannot block the run.
    """
    import stat

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    where = f"{key}: {f}"
    try:
        st = f.stat()
    except OSError as exc:
        raise TrainSetupError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise TrainSetupError(f"{where}: not a regular file; the checkpoint folder holds the files a save wrote")
    if st.st_size == 0:
        raise TrainSetupError(f"{where}: empty file (an interrupted save?); resume from an earlier checkpoint")
    try:
        return load_file(str(f))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrainSetupError(
            f"{where}: not a readable safetensors file ({reason}); it may be truncated or damaged: "
            "resume from an earlier checkpoint"
        ) from None


def restore_weights(model, adapter, checkpoint: Path, *, where: str = "") -> dict:
    """Load a weight-only checkpoint's weights into ``model`` (and ``adapter``) before training.

    Returns what was restored (logged). Refuses a checkpoint whose contents do not fit the model
    being trained: a missing adapter or coord-offset file, or coord offsets the run would drop.
    """
    ckpt = Path(checkpoint)
    key = f"{where}: training.resume_from_checkpoint {ckpt}"
    if not ckpt.is_dir():
        raise TrainSetupError(f"{key}: not a checkpoint folder")
    restored: dict = {}
    if hasattr(model, "peft_config"):
        restored["adapter_tensors"] = _restore_adapter(model, ckpt, key)
    else:
        restored["model_tensors"] = _restore_full(model, ckpt, key)
    off_file = ckpt / COORD_OFFSET_FILE
    if adapter is not None:
        if not off_file.exists():
            raise TrainSetupError(f"{key}: no {COORD_OFFSET_FILE}, but custom.coord_offset is enabled")
        tensors = load_checkpoint_file(off_file, key)
        if (adapter.head is None) != ("head" not in tensors):
            raise TrainSetupError(f"{key}: {COORD_OFFSET_FILE} tie_head differs from custom.coord_offset.tie_head")
        adapter.embed.data.copy_(tensors["embed"])
        if adapter.head is not None:
            adapter.head.data.copy_(tensors["head"])
        restored["coord_offset"] = sorted(tensors)
    elif off_file.exists():
        raise TrainSetupError(
            f"{key}: holds {COORD_OFFSET_FILE} but custom.coord_offset is disabled: they would be "
            "dropped; enable it, or merge the checkpoint first (scripts/tools/merge_checkpoint.py)"
        )
    log.warning(
        "resume_from_checkpoint %s: weights restored (%s); the optimizer, LR scheduler, step counter and "
        "data order restart from zero (checkpoints are weight-only)",
        ckpt,
        ", ".join(f"{k}={v}" for k, v in restored.items()),
    )
    return restored


def _restore_adapter(model, ckpt: Path, key: str) -> int:
    from peft import set_peft_model_state_dict

    f = ckpt / ADAPTER_FILE
    if not f.exists():
        raise TrainSetupError(f"{key}: no {ADAPTER_FILE} (the run trains a LoRA/DoRA adapter)")
    state = load_checkpoint_file(f, key)
    res = set_peft_model_state_dict(model, state)
    unexpected = list(getattr(res, "unexpected_keys", []) or [])
    if unexpected:
        raise TrainSetupError(
            f"{key}: {len(unexpected)} adapter tensors do not fit the configured tuner "
            f"(first: {unexpected[0]}); match tuner.* to the run that wrote it"
        )
    return len(state)


def _restore_full(model, ckpt: Path, key: str) -> int:
    files = sorted(p for p in ckpt.glob("model*.safetensors"))
    if not files:
        raise TrainSetupError(f"{key}: no model*.safetensors (the run trains the full model)")
    state: dict = {}
    for f in files:
        state.update(load_checkpoint_file(f, key))
    res = model.load_state_dict(state, strict=False)
    tied = {k for k in res.missing_keys if k.endswith("lm_head.weight")} if model.config.tie_word_embeddings else set()
    missing = [k for k in res.missing_keys if k not in tied]
    if missing or res.unexpected_keys:
        first = (missing or res.unexpected_keys)[0]
        raise TrainSetupError(
            f"{key}: the checkpoint does not fit model.model ({len(missing)} missing, "
            f"{len(res.unexpected_keys)} unexpected tensors; first: {first})"
        )
    return len(state)
