"""The learner's weight-sync client: ms-swift's ``VLLMClient`` on CUDA, its CPU twin elsewhere.

Both expose the methods the sync sequence (``weight_sync.push_full``) calls, with ms-swift
4.6.0's names and semantics (``swift/rlhf_trainers/vllm_client.py``):

- ``init_communicator()``: GET ``/get_world_size/`` (n server ranks), POST
  ``/init_communicator/`` ``{host, port, world_size: n + 1}``, then join the group as rank n
  (the learner is the last rank);
- ``update_flattened_params(metadatas, flattened_tensor)``: POST ``/update_flattened_params/``
  with JSON ``{metadatas: [...]}`` (ms-swift's ``UpdateFlattenedParamsRequest``), then
  broadcast the flattened uint8 tensor from the learner's rank, then a group barrier;
- ``process_weights_after_loading()``, ``reset_prefix_cache()``: one POST each;
- ``close_communicator()``: POST ``/close_communicator/`` (registered with ``atexit`` on init).

Every request carries the run's token (``auth.TOKEN_HEADER``, read from ``COORDEXP_ROLLOUT_TOKEN``,
which the launcher exports): the loopback server refuses weight sync without it; a real ``swift
rollout`` server ignores the header (it checks nothing, docs/stage2.md).

Which one (``choose_transport``, decided when the run is set up, before training): ms-swift's
own ``VLLMClient`` (vLLM's PyNccl communicator) when CUDA is available and vLLM is importable;
that path cannot run on this project's CPU machines and is exercised by the manual vLLM smoke.
Without CUDA, ``GlooSyncClient``: the same HTTP calls and bodies, with the tensor going over a
gloo group (``sync_group``), which only the loopback server speaks. A CUDA learner whose
environment lacks vLLM is refused (``SyncClientError``) unless the launcher started the loopback
server (``COORDEXP_STAGE2_SERVER_IMPL=loopback``): a ``swift rollout`` server would wait for a
PyNccl peer that never comes and the first sync would time out. Only learner rank 0 ever builds
a client (``weight_sync.maybe_sync``).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass, field

import requests

from coordexp.errors import CoordExpError
from coordexp.generation import swift_contract
from coordexp.generation.auth import TOKEN_HEADER, token_from_env
from coordexp.generation.sync_group import DEFAULT_TIMEOUT_S, GlooGroup


class SyncClientError(CoordExpError, RuntimeError):
    """A weight-sync call failed (HTTP status, network, or group operation)."""


@dataclass
class GlooSyncClient:
    base_url: str
    group_port: int = 51216
    host: str = "127.0.0.1"  # where the server hosts the group store (the loopback server's address)
    timeout_s: float = 240.0  # HTTP timeout
    group_timeout_s: float = DEFAULT_TIMEOUT_S
    token: str | None = field(default_factory=token_from_env, repr=False)  # the run's weight-sync token
    group: GlooGroup | None = field(default=None, init=False)
    rank: int | None = field(default=None, init=False)
    _session: requests.Session = field(default_factory=requests.Session, init=False, repr=False)

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        if self.token:
            self._session.headers[TOKEN_HEADER] = self.token

    def _call(self, method: str, route: str, json=None):
        try:
            r = self._session.request(method, f"{self.base_url}{route}", json=json, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise SyncClientError(f"{self.base_url}{route}: {type(exc).__name__}: {exc}") from None
        if r.status_code != 200:
            raise SyncClientError(f"{self.base_url}{route}: HTTP {r.status_code}: {r.text[:300]}")
        return r.json()

    def get_world_size(self) -> int:
        ws = self._call("GET", "/get_world_size/").get("world_size")
        if isinstance(ws, bool) or not isinstance(ws, int) or ws < 1:
            raise SyncClientError(f"{self.base_url}/get_world_size/: expected an int >= 1, got {ws!r}")
        return ws

    def init_communicator(self) -> None:
        n = self.get_world_size()
        self._call(
            "POST", "/init_communicator/", swift_contract.init_communicator_body(self.host, self.group_port, n + 1)
        )
        self.rank = n
        self.group = GlooGroup.create(self.host, self.group_port, n, n + 1, self.group_timeout_s)
        atexit.register(self.close_communicator)

    def update_flattened_params(self, metadatas, flattened_tensor) -> None:
        if self.group is None:
            raise SyncClientError("update_flattened_params before init_communicator")
        self._call("POST", "/update_flattened_params/", swift_contract.update_flattened_params_body(metadatas))
        self.group.broadcast(flattened_tensor, src=self.rank)
        self.group.barrier()

    def process_weights_after_loading(self) -> None:
        self._call("POST", "/process_weights_after_loading/")

    def reset_prefix_cache(self) -> None:
        self._call("POST", "/reset_prefix_cache/")

    def close_communicator(self) -> None:
        """Idempotent; never raises (it also runs at interpreter exit, when the server may be gone)."""
        if self.group is None:
            return
        self.group.close()
        self.group = None
        atexit.unregister(self.close_communicator)
        try:
            self._session.post(f"{self.base_url}/close_communicator/", timeout=min(self.timeout_s, 10.0))
        except requests.RequestException:
            pass  # the server is gone: nothing is left to close on its side
        self._session.close()


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _vllm_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def choose_transport(server_impl: str | None = None) -> str:
    """ "vllm" (ms-swift's ``VLLMClient``) or "gloo" (``GlooSyncClient``), see the module docstring.

    ``server_impl`` defaults to ``COORDEXP_STAGE2_SERVER_IMPL`` (the launcher exports it)."""
    if not _cuda_available():
        return "gloo"
    if _vllm_importable():
        return "vllm"
    impl = os.environ.get("COORDEXP_STAGE2_SERVER_IMPL") if server_impl is None else server_impl
    if impl == "loopback":
        return "gloo"
    raise SyncClientError(
        "the learner runs with CUDA but vLLM is not importable in its environment: ms-swift's weight-sync "
        "client (vLLM's PyNccl communicator) cannot be built, and a `swift rollout` server would wait for it "
        "until its timeout; install vllm where the learner runs (or use the CPU loopback server, "
        "COORDEXP_STAGE2_SERVER_IMPL=loopback)"
    )


def make_sync_client(base_url: str, *, group_port: int, timeout_s: float, host: str, transport: str | None = None):
    """ms-swift's ``VLLMClient`` or ``GlooSyncClient`` for ``transport`` (default ``choose_transport()``);
    not yet initialised."""
    if (transport or choose_transport()) == "vllm":
        from swift.rlhf_trainers.vllm_client import VLLMClient

        client = VLLMClient(base_urls=[base_url], group_ports=[group_port], connection_timeout=timeout_s)
        token = token_from_env()
        for session in client.sessions if token else ():
            session.headers[TOKEN_HEADER] = token
        return client
    return GlooSyncClient(base_url, group_port=group_port, host=host, timeout_s=timeout_s)


def init_client(client) -> None:
    """``init_communicator`` on the learner's device (ms-swift's client takes a CUDA device)."""
    if isinstance(client, GlooSyncClient):
        client.init_communicator()
        return
    import torch

    client.init_communicator(device=torch.cuda.current_device())
