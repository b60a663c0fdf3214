"""Learner/server prompt alignment (openspec/specs/rollout-server-contract, Learner And Server Prompt Alignment).

The Channel-B target is the learner's prompt ids followed by the rollout-derived assistant
ids. If the server tokenized the prompt differently (another chat template, an image
processor that resized the image and changed the ``<|image_pad|>`` count), the rollout
was generated from a different context than the one the learner trains on, and in DDP a
length mismatch can deadlock. So the ids must agree exactly: fail with a message that
says where they diverge and what usually causes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from coordexp.errors import CoordExpError


class PromptMismatchError(CoordExpError, ValueError):
    """The server's prompt token ids differ from the learner's."""


def check_prompt_alignment(
    learner_prompt_ids: Sequence[int],
    server_prompt_ids: Sequence[int],
    learner_prompt_len: int | None = None,
    *,
    sample: str = "sample",
) -> int:
    """Require server ids == learner ids and prompt_len == len(server ids); returns prompt_len."""
    learner = [int(i) for i in learner_prompt_ids]
    server = [int(i) for i in server_prompt_ids]
    plen = len(learner) if learner_prompt_len is None else learner_prompt_len
    if learner == server and plen == len(server):
        return plen
    first = next(
        (i for i, (a, b) in enumerate(zip(learner, server, strict=False)) if a != b), min(len(learner), len(server))
    )
    hint = (
        (
            "the <|image_pad|> count differs: the server's image processor resized the image "
            "(set vllm.mm_processor_kwargs.do_resize: false)"
        )
        if len(learner) != len(server)
        else "the server renders the chat template differently"
    )
    raise PromptMismatchError(
        f"{sample}: prompt tokenization mismatch between learner and rollout server: learner has {len(learner)} "
        f"prompt ids (prompt_len {plen}), server has {len(server)}; first difference at index {first} "
        f"(learner {learner[first : first + 3]}, server {server[first : first + 3]}); likely cause: {hint}"
    )
