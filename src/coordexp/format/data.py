"""The JSONL record contract (openspec/specs/jsonl-contract), the image checks, and deterministic seeding.

One JSON object per line; every problem is reported with the file, the 1-based line number and
the JSON path inside the record (``objects[17].bbox_2d``), and every problem in the file is
collected before raising. Nothing is dropped: a record is either valid and loaded, or the load
fails.

Object order. One anchor rule serves both the sorter (``sort_objects``) and the checker: the
anchor of an object is its top-most, then left-most vertex, i.e. the lexicographic minimum of
``(y, x)`` over its vertices. For a bbox that is ``(y1, x1)``; for a canonical poly (whose first
vertex is the top-most, then left-most one, see ``coordexp.format.coord.canonicalize_poly``) it is the
first vertex. The reference checked polys by ``(min y, min x)`` while its sorter used the first
vertex, so the two could disagree on a y-tie; here they cannot.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coordexp.errors import CoordExpError
from coordexp.format.coord import parse_coord_value
from coordexp.format.template import MAX_PIXELS, max_pixels_problem

Stage = Literal["stage1", "stage2"]
GEOMETRY_KEYS = ("bbox_2d", "poly")
RECORD_KEYS = ("images", "objects", "width", "height", "summary", "metadata", "messages")
OBJECT_KEYS = ("desc", *GEOMETRY_KEYS, "poly_points")
LEGACY_GEOMETRY = {
    "bbox": "legacy key: rename it to `bbox_2d` ([x1, y1, x2, y2] as norm1000 coord tokens)",
    "polygon": "legacy key: rename it to `poly` (a flat [x0, y0, x1, y1, ...] list)",
    "line": "line geometry was removed (2026-01-19): drop line objects offline, or convert them to `bbox_2d`",
    "line_points": "line geometry was removed (2026-01-19): drop line objects offline",
}
# desc text that would break the rendered CoordJSON or read as a list of several classes
DESC_FORBIDDEN = (" ,", ", ", " /", "/ ", " :", ": ", "  ")
MAX_RECORD_DEPTH = 32  # nesting levels of one record; the contract's own nest four deep
OUTSIDE_ROOT_KEY = "custom.allow_images_outside_jsonl_dir"


@dataclass(frozen=True)
class DataIssue:
    file: str
    line: int  # 1-based line of the JSONL file (0: the file as a whole)
    where: str  # JSON path inside the record, "" for the whole line
    message: str

    def format(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.file}:{self.line}: error: {where}{self.message}"

    def __str__(self) -> str:
        return self.format()


class DataError(CoordExpError, ValueError):
    """The JSONL breaks the contract; ``.errors`` holds every ``DataIssue`` found."""

    def __init__(self, errors: list[DataIssue]):
        self.errors = list(errors)
        n = len(self.errors)
        shown = [e.format() for e in self.errors[:50]]
        more = [f"... and {n - 50} more"] if n > 50 else []
        super().__init__(f"{n} data error{'s' if n != 1 else ''}:\n" + "\n".join(shown + more))


@dataclass(frozen=True)
class DetObject:
    desc: str
    geometry: Literal["bbox_2d", "poly"]
    values: tuple[int, ...]  # norm1000 bins
    poly_points: int | None = None

    @property
    def vertices(self) -> list[tuple[int, int]]:
        v = self.values
        if self.geometry == "bbox_2d":
            x1, y1, x2, y2 = v
            return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        return [(v[i], v[i + 1]) for i in range(0, len(v), 2)]


@dataclass(frozen=True)
class Record:
    images: tuple[str, ...]  # absolute paths
    objects: tuple[DetObject, ...]
    width: int
    height: int
    line: int  # 1-based line in the source file
    base_idx: int  # 0-based index among the file's records
    source: str
    summary: str | None = None
    metadata: dict = field(default_factory=dict)
    messages: tuple | None = None


# ---------------------------------------------------------------- object order


def object_anchor(obj: DetObject) -> tuple[int, int]:
    """The top-most, then left-most vertex as ``(y, x)`` (see the module docstring)."""
    return min((y, x) for x, y in obj.vertices)


def sort_objects(objects: Iterable[DetObject]) -> list[DetObject]:
    """Objects in contract order (stable for equal anchors)."""
    return sorted(objects, key=object_anchor)


def order_violations(objects: Iterable[DetObject]) -> list[int]:
    """Indices i where objects[i] sorts strictly before objects[i-1]."""
    anchors = [object_anchor(o) for o in objects]
    return [i for i in range(1, len(anchors)) if anchors[i] < anchors[i - 1]]


# ---------------------------------------------------------------- deterministic seeding (pure functions)

_GOLDEN = 0x9E3779B1
_MIX = 0xC2B2AE35
_MASK32 = 0xFFFFFFFF


def dataset_seed(training_seed: int) -> int:
    """The dataset seed is `training.seed`, nothing else (no hidden second seed)."""
    return int(training_seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return ((seed & _MASK32) ^ ((epoch + 1) * _GOLDEN)) & _MASK32


def epoch_permutation(n: int, seed: int, epoch: int) -> list[int]:
    """The order of base indices in ``epoch``: its own permutation, a function of (seed, epoch) only."""
    order = list(range(n))
    random.Random(epoch_seed(seed, epoch)).shuffle(order)
    return order


def sample_seed(epoch_seed_value: int, base_idx: int, index: int) -> int:
    """Per-sample RNG seed; independent of worker count because it depends only on its arguments."""
    return (epoch_seed_value ^ ((base_idx + 1) * _GOLDEN) ^ ((index + 1) * _MIX)) & _MASK32


def order_objects(objects: tuple[DetObject, ...], ordering: str, seed: int) -> list[DetObject]:
    """`sorted`: as stored (already checked); `random`: a per-sample shuffle seeded by ``seed``."""
    if ordering == "sorted":
        return list(objects)
    if ordering == "random":
        out = list(objects)
        random.Random(seed).shuffle(out)
        return out
    raise ValueError(f"object_ordering must be 'sorted' or 'random', got {ordering!r}")


@dataclass(frozen=True)
class SampleKey:
    """One draw of an epoch's order, handed by ``EpochSampler`` to the dataset in place of a bare index,
    so the dataset can seed the sample without any state of its own (data loader workers included)."""

    epoch: int
    index: int  # position in the epoch's order
    item: int  # the item drawn: a sample, or a pack of samples


class EpochSampler:
    """The training order handed to the Trainer: epoch e draws ``epoch_permutation(n, seed, e)``.

    The Trainer calls ``set_epoch`` before each epoch (through accelerate's data loader, also
    when several ranks shard the batches); every rank computes the same permutation.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        e = self.epoch
        return iter([SampleKey(e, i, b) for i, b in enumerate(epoch_permutation(self.n, self.seed, e))])


