"""Qwen3-VL chat messages, chat-template rendering, tokenization, labels and the generation prompt.

One sample becomes three turns (system, user, assistant) rendered by the project's own
Qwen3-VL chat template (`QWEN3_VL_CHAT_TEMPLATE`; the tokenizer's bundled template is
Qwen3 text-only and cannot render images):

    <|im_start|>system\\n{system}<|im_end|>\\n
    <|im_start|>user\\n<|vision_start|><|image_pad|>*N<|vision_end|>{user}<|im_end|>\\n
    <|im_start|>assistant\\n{CoordJSON}<|im_end|>

Rendering rules (each one is a scenario of the chat-template spec):
- turns are joined by a single ``\\n``; the final turn ends with ``<|im_end|>`` and no
  newline, because generation stops at ``<|im_end|>`` and a trailing newline would be a
  supervised token no rollout ever produces;
- image items render where they stand in the user content (the builder puts them first),
  each as ``<|vision_start|>`` + N x ``<|image_pad|>`` + ``<|vision_end|>``, with no
  separator before the text; N = grid_t*grid_h*grid_w / merge**2;
- the generation prompt is the rendered prompt turns followed by
  ``\\n<|im_start|>assistant\\n`` and nothing after it.

Labels follow the ms-swift convention: -100 up to and including ``<|im_start|>assistant\\n``,
then the assistant content and its closing ``<|im_end|>`` supervised, in the same
positions as ``input_ids`` (the one-token shift happens in the loss).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordexp.errors import CoordExpError
from coordexp.format.prompts import PromptConfigError, system_prompt, user_prompt

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
# Their ids in the Qwen3 base vocabulary (every Qwen3-VL checkpoint, the tiny model included).
IMAGE_TOKEN_ID = 151655  # <|image_pad|>
VIDEO_TOKEN_ID = 151656  # <|video_pad|>
VISION_START_TOKEN_ID = 151652
VISION_END_TOKEN_ID = 151653
ASSISTANT_HEADER = f"{IM_START}assistant\n"
IGNORE_INDEX = -100

# Qwen3-VL vision geometry: 16 px patches, 2x2 spatial merge, 2-frame temporal patches
# (a still image is one temporal patch), so one visual token covers 32x32 pixels.
PATCH_SIZE = 16
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
PIXELS_PER_TOKEN_SIDE = PATCH_SIZE * MERGE_SIZE
MAX_PIXELS = 768 * PIXELS_PER_TOKEN_SIDE**2  # 786432: at most 768 visual tokens per image
# Qwen3-VL normalises pixels with mean 0.5 / std 0.5 (not the CLIP statistics of Qwen2-VL).
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)

# Chat-control tokens that must never come from content: one inside a prompt, a desc or a
# path would move the turn or vision boundaries and with them the label mask.
CONTROL_TOKENS = (
    IM_START,
    IM_END,
    VISION_START,
    VISION_END,
    IMAGE_PAD,
    "<|video_pad|>",
    "<|endoftext|>",
    "<|vision_pad|>",
)

DECODE_KWARGS = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}

# The project's Qwen3-VL chat template. `image_token_counts` (one int per image, in order)
# expands each image placeholder to its final length; when it is undefined (a caller such
# as a vLLM server whose processor expands placeholders itself) each image gets a single
# <|image_pad|>, which is what HF-style processors expect.
QWEN3_VL_CHAT_TEMPLATE = """\
{%- set ns = namespace(image=0) -%}
{%- for message in messages -%}
{%- if not loop.first %}{{ '\\n' }}{% endif -%}
{{- '<|im_start|>' + message.role + '\\n' -}}
{%- if message.content is string -%}
{{- message.content -}}
{%- else -%}
{%- for item in message.content -%}
{%- if item.type == 'image' -%}
{%- set pads = image_token_counts[ns.image] if image_token_counts is defined else 1 -%}
{{- '<|vision_start|>' + '<|image_pad|>' * pads + '<|vision_end|>' -}}
{%- set ns.image = ns.image + 1 -%}
{%- elif item.type == 'text' -%}
{{- item.text -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '\\n<|im_start|>assistant\\n' -}}
{%- endif -%}
"""


class TemplateError(CoordExpError, ValueError):
    """A sample cannot be rendered or tokenized without changing the objective."""


class DecodeFrameError(CoordExpError, ValueError):
    """Per-token decode pieces do not join to the full decode: character offsets would lie."""


@dataclass
class EncodedSample:
    input_ids: list[int]
    labels: list[int]
    prompt_len: int
    pixel_values: Any  # torch.Tensor (sum of grid_t*grid_h*grid_w rows, 1536) or None
    image_grid_thw: Any  # torch.Tensor (n_images, 3) or None
    text: str
    image_token_counts: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class DecodeFrame:
    """Token ids decoded one by one: ``text[offsets[i]:offsets[i+1]] == pieces[i]``."""

    text: str
    pieces: tuple[str, ...]
    offsets: tuple[int, ...]  # len(pieces) + 1 boundaries


# ---------------------------------------------------------------------------- messages


def _expected_objects(objects) -> list[tuple]:
    from coordexp.format.coord import parse_coord_value

    out = []
    for obj in objects:
        gkey = "bbox_2d" if "bbox_2d" in obj else "poly"
        out.append((obj["desc"].strip(), gkey, tuple(parse_coord_value(v) for v in obj[gkey])))
    return out


def _render_assistant(objects, field_order: str, source: str) -> str:
    from coordexp.format import coordjson
    from coordexp.format.coord import DoubleNormalizationError, assert_pre_quantized

    # Geometry is never normalized here: pixel values that reach the template are refused, not rescaled.
    for i, obj in enumerate(objects):
        gkey = "bbox_2d" if isinstance(obj, dict) and "bbox_2d" in obj else "poly"
        values = obj.get(gkey) if isinstance(obj, dict) else None
        if not isinstance(values, list | tuple):
            continue  # not geometry at all: the renderer names what is wrong
        try:
            assert_pre_quantized(values, f"objects[{i}].{gkey}")
        except DoubleNormalizationError as exc:
            raise TemplateError(f"{source}: {exc}") from exc
    try:
        text = coordjson.render(objects, field_order)
    except ValueError as exc:
        raise TemplateError(f"{source}: {exc}") from exc
    # Fail fast on drift between the renderer and the strict parser rollouts are scored
    # with: the text must parse back to exactly the record's objects, in order.
    try:
        parsed = coordjson.parse(text, mode="strict", field_order=field_order)
    except ValueError as exc:
        raise TemplateError(
            f"{source}: the rendered assistant text does not strict-parse ({exc}); "
            "renderer and parser disagree, fix coordexp.format.coordjson"
        ) from exc
    got = [(o.desc, o.geometry, tuple(o.values)) for o in parsed.objects]
    if got != _expected_objects(objects):
        raise TemplateError(
            f"{source}: the rendered assistant text parses back to different objects than the record holds; "
            "renderer and parser disagree, fix coordexp.format.coordjson"
        )
    return text


def _record_images(record: dict, source: str) -> list[str]:
    images = record.get("images")
    if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
        raise TemplateError(f"{source}: images: must be a list of path strings")
    return images


def build_messages(
    record: dict,
    *,
    field_order: str,
    prompt_variant: str = "default",
    object_ordering: str = "sorted",
    with_assistant: bool = True,
    source: str = "record",
) -> list[dict]:
    """System string, user content (images then text), and the CoordJSON assistant turn.

    Image paths must already be absolute (the JSONL loader resolves them against the
    JSONL directory); a relative path here would depend on the working directory.
    """
    if not isinstance(record, dict):
        raise TemplateError(f"{source}: a record must be a JSON object, got {type(record).__name__}")
    images = _record_images(record, source)
    for i, p in enumerate(images):
        if not Path(p).is_absolute():
            raise TemplateError(
                f"{source}: images[{i}]: {p!r} is not an absolute path; load records through the JSONL "
                "loader, which resolves paths against the JSONL directory"
            )
    try:
        system = system_prompt(field_order, object_ordering, prompt_variant)
        user = user_prompt(field_order, object_ordering, prompt_variant)
    except PromptConfigError as exc:  # one error type for callers of the builder
        raise TemplateError(f"{source}: {exc}") from exc
    content: list[dict] = [{"type": "image", "image": p} for p in images]
    content.append({"type": "text", "text": user})
    messages = [{"role": "system", "content": system}, {"role": "user", "content": content}]
    if with_assistant:
        objects = record.get("objects")
        if not isinstance(objects, list):
            raise TemplateError(f"{source}: objects: required, a list of objects ([] for a negative image)")
        text = _render_assistant(objects, field_order, source)
        messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
    return messages


def strip_trailing_assistant(messages: Sequence[dict]) -> list[dict]:
    """Drop trailing assistant turns: a rollout prompt must end with the last user turn."""
    out = list(messages)
    while out and out[-1].get("role") == "assistant":
        out.pop()
    return out


# ---------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=1)
def _compiled_template():
    # Sandboxed like HF chat templates; StrictUndefined so a typo is an error, not "".
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    return env.from_string(QWEN3_VL_CHAT_TEMPLATE)


def _texts(content) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [item["text"] for item in content if item.get("type") == "text"]


def _validate_messages(messages: Sequence[dict], image_token_counts: Sequence[int]) -> None:
    if not messages:
        raise TemplateError("messages: empty; a chat needs at least one turn")
    n_images = 0
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise TemplateError(f"{where}: must be a dict with role and content")
        role = msg.get("role")
        if role not in ("system", "user", "assistant"):
            raise TemplateError(f"{where}.role: {role!r}; use system, user or assistant")
        if role == "system" and i != 0:
            raise TemplateError(f"{where}: a system turn is only allowed first")
        content = msg.get("content")
        if isinstance(content, str):
            items: list = []
        elif isinstance(content, list):
            items = content
        else:
            raise TemplateError(f"{where}.content: must be a string or a list of items")
        for j, item in enumerate(items):
            iw = f"{where}.content[{j}]"
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "image":
                if role != "user":
                    raise TemplateError(f"{iw}: images are only allowed in user turns")
                n_images += 1
            elif kind == "text":
                if not isinstance(item.get("text"), str):
                    raise TemplateError(f"{iw}.text: must be a string")
            else:
                raise TemplateError(f"{iw}.type: {kind!r}; use 'image' or 'text'")
        for text in _texts(content):
            for tok in CONTROL_TOKENS:
                if tok in text:
                    raise TemplateError(
                        f"{where}: content contains the chat-control token {tok}; it would shift turn or "
                        "vision boundaries; remove it from the prompt or object text"
                    )
    if n_images != len(image_token_counts):
        raise TemplateError(
            f"messages hold {n_images} image items but {len(image_token_counts)} image token counts were given"
        )
    for k, n in enumerate(image_token_counts):
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise TemplateError(f"image_token_counts[{k}]: {n!r}; must be a positive int")


def render_chat(
    messages: Sequence[dict], image_token_counts: Sequence[int], add_generation_prompt: bool = False
) -> str:
    """Render messages with the project's Qwen3-VL template; image pads already expanded."""
    counts = list(image_token_counts)
    _validate_messages(messages, counts)
    text = _compiled_template().render(
        messages=list(messages), image_token_counts=counts, add_generation_prompt=bool(add_generation_prompt)
    )
    if text.count(IMAGE_PAD) != sum(counts):  # the template and the counts must agree exactly
        raise TemplateError(f"rendered {text.count(IMAGE_PAD)} {IMAGE_PAD} tokens, expected {sum(counts)}")
    return text


