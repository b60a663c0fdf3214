"""The keys ms-swift accepts, read from its own argument dataclasses (never a hand-kept list).

`model`, `template`, `data`, `tuner`, `quantization` and `training` become ms-swift training
arguments (``SftArguments``, called ``TrainArguments`` before ms-swift 4), `rlhf` becomes
``RLHFArguments``. Importing ``swift.arguments`` takes seconds (it pulls transformers and torch),
so the field names are cached: in memory, and on disk keyed by the installed ms-swift and
transformers versions, so that an upgrade re-reads them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

from coordexp.errors import CoordExpError


class SwiftUnavailable(CoordExpError, RuntimeError):
    """ms-swift cannot be imported, so ms-swift-bound sections cannot be validated."""


def _versions() -> tuple[str, str]:
    try:
        return metadata.version("ms-swift"), metadata.version("transformers")
    except metadata.PackageNotFoundError as exc:
        raise SwiftUnavailable(f"{exc.name} is not installed: pip install 'ms-swift==4.6.0'") from exc


def cache_dir() -> Path:
    root = os.environ.get("COORDEXP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "coordexp"
    )
    return Path(root)


def _read_from_swift() -> dict[str, list[str]]:
    try:
        import swift.arguments as sa  # slow: pulls transformers and torch
    except ImportError as exc:
        raise SwiftUnavailable(
            f"cannot import ms-swift ({exc}); it is needed to validate model/template/data/"
            "tuner/quantization/training/rlhf keys"
        ) from exc
    train_cls = getattr(sa, "SftArguments", None) or sa.TrainArguments
    return {
        "train": sorted(f.name for f in dataclasses.fields(train_cls)),
        "rlhf": sorted(f.name for f in dataclasses.fields(sa.RLHFArguments)),
    }


@functools.lru_cache(maxsize=1)
def field_sets() -> dict[str, frozenset[str]]:
    swift_v, tf_v = _versions()
    path = cache_dir() / f"swift-fields-{swift_v}-transformers-{tf_v}.json"
    try:
        text = path.read_text(encoding="utf-8")
        cached = json.loads(text)  # inventory: json-ok(ms-swift field-name cache, not model output)
        if set(cached) == {"train", "rlhf"}:
            return {k: frozenset(v) for k, v in cached.items()}
    except (OSError, ValueError):
        pass  # no cache yet (or a torn one): read the fields from ms-swift below
    fresh = _read_from_swift()
    try:  # the cache is an optimisation: a read-only home only makes the next load slower
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as fh:
            json.dump(fresh, fh, sort_keys=True)
        os.replace(fh.name, path)
    except OSError:
        pass
    return {k: frozenset(v) for k, v in fresh.items()}


def train_fields() -> frozenset[str]:
    return field_sets()["train"]


def rlhf_fields() -> frozenset[str]:
    return field_sets()["rlhf"]
