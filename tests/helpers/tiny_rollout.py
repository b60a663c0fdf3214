"""Shared pieces for rollout tests: an in-memory tiny Qwen3-VL, a synthetic image, requests,
and a reference greedy decoder that never uses a KV cache."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from coordexp.generation.request import from_messages

SYSTEM = "You detect objects."
USER = "Detect all objects."


@contextlib.contextmanager
def serving(model, tokenizer, **kw):
    """A rollout server on a free loopback port for the block (``LoopbackRolloutServer``, the class the
    CLI serves with, started and stopped as the CLI does, its weight-sync receivers closed too)."""
    from coordexp.generation.server import LoopbackRolloutServer

    srv = LoopbackRolloutServer(model, tokenizer, **kw).start()
    try:
        yield srv
    finally:
        srv.stop()


@functools.lru_cache(maxsize=1)
def tiny():
    """(model, tokenizer): the seeded tiny Qwen3-VL and the real coord tokenizer (built once per process)."""
    from coordexp.format.coord import load_tokenizer
    from coordexp.smoke.tiny import build_tiny_model

    return build_tiny_model(), load_tokenizer()


def make_image(path: Path, w: int = 64, h: int = 64) -> str:
    from PIL import Image

    Image.new("RGB", (w, h), (40, 120, 200)).save(path)
    return str(path.resolve())


def chat_request(system: str, user: str, images, *, sample: str = "sample") -> dict:
    """A request as production builds one: ``from_messages`` of a system and a user turn
    (image items, then the text)."""
    content = [{"type": "image", "image": p} for p in images] + [{"type": "text", "text": user}]
    return from_messages([{"role": "system", "content": system}, {"role": "user", "content": content}], sample=sample)


def request(image: str | None, user: str = USER) -> dict:
    return chat_request(SYSTEM, user, [image] if image else [])


def reference_greedy(model, prompt_ids, pixel_values, grid, max_new_tokens, repetition_penalty, im_end_id):
    """Greedy decoding by full forwards (no cache) with HF's repetition-penalty rule over all ids so far."""
    import torch

    from coordexp.format.template import IMAGE_TOKEN_ID

    ids = list(prompt_ids)
    gen = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            t = torch.tensor([ids])
            kw = {"input_ids": t, "use_cache": False}
            if pixel_values is not None:
                kw.update(
                    pixel_values=pixel_values,
                    image_grid_thw=grid,
                    mm_token_type_ids=(t == IMAGE_TOKEN_ID).to(torch.int32),
                )
            logits = model(**kw).logits[0, -1].clone()
            seen = torch.tensor(sorted(set(ids)))
            s = logits[seen]
            logits[seen] = torch.where(s < 0, s * repetition_penalty, s / repetition_penalty)
            nxt = int(logits.argmax())
            ids.append(nxt)
            gen.append(nxt)
            if nxt == im_end_id:
                break
    return gen