def drawn_objects(record: Record, ordering: str, seed: int, key: SampleKey) -> list[DetObject]:
    """The record's objects as the draw ``key`` trains on them: stored order for `sorted`; for `random`
    shuffled with ``sample_seed(epoch_seed(seed, key.epoch), record.base_idx, key.index)``."""
    return order_objects(record.objects, ordering, sample_seed(epoch_seed(seed, key.epoch), record.base_idx, key.index))


# ---------------------------------------------------------------- record validation


class _Collector:
    def __init__(self, file: str, line: int):
        self.file, self.line, self.issues = file, line, []

    def add(self, where: str, message: str) -> None:
        self.issues.append(DataIssue(self.file, self.line, where, message))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_desc(desc: Any) -> str | None:
    """Why ``desc`` is invalid, or None."""
    if not isinstance(desc, str):
        return f"must be a string, got {type(desc).__name__}"
    d = desc.strip()
    if not d:
        return "is empty"
    for ch, name in (("\n", "a newline"), ("\r", "a carriage return"), ("\t", "a tab")):
        if ch in d:
            return f"contains {name}"
    for bad in DESC_FORBIDDEN:
        if bad in d:
            shown = "a double space" if bad == "  " else repr(bad)
            return (
                f"contains {shown} ({desc!r}): a desc is one class name; separators like ', ' ': ' ' / ' "
                "are reserved by the rendered CoordJSON"
            )
    return None


