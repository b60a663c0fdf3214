"""A tiny stand-in for a `swift rollout` server on 127.0.0.1, for client tests.

It serves the routes the client uses with canned answers. ``script`` is a list of
behaviours consumed one per ``/infer/`` POST (then "ok" forever):
"ok", "drop" (close the connection without answering), "500", "422", "error" (an
``object: "error"`` item), "bad" (a reply without token ids), "slow" (answer after
``slow_s`` seconds). Every ``/infer/`` body received is kept in ``bodies``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROMPT_IDS = [151644, 872, 198, 151645]


def ok_item(i: int, wrap: bool) -> dict:
    resp = {
        "model": "fake", "object": "chat.completion", "id": f"chatcmpl-{i}", "created": 0,
        "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7},
        "prompt_token_ids": PROMPT_IDS,
        "choices": [{"index": 0, "finish_reason": "stop", "token_ids": [90, 92, 151645],
                     "message": {"role": "assistant", "content": "{}"}}],
    }
    return {"response": resp} if wrap else resp


class FakeRolloutServer:
    def __init__(self, script=(), world_size: int = 2, wrap: bool = True, slow_s: float = 0.5):
        self.script = list(script)
        self.world_size = world_size
        self.wrap = wrap
        self.slow_s = slow_s
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep test output clean
                pass

            def _send(self, code: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/health/":
                    self._send(200, {"status": "ok"})
                elif self.path == "/get_world_size/":
                    self._send(200, {"world_size": outer.world_size})
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path != "/infer/":
                    self._send(200, {"message": "ok"} if self.path in ROUTES else {"detail": "Not Found"})
                    return
                with outer.lock:
                    outer.bodies.append(body)
                    what = outer.script.pop(0) if outer.script else "ok"
                n = len(body.get("infer_requests", []))
                if what == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if what == "500":
                    self._send(500, {"detail": "Internal Server Error"})
                elif what == "422":
                    self._send(422, {"detail": "validation error"})
                elif what == "error":
                    self._send(200, [{"object": "error", "message": "CUDA out of memory", "code": 500}] * n)
                elif what == "bad":
                    self._send(200, [{"response": {"choices": [{}]}}] * n)
                else:
                    if what == "slow":
                        time.sleep(outer.slow_s)
                    self._send(200, [ok_item(i, outer.wrap) for i in range(n)])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


ROUTES = ("/init_communicator/", "/close_communicator/", "/update_named_param/", "/update_flattened_params/",
          "/reset_prefix_cache/", "/get_engine_type/")
