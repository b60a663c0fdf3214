"""Inputs of a run: the inputs the config names must exist, record -> template dict, the datasets.

No torch at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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


def record_dict(rec, objects=None) -> dict:
    """A loaded ``data.Record`` as the template's record dict (coord values as coord tokens);
    ``objects`` replaces the stored order (``data.drawn_objects``)."""
    from coordexp.format.coord import coord_token

    objs = rec.objects if objects is None else objects
    objects = [{"desc": o.desc, o.geometry: [coord_token(v) for v in o.values]} for o in objs]
    return {"images": list(rec.images), "width": rec.width, "height": rec.height, "objects": objects}


@dataclass
class TrainSamples:
    """The training dataset both recipes hand the Trainer, drawn through ``data.EpochSampler``.

    Item ``key`` (a ``data.SampleKey``) is one sample, or with ``packs`` the samples of pack
    ``key.item``. ``samples`` are built once in stored object order (the packing plan's lengths, and
    every draw under `sorted`); under `random` each draw rebuilds its samples with
    ``build(j, data.drawn_objects(records[j], ordering, seed, key))``, so the objects are shuffled per
    sample and per epoch by the spec's seeds.
    """

    samples: list
    records: list  # data.Record of each sample
    build: Callable  # (j, objects) -> the sample of records[j] with that object order
    ordering: str
    seed: int
    packs: tuple | None = None

    def __len__(self):
        return len(self.samples) if self.packs is None else len(self.packs)

    def sampler(self):
        from coordexp.format.data import EpochSampler

        return EpochSampler(len(self), self.seed)

    def drawn(self, j: int, key):
        if self.ordering == "sorted":
            return self.samples[j]
        from coordexp.format.data import drawn_objects

        return self.build(j, drawn_objects(self.records[j], self.ordering, self.seed, key))

    def __getitem__(self, key):
        if self.packs is None:
            return self.drawn(key.item, key)
        return [self.drawn(j, key) for j in self.packs[key.item]]


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
