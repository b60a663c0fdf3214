"""A loopback rollout server with ``swift rollout``'s HTTP routes, over a local HF model.

    python -m coordexp.generation.server --model DIR --host 127.0.0.1 --port P

It exists so the CPU smoke, the launcher and the client can be exercised end to end
without vLLM (which is CUDA-only). It serves every route ms-swift 4.6.0's rollout server
registers (a test oracle reads them from ms-swift's source and
the checks require the sets to be equal), with the same request and response shapes:

- GET ``/health``, ``/health/`` -> ``{"status": "ok"}``; GET ``/get_world_size/`` ->
  ``{"world_size": 1}``; GET ``/get_model_state_keys/`` -> ``{"keys": [...]}``;
- POST ``/infer/``: ``{"infer_requests": [...], "request_config": {...}}`` -> a list of
  ``{"response": chat-completion}`` with top-level ``prompt_token_ids`` and
  ``choices[0].token_ids`` (``return_details`` must be true). Request j of a call with seed
  s is generated with seed norm(s + j), which makes a chunked call reproduce the
  in-process ``HFBackend``. As with vLLM, a rollout cut by max_tokens comes back without
  ``<|im_end|>`` and with finish_reason "length" (the learner's backend appends it);
- POST ``/get_engine_type/`` -> ``{"engine_type": "LLMEngine", "enable_lora": false, ...}``;
- POST ``/reset_prefix_cache/``, ``/reset_encoder_cache/``, ``/reset_mm_cache/`` ->
  ``{"message": ...}`` (a local ``generate`` keeps no cache across requests);
- weight sync, ms-swift 4.6.0's protocol (``swift/pipelines/infer/rollout.py``), bodies parsed
  with ms-swift's own pydantic models (``swift_contract``): POST ``/init_communicator/``
  ``InitCommunicatorRequest`` starts one receiver thread per server rank (``--world_size``,
  default 1), each joining the gloo group (``sync_group``) as ranks 0..n-1 with the learner as
  rank n; POST ``/update_flattened_params/`` ``UpdateFlattenedParamsRequest`` (JSON metadata
  only; a safetensors or other non-JSON body is refused) is checked against the model (names,
  shapes, dtypes, contiguous byte ranges), answered at once, and each rank then receives the
  flattened tensor by broadcast and waits at the barrier; rank 0 writes the tensors into the
  model under the lock. POST ``/process_weights_after_loading/`` waits for every bucket, answers
  500 naming a failed one (a missing barrier or broadcast times out) and logs the sha256 of the
  synced tensors (``weight_sync.digest``, the learner logs the same); ``/infer/`` also waits
  for pending buckets, so no rollout runs on half-written weights. POST
  ``/close_communicator/`` stops the receivers. ``/update_named_param/`` and the adapter routes
  answer 501: the learner syncs flattened buckets in full mode only.

Only loopback addresses are accepted, and the weight-sync routes (``auth.WEIGHT_SYNC_ROUTES``)
answer only the learner that started the run: the per-run token the launcher exports as
``COORDEXP_ROLLOUT_TOKEN`` must come in the ``X-Coordexp-Rollout-Token`` header, compared in constant
time; a missing or wrong one is 401 and changes nothing. Started without the variable, the server
makes a token it tells no one: weight sync is then closed, ``/infer/`` still served.

Requests are input, possibly hostile: a ``Content-Length`` that is not a decimal byte count, a body
past ``MAX_BODY_BYTES``, a chunked body, JSON that is not JSON or nests too deep, and bodies of the
wrong shape get a 4xx with a message; an image that is not a regular file (a FIFO or a device would
block the read) is refused before the generation lock is taken; a connection that stops sending
times out after ``REQUEST_TIMEOUT_S``. A bug in a route is a 500 with one line, never a traceback
on the server's stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from coordexp.errors import CoordExpError
from coordexp.generation.auth import TOKEN_HEADER, WEIGHT_SYNC_ROUTES, new_token, token_from_env, token_matches
from coordexp.generation.backend import RolloutBackendError
from coordexp.generation.request import SEED_MASK, DecodeSettings, RequestBuildError, check_infer_request

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
JSON_TYPE = "application/json"
MAX_BODY_BYTES = 64 * 1024 * 1024  # the largest body a route takes (weight metadata of a big model is a few MB)
REQUEST_TIMEOUT_S = 30.0  # a client silent this long mid-request is dropped


class RequestError(CoordExpError, ValueError):
    """A request the server refuses: (HTTP status, message)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def settings_from_config(cfg: dict) -> tuple[DecodeSettings, int]:
    """DecodeSettings and seed from a serialized RequestConfig (what the client sends)."""
    if not isinstance(cfg, dict):
        raise RequestError(422, "request_config: must be an object")
    if cfg.get("return_details") is not True:
        raise RequestError(
            422, "request_config.return_details must be true: the learner needs prompt_token_ids and token_ids"
        )
    if cfg.get("n", 1) != 1 or cfg.get("num_beams", 1) != 1:
        raise RequestError(422, "request_config: only n=1 and num_beams=1 are served")
    stop = cfg.get("stop") or []
    if any(s != "<|im_end|>" for s in stop):
        raise RequestError(422, f"request_config.stop: only <|im_end|> is served, got {stop!r}")
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 1 <= seed <= SEED_MASK:
        raise RequestError(422, f"request_config.seed must be in 1..{SEED_MASK}, got {seed!r}")
    max_tokens = cfg.get("max_tokens")
    try:
        s = DecodeSettings(
            max_tokens=max_tokens,
            temperature=float(cfg.get("temperature") if cfg.get("temperature") is not None else 0.0),
            top_p=float(cfg.get("top_p") if cfg.get("top_p") is not None else 1.0),
            top_k=cfg.get("top_k") if cfg.get("top_k") is not None else -1,
            repetition_penalty=float(cfg.get("repetition_penalty") or 1.0),
        )
    except (RequestBuildError, TypeError, ValueError) as exc:
        raise RequestError(422, f"request_config: {exc}") from None
    return s, seed


