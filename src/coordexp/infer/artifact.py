"""The inference artifact ``gt_vs_pred.jsonl``: one JSON object per input record, in input order.

Row (``schema_version`` 2; version 1 had no scores):

    index, line, source          the record's 0-based index, its 1-based JSONL line, the JSONL path
    image, width, height         the (first) image, absolute, and its size in pixels
    coord_mode                   "pixel": ``gt[*].bbox`` / ``pred[*].bbox`` are pixel boxes
    gt, pred                     objects {desc, geometry, bins, points, bbox}:
                                 bins   the norm1000 values as written / generated
                                 points the same values in pixels (x with width, y with height)
                                 bbox   [x1, y1, x2, y2] in pixels (a poly's extent)
                                 score  (pred only) the model's confidence in the object,
                                        ``coordexp.infer.scoring``
    score_source                 how ``pred[*].score`` was computed (``scoring.SCORE_SOURCE``), or
                                 null for rows built without token log-probabilities (no scores)
    raw_output                   the generated text, verbatim (special tokens kept)
    finish_reason                "stop" or "length"
    parse                        salvage-mode result: n_valid, n_dropped, drops by reason,
                                 truncated, parse_failed, error

Pixels follow the inverse norm1000 rule: ``px = round(k / 999 * (extent - 1))`` clamped to
``[0, extent - 1]`` (``coordexp.format.coord.norm1000_to_pixel``), x values against the width and y
values against the height. Nothing is dropped on the way: a prediction that the salvage
parser rejects is counted in ``parse.drops`` under its reason.

Resume. Rows are appended and flushed one at a time. ``read_done`` reads an existing artifact
back: every complete row (newline-terminated, valid JSON) counts as finished; a torn last row
(an interrupted write) is counted, cut off, and its sample runs again. A broken row anywhere
else, or a row that does not belong to this input, is an error: the file is not ours to fix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordexp.errors import CoordExpError
from coordexp.format.coord import norm1000_to_pixel
from coordexp.format.coordjson import parse
from coordexp.infer.scoring import SCORE_SOURCE, TokenTrace, object_scores

SCHEMA_VERSION = 2


class ArtifactError(CoordExpError, ValueError):
    """An artifact that cannot be resumed or read (message: ``path:line: error: ...``)."""


# ----------------------------------------------------------------------------- geometry


def bins_to_pixels(values, width: int, height: int) -> list[int]:
    """Flat [x, y, x, y, ...] bins -> pixels: even positions scale with the width, odd with the height."""
    return [norm1000_to_pixel(k, width if i % 2 == 0 else height) for i, k in enumerate(values)]


def pixel_bbox(geometry: str, points: list[int]) -> list[int]:
    if geometry == "bbox_2d":
        return list(points)
    xs, ys = points[0::2], points[1::2]
    return [min(xs), min(ys), max(xs), max(ys)]


def object_row(desc: str, geometry: str, values, width: int, height: int) -> dict:
    bins = [int(v) for v in values]
    points = bins_to_pixels(bins, width, height)
    return {"desc": desc, "geometry": geometry, "bins": bins, "points": points, "bbox": pixel_bbox(geometry, points)}


# ----------------------------------------------------------------------------- rows


def gt_rows(record) -> list[dict]:
    """The GT objects of a ``coordexp.format.data.Record``, in stored order."""
    return [object_row(o.desc, o.geometry, o.values, record.width, record.height) for o in record.objects]


def parse_summary(result) -> dict:
    return {
        "n_valid": len(result.objects),
        "n_dropped": result.n_dropped,
        "drops": {k: v for k, v in result.drops.items() if v},
        "truncated": result.truncated,
        "parse_failed": result.parse_failed,
        "error": result.error,
    }


def build_row(
    record, raw_output: str, *, field_order: str, finish_reason: str | None = None, trace: TokenTrace | None = None
) -> dict:
    """One artifact row from a record and the model's text (parsed in salvage mode). With ``trace`` (the
    generated tokens' offsets in ``raw_output`` and their log-probabilities) every prediction is scored."""
    result = parse(raw_output, "salvage", field_order)
    pred = [object_row(o.desc, o.geometry, o.values, record.width, record.height) for o in result.objects]
    if trace is not None:
        for p, score in zip(pred, object_scores(raw_output, result.objects, trace), strict=True):
            p["score"] = score
    return {
        "schema_version": SCHEMA_VERSION,
        "index": record.base_idx,
        "line": record.line,
        "source": record.source,
        "image": record.images[0] if record.images else None,
        "width": record.width,
        "height": record.height,
        "coord_mode": "pixel",
        "gt": gt_rows(record),
        "pred": pred,
        "raw_output": raw_output,
        "finish_reason": finish_reason,
        "parse": parse_summary(result),
        "score_source": SCORE_SOURCE if trace is not None else None,
    }


def dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# ----------------------------------------------------------------------------- resume


@dataclass
class ResumeState:
    done: dict[int, dict] = field(default_factory=dict)  # index -> row
    torn: int = 0  # torn trailing rows cut off (their samples run again)
    valid_bytes: int = 0  # the file is cut to this length before appending


def read_done(path: str | Path, records) -> ResumeState:
    """Finished rows of an existing artifact, checked against ``records`` (by index, line and image)."""
    p = Path(path)
    state = ResumeState()
    if not p.exists():
        return state
    data = p.read_bytes()
    by_index = {r.base_idx: r for r in records}
    pos = 0
    lineno = 0
    while pos < len(data):
        lineno += 1
        end = data.find(b"\n", pos)
        last = end == -1 or data[end + 1 :].strip() == b""
        chunk = data[pos:] if end == -1 else data[pos:end]
        try:
            row = json.loads(chunk.decode("utf-8"))  # inventory: json-ok(our own artifact row)
            if end == -1:  # no newline: the write was cut (even if the JSON happens to close)
                raise ValueError("no trailing newline")
        except ValueError as exc:
            if last:
                state.torn += 1
                break
            raise ArtifactError(
                f"{p}:{lineno}: error: broken row ({exc}) before the end of the file; "
                "the artifact is corrupt: delete it (or choose another output_dir) and rerun"
            ) from None
        _check_row(p, lineno, row, by_index, state.done)
        state.done[row["index"]] = row
        pos = end + 1
        state.valid_bytes = pos
    return state


def _check_row(p: Path, lineno: int, row: Any, by_index: dict, done: dict) -> None:
    where = f"{p}:{lineno}: error:"
    if not isinstance(row, dict) or not isinstance(row.get("index"), int):
        raise ArtifactError(f"{where} not an artifact row (no integer `index`)")
    rec = by_index.get(row["index"])
    if rec is None or row.get("line") != rec.line or row.get("image") != (rec.images[0] if rec.images else None):
        raise ArtifactError(
            f"{where} row index {row['index']} does not match the input JSONL (another input or "
            "limit?): delete the artifact or choose another infer.output_dir"
        )
    if row.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(
            f"{where} row of schema_version {row.get('schema_version')!r}, this inference writes "
            f"{SCHEMA_VERSION} (predictions with scores): delete the artifact or choose another infer.output_dir"
        )
    if row["index"] in done:
        raise ArtifactError(f"{where} duplicate row for index {row['index']}")


class ArtifactWriter:
    """Append rows one at a time, each flushed and fsynced, after cutting a torn tail."""

    def __init__(self, path: str | Path, valid_bytes: int):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "ab")
        self._f.truncate(valid_bytes)
        self._f.seek(valid_bytes)

    def write(self, row: dict) -> None:
        self._f.write((dumps(row) + "\n").encode("utf-8"))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_artifact(path: str | Path) -> list[dict]:
    """All rows of a finished artifact (for eval and vis). A torn or broken row is an error."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"{p}:0: error: artifact not found; run scripts/infer.sh first")
    rows = []
    with p.open(encoding="utf-8") as f:
        for lineno, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)  # inventory: json-ok(our own artifact row)
            except ValueError as exc:
                raise ArtifactError(
                    f"{p}:{lineno}: error: invalid JSON ({exc}); rerun scripts/infer.sh, which re-runs a torn last row"
                ) from None
            if not text.endswith("\n"):
                raise ArtifactError(f"{p}:{lineno}: error: torn last row (no newline); rerun scripts/infer.sh")
            for key in ("index", "width", "height", "gt", "pred"):
                if key not in row:
                    raise ArtifactError(f"{p}:{lineno}: error: row without `{key}`: not an inference artifact")
            rows.append(row)
    return rows
