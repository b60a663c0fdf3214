"""HTTP client for a ``swift rollout`` server: health, world size, chunked ``/infer/``.

Failure policy of ``/infer/`` (per chunk):
1. a failure is retried once on a fresh session (a dropped keep-alive connection or a
   restarted worker is the common cause);
2. if the retry fails too, the batch is split in half and each half goes through the same
   policy, down to single requests; a single request that still fails raises, naming it.
"A failure" is any of: a network error (connection refused or dropped, timeouts, a
response cut mid-body), an HTTP 5xx, an error object in the answer, or an answer that
breaks the response contract. The reference caught only TypeError/ValueError there, so
a network error skipped the retry and failed the step (openspec/specs/rollout-server-contract, Retry Covers Network
Errors): network errors are
exactly what a retry is for. A 4xx is not retried: our request breaks the server's
contract, and sending it again cannot help.

Seeds stay a function of the request position, not of how the batch was split: the call
covering requests [start, end) of a round uses norm(seed_base + request_offset + start).
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from coordexp.errors import CoordExpError
from coordexp.generation.chunking import chunks, per_rank_chunk
from coordexp.generation.request import DecodeSettings, call_seed, infer_body, request_config
from coordexp.generation.response import RolloutResponseError, RolloutResult, parse_infer_response

# requests wraps urllib3/http.client failures in these; the builtins cover raw socket errors.
NETWORK_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    socket.timeout,
)


class RolloutClientError(CoordExpError, RuntimeError):
    """A rollout request failed for good (after the retry and the batch splits)."""


class RolloutContractError(RolloutClientError):
    """The server refused our request (HTTP 4xx): not retried."""


class _Retryable(Exception):
    def __init__(self, cause: BaseException | str):
        self.cause = cause
        super().__init__(str(cause))


@dataclass
class RolloutClient:
    base_url: str
    timeout_s: float = 240.0  # connect timeout
    infer_timeout_s: float | None = None  # None: no read timeout; t > 0: (min(10, t), t) for /infer/
    session_factory: Callable[[], requests.Session] = requests.Session
    attempts: int = field(default=0, init=False)  # /infer/ POSTs sent (observability and tests)
    _session: requests.Session | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"rollout server base_url must be http(s)://host:port, got {self.base_url!r}")

    # -- sessions
    def _fresh_session(self) -> requests.Session:
        if self._session is not None:
            self._session.close()
        self._session = self.session_factory()
        return self._session

    def _get_session(self) -> requests.Session:
        return self._session if self._session is not None else self._fresh_session()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- simple routes
    def health(self) -> bool:
        try:
            r = self._get_session().get(f"{self.base_url}/health/", timeout=self.timeout_s)
        except NETWORK_ERRORS:
            return False
        return r.status_code == 200

    def world_size(self) -> int:
        try:
            r = self._get_session().get(f"{self.base_url}/get_world_size/", timeout=self.timeout_s)
        except NETWORK_ERRORS as e:
            raise RolloutClientError(f"{self.base_url}/get_world_size/: {type(e).__name__}: {e}") from None
        if r.status_code != 200:
            raise RolloutClientError(f"{self.base_url}/get_world_size/: HTTP {r.status_code}")
        ws = r.json().get("world_size") if isinstance(r.json(), dict) else None
        if isinstance(ws, bool) or not isinstance(ws, int) or ws < 1:
            raise RolloutClientError(
                f'{self.base_url}/get_world_size/: expected {{"world_size": int >= 1}}, got {r.text[:200]!r}'
            )
        return ws

    # -- /infer/
    def _read_timeout(self):
        if self.infer_timeout_s is None:
            return (self.timeout_s, None)
        return (min(10.0, self.infer_timeout_s), self.infer_timeout_s)

    def _post_once(self, session, reqs: list[dict], config: dict) -> list[RolloutResult]:
        self.attempts += 1
        try:
            r = session.post(f"{self.base_url}/infer/", json=infer_body(reqs, config), timeout=self._read_timeout())
        except NETWORK_ERRORS as e:
            raise _Retryable(e) from None
        if 400 <= r.status_code < 500:
            raise RolloutContractError(
                f"{self.base_url}/infer/: HTTP {r.status_code} (request refused, not retried): {r.text[:300]}"
            )
        if r.status_code != 200:
            raise _Retryable(f"HTTP {r.status_code}: {r.text[:300]}")
        try:
            return parse_infer_response(r.json(), len(reqs))
        except (ValueError, RolloutResponseError) as e:  # bad JSON, error object, broken contract
            raise _Retryable(e) from None

    def _infer_range(
        self, reqs: list[dict], settings: DecodeSettings, base: int, offset: int, start: int
    ) -> list[RolloutResult]:
        config = request_config(settings, call_seed(base, offset, start))
        try:
            return self._post_once(self._get_session(), reqs, config)
        except _Retryable:
            pass
        try:  # once more, on a fresh session
            return self._post_once(self._fresh_session(), reqs, config)
        except _Retryable as e:
            last = e
        if len(reqs) == 1:
            cause = last.cause
            what = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else str(cause)
            raise RolloutClientError(
                f"{self.base_url}/infer/: request {offset + start} failed after a retry: {what}"
            ) from None
        half = len(reqs) // 2
        return self._infer_range(reqs[:half], settings, base, offset, start) + self._infer_range(
            reqs[half:], settings, base, offset, start + half
        )

    def infer(
        self,
        reqs: list[dict],
        settings: DecodeSettings,
        *,
        seed_base: int,
        request_offset: int = 0,
        chunk_size: int | None = None,
    ) -> list[RolloutResult]:
        """Rollouts for ``reqs``, in order, sent in chunks of ``chunk_size`` (see chunking)."""
        reqs = list(reqs)
        size = chunk_size if chunk_size is not None else max(1, len(reqs))
        out: list[RolloutResult] = []
        for s, e in chunks(len(reqs), size):
            out.extend(self._infer_range(reqs[s:e], settings, seed_base, request_offset, s))
        return out


def server_chunk_size(
    base_url: str,
    decode_batch_size: int,
    learner_world: int,
    *,
    timeout_s: float = 240.0,
    world_size_of: Callable[[str], int] | None = None,
) -> int:
    """per_rank_chunk with the rollout world size the server reports (``GET /get_world_size/``)."""
    if world_size_of is None:

        def world_size_of(url: str) -> int:
            client = RolloutClient(url, timeout_s=timeout_s)
            try:
                return client.world_size()
            finally:
                client.close()

    return per_rank_chunk(decode_batch_size, world_size_of(base_url), learner_world)