def chat_completion(i: int, out, model_name: str) -> dict:
    ids = list(out.token_ids)
    if out.finish_reason == "length" and ids and ids[-1] == 151645:
        ids = ids[:-1]  # as vLLM: a length cut carries no <|im_end|>
    return {
        "response": {
            "model": model_name,
            "object": "chat.completion",
            "id": f"rollout-{i}",
            "created": int(time.time()),
            "usage": {
                "prompt_tokens": len(out.prompt_token_ids),
                "completion_tokens": len(ids),
                "total_tokens": len(out.prompt_token_ids) + len(ids),
            },
            "prompt_token_ids": list(out.prompt_token_ids),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": out.finish_reason,
                    "token_ids": ids,
                    "logprobs": None,
                    "message": {"role": "assistant", "content": out.text},
                }
            ],
        }
    }


class RolloutService:
    """The route logic, independent of the HTTP plumbing (one model, one lock)."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        model_name: str = "coordexp-loopback",
        max_pixels: int | None = None,
        world_size: int = 1,
        group_timeout_s: float | None = None,
        token: str | None = None,
        log: Callable[[str], None] = lambda m: print(m, flush=True),
    ):
        from coordexp.format.template import MAX_PIXELS
        from coordexp.generation.hf_backend import HFBackend
        from coordexp.generation.sync_group import DEFAULT_TIMEOUT_S

        if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
        self.backend = HFBackend(model, tokenizer, max_pixels=max_pixels or MAX_PIXELS)
        self.model = model
        self.model_name = model_name
        self.world_size = world_size
        self.group_timeout_s = group_timeout_s or DEFAULT_TIMEOUT_S
        self.log = log
        self.token = token or new_token()  # without a token from the launcher, weight sync is closed
        self.lock = threading.Lock()  # generation and weight updates never interleave
        self.receivers: list[_Receiver] = []
        self.pending = threading.Condition()  # guards _pending and sync_errors
        self._pending = 0
        self.sync_errors: list[str] = []
        self._synced: set[str] = set()
        self.buckets_received = 0
        self.weight_updates = 0  # tensors written (observability and tests)
        self.sync_digests: list[str] = []  # sha256 of the synced tensors, one per process_weights_after_loading
        self.calls: list[tuple[str, str]] = []  # (method, path) of every request, in arrival order
        self.routes: dict[tuple[str, str], Callable[[Any], Any]] = {
            ("GET", "/health"): self.health,
            ("GET", "/health/"): self.health,
            ("GET", "/get_world_size/"): lambda _b: {"world_size": self.world_size},
            ("GET", "/get_model_state_keys/"): lambda _b: {"keys": sorted(self.model.state_dict())},
            ("POST", "/infer/"): self.infer,
            ("POST", "/get_engine_type/"): lambda _b: {
                "engine_type": "LLMEngine",
                "enable_multi_turn": False,
                "use_gym_env": False,
                "enable_lora": False,
            },
            ("POST", "/init_communicator/"): self.init_communicator,
            ("POST", "/close_communicator/"): self.close_communicator,
            ("POST", "/update_named_param/"): self.not_served,
            ("POST", "/update_flattened_params/"): self.update_flattened_params,
            ("POST", "/update_adapter_flattened_param/"): self.not_served,
            ("POST", "/update_adapter_param/"): self.not_served,
            ("POST", "/process_weights_after_loading/"): self.process_weights_after_loading,
            ("POST", "/reset_prefix_cache/"): lambda _b: {"message": "no prefix cache: status True"},
            ("POST", "/reset_encoder_cache/"): lambda _b: {"message": "no encoder cache: status True"},
            ("POST", "/reset_mm_cache/"): lambda _b: {"message": "no mm cache: status True"},
        }

    @staticmethod
    def health(_body):
        return {"status": "ok"}

    def infer(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("infer_requests"), list):
            raise RequestError(422, 'body: expected {"infer_requests": [...], "request_config": {...}}')
        settings, seed = settings_from_config(body.get("request_config"))
        reqs = body["infer_requests"]
        check_requests(reqs)  # outside the lock: a bad request never holds up generation
        self._wait_for_buckets()
        with self.lock:
            try:
                outs = self.backend.generate(reqs, settings, seed_base=seed)
            except RolloutBackendError as exc:
                raise RequestError(400, str(exc)) from None
        return [chat_completion(i, o, self.model_name) for i, o in enumerate(outs)]

    # -- weight sync
    def init_communicator(self, body):
        from pydantic import ValidationError

        from coordexp.generation.swift_contract import parse_init_communicator

        try:
            req = parse_init_communicator(body)
        except ValidationError as exc:
            raise RequestError(422, f"/init_communicator/: {_pydantic_errors(exc)}") from None
        if req.world_size != self.world_size + 1:
            raise RequestError(
                422,
                f"/init_communicator/: world_size {req.world_size} != server ranks "
                f"{self.world_size} + 1 (the learner is the last rank)",
            )
        if req.host not in LOOPBACK_HOSTS:
            raise RequestError(
                422,
                f"/init_communicator/: host {req.host!r}: the loopback server hosts the group "
                f"only on {', '.join(LOOPBACK_HOSTS)}",
            )
        self.close_communicator(None)  # a new learner replaces a previous group
        self.receivers = [_Receiver(self, r, req.host, req.port, req.world_size) for r in range(self.world_size)]
        for rec in self.receivers:
            rec.start()
        self.log(
            f"rollout server: weight-sync group on {req.host}:{req.port}, {req.world_size} ranks "
            f"(the learner is rank {req.world_size - 1})"
        )
        return {"message": "Request received, initializing communicator"}

    def close_communicator(self, _body):
        for rec in self.receivers:
            rec.stop()
        self.receivers = []
        return {"message": "communicator closed"}

    def update_flattened_params(self, body):
        from pydantic import ValidationError

        from coordexp.generation.swift_contract import parse_update_flattened_params

        if not self.receivers:
            raise RequestError(409, "/update_flattened_params/: no communicator: POST /init_communicator/ first")
        try:
            req = parse_update_flattened_params(body)
        except ValidationError as exc:
            raise RequestError(422, f"/update_flattened_params/: {_pydantic_errors(exc)}") from None
        check_metadatas(req.metadatas, self.model.state_dict())
        with self.pending:
            self._pending += len(self.receivers)
        for rec in self.receivers:
            rec.jobs.put(list(req.metadatas))
        return {"message": "Request received, updating flattened parameters"}

    def apply_bucket(self, metadatas, flat) -> None:
        """Rank 0: write a received bucket into the model (ms-swift's reconstruct, then copy)."""
        import torch

        from coordexp.generation.swift_contract import reconstruct

        named = reconstruct(metadatas, flat)
        params = self.model.state_dict(keep_vars=True)  # every name, tied ones included
        with self.lock, torch.no_grad():
            for name, t in named.items():
                params[name].copy_(t.to(device=params[name].device))
                self.weight_updates += 1
                self._synced.add(name)
        self.buckets_received += 1

    def bucket_done(self, error: str | None) -> None:
        with self.pending:
            self._pending -= 1
            if error is not None:
                self.sync_errors.append(error)
            self.pending.notify_all()

    def _wait_for_buckets(self) -> None:
        with self.pending:
            done = self.pending.wait_for(lambda: self._pending == 0, timeout=self.group_timeout_s * 2 + 5)
            errors, self.sync_errors = self.sync_errors, []
        if not done:
            raise RequestError(500, f"weight buckets still pending after {self.group_timeout_s * 2 + 5:g} s")
        if errors:
            raise RequestError(500, "weight sync failed: " + "; ".join(errors))

    def process_weights_after_loading(self, _body):
        from coordexp.generation.weight_sync import digest

        self._wait_for_buckets()
        with self.lock:
            params = self.model.state_dict()
            d = digest({n: params[n] for n in self._synced})
            n, self._synced = len(self._synced), set()
        self.sync_digests.append(d)
        self.log(f"rollout server: weights after sync {len(self.sync_digests)}: {n} tensors, sha256 {d}")
        return {"message": "weights processed"}

    @staticmethod
    def not_served(_body):
        raise RequestError(
            501,
            "not served by the loopback server: the learner syncs flattened buckets in full mode "
            "(/update_flattened_params/)",
        )


def check_requests(reqs: list) -> None:
    """Refuse (400) infer requests of the wrong shape, and image paths that are not regular files:
    opening a FIFO or a device would block while holding the generation lock."""
    for i, req in enumerate(reqs):
        where = f"infer_requests[{i}]"
        if not isinstance(req, dict):
            raise RequestError(400, f"{where}: must be an object, got {type(req).__name__}")
        msgs = req.get("messages")
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            raise RequestError(400, f"{where}.messages: must be a non-empty list of objects")
        for m, msg in enumerate(msgs):
            content = msg.get("content")
            if not isinstance(content, (str, list)) or (
                isinstance(content, list) and not all(isinstance(c, dict) for c in content)
            ):
                raise RequestError(400, f"{where}.messages[{m}].content: must be a string or a list of objects")
        try:
            check_infer_request(req, sample=where)
        except RequestBuildError as exc:
            raise RequestError(400, str(exc)) from None
        items = [c for msg in msgs if isinstance(msg["content"], list) for c in msg["content"]]
        for path in [c["image"] for c in items if c.get("type") == "image"] + list(req.get("images") or []):
            check_image_file(path, where)


def check_image_file(path: str, where: str) -> None:
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise RequestError(
            400, f"{where}: image {path!r}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise RequestError(400, f"{where}: image {path!r}: not a regular file (a FIFO, device or folder is refused)")


def _pydantic_errors(exc) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])


