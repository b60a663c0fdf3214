"""Add the coord vocabulary to a stock Qwen3-VL model folder, and verify the result.

Contract (the reference's layout, ``coordexp.format.coord``): the wildcard ``<|coord_*|>`` is added
first, then ``<|coord_0|>``..``<|coord_999|>``, all as added special tokens, so on the Qwen3
tokenizer (151669 tokens) they take ids 151669 and 151670..152669, one contiguous block.

Rows (as the reference does: ``resize_token_embeddings`` with transformers' default
``mean_resizing``): the embedding grows to ``len(tokenizer)`` = 152670 rows. Released
checkpoints already hold 151936 rows (their vocabulary is padded), so ids 151669..151935 keep
the rows they have, and only the rows past the old end are new: each is drawn from a normal
with the old rows' mean and 1e-9 x their covariance, i.e. the mean embedding to within
rounding. The draw is seeded (``seed``): the same input gives the same bytes.

Tying: a tied model (``tie_word_embeddings``, the 2B/4B releases) keeps one table, so the
LM-head rows are the embedding rows. An untied model keeps its own head, grown the same way.
The reference forces ``tie_word_embeddings: true`` after resizing; here the model's own
setting is kept, because forcing it on an untied model would replace its trained head with
the embedding (identical on the tied 2B/4B).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from coordexp.checkpoints.files import (
    CheckpointError,
    copy_side_files,
    embedding_rows,
    head_rows,
    model_folder,
    write_json,
)
from coordexp.format.coord import COORD_BINS, COORD_WILDCARD, coord_token, coord_tokens

BASE_TOKENS = 151669  # len() of the Qwen3 tokenizer: the wildcard lands here
FIRST_COORD_ID = BASE_TOKENS + 1  # 151670 (custom.coord_offset.ids.start)
LAST_COORD_ID = FIRST_COORD_ID + COORD_BINS - 1  # 152669
REPORT = "coord_vocab.json"
TOKEN_LIST = "coord_tokens.json"


@dataclass(frozen=True)
class ExpandReport:
    src: str
    dst: str
    tokenizer_before: int
    tokenizer_after: int
    rows_before: int
    rows_after: int
    new_rows: int
    wildcard_id: int
    first_coord_id: int
    last_coord_id: int
    tie_word_embeddings: bool
    init: str
    seed: int


def coord_vocab() -> list[str]:
    """The tokens added, in order: the wildcard first."""
    return [COORD_WILDCARD, *coord_tokens()]


def _tied(config) -> bool:
    text = getattr(config, "text_config", None)
    return bool(getattr(config, "tie_word_embeddings", False) or getattr(text, "tie_word_embeddings", False))


def expand_coord_vocab(src: str | Path, dst: str | Path, *, seed: int = 0) -> ExpandReport:
    """Write ``dst``: ``src``'s model and tokenizer with the coord vocabulary added."""
    import torch
    from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration

    src, dst = model_folder(src, "--src"), Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise CheckpointError(f"{dst}: exists and is not empty; give a new --dst folder")
    tok = AutoTokenizer.from_pretrained(src)
    before = len(tok)
    vocab = tok.get_vocab()
    present = [t for t in coord_vocab() if t in vocab]
    if present:
        raise CheckpointError(
            f"{src}: the tokenizer already has {len(present)} coord tokens (first {present[0]}); "
            "it is expanded already: point model.model at it"
        )
    if before != BASE_TOKENS:
        raise CheckpointError(
            f"{src}: the tokenizer has {before} tokens, not the Qwen3 vocabulary's {BASE_TOKENS}: "
            f"the coord ids would not be {FIRST_COORD_ID}..{LAST_COORD_ID}"
        )
    tok.add_special_tokens({"additional_special_tokens": coord_vocab()}, replace_extra_special_tokens=False)
    model = Qwen3VLForConditionalGeneration.from_pretrained(src, dtype="auto", local_files_only=True)
    rows_before = model.get_input_embeddings().weight.shape[0]
    rows_after = max(rows_before, len(tok))
    if rows_after > rows_before:
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)
            model.resize_token_embeddings(rows_after, mean_resizing=True)
        finally:
            torch.random.set_rng_state(state)
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst, safe_serialization=True)
    tok.save_pretrained(dst)
    copy_side_files(src, dst)
    write_json(dst / TOKEN_LIST, coord_vocab())
    ids = tok.convert_tokens_to_ids(coord_vocab())
    report = ExpandReport(
        str(src),
        str(dst),
        before,
        len(tok),
        rows_before,
        rows_after,
        rows_after - rows_before,
        ids[0],
        ids[1],
        ids[-1],
        _tied(model.config),
        "mean_resizing (old rows' mean, 1e-9 cov)",
        seed,
    )
    write_json(dst / REPORT, asdict(report))
    return report


