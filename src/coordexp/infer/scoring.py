"""Per-object detection scores from the model's own token probabilities.

COCO AP ranks detections by score. Greedy decoding gives no per-object confidence by itself,
so the inference run asks the model once more, teacher-forced, how probable each token it
wrote was, and scores every parsed object from its own tokens:

    score(object) = exp(mean(log p(t) for t in the object's tokens))      in (0, 1]

``p(t)`` is the softmax of the model's raw logits (no temperature, top-p, top-k or repetition
penalty: the score does not depend on how the decoder picked the token) at the token it wrote,
given the prompt (image included) and everything it wrote before. An object's tokens are the
generated tokens whose characters overlap one of its coord literals or the characters of its
desc string (between the quotes); the JSON punctuation around them is shared by every object
and says nothing about this one. The geometric mean keeps the score of a 4-coord box and an
8-point poly on the same scale.

The artifact records ``score_source`` (``SCORE_SOURCE``) on every row and ``score`` on every
prediction; ``infer_summary.json`` records the source too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from json.decoder import scanstring

SCORE_SOURCE = "token_prob_geomean"
SCORE_DIGITS = 6  # significant digits written: short rows, and a random model's 1e-6 scores still rank
_DESC_KEY = re.compile(r'"desc"\s*:\s*"')


@dataclass(frozen=True)
class TokenTrace:
    """Generated text tokens (``<|im_end|>`` cut): ``text[offsets[i]:offsets[i+1]]`` is token i, whose
    log-probability under the model is ``logprobs[i]``."""

    offsets: tuple[int, ...]  # len(logprobs) + 1 character boundaries
    logprobs: tuple[float, ...]


def trace_from_ids(tokenizer, text_ids: Sequence[int], logprobs: Sequence[float], text: str) -> TokenTrace:
    """Character offsets of ``text_ids`` in ``text`` (their full decode) joined with their log-probs."""
    from coordexp.format.template import DecodeFrameError, decode_frame

    if len(text_ids) != len(logprobs):
        raise ValueError(f"{len(text_ids)} generated tokens but {len(logprobs)} log-probabilities")
    try:
        frame = decode_frame(tokenizer, text_ids)
        offsets = frame.offsets
        if frame.text != text:
            raise ValueError("the generated ids do not decode to the artifact's raw_output")
    except DecodeFrameError:
        # a token splits a multi-byte character: fall back to the lengths of the prefix decodes
        from coordexp.format.template import decode

        offsets = tuple(len(decode(tokenizer, text_ids[:k])) for k in range(len(text_ids) + 1))
    return TokenTrace(tuple(offsets), tuple(float(x) for x in logprobs))


def desc_span(text: str, span: tuple[int, int]) -> tuple[int, int] | None:
    """The characters of a parsed record's desc string, quotes excluded (None when not found)."""
    m = _DESC_KEY.search(text, span[0], span[1])
    if m is None:
        return None
    try:
        _, end = scanstring(text, m.end(), True)
    except ValueError:
        return None
    return (m.end(), end - 1)


def object_token_indices(text: str, obj, offsets: Sequence[int]) -> list[int]:
    """Indices of the tokens overlapping ``obj``'s coord literals or desc characters."""
    ranges = list(obj.value_spans)
    d = desc_span(text, obj.span)
    if d is not None and d[1] > d[0]:
        ranges.append(d)
    out = []
    for i in range(len(offsets) - 1):
        a, b = offsets[i], offsets[i + 1]
        if b > a and any(a < r1 and r0 < b for r0, r1 in ranges):
            out.append(i)
    return out


def object_scores(text: str, objects, trace: TokenTrace) -> list[float | None]:
    """One score per parsed object (``coordexp.format.coordjson.ParsedObject``), in order; None for an object
    none of whose characters fall on a scored token (cannot happen for a parsed record)."""
    scores: list[float | None] = []
    for obj in objects:
        idx = object_token_indices(text, obj, trace.offsets)
        if not idx:
            scores.append(None)
            continue
        mean = sum(trace.logprobs[i] for i in idx) / len(idx)
        scores.append(float(f"{math.exp(mean):.{SCORE_DIGITS}g}"))
    return scores


@dataclass
class TokenScorer:
    """Log-probabilities of generated ids under an HF model: one teacher-forced forward per sample over
    the prompt (with its image) and the generated text tokens."""

    model: object
    tokenizer: object
    image_processor: object = None
    max_pixels: int | None = None

    @classmethod
    def from_backend(cls, backend) -> TokenScorer:
        """The model an in-process ``HFBackend`` generates with."""
        model = getattr(backend.model, "module", backend.model)
        return cls(model, backend.tokenizer, backend.image_processor, backend.max_pixels)

    def logprobs(self, request: dict, prompt_ids: Sequence[int], text_ids: Sequence[int]) -> list[float]:
        import torch

        from coordexp.format.template import IMAGE_TOKEN_ID, MAX_PIXELS
        from coordexp.generation.hf_backend import encode_request

        if not text_ids:
            return []
        enc = encode_request(
            request, self.tokenizer, image_processor=self.image_processor, max_pixels=self.max_pixels or MAX_PIXELS
        )
        # Score on the prompt the backend generated from (a server tokenizes it itself); only the images'
        # token counts must agree with the pixels encoded here.
        if list(prompt_ids).count(IMAGE_TOKEN_ID) != list(enc.prompt_ids).count(IMAGE_TOKEN_ID):
            raise ValueError(
                "scoring: the backend's prompt holds another number of image tokens than this request encodes to "
                "(another max_pixels on the server?)"
            )
        model = self.model
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        ids = torch.tensor([list(prompt_ids) + list(text_ids[:-1])], dtype=torch.long, device=device)
        kw = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "logits_to_keep": len(text_ids)}
        if enc.pixel_values is not None:
            kw["pixel_values"] = enc.pixel_values.to(device=device, dtype=dtype)
            kw["image_grid_thw"] = enc.image_grid_thw.to(device)
            kw["mm_token_type_ids"] = (ids == IMAGE_TOKEN_ID).to(torch.int32)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits = model(**kw).logits[0].float()
        finally:
            model.train(was_training)
        target = torch.tensor(list(text_ids), dtype=torch.long, device=device)
        lp = torch.log_softmax(logits, dim=-1).gather(1, target[:, None])[:, 0]
        return [float(x) for x in lp.cpu()]