def check_metadatas(metadatas, params: dict) -> None:
    """Refuse (400) a bucket that cannot be written into the model: unknown name, shape or dtype
    unlike the model's, byte ranges that are not contiguous from 0 or disagree with the shape."""
    import math

    import torch

    if not metadatas:
        raise RequestError(400, "/update_flattened_params/: empty metadatas")
    pos = 0
    for i, m in enumerate(metadatas):
        where = f"/update_flattened_params/: metadatas[{i}] {m.name!r}"
        if m.name not in params:
            raise RequestError(400, f"{where}: unknown parameter (see GET /get_model_state_keys/)")
        p = params[m.name]
        if tuple(m.shape) != tuple(p.shape):
            raise RequestError(400, f"{where}: shape {tuple(m.shape)} != model shape {tuple(p.shape)}")
        dtype = getattr(torch, m.dtype.split(".")[-1], None)
        if not isinstance(dtype, torch.dtype) or dtype != p.dtype:
            raise RequestError(400, f"{where}: dtype {m.dtype!r} != model dtype {p.dtype}")
        nbytes = math.prod(m.shape) * p.element_size()
        if m.start_idx != pos or m.end_idx - m.start_idx != nbytes or m.numel != nbytes:
            raise RequestError(
                400,
                f"{where}: byte range [{m.start_idx}, {m.end_idx}) numel {m.numel} does not "
                f"follow {pos} with {nbytes} bytes",
            )
        pos = m.end_idx