def _json_path(parent: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def check_record_tree(rec: Any, c: _Collector) -> bool:
    """Nesting within MAX_RECORD_DEPTH and every string encodable as UTF-8 (JSON's ``\\ud800`` escape
    decodes to a lone surrogate that breaks the first write or tokenization); iterative, so a
    deep line cannot exhaust the stack. False when the record must not be parsed further."""
    ok = True
    stack: list[tuple[str, Any, int]] = [("", rec, 0)]
    while stack:
        where, value, depth = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                c.add(where, f"contains a lone surrogate ({value[exc.start]!r}): not UTF-8 text; fix the string")
                ok = False
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_RECORD_DEPTH:
            c.add(where, f"nests deeper than {MAX_RECORD_DEPTH} levels: a record is a shallow object")
            return False
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            if isinstance(key, str):
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    c.add(where, f"key {key!r} contains a lone surrogate: not UTF-8 text")
                    ok = False
                    continue
            stack.append((_json_path(where, key), child, depth + 1))
    return ok


def _parse_object(obj: Any, where: str, stage: Stage, c: _Collector) -> DetObject | None:
    if not isinstance(obj, dict):
        c.add(where, f"must be an object, got {type(obj).__name__}")
        return None
    ok = True
    for key in obj:
        if key in LEGACY_GEOMETRY:
            c.add(f"{where}.{key}", LEGACY_GEOMETRY[key])
            ok = False
        elif key not in OBJECT_KEYS:
            c.add(f"{where}.{key}", "unknown object key (allowed: desc, bbox_2d or poly, poly_points)")
            ok = False
    if "desc" not in obj:
        c.add(f"{where}.desc", "missing")
        ok = False
    else:
        why = check_desc(obj["desc"])
        if why:
            c.add(f"{where}.desc", why)
            ok = False
    present = [k for k in GEOMETRY_KEYS if k in obj]
    if len(present) != 1:
        c.add(
            where,
            "needs exactly one geometry key (bbox_2d or poly), found " + (" and ".join(present) if present else "none"),
        )
        return None
    gkey = present[0]
    gwhere = f"{where}.{gkey}"
    raw = obj[gkey]
    if not isinstance(raw, list):
        c.add(gwhere, f"must be a flat list, got {type(raw).__name__}")
        return None
    if any(isinstance(v, (list, dict)) for v in raw):
        c.add(gwhere, "nested lists are not allowed: write a flat [x1, y1, x2, y2] / [x0, y0, x1, y1, ...] list")
        return None
    values = []
    for i, v in enumerate(raw):
        try:
            values.append(parse_coord_value(v))
        except ValueError as exc:
            c.add(f"{gwhere}[{i}]", f"{exc}; geometry must be pre-quantized norm1000 bins")
            ok = False
    if not ok or len(values) != len(raw):
        return None
    if gkey == "bbox_2d":
        if len(values) != 4:
            c.add(gwhere, f"needs exactly 4 values [x1, y1, x2, y2], got {len(values)}")
            return None
        x1, y1, x2, y2 = values
        if x2 < x1 or y2 < y1:
            c.add(gwhere, f"inverted box {values}: needs x1 <= x2 and y1 <= y2")
            return None
    else:
        if stage == "stage2":
            c.add(gwhere, "Stage-2 supports bbox_2d only: convert polys to their extent bbox offline")
            return None
        if len(values) < 6 or len(values) % 2:
            c.add(gwhere, f"needs an even number >= 6 of values (x, y pairs), got {len(values)}")
            return None
    pp = obj.get("poly_points")
    if pp is not None:
        if not _is_int(pp):
            c.add(f"{where}.poly_points", f"must be an int, got {pp!r}")
            return None
        if gkey != "poly" or pp != len(values) // 2:
            c.add(
                f"{where}.poly_points",
                f"is {pp} but the object has " + (f"{len(values) // 2} poly vertices" if gkey == "poly" else "no poly"),
            )
            return None
    return DetObject(obj["desc"].strip(), gkey, tuple(values), pp)


def _check_messages(messages: Any, c: _Collector) -> None:
    if not isinstance(messages, list):
        c.add("messages", f"must be a list of turns, got {type(messages).__name__}")
        return
    for i, turn in enumerate(messages):
        if not isinstance(turn, dict):
            c.add(f"messages[{i}]", "must be an object with `role` and `content`")
            continue
        if not isinstance(turn.get("role"), str):
            c.add(f"messages[{i}].role", "must be a string")
        if not isinstance(turn.get("content"), list):
            c.add(f"messages[{i}].content", "must be a list of content items")


@dataclass
class _RecordParse:
    """What the steps of one record's parse share: the record, the settings, and the pieces built so far."""

    rec: dict
    c: _Collector
    stage: Stage
    object_ordering: str
    max_pixels: int | None
    multiple_of: int | None
    images: list | None = None
    dims: dict = field(default_factory=dict)
    objects: list = field(default_factory=list)


def _step_record_keys(r: _RecordParse) -> None:
    for key in r.rec:
        if key not in RECORD_KEYS:
            r.c.add(
                key,
                "unknown record key (allowed: images, objects, width, height, summary, metadata, messages; "
                "put free-form data under `metadata`)",
            )


def _step_images(r: _RecordParse) -> None:
    images = r.rec.get("images")
    if "images" not in r.rec:
        r.c.add("images", "missing (a list of image paths, relative to the JSONL file's directory)")
    elif not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
        r.c.add("images", "must be a list of non-empty path strings")
    else:
        r.images = images


def _step_size(r: _RecordParse) -> None:
    for key in ("width", "height"):
        v = r.rec.get(key)
        if key not in r.rec:
            r.c.add(key, "missing: the pixel size of the (already resized) image on disk is required")
        elif not _is_int(v) or v <= 0:
            r.c.add(key, f"must be a positive int, got {json.dumps(v)}")
        else:
            r.dims[key] = v


def _step_multiple_of(r: _RecordParse) -> None:
    if not r.multiple_of:
        return
    for key, v in r.dims.items():
        if v % r.multiple_of:
            r.c.add(
                key, f"{v} is not a multiple of {r.multiple_of}: resize offline (smart resize, factor {r.multiple_of})"
            )


def _step_max_pixels(r: _RecordParse) -> None:
    if len(r.dims) != 2 or r.max_pixels is None:
        return
    over = max_pixels_problem(r.dims["width"], r.dims["height"], r.max_pixels)
    if over:
        r.c.add("", over)


def _step_optional_fields(r: _RecordParse) -> None:
    if "summary" in r.rec and not isinstance(r.rec["summary"], str):
        r.c.add("summary", "must be a string")
    if "metadata" in r.rec and not isinstance(r.rec["metadata"], dict):
        r.c.add("metadata", "must be an object")
    if "messages" in r.rec:
        _check_messages(r.rec["messages"], r.c)


def _step_objects(r: _RecordParse) -> None:
    raw_objects = r.rec.get("objects")
    if "objects" not in r.rec:
        if "messages" not in r.rec:
            r.c.add("objects", "missing (a list of objects; [] for an image with nothing to detect)")
        elif r.stage == "stage2":
            r.c.add("objects", "missing: Stage-2 matches rollouts against GT objects")
        return
    if not isinstance(raw_objects, list):
        r.c.add("objects", f"must be a list, got {type(raw_objects).__name__}")
        return
    parsed = [_parse_object(o, f"objects[{i}]", r.stage, r.c) for i, o in enumerate(raw_objects)]
    if r.stage == "stage2" and not raw_objects:
        r.c.add("objects", "Stage-2 needs at least one GT bbox per image (no valid GT objects)")
    if all(p is not None for p in parsed):
        r.objects = parsed


def _step_object_order(r: _RecordParse) -> None:
    if r.object_ordering != "sorted":
        return
    for i in order_violations(r.objects):
        a, b = object_anchor(r.objects[i - 1]), object_anchor(r.objects[i])
        r.c.add(
            f"objects[{i}]",
            f"out of order: its anchor (y={b[0]}, x={b[1]}) sorts before "
            f"objects[{i - 1}]'s (y={a[0]}, x={a[1]}); sort objects by the top-most, "
            "then left-most vertex (coordexp.format.data.sort_objects)",
        )


# The checks of one record, in order; each records its problems and the next runs on whatever parsed,
# so one line reports everything wrong with it.
RECORD_STEPS: tuple[tuple[str, Callable[[_RecordParse], None]], ...] = (
    ("record keys", _step_record_keys),
    ("images", _step_images),
    ("width and height", _step_size),
    ("multiple of", _step_multiple_of),
    ("max_pixels", _step_max_pixels),
    ("summary, metadata, messages", _step_optional_fields),
    ("objects", _step_objects),
    ("object order", _step_object_order),
)


def parse_record(
    rec: Any,
    *,
    file: str,
    line: int,
    stage: Stage = "stage1",
    object_ordering: str = "sorted",
    max_pixels: int | None = MAX_PIXELS,
    multiple_of: int | None = 32,
) -> tuple[dict | None, list[DataIssue]]:
    """Structural checks of one decoded line (``RECORD_STEPS``, after the shape and the whole-tree bounds);
    returns the pieces of a Record (without image checks), or None and every problem found."""
    c = _Collector(file, line)
    if not isinstance(rec, dict):
        c.add("", f"a record must be a JSON object, got {type(rec).__name__}")
        return None, c.issues
    if not check_record_tree(rec, c):
        return None, c.issues
    r = _RecordParse(rec, c, stage, object_ordering, max_pixels, multiple_of)
    for _name, step in RECORD_STEPS:
        step(r)
    if c.issues:
        return None, c.issues
    return {
        "images": r.images,
        "objects": r.objects,
        "width": r.dims["width"],
        "height": r.dims["height"],
        "summary": rec.get("summary"),
        "metadata": rec.get("metadata") or {},
        "messages": tuple(rec["messages"]) if "messages" in rec else None,
    }, []


# ---------------------------------------------------------------- JSON decoding (strict)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def decode_line(text: str) -> Any:
    """Strict JSON: NaN/Infinity and duplicate keys are errors (the stdlib accepts both)."""
    # inventory: json-ok(JSONL record files are strict JSON written offline, not model output)
    return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)


