"""Model-folder helpers shared by the checkpoint tools: side files, tensors read by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from coordexp.errors import CoordExpError

# Files Qwen3-VL's processors read that save_pretrained of the model/tokenizer does not write.
SIDE_FILES = (
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "chat_template.json",
    "chat_template.jinja",
    "generation_config.json",
    "README.md",
    "configuration.json",
)
EMBED_SUFFIX = "embed_tokens.weight"
HEAD_KEY = "lm_head.weight"
# A model folder holding this file is the tiny random Qwen3-VL the smoke profiles build (coordexp.smoke.tiny);
# the stage_2 launcher serves such a folder with the loopback rollout server.
TINY_MARKER = "coordexp_tiny.json"


class CheckpointError(CoordExpError, RuntimeError):
    """A folder is not what the tool needs; the message names the file and what to do."""


def copy_side_files(src: Path, dst: Path) -> list[str]:
    """Copy the processor/chat-template files the model folder needs and does not have yet."""
    copied = []
    for name in SIDE_FILES:
        if (src / name).is_file() and not (dst / name).exists():
            shutil.copy2(src / name, dst / name)
            copied.append(name)
    return copied


def read_tensor(folder: Path, predicate) -> tuple[str, object] | None:
    """(name, tensor) of the first tensor whose name satisfies ``predicate``, read from the
    folder's safetensors files without loading the model (a 4B model's embedding alone)."""
    from safetensors import safe_open

    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as h:
            for name in h.keys():
                if predicate(name):
                    return name, h.get_tensor(name)
    return None


def embedding_rows(folder: Path):
    hit = read_tensor(folder, lambda n: n.endswith(EMBED_SUFFIX) and "visual" not in n)
    if hit is None:
        raise CheckpointError(f"{folder}: no *{EMBED_SUFFIX} tensor in its safetensors files")
    return hit[1]


def head_rows(folder: Path):
    hit = read_tensor(folder, lambda n: n == HEAD_KEY or n.endswith("." + HEAD_KEY))
    return None if hit is None else hit[1]


def write_json(path: Path, doc) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def model_folder(path: Path, what: str) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: no config.json: {what} must be a Hugging Face model folder")
    if not any(path.glob("*.safetensors")):
        raise CheckpointError(f"{path}: no *.safetensors weights ({what})")
    return path
