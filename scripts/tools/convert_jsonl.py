#!/usr/bin/env python3
"""Convert a pixel-space detection JSONL into the training contract (norm1000 coord tokens), once, offline.

    scripts/tools/convert_jsonl.py pixels.jsonl out.coord.jsonl

Input records hold ``images``, ``width``, ``height`` (the resized image's size on disk) and ``objects``
with ``desc`` and one of ``bbox_2d`` ([x1, y1, x2, y2]) or ``poly`` ([x0, y0, x1, y1, ...]) in pixels.
Boxes go through ``coord.bbox_to_norm1000`` (floor/ceil, clamp, strict box); polygons through
``coord.quantize_poly`` (round, canonical vertex order, zero-area polygons become their extent bbox).
Objects are then sorted by the contract anchor and written as ``"<|coord_k|>"`` strings; other record
keys are copied. An object no repair makes valid is dropped and counted, never silently: the counts
are printed (``objects_dropped_invalid_bbox``, ``objects_dropped_invalid_poly``).

Exit 0 on success, 2 on bad usage or an unreadable input line (``file:line: error: ...``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from coordexp.format.coord import bbox_to_norm1000, coord_token, quantize_poly  # noqa: E402
from coordexp.format.data import DetObject, sort_objects  # noqa: E402


class ConvertError(ValueError):
    """An input line that is not a convertible record."""


def convert_record(rec: dict, counts: dict, where: str) -> dict:
    """One pixel-space record as a contract record; invalid objects counted in ``counts``."""
    if not isinstance(rec, dict) or not isinstance(rec.get("objects"), list):
        raise ConvertError(f"{where}: a record must be a JSON object with an `objects` list")
    w, h = rec.get("width"), rec.get("height")
    objects = []
    for i, obj in enumerate(rec["objects"]):
        if not isinstance(obj, dict) or not isinstance(obj.get("desc"), str):
            raise ConvertError(f"{where}: objects[{i}]: needs a string `desc`")
        try:
            if "bbox_2d" in obj:
                objects.append(DetObject(obj["desc"], "bbox_2d", tuple(bbox_to_norm1000(obj["bbox_2d"], w, h))))
            elif "poly" in obj:
                key, bins = quantize_poly(obj["poly"], w, h)
                objects.append(DetObject(obj["desc"], key, tuple(bins)))
            else:
                raise ConvertError(f"{where}: objects[{i}]: needs `bbox_2d` or `poly` (pixels)")
        except ConvertError:
            raise
        except ValueError:
            name = "objects_dropped_invalid_bbox" if "bbox_2d" in obj else "objects_dropped_invalid_poly"
            counts[name] += 1
    out = {k: v for k, v in rec.items() if k != "objects"}
    out["objects"] = [{"desc": o.desc, o.geometry: [coord_token(v) for v in o.values]} for o in sort_objects(objects)]
    return out


def convert(src: Path, dst: Path) -> dict:
    counts = {"records": 0, "objects_dropped_invalid_bbox": 0, "objects_dropped_invalid_poly": 0}
    lines = []
    for lineno, text in enumerate(src.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{src}:{lineno}"
        try:
            rec = json.loads(text)  # inventory: json-ok(offline pixel-space dataset, not model output)
        except ValueError as exc:
            raise ConvertError(f"{where}: invalid JSON: {exc}") from None
        lines.append(json.dumps(convert_record(rec, counts, where), ensure_ascii=False, sort_keys=True) + "\n")
        counts["records"] += 1
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.replace(dst)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    args = p.parse_args(argv)
    if args.dst.exists() and args.dst.resolve() == args.src.resolve():
        p.error("the output must not be the input")
    try:
        counts = convert(args.src, args.dst)
    except (ConvertError, OSError, UnicodeDecodeError) as exc:
        print(f"convert_jsonl: error: {exc}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
