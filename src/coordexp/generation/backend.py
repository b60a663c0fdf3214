"""The one interface the Stage-2 trainer uses to get rollouts, whichever backend makes them.

Channel-B needs, per request: the prompt ids the rollout was generated from (to check
them against the learner's prompt: rollout-server-contract, Learner And Server Prompt Alignment), the generated ids
(the learner trains on
ids, never on re-tokenized text) and, for logs, the text. Both backends return exactly
that as ``RolloutOutput`` (= ``coordexp.generation.response.RolloutResult``):

- ``HFBackend`` (``coordexp.generation.hf_backend``): ``generate`` on a model in this process,
  normally the learner's own model, so no weight sync is needed (the CPU default);
- ``ServerBackend`` (here): a ``swift rollout`` server over HTTP through ``RolloutClient``
  (production: vLLM on separate GPUs; tests and the CPU smoke: ``coordexp.generation.server``).

Both normalise the end of a rollout the same way: when the generated ids hold no
``<|im_end|>`` (the max-token budget ran out), ``<|im_end|>`` is appended, so Channel-B
always sees a closed turn (stage2-ab-training, Append-Ready Rollout Prefix).

Requests are ``RolloutInferRequest``-shaped dicts (``coordexp.generation.request.from_messages``);
decoding knobs are ``DecodeSettings``; seeds are a function of the step's ``seed_base`` and the
request's position (``request_offset`` + index).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol, runtime_checkable

from coordexp.errors import CoordExpError
from coordexp.generation.request import DecodeSettings
from coordexp.generation.response import RolloutResult

# The per-request output of every backend (same fields as the server client returns).
RolloutOutput = RolloutResult

IM_END_ID = 151645  # <|im_end|> in the Qwen3 / Qwen3-VL vocabulary


class RolloutBackendError(CoordExpError, RuntimeError):
    """A backend could not produce rollouts (bad request, length gate, server failure)."""


@runtime_checkable
class RolloutBackend(Protocol):
    """What the trainer calls. ``name`` is "hf" or "vllm" (logged as rollout/backend_<name>)."""

    name: str

    def generate(
        self, requests: Sequence[dict], settings: DecodeSettings, *, seed_base: int, request_offset: int = 0
    ) -> list[RolloutOutput]:
        """One ``RolloutOutput`` per request, in order; never drops a request (raises instead)."""
        ...

    def close(self) -> None: ...


def ensure_eos(out: RolloutOutput, im_end_id: int = IM_END_ID) -> RolloutOutput:
    """Append ``<|im_end|>`` when the rollout holds none (it hit max_new_tokens).

    finish_reason becomes "length" in that case, so the truncation stays visible in logs
    (rollout/parse_truncated) after the EOS is added.
    """
    if im_end_id in out.token_ids:
        return out
    return replace(out, token_ids=list(out.token_ids) + [im_end_id], finish_reason="length")


class ServerBackend:
    """Rollouts from a ``swift rollout`` server (vLLM in production) through ``RolloutClient``.

    ``chunk_size`` is the per-rank chunk (``coordexp.generation.chunking.per_rank_chunk``).
    Weight sync is separate (``coordexp.generation.weight_sync``): production pushes weights
    with ms-swift's ``VLLMClient`` over NCCL; the loopback CPU server takes a safetensors
    body (``coordexp.generation.server``).
    """

    name = "vllm"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 240.0,
        infer_timeout_s: float | None = None,
        chunk_size: int | None = None,
        im_end_id: int = IM_END_ID,
    ):
        from coordexp.generation.client import RolloutClient

        self.client = RolloutClient(base_url, timeout_s=timeout_s, infer_timeout_s=infer_timeout_s)
        self.chunk_size = chunk_size
        self.im_end_id = im_end_id

    def generate(
        self, requests: Sequence[dict], settings: DecodeSettings, *, seed_base: int, request_offset: int = 0
    ) -> list[RolloutOutput]:
        out = self.client.infer(
            list(requests), settings, seed_base=seed_base, request_offset=request_offset, chunk_size=self.chunk_size
        )
        return [ensure_eos(o, self.im_end_id) for o in out]

    def close(self) -> None:
        self.client.close()