def render_generation_prompt(messages: Sequence[dict], image_token_counts: Sequence[int]) -> str:
    """The rollout prompt: trailing assistant turns stripped, then an open assistant header."""
    prompt = strip_trailing_assistant(messages)
    if not prompt or prompt[-1].get("role") != "user":
        raise TemplateError("a generation prompt must end with a user turn")
    return render_chat(prompt, image_token_counts, add_generation_prompt=True)


# ---------------------------------------------------------------------------- images


def image_token_count(width: int, height: int) -> int:
    """Visual tokens for one pre-resized still image: (H/32)*(W/32)."""
    return (height // PIXELS_PER_TOKEN_SIDE) * (width // PIXELS_PER_TOKEN_SIDE)


def load_image_processor(max_pixels: int = MAX_PIXELS):
    """A PIL-based image processor configured as Qwen3-VL's, that never resizes.

    `do_resize=False` because the JSONL images are pre-resized and their coordinates are
    already normalized: a runtime resize (e.g. a small image upscaled to min_pixels) would
    change the number of <|image_pad|> tokens and desynchronise learner and server prompts.
    """
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(
        patch_size=PATCH_SIZE,
        merge_size=MERGE_SIZE,
        temporal_patch_size=TEMPORAL_PATCH_SIZE,
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
        do_resize=False,
        min_pixels=4 * PIXELS_PER_TOKEN_SIDE**2,
        max_pixels=max_pixels,
    )


@functools.lru_cache(maxsize=4)
def _default_image_processor(max_pixels: int):
    return load_image_processor(max_pixels)


def _check_image_processor(proc) -> None:
    got = (
        getattr(proc, "patch_size", None),
        getattr(proc, "merge_size", None),
        getattr(proc, "temporal_patch_size", None),
        getattr(proc, "do_resize", None),
    )
    want = (PATCH_SIZE, MERGE_SIZE, TEMPORAL_PATCH_SIZE, False)
    if got != want:
        raise TemplateError(
            f"image processor (patch_size, merge_size, temporal_patch_size, do_resize) = {got}, expected {want}; "
            "use coordexp.format.template.load_image_processor()"
        )


def max_pixels_problem(width: int, height: int, max_pixels: int) -> str | None:
    """Why a ``width`` x ``height`` image breaks the ``max_pixels`` cap, or None (equality is allowed).

    The one statement of the rule for the JSONL loader and the sample encoder: the cap is a hard
    limit, never a resize target, because resizing at training time would move every coordinate."""
    if width * height <= max_pixels:
        return None
    return (
        f"width*height = {width}x{height} = {width * height} pixels exceeds max_pixels {max_pixels} "
        "(a hard cap, not a resize target): resize offline (smart resize, factor 32); images are never "
        "resized at training time because that would move the coordinates"
    )


def _record_size(record: dict, source: str) -> tuple[int, int]:
    out = []
    for key in ("width", "height"):
        v = record.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise TemplateError(f"{source}: {key}: {v!r}; must be a positive int (the size of the image on disk)")
        out.append(v)
    return out[0], out[1]


def check_images(record: dict, *, max_pixels: int = MAX_PIXELS, source: str = "record") -> list[int]:
    """Validate every image of a record against its width/height; return the token counts.

    width*height > max_pixels is a hard error, never a resize target (a resize would move
    every coordinate). Each side must be a multiple of 32 so the visual grid is exact, and
    the image on disk must have exactly the recorded size.
    """
    from PIL import Image

    if not isinstance(record, dict):
        raise TemplateError(f"{source}: a record must be a JSON object, got {type(record).__name__}")
    images = _record_images(record, source)
    width, height = _record_size(record, source)
    over = max_pixels_problem(width, height, max_pixels)
    if over:
        raise TemplateError(f"{source}: {over}")
    for key, v in (("width", width), ("height", height)):
        if v % PIXELS_PER_TOKEN_SIDE:
            raise TemplateError(
                f"{source}: {key}: {v} is not a multiple of {PIXELS_PER_TOKEN_SIDE}; "
                "re-run the offline resize (factor 32)"
            )
    counts = []
    for i, path in enumerate(images):
        try:
            with Image.open(path) as im:  # reads the header only
                size = im.size
        except (OSError, ValueError) as exc:
            raise TemplateError(f"{source}: images[{i}]: cannot open {path}: {exc}") from exc
        if size != (width, height):
            raise TemplateError(
                f"{source}: images[{i}]: {path} is {size[0]}x{size[1]} on disk but the record says "
                f"{width}x{height}; fix the JSONL or the image"
            )
        counts.append(image_token_count(width, height))
    return counts


def _pixels(record: dict, image_processor, counts: list[int], source: str):
    from PIL import Image

    images = []
    for path in record["images"]:
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    out = image_processor(images=images, return_tensors="pt")
    grid = out["image_grid_thw"]
    got = [int(t * h * w) // MERGE_SIZE**2 for t, h, w in grid.tolist()]
    if got != counts:
        raise TemplateError(f"{source}: the image processor grid gives {got} image tokens, expected {counts}")
    return out["pixel_values"], grid


# ---------------------------------------------------------------------------- tokenization


def _encode_text(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_sample(
    record: dict,
    tokenizer,
    *,
    field_order: str,
    prompt_variant: str = "default",
    object_ordering: str = "sorted",
    image_processor=None,
    max_pixels: int = MAX_PIXELS,
    source: str = "record",
) -> EncodedSample:
    """Render, tokenize and label one training sample (see the module docstring)."""
    counts = check_images(record, max_pixels=max_pixels, source=source)
    messages = build_messages(
        record,
        field_order=field_order,
        prompt_variant=prompt_variant,
        object_ordering=object_ordering,
        with_assistant=True,
        source=source,
    )
    prompt_text = render_generation_prompt(messages, counts)
    text = render_chat(messages, counts)
    if not text.startswith(prompt_text) or not text.endswith(IM_END):
        raise TemplateError(f"{source}: the training text does not extend the generation prompt")
    # Tokenize prompt and response separately so the label boundary is a token boundary by
    # construction, then require the joint tokenization to agree: otherwise the learner's
    # prompt ids would differ from a rollout server's.
    prompt_ids = _encode_text(tokenizer, prompt_text)
    response_ids = _encode_text(tokenizer, text[len(prompt_text) :])
    input_ids = prompt_ids + response_ids
    if _encode_text(tokenizer, text) != input_ids:
        raise TemplateError(f"{source}: tokenizing the whole text merges tokens across the assistant header")
    im_end_id = tokenizer.convert_tokens_to_ids(IM_END)
    if not response_ids or response_ids[-1] != im_end_id or response_ids.count(im_end_id) != 1:
        raise TemplateError(f"{source}: the supervised span must end with exactly one {IM_END}")
    pad_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    if input_ids.count(pad_id) != sum(counts):
        raise TemplateError(f"{source}: {input_ids.count(pad_id)} {IMAGE_PAD} ids, expected {sum(counts)}")
    labels = [IGNORE_INDEX] * len(prompt_ids) + response_ids
    pixel_values = grid = None
    if counts:
        proc = image_processor if image_processor is not None else _default_image_processor(max_pixels)
        _check_image_processor(proc)
        pixel_values, grid = _pixels(record, proc, counts, source)
    return EncodedSample(
        input_ids=input_ids,
        labels=labels,
        prompt_len=len(prompt_ids),
        pixel_values=pixel_values,
        image_grid_thw=grid,
        text=text,
        image_token_counts=tuple(counts),
    )


# ---------------------------------------------------------------------------- decoding


def decode(tokenizer, ids: Sequence[int]) -> str:
    """Full decode that keeps special tokens (coord tokens and <|im_end|> are special)."""
    return tokenizer.decode(list(ids), **DECODE_KWARGS)


def piece_table(tokenizer) -> dict:
    """The tokenizer's id -> piece table (``decode_pieces``), for ``pieces_from``."""
    from coordexp.format.coord import tokenizer_table

    return tokenizer_table(tokenizer, "decode_pieces", lambda tok: {})  # filled on demand


def decode_pieces(tokenizer, ids: Sequence[int]) -> list[str]:
    """Each token decoded on its own, special tokens kept.

    Every id is decoded once per tokenizer (``coord.tokenizer_table``: keyed by the
    tokenizer object and its vocabulary size, so an added token never meets a stale
    table); a piece depends on its id alone, so the table returns exactly what a fresh
    ``decode([id])`` would."""
    return pieces_from(tokenizer, piece_table(tokenizer), ids)


def pieces_from(tokenizer, table: dict, ids: Sequence[int]) -> list[str]:
    """``decode_pieces`` with the table already in hand (``piece_table(tokenizer)``)."""
    try:
        return list(map(table.__getitem__, ids))
    except (KeyError, TypeError):  # an id not seen yet (or not hashable): decode the misses once
        out = []
        for i in ids:
            key = int(i)
            piece = table.get(key)
            if piece is None:
                piece = table[key] = tokenizer.decode([key], **DECODE_KWARGS)
            out.append(piece)
        return out


def decode_frame(tokenizer, ids: Sequence[int]) -> DecodeFrame:
    """The per-token decode frame that character spans are computed in.

    Canary: the joined pieces must equal the full decode. They differ when a token carries
    part of a multi-byte character (per-token decode yields U+FFFD); offsets in that frame
    would point at the wrong characters, so refuse instead of returning them.
    """
    ids = list(ids)
    pieces = decode_pieces(tokenizer, ids)
    full = decode(tokenizer, ids)
    joined = "".join(pieces)
    if joined != full:
        pos = 0
        for i, piece in enumerate(pieces):  # noqa: B007 (i names the diverging token after the loop)
            if full[pos : pos + len(piece)] != piece:
                break
            pos += len(piece)
        raise DecodeFrameError(
            f"per-token decode diverges from the full decode at token {i} (id {ids[i]}, piece {pieces[i]!r}); "
            "a token splits a multi-byte character, so per-token character offsets are not valid"
        )
    offsets = [0]
    for piece in pieces:
        offsets.append(offsets[-1] + len(piece))
    return DecodeFrame(text=full, pieces=tuple(pieces), offsets=tuple(offsets))