# ---------------------------------------------------------------- image checks


def resolve_image(path: str, jsonl_dir: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else jsonl_dir / p


def check_image_root(path: str, jsonl_dir: Path) -> str | None:
    """An image path must stay under the JSONL's folder (the dataset root): an absolute path or one whose
    ``..`` climbs out of it could read any file the trainer can, and ties the data to one machine."""
    import os

    if Path(path).is_absolute():
        return (
            f"absolute image path {path!r}: images must lie under the JSONL's folder {jsonl_dir} "
            f"(set {OUTSIDE_ROOT_KEY}: true to allow paths outside it)"
        )
    if os.path.normpath(path).split(os.sep)[0] == os.pardir:
        return (
            f"image path {path!r} leaves the JSONL's folder {jsonl_dir} through '..' "
            f"(set {OUTSIDE_ROOT_KEY}: true to allow paths outside it)"
        )
    return None


def check_image_dirs(image: Path, jsonl_dir: Path) -> str | None:
    """The images folder (any directory between the JSONL's folder and the image) must not be a symlink:
    a symlinked preset folder can point at images of another resize, with the same names."""
    try:
        rel = image.relative_to(jsonl_dir)
    except ValueError:
        return None
    cur = jsonl_dir
    for part in rel.parts[:-1]:
        cur = cur / part
        if cur.is_symlink():
            return f"{cur} is a symlink: the images folder must be a real directory next to the JSONL"
    return None


def check_image_file(image: Path, width: int, height: int, max_pixels: int | None = None) -> str | None:
    """Open the image (lazily, header only) and compare its size with the JSONL width/height.

    Nothing is decoded here: a header declaring more than ``max_pixels`` (or more than PIL's own
    decompression-bomb bound, whatever ``max_pixels`` was raised to) is refused by its size alone."""
    if not image.is_file():
        return f"image not found: {image}" if not image.exists() else f"image {image} is not a regular file"
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(image) as im:
                size = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"image {image} refused before decoding: its header declares a decompression bomb ({exc})"
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        return f"cannot open image {image}: {exc}"
    over = None if max_pixels is None else max_pixels_problem(size[0], size[1], max_pixels)
    if over:
        return f"image {image} refused before decoding: its header declares {over}"
    if size != (width, height):
        return (
            f"image {image.name} is {size[0]}x{size[1]} on disk but the JSONL says {width}x{height}: "
            "the JSONL size must be the resized image's real size"
        )
    return None


# ---------------------------------------------------------------- loading


def load_records(
    path: str | Path,
    *,
    stage: Stage = "stage1",
    max_pixels: int | None = MAX_PIXELS,
    multiple_of: int | None = 32,
    check_images: bool | int = True,
    object_ordering: str = "sorted",
    allow_outside_root: bool = False,
) -> list[Record]:
    """Every record of ``path``, validated; raise ``DataError`` listing every problem.

    ``check_images``: True opens every image, an int N opens the first N structurally valid rows,
    False skips opening (existence is still checked, and the images folder must not be a symlink).
    ``allow_outside_root`` (``custom.allow_images_outside_jsonl_dir``): accept absolute image paths
    and paths whose ``..`` leaves the JSONL's folder.
    """
    if stage not in ("stage1", "stage2"):
        raise ValueError(f"stage must be 'stage1' or 'stage2', got {stage!r}")
    if object_ordering not in ("sorted", "random"):
        raise ValueError(f"object_ordering must be 'sorted' or 'random', got {object_ordering!r}")
    path = Path(path)
    file = str(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise DataError([DataIssue(file, 0, "", "JSONL file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError([DataIssue(file, 0, "", f"cannot read as UTF-8 text: {exc}")]) from None
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    jsonl_dir = path.resolve().parent
    budget = math.inf if check_images is True else (0 if check_images is False else int(check_images))
    issues: list[DataIssue] = []
    records: list[Record] = []
    for lineno, text in enumerate(lines, start=1):
        if not text.strip():
            issues.append(DataIssue(file, lineno, "", "blank line: every line must hold one JSON record"))
            continue
        try:
            rec = decode_line(text)
        except ValueError as exc:
            issues.append(DataIssue(file, lineno, "", f"invalid JSON: {str(exc)[:300]}"))
            continue
        except RecursionError:
            issues.append(
                DataIssue(file, lineno, "", f"nests too deep to decode (over {MAX_RECORD_DEPTH} levels are refused)")
            )
            continue
        parts, problems = parse_record(
            rec,
            file=file,
            line=lineno,
            stage=stage,
            object_ordering=object_ordering,
            max_pixels=max_pixels,
            multiple_of=multiple_of,
        )
        if problems:
            issues.extend(problems)
            continue
        abs_images = []
        open_now = budget > 0
        if open_now:
            budget -= 1
        for i, img in enumerate(parts["images"]):
            resolved = resolve_image(img, jsonl_dir)
            abs_images.append(str(resolved))
            why = None if allow_outside_root else check_image_root(img, jsonl_dir)
            if why is None:
                why = check_image_dirs(resolved, jsonl_dir)
            if why is None:
                why = (
                    check_image_file(resolved, parts["width"], parts["height"], max_pixels)
                    if open_now
                    else (None if resolved.is_file() else f"image not found: {resolved}")
                )
            if why:
                issues.append(DataIssue(file, lineno, f"images[{i}]", why))
        records.append(
            Record(
                images=tuple(abs_images),
                objects=tuple(parts["objects"]),
                width=parts["width"],
                height=parts["height"],
                line=lineno,
                base_idx=len(records),
                source=file,
                summary=parts["summary"],
                metadata=parts["metadata"],
                messages=parts["messages"],
            )
        )
    if issues:
        raise DataError(issues)
    return records