class _Receiver:
    """One server rank of the weight-sync group: receives each bucket by broadcast, then the
    barrier; rank 0 writes it into the model. Jobs run in order, as vLLM's worker runs RPCs."""

    def __init__(self, service: RolloutService, rank: int, host: str, port: int, world_size: int):
        import queue

        self.service, self.rank = service, rank
        self.host, self.port, self.world_size = host, port, world_size
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"weight-sync-rank{rank}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=self.service.group_timeout_s + 5)

    def _run(self) -> None:
        import torch

        from coordexp.generation.sync_group import GlooGroup, SyncGroupError

        group = None
        try:
            group = GlooGroup.create(self.host, self.port, self.rank, self.world_size, self.service.group_timeout_s)
        except SyncGroupError as exc:
            self.service.log(f"rollout server: rank {self.rank}: {exc}")
        src = self.world_size - 1  # the learner
        bucket = 0
        while True:
            metadatas = self.jobs.get()
            if metadatas is None:
                break
            bucket += 1
            error = None
            try:
                if group is None:
                    raise SyncGroupError("the weight-sync group never formed")
                flat = torch.empty(metadatas[-1].end_idx, dtype=torch.uint8)
                group.broadcast(flat, src=src)
                group.barrier()
                if self.rank == 0:
                    self.service.apply_bucket(metadatas, flat)
            except SyncGroupError as exc:
                error = f"bucket {bucket} (rank {self.rank}): {exc}"
            self.service.bucket_done(error)
        if group is not None:
            group.close()


