"""``/infer/`` response validation.

The server answers a JSON list with one item per request, each a chat-completion
response, possibly wrapped as ``{"response": {...}}`` (ms-swift's RolloutOutput). With
``return_details=True`` each carries top-level ``prompt_token_ids`` (non-empty) and
``choices[0].token_ids`` (ints): both are required, because the learner trains on ids.
An item with ``object == "error"`` is an error, never a rollout.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordexp.errors import CoordExpError


class RolloutResponseError(CoordExpError, ValueError):
    """The server's answer breaks the contract (or is an error object)."""


@dataclass(frozen=True)
class RolloutResult:
    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str | None
    finish_reason: str | None


def _ints(v) -> bool:
    return isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v)


def parse_item(item, where: str) -> RolloutResult:
    if not isinstance(item, dict):
        raise RolloutResponseError(f"{where}: expected an object, got {type(item).__name__}")
    if item.get("object") == "error":
        raise RolloutResponseError(f"{where}: server error: {item.get('message', item)}")
    if "response" in item:
        item = item["response"]
        if not isinstance(item, dict):
            raise RolloutResponseError(f"{where}.response: expected an object")
        if item.get("object") == "error":
            raise RolloutResponseError(f"{where}.response: server error: {item.get('message', item)}")
    prompt = item.get("prompt_token_ids")
    if not _ints(prompt) or not prompt:
        raise RolloutResponseError(
            f"{where}: prompt_token_ids missing or empty: the server must be asked with "
            "request_config.return_details=True"
        )
    choices = item.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RolloutResponseError(f"{where}: choices[0] missing")
    c0 = choices[0]
    if not _ints(c0.get("token_ids")):
        raise RolloutResponseError(
            f"{where}: choices[0].token_ids missing or not a list of ints (return_details=True is required)"
        )
    msg = c0.get("message") if isinstance(c0.get("message"), dict) else {}
    text = msg.get("content") if isinstance(msg.get("content"), str) else None
    return RolloutResult(
        prompt_token_ids=list(prompt), token_ids=list(c0["token_ids"]), text=text, finish_reason=c0.get("finish_reason")
    )


def parse_infer_response(payload, n_requests: int) -> list[RolloutResult]:
    if isinstance(payload, dict) and payload.get("object") == "error":
        raise RolloutResponseError(f"/infer/: server error: {payload.get('message', payload)}")
    if not isinstance(payload, list):
        raise RolloutResponseError(f"/infer/: expected a JSON list, got {type(payload).__name__}")
    if len(payload) != n_requests:
        raise RolloutResponseError(f"/infer/: {len(payload)} outputs for {n_requests} requests")
    return [parse_item(item, f"/infer/ output {i}") for i, item in enumerate(payload)]
