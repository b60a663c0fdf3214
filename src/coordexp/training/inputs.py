"""Inputs of a run: the smoke inputs under build/, record -> template dict, the datasets.

No torch here: the rollout launcher calls ``ensure_inputs`` before any learner starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coordexp.training.settings import TrainSetupError

log = logging.getLogger("coordexp.training")


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
        from coordexp.smoke.tiny import save_tiny

        log.info("building the tiny Qwen3-VL into %s", model_dir)
        save_tiny(model_dir)
    for key in ("train_jsonl", "val_jsonl"):
        p = getattr(cfg.custom, key)
        if p is None or Path(p).exists():
            continue
        if not _under(Path(p), build):
            raise TrainSetupError(f"{cfg.config_path}: custom.{key} {p} does not exist")
        from coordexp.smoke.synthetic import make_dataset

        log.info("writing the synthetic dataset into %s", Path(p).parent)
        make_dataset(Path(p).parent, seed=cfg.dataset_seed)
        if not Path(p).exists():
            raise TrainSetupError(
                f"custom.{key}: {p} was not produced by the synthetic generator; "
                "point it at <dir>/train.coord.jsonl or <dir>/val.coord.jsonl"
            )


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
