"""A tiny, deterministic detection dataset for CPU smoke runs: PIL-drawn rectangles of COCO classes.

Every image is a size that is a multiple of 32 (64..160 x 64..128), every box is converted with
the same ``bbox_to_norm1000`` as real data, objects are sorted by the contract anchor, and the
JSONL stores geometry as ``"<|coord_k|>"`` strings. The same seed gives the same bytes (PNG has no
timestamps; JSON is written with sorted keys).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from coordexp.format.coord import bbox_to_norm1000, coord_token
from coordexp.format.data import DetObject, sort_objects

SIDES_W = (64, 96, 128, 160)
SIDES_H = (64, 96, 128)
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (0, 128, 128),
)


def _classes() -> tuple[str, ...]:
    from coordexp.format.prompts import COCO_80_CLASSES

    return tuple(COCO_80_CLASSES)


@dataclass(frozen=True)
class SplitStats:
    records: int
    objects: int
    negatives: int  # images with no objects (stage-1 only; 0 when min_objects >= 1)


def _draw_record(
    rng: random.Random, image_path: Path, *, min_objects: int, max_objects: int, sides: tuple[float, float]
):
    from PIL import Image, ImageDraw

    w, h = rng.choice(SIDES_W), rng.choice(SIDES_H)
    bg = tuple(rng.randrange(0, 60) for _ in range(3))
    im = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(im)
    classes = _classes()
    objects = []
    for _ in range(rng.randint(min_objects, max_objects)):
        lo, hi = sides
        bw = rng.randint(max(8, int(w * lo)), max(8, int(w * hi)))
        bh = rng.randint(max(8, int(h * lo)), max(8, int(h * hi)))
        x1, y1 = rng.randint(0, w - bw), rng.randint(0, h - bh)
        x2, y2 = x1 + bw - 1, y1 + bh - 1  # inclusive pixel corners
        draw.rectangle([x1, y1, x2, y2], fill=rng.choice(PALETTE))
        bins = bbox_to_norm1000([x1, y1, x2, y2], w, h)
        objects.append(DetObject(rng.choice(classes), "bbox_2d", tuple(bins)))
    im.save(image_path, format="PNG", optimize=False)
    return w, h, sort_objects(objects)


def _record_json(image_rel: str, w: int, h: int, objects: list[DetObject]) -> str:
    rec = {
        "images": [image_rel],
        "width": w,
        "height": h,
        "objects": [{"desc": o.desc, "bbox_2d": [coord_token(k) for k in o.values]} for o in objects],
    }
    return json.dumps(rec, ensure_ascii=False, sort_keys=True)


def make_split(
    out: Path,
    name: str,
    n: int,
    rng: random.Random,
    *,
    min_objects: int,
    max_objects: int,
    sides: tuple[float, float] = (0.0, 0.5),
) -> SplitStats:
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines, n_obj, n_neg = [], 0, 0
    for i in range(n):
        rel = f"images/{name}_{i:05d}.png"
        w, h, objects = _draw_record(rng, out / rel, min_objects=min_objects, max_objects=max_objects, sides=sides)
        n_obj += len(objects)
        n_neg += not objects
        lines.append(_record_json(rel, w, h, objects))
    (out / f"{name}.coord.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return SplitStats(n, n_obj, n_neg)


def make_dataset(
    out: str | Path,
    *,
    n_train: int = 64,
    n_val: int = 16,
    seed: int = 17,
    min_objects: int = 1,
    max_objects: int = 6,
    min_side: float = 0.0,
    max_side: float = 0.5,
) -> dict[str, SplitStats]:
    """Write ``train.coord.jsonl``, ``val.coord.jsonl`` and ``images/`` under ``out``.

    ``min_objects`` defaults to 1 so that the same files serve Stage-2, which needs at least one
    GT box per image. A box side is drawn between ``min_side`` and ``max_side`` of the image side
    (never under 8 px); the defaults give the historical files byte for byte.
    """
    if not 0 <= min_objects <= max_objects:
        raise ValueError(f"need 0 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    if not 0 <= min_side <= max_side <= 1:
        raise ValueError(f"need 0 <= min_side <= max_side <= 1, got {min_side}, {max_side}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    return {
        split: make_split(
            out, split, n, rng, min_objects=min_objects, max_objects=max_objects, sides=(min_side, max_side)
        )
        for split, n in (("train", n_train), ("val", n_val))
    }
