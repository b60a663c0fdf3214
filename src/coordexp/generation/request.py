"""``/infer/`` request building for ms-swift's ``swift rollout`` server (4.6.0 protocol).

Requests are built by ``from_messages`` from ``template.build_messages`` (as
``stage2.trainer.prepare_samples`` and ``infer.runner`` do); ``infer_body`` wraps them for the
POST. An infer request is a ``RolloutInferRequest``-shaped dict: OpenAI-style messages with the
system content a plain string and the user content image items (string paths) then the text;
``images`` (when present) a list of strings. Everything goes through a JSON round trip here, so
what the server receives is exactly what we built and tested (tuples become lists; a PIL image
or any other non-JSON object is refused with the message path).

The request config is the full ``RequestConfig`` field set with n=1, stop at
``<|im_end|>``, ``return_details=True`` (the server then returns ``prompt_token_ids`` and
per-choice ``token_ids``: the learner trains on ids, never on re-tokenized text) and a
non-zero seed (ms-swift treats seed 0 as unset).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from coordexp.errors import CoordExpError
from coordexp.format.template import IM_END

SEED_MASK = 0x7FFFFFFF
STEP_SEED_STRIDE = 1000003  # a prime: consecutive steps get unrelated seed bases


class RequestBuildError(CoordExpError, ValueError):
    """A request that could not be sent as JSON, or that breaks the server contract."""


def norm_seed(s: int) -> int:
    """s & 0x7FFFFFFF, with 0 mapped to 1 (0 means "no seed" to ms-swift)."""
    if isinstance(s, bool) or not isinstance(s, int):
        raise RequestBuildError(f"a seed must be an int, got {s!r}")
    v = s & SEED_MASK
    return v if v != 0 else 1


def seed_base(training_seed: int, global_step: int) -> int:
    """The rollout seed base of an optimizer step: norm(training.seed + step * 1000003)."""
    return norm_seed(training_seed + global_step * STEP_SEED_STRIDE)


def call_seed(base: int, request_offset: int, chunk_start: int) -> int:
    """The seed of one ``/infer/`` call: norm(seed_base + request_offset + chunk_start)."""
    return norm_seed(base + request_offset + chunk_start)


@dataclass(frozen=True)
class DecodeSettings:
    """The learner's decoding knobs (rollout_matching.*) as sent to the server."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1  # -1: off
    repetition_penalty: float = 1.0

    def __post_init__(self):
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise RequestBuildError(f"rollout_matching.max_new_tokens must be an int >= 1, got {self.max_tokens!r}")
        if not self.temperature >= 0:
            raise RequestBuildError(f"rollout_matching.decoding.temperature must be >= 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise RequestBuildError(f"rollout_matching.decoding.top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or not (self.top_k == -1 or self.top_k >= 1):
            raise RequestBuildError(f"rollout_matching.decoding.top_k must be -1 (off) or >= 1, got {self.top_k!r}")
        if not self.repetition_penalty > 0:
            raise RequestBuildError(f"rollout_matching.repetition_penalty must be > 0, got {self.repetition_penalty!r}")

    @classmethod
    def from_decoding(cls, decoding, *, max_tokens: int, repetition_penalty: float) -> DecodeSettings:
        """From a config's ``decoding`` section (temperature, top_p, top_k) and its token cap and penalty."""
        return cls(
            max_tokens=max_tokens,
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            top_k=decoding.top_k,
            repetition_penalty=repetition_penalty,
        )


@dataclass(frozen=True)
class RequestConfigPayload:
    """Every ``RequestConfig`` field of ms-swift 4.6.0, with the values CoordExp sends."""

    max_tokens: int
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    seed: int
    min_p: float | None = None
    num_beams: int = 1
    stop: list = field(default_factory=lambda: [IM_END])
    stream: bool = False
    logprobs: bool = False
    top_logprobs: int | None = None
    prompt_logprobs: int | None = None
    n: int = 1
    best_of: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    length_penalty: float = 1.0
    return_details: bool = True
    structured_outputs_regex: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def request_config(settings: DecodeSettings, seed: int) -> dict:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 1 <= seed <= SEED_MASK:
        raise RequestBuildError(f"a rollout seed must be in 1..{SEED_MASK} (use norm_seed), got {seed!r}")
    return RequestConfigPayload(
        max_tokens=settings.max_tokens,
        temperature=float(settings.temperature),
        top_k=settings.top_k,
        top_p=float(settings.top_p),
        repetition_penalty=float(settings.repetition_penalty),
        seed=seed,
    ).to_dict()


def _json_roundtrip(obj, where: str):
    def refuse(o):
        raise RequestBuildError(
            f"{where}: {type(o).__name__} object is not JSON-serializable; the rollout server "
            "takes image paths as strings (no PIL images or arrays)"
        )

    return json.loads(json.dumps(obj, default=refuse, ensure_ascii=False))  # inventory: json-ok(our own dump)


def from_messages(messages, *, sample: str = "sample") -> dict:
    """A request from chat messages (e.g. ``template.build_messages(..., with_assistant=False)``):
    trailing assistant turns dropped, JSON round-tripped, contract checked."""
    msgs = list(messages)
    while msgs and msgs[-1].get("role") == "assistant":
        msgs.pop()
    req = _json_roundtrip({"messages": msgs}, sample)
    check_infer_request(req, sample=sample)
    return req


def check_infer_request(req: dict, *, sample: str = "sample") -> None:
    """The contract of our requests: system content a string, image items hold strings."""
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise RequestBuildError(f"{sample}: messages must be a non-empty list")
    for m, msg in enumerate(msgs):
        if msg.get("role") == "system" and not isinstance(msg.get("content"), str):
            raise RequestBuildError(f"{sample}: messages[{m}] (system) content must be a plain string")
        content = msg.get("content")
        if isinstance(content, list):
            for c, item in enumerate(content):
                if item.get("type") == "image" and not isinstance(item.get("image"), str):
                    raise RequestBuildError(f"{sample}: messages[{m}].content[{c}].image must be a path string")
    images = req.get("images", [])
    if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
        raise RequestBuildError(f"{sample}: images must be a list of path strings")


def infer_body(requests: list[dict], config: dict) -> dict:
    """The ``/infer/`` POST body."""
    for i, r in enumerate(requests):
        check_infer_request(r, sample=f"infer_requests[{i}]")
    return _json_roundtrip(
        {
            "infer_requests": list(requests),
            "request_config": config,
            "metrics": None,
            "template": None,
            "use_tqdm": None,
            "adapter_request": None,
        },
        "infer body",
    )