def _make_handler(service: RolloutService, request_timeout_s: float = REQUEST_TIMEOUT_S):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = request_timeout_s  # socket timeout: a silent client cannot hold a thread forever

        def log_message(self, *a):  # requests are not logged line by line
            pass

        def _send(self, code: int, obj) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self):
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise RequestError(411, "chunked bodies are not served: send a Content-Length")
            length = self.headers.get("Content-Length")
            if length is None:
                return None
            length = length.strip()
            if not (length.isascii() and length.isdigit()):
                self.close_connection = True  # the body's end is unknown: nothing after it can be read
                raise RequestError(400, f"Content-Length {length[:40]!r}: must be a decimal byte count")
            if int(length) > MAX_BODY_BYTES:
                self.close_connection = True
                raise RequestError(413, f"Content-Length {length[:40]}: bodies are at most {MAX_BODY_BYTES} bytes")
            try:
                raw = self.rfile.read(int(length))
            except TimeoutError:
                self.close_connection = True
                raise RequestError(408, f"body not received within {request_timeout_s:g} s") from None
            if len(raw) < int(length):
                self.close_connection = True
                raise RequestError(400, f"body ended after {len(raw)} of {length} bytes")
            if not raw:
                return None
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
            if ctype != JSON_TYPE:
                raise RequestError(
                    415,
                    f"body Content-Type {ctype or 'none'!r}: the routes take JSON ({JSON_TYPE}); "
                    "weights travel by the weight-sync group's broadcast, never in a body",
                )
            try:
                return json.loads(raw)  # inventory: json-ok(HTTP request body, not CoordJSON)
            except ValueError as exc:  # UnicodeDecodeError and over-long integers included
                raise RequestError(400, f"body is not JSON: {str(exc)[:200]}") from None
            except RecursionError:
                raise RequestError(400, "body JSON nests too deep") from None

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            service.calls.append((method, path))
            fn = service.routes.get((method, path))
            if fn is None:
                known = any(p == path for _m, p in service.routes)
                self._send(405 if known else 404, {"detail": "Method Not Allowed" if known else "Not Found"})
                return
            try:
                if path in WEIGHT_SYNC_ROUTES and not token_matches(service.token, self.headers.get(TOKEN_HEADER)):
                    self.close_connection = True  # the body is never read
                    raise RequestError(
                        401,
                        f"{path}: weight sync needs the run's token in the {TOKEN_HEADER} header "
                        "(the launcher exports it as COORDEXP_ROLLOUT_TOKEN to the learner and the server)",
                    )
                body = self._body() if method == "POST" else None
                self._send(200, fn(body))
            except RequestError as exc:
                self._send(exc.status, {"object": "error", "message": str(exc)})
            except Exception as exc:  # a bug in a route: one line here and in the answer, never a traceback
                self.close_connection = True
                message = f"{method} {path}: internal error: {type(exc).__name__}: {str(exc)[:300]}"
                service.log(f"rollout server: {message}")
                self._send(500, {"object": "error", "message": message})

        def do_GET(self):
            self._dispatch("GET")

        def do_POST(self):
            self._dispatch("POST")

    return Handler


class _Server(ThreadingHTTPServer):
    """socketserver prints a traceback for an error outside a route (a client gone mid-answer): one line."""

    daemon_threads = True
    log: Callable[[str], None] = staticmethod(lambda m: print(m, file=sys.stderr, flush=True))

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        self.log(f"rollout server: connection from {client_address[0]} dropped: {type(exc).__name__}: {exc}")


