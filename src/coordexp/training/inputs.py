"""Inputs of a run: the inputs the config names must exist, record -> template dict, the datasets.

No torch at import time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from coordexp.training.settings import TrainSetupError

log = logging.getLogger("coordexp.training")


def ensure_inputs(cfg) -> None:
    """The model folder and the JSONL files the config names exist, or a ``TrainSetupError`` naming the key.

    Nothing is built here: the smoke profiles' inputs under ``build/`` come from
    ``python -m coordexp.smoke.inputs <config>``, which ``scripts/train.sh`` runs first.
    """
    build = Path(cfg.repo_root) / "build"

    def missing(what: str, path: Path) -> TrainSetupError:
        hint = ""
        if path.resolve().is_relative_to(build.resolve()):
            hint = f"; build the smoke inputs with `python -m coordexp.smoke.inputs {cfg.config_path}`"
        return TrainSetupError(f"{cfg.config_path}: {what} {path} does not exist{hint}")

    model_dir = Path(cfg.model.get("model") or "")
    if not model_dir.exists():
        raise missing("model.model", model_dir)
    for key in ("train_jsonl", "val_jsonl"):
        p = getattr(cfg.custom, key)
        if p is not None and not Path(p).exists():
            raise missing(f"custom.{key}", Path(p))


def record_dict(rec) -> dict:
    """A loaded ``data.Record`` as the template's record dict (coord values as coord tokens)."""
    from coordexp.format.coord import coord_token

    objects = [{"desc": o.desc, o.geometry: [coord_token(v) for v in o.values]} for o in rec.objects]
    return {"images": list(rec.images), "width": rec.width, "height": rec.height, "objects": objects}


@dataclass
class PackedDataset:
    """Packs of encoded samples: item i is the list of samples of pack i (the packed collator's input)."""

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


def next_batches(epoch_iterator, n: int) -> list:
    """Up to `n` batches of one accumulation window (fewer at the end of an epoch)."""
    batches = []
    for _ in range(n):
        try:
            batches.append(next(epoch_iterator))
        except StopIteration:
            break
    return batches
