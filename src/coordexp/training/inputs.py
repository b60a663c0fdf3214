"""Inputs of a run: the smoke inputs under build/, record -> template dict, the datasets.

No torch here: the rollout launcher calls ``ensure_inputs`` before any learner starts.
"""

from __future__ import annotations

import logging
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