# What stops the CLI's server (the launcher sends TERM to its process group).
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


class LoopbackRolloutServer:
    """``srv = LoopbackRolloutServer(model, tok).start()``, ``srv.url``, ``srv.stop()``; port 0 picks a free port."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        **kw,
    ):
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"--host {host!r}: the loopback rollout server binds only {', '.join(LOOPBACK_HOSTS)}")
        self.service = RolloutService(model, tokenizer, **kw)
        self.token = self.service.token
        self.httpd = _Server((host, port), _make_handler(self.service, request_timeout_s))
        self.httpd.log = self.service.log
        self.host, self.port = host, self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> LoopbackRolloutServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self, *, close_sync: bool = True) -> None:
        """Stop serving; ``close_sync`` also stops the weight-sync receivers (a process that keeps running)."""
        if close_sync:
            self.service.close_communicator(None)
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def load_model(model_dir: str):
    """(model, tokenizer) from a local Qwen3-VL folder with the coord tokenizer (never the network)."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"--model {model_dir}: no config.json here; pass a local model folder "
            "(the CPU smoke builds one with scripts/tools/build_tiny_model.py)"
        )
    from transformers import Qwen3VLForConditionalGeneration

    from coordexp.format.coord import load_tokenizer

    model = Qwen3VLForConditionalGeneration.from_pretrained(path, local_files_only=True)
    return model.eval(), load_tokenizer(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m coordexp.generation.server",
        description="Loopback rollout server with swift rollout's HTTP routes (CPU/HF).",
    )
    ap.add_argument("--model", required=True, help="local model folder")
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    ap.add_argument("--port", type=int, default=8000, help="port (0 = any free port, printed at start)")
    ap.add_argument("--max_pixels", type=int, default=None, help="image cap (default: format.template.MAX_PIXELS)")
    ap.add_argument("--template", default="qwen3_vl", help="chat template (only qwen3_vl is rendered here)")
    ap.add_argument(
        "--do_resize",
        default="false",
        choices=("true", "false"),
        help="image processor resize (the learner never resizes: only false is served)",
    )
    ap.add_argument(
        "--world_size",
        type=int,
        default=1,
        help="server ranks in the weight-sync group, as /get_world_size/ reports (default 1)",
    )
    ap.add_argument("--group_timeout_s", type=float, default=None, help="weight-sync group timeout (default 60)")
    args = ap.parse_args(argv)
    if args.template != "qwen3_vl" or args.do_resize != "false":
        print(
            f"error: --template {args.template} --do_resize {args.do_resize}: the loopback server renders "
            "coordexp's qwen3_vl template with an image processor that never resizes (the learner's)",
            file=sys.stderr,
        )
        return 2
    if args.host not in LOOPBACK_HOSTS:
        print(
            f"error: --host {args.host!r}: the loopback rollout server binds only {', '.join(LOOPBACK_HOSTS)}",
            file=sys.stderr,
        )
        return 2
    try:
        model, tok = load_model(args.model)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        srv = LoopbackRolloutServer(
            model,
            tok,
            host=args.host,
            port=args.port,
            model_name=str(args.model),
            max_pixels=args.max_pixels,
            world_size=args.world_size,
            group_timeout_s=args.group_timeout_s,
            token=token_from_env(),
        )
    except ValueError as exc:
        print(f"error: --world_size: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2

    # ms-swift's weight-sync models take seconds to import: load them while the learner starts up
    from coordexp.generation.swift_contract import sync_models

    threading.Thread(target=sync_models, name="import-sync-models", daemon=True).start()
    if token_from_env() is None:
        print(
            "rollout server: COORDEXP_ROLLOUT_TOKEN is not set: the weight-sync routes answer 401 "
            "(the stage_2 launcher sets it)",
            flush=True,
        )
    # The same start/stop as the tests' in-process servers: serve on a thread, stop on TERM (the launcher) or INT.
    # The handler only sets an event; the main thread polls it, since a signal that lands on another thread
    # would not wake a wait without a timeout.
    stopping = threading.Event()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda _sig, _frm: stopping.set())
    srv.start()
    print(f"rollout server listening on {srv.url}", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
        srv.service.log("rollout server: stopping")
    finally:
        # the weight-sync group goes with the process: once a sync has run, tearing the gloo group down
        # held the exit past the launcher's 3 s grace before KILL (measured), and its learner is gone by now
        srv.stop(close_sync=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