def verify_expanded(src: str | Path, dst: str | Path) -> list[str]:
    """Round trip: reload ``dst`` and list every way it breaks the contract (empty: it holds).

    Ids contiguous and where the contract puts them, each coord one token even inside text,
    the rows present, the old rows (embedding, and an untied head) bit-identical to ``src``'s,
    the new rows finite and at the old mean, tying as in ``src``.
    """
    import torch
    from transformers import AutoConfig, AutoTokenizer

    src, dst = Path(src), Path(dst)
    problems: list[str] = []
    tok = AutoTokenizer.from_pretrained(dst)  # as saved: nothing added on load
    ids = tok.convert_tokens_to_ids(coord_vocab())
    unk = tok.unk_token_id
    if any(i is None or i == unk for i in ids):
        return [f"{dst}: coord tokens missing from the saved tokenizer"]
    if ids != list(range(BASE_TOKENS, LAST_COORD_ID + 1)):
        problems.append(
            f"{dst}: coord ids are {ids[0]}, {ids[1]}..{ids[-1]}, not one block "
            f"{BASE_TOKENS}, {FIRST_COORD_ID}..{LAST_COORD_ID}"
        )
    for k in range(COORD_BINS):
        got = tok.encode(f"x{coord_token(k)}y", add_special_tokens=False)
        if got.count(FIRST_COORD_ID + k) != 1 or len(got) != 3:
            problems.append(f"{dst}: {coord_token(k)} does not encode as one token inside text ({got})")
            break
    old, new = embedding_rows(src), embedding_rows(dst)
    if new.shape[0] < LAST_COORD_ID + 1:
        problems.append(f"{dst}: the embedding has {new.shape[0]} rows, fewer than {LAST_COORD_ID + 1}")
    if not torch.equal(new[: old.shape[0]], old):
        problems.append(f"{dst}: embedding rows 0..{old.shape[0] - 1} differ from {src}'s")
    added = new[old.shape[0] :].float()
    if added.numel():
        if not torch.isfinite(added).all():
            problems.append(f"{dst}: new embedding rows are not finite")
        mean = old.float().mean(0)
        # 1e-9 x covariance: ~3e-5 spreads off the mean; bf16/fp16 rounding adds up to 2^-8 of |mean|.
        tol = 1e-3 * old.float().std(0) + 8e-3 * mean.abs() + 1e-6
        if bool(((added - mean).abs() > tol).any()):
            problems.append(f"{dst}: new embedding rows are not at the old rows' mean (mean_resizing)")
    tied_src, tied_dst = _tied(AutoConfig.from_pretrained(src)), _tied(AutoConfig.from_pretrained(dst))
    if tied_src != tied_dst:
        problems.append(f"{dst}: tie_word_embeddings {tied_dst}, but {src} has {tied_src}")
    if not tied_dst:
        h_old, h_new = head_rows(src), head_rows(dst)
        if h_new is None or h_new.shape[0] != new.shape[0]:
            problems.append(f"{dst}: untied model without an lm_head of {new.shape[0]} rows")
        elif h_old is not None and not torch.equal(h_new[: h_old.shape[0]], h_old):
            problems.append(f"{dst}: lm_head rows 0..{h_old.shape[0] - 1} differ from {src}'s")
    else:
        problems.extend(_tied_after_load(dst))
    return problems


def _tied_after_load(dst: Path) -> list[str]:
    from transformers import Qwen3VLForConditionalGeneration

    model = Qwen3VLForConditionalGeneration.from_pretrained(dst, dtype="auto", local_files_only=True)
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if emb.data_ptr() != head.data_ptr():
        return [f"{dst}: tie_word_embeddings is set but the loaded lm_head is not the embedding"]
    return []
