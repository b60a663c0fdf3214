"""A loopback rollout server with ``swift rollout``'s HTTP routes, over a local HF model.

    python -m coordexp.rollout.server --model DIR --host 127.0.0.1 --port P

It exists so the CPU smoke, the launcher and the client can be exercised end to end
without vLLM (which is CUDA-only). It serves every route ms-swift 4.6.0's rollout server
registers (``swift_contract.swift_rollout_routes`` reads them from ms-swift's source and
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
- POST ``/init_communicator/``, ``/close_communicator/``, ``/reset_prefix_cache/``,
  ``/reset_encoder_cache/``, ``/reset_mm_cache/``, ``/process_weights_after_loading/`` ->
  ``{"message": ...}`` (a local ``generate`` keeps no cache across requests);
- weights: ``/update_flattened_params/`` and ``/update_named_param/`` take a **safetensors
  body** (``Content-Type: application/x-safetensors``) of named tensors, copied into the
  model under a lock between rollouts. In production the body is only JSON metadata and
  the tensors travel over NCCL from ms-swift's ``VLLMClient``; a JSON body here gets 501
  saying so. The adapter routes answer 501 (adapter sync is single-process only and not
  used by the loopback server: sync mode full).

Only loopback addresses are accepted: the server has no authentication and overwrites
its weights on request.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from coordexp.rollout.backend import RolloutBackendError
from coordexp.rollout.request import SEED_MASK, DecodeSettings, RequestBuildError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SAFETENSORS_TYPE = "application/x-safetensors"


class RequestError(ValueError):
    """A request the server refuses: (HTTP status, message)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def settings_from_config(cfg: dict) -> tuple[DecodeSettings, int]:
    """DecodeSettings and seed from a serialized RequestConfig (what the client sends)."""
    if not isinstance(cfg, dict):
        raise RequestError(422, "request_config: must be an object")
    if cfg.get("return_details") is not True:
        raise RequestError(422, "request_config.return_details must be true: the learner needs prompt_token_ids "
                                "and token_ids")
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
    return {"response": {
        "model": model_name, "object": "chat.completion", "id": f"rollout-{i}", "created": int(time.time()),
        "usage": {"prompt_tokens": len(out.prompt_token_ids), "completion_tokens": len(ids),
                  "total_tokens": len(out.prompt_token_ids) + len(ids)},
        "prompt_token_ids": list(out.prompt_token_ids),
        "choices": [{"index": 0, "finish_reason": out.finish_reason, "token_ids": ids, "logprobs": None,
                     "message": {"role": "assistant", "content": out.text}}],
    }}


class RolloutService:
    """The route logic, independent of the HTTP plumbing (one model, one lock)."""

    def __init__(self, model, tokenizer, *, model_name: str = "coordexp-loopback", max_pixels: int | None = None):
        from coordexp.rollout.hf_backend import HFBackend
        from coordexp.template import MAX_PIXELS

        self.backend = HFBackend(model, tokenizer, max_pixels=max_pixels or MAX_PIXELS)
        self.model = model
        self.model_name = model_name
        self.lock = threading.Lock()  # generation and weight updates never interleave
        self.communicator: dict | None = None
        self.weight_updates = 0  # tensors written (observability and tests)
        self.routes: dict[tuple[str, str], Callable[[Any], Any]] = {
            ("GET", "/health"): self.health,
            ("GET", "/health/"): self.health,
            ("GET", "/get_world_size/"): lambda _b: {"world_size": 1},
            ("GET", "/get_model_state_keys/"): lambda _b: {"keys": sorted(self.model.state_dict())},
            ("POST", "/infer/"): self.infer,
            ("POST", "/get_engine_type/"): lambda _b: {"engine_type": "LLMEngine", "enable_multi_turn": False,
                                                       "use_gym_env": False, "enable_lora": False},
            ("POST", "/init_communicator/"): self.init_communicator,
            ("POST", "/close_communicator/"): self.close_communicator,
            ("POST", "/update_named_param/"): self.update_params,
            ("POST", "/update_flattened_params/"): self.update_params,
            ("POST", "/update_adapter_flattened_param/"): self.adapter_update,
            ("POST", "/update_adapter_param/"): self.adapter_update,
            ("POST", "/process_weights_after_loading/"): lambda _b: {"message": "nothing to process"},
            ("POST", "/reset_prefix_cache/"): lambda _b: {"message": "no prefix cache: status True"},
            ("POST", "/reset_encoder_cache/"): lambda _b: {"message": "no encoder cache: status True"},
            ("POST", "/reset_mm_cache/"): lambda _b: {"message": "no mm cache: status True"},
        }

    @staticmethod
    def health(_body):
        return {"status": "ok"}

    def infer(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("infer_requests"), list):
            raise RequestError(422, "body: expected {\"infer_requests\": [...], \"request_config\": {...}}")
        settings, seed = settings_from_config(body.get("request_config"))
        reqs = body["infer_requests"]
        with self.lock:
            try:
                outs = self.backend.generate(reqs, settings, seed_base=seed)
            except RolloutBackendError as exc:
                raise RequestError(400, str(exc)) from None
        return [chat_completion(i, o, self.model_name) for i, o in enumerate(outs)]

    def init_communicator(self, body):
        if not isinstance(body, dict) or not {"host", "port", "world_size"} <= set(body):
            raise RequestError(422, "body: expected {host, port, world_size}")
        self.communicator = dict(body)
        return {"message": "communicator ready: weights arrive as safetensors bodies over HTTP"}

    def close_communicator(self, _body):
        self.communicator = None
        return {"message": "communicator closed"}

    def update_params(self, tensors):
        import torch

        if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
            raise RequestError(501, "this loopback server takes weights as a safetensors body "
                                    f"(Content-Type: {SAFETENSORS_TYPE}); the JSON metadata form pairs with an NCCL "
                                    "broadcast from ms-swift's VLLMClient, which only a vLLM server joins")
        params = self.model.state_dict(keep_vars=True)  # every name, tied ones included
        for name, t in sorted(tensors.items()):
            if name not in params:
                raise RequestError(400, f"unknown parameter {name!r} (see GET /get_model_state_keys/)")
            if tuple(t.shape) != tuple(params[name].shape):
                raise RequestError(400, f"{name}: shape {tuple(t.shape)} != model shape {tuple(params[name].shape)}")
        with self.lock, torch.no_grad():
            for name, t in sorted(tensors.items()):
                params[name].copy_(t.to(dtype=params[name].dtype, device=params[name].device))
                self.weight_updates += 1
        return {"message": f"updated {len(tensors)} tensors"}

    @staticmethod
    def adapter_update(_body):
        raise RequestError(501, "adapter weight sync is not served by the loopback server; use sync mode full")


def _make_handler(service: RolloutService):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

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
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Type", "").startswith(SAFETENSORS_TYPE):
                from safetensors import SafetensorError
                from safetensors.torch import load

                try:
                    return load(raw)
                except SafetensorError as exc:
                    raise RequestError(400, f"body is not a safetensors file: {exc}") from None
            if not raw:
                return None
            try:
                return json.loads(raw)  # inventory: json-ok(HTTP request body, not CoordJSON)
            except ValueError as exc:
                raise RequestError(400, f"body is not JSON: {exc}") from None

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            fn = service.routes.get((method, path))
            if fn is None:
                known = any(p == path for _m, p in service.routes)
                self._send(405 if known else 404, {"detail": "Method Not Allowed" if known else "Not Found"})
                return
            try:
                body = self._body() if method == "POST" else None
                self._send(200, fn(body))
            except RequestError as exc:
                self._send(exc.status, {"object": "error", "message": str(exc)})

        def do_GET(self):
            self._dispatch("GET")

        def do_POST(self):
            self._dispatch("POST")

    return Handler


class LoopbackRolloutServer:
    """``with LoopbackRolloutServer(model, tok) as srv: srv.url``; port 0 picks a free port."""

    def __init__(self, model, tokenizer, *, host: str = "127.0.0.1", port: int = 0, **kw):
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"--host {host!r}: the loopback rollout server binds only {', '.join(LOOPBACK_HOSTS)}")
        self.service = RolloutService(model, tokenizer, **kw)
        self.httpd = ThreadingHTTPServer((host, port), _make_handler(self.service))
        self.httpd.daemon_threads = True
        self.host, self.port = host, self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> "LoopbackRolloutServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def load_model(model_dir: str):
    """(model, tokenizer) from a local Qwen3-VL folder with the coord tokenizer (never the network)."""
    from coordexp.tiny import is_built, load_tiny

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--model {model_dir}: no config.json here; pass a local model folder "
                                "(the CPU smoke builds one with scripts/tools/build_tiny_model.py)")
    if is_built(path):
        return load_tiny(path)
    from transformers import Qwen3VLForConditionalGeneration

    from coordexp.coord import load_tokenizer

    model = Qwen3VLForConditionalGeneration.from_pretrained(path, local_files_only=True)
    return model.eval(), load_tokenizer(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m coordexp.rollout.server",
                                 description="Loopback rollout server with swift rollout's HTTP routes (CPU/HF).")
    ap.add_argument("--model", required=True, help="local model folder")
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    ap.add_argument("--port", type=int, default=8000, help="port (0 = any free port, printed at start)")
    ap.add_argument("--max_pixels", type=int, default=None, help="image cap (default 786432)")
    args = ap.parse_args(argv)
    if args.host not in LOOPBACK_HOSTS:
        print(f"error: --host {args.host!r}: the loopback rollout server binds only {', '.join(LOOPBACK_HOSTS)}",
              file=sys.stderr)
        return 2
    try:
        model, tok = load_model(args.model)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        srv = LoopbackRolloutServer(model, tok, host=args.host, port=args.port, model_name=str(args.model),
                                    max_pixels=args.max_pixels)
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2

    def _term(_sig, _frm):  # TERM from the launcher: stop serving, exit 0
        threading.Thread(target=srv.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _term)
    print(f"rollout server listening on {srv.url}", flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
