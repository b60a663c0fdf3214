"""The per-run token that lets only the learner that started a run change the rollout server's weights.

The stage_2 launcher generates one token per run (``new_token``) and exports it as ``TOKEN_ENV`` to
both processes it starts, the rollout server and the learner (an environment variable, which other
users cannot read, unlike a command line). The learner's weight-sync client sends it in the
``TOKEN_HEADER`` header of every request; the loopback server compares it in constant time on every
weight-sync route (``WEIGHT_SYNC_ROUTES``) and answers 401, changing nothing, when it is missing or
wrong. Routes and bodies stay ms-swift's: the header is the only addition.

A real ``swift rollout`` server checks no token at all (docs/stage2.md): it must stay on loopback or
a private network.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping

TOKEN_ENV = "COORDEXP_ROLLOUT_TOKEN"
TOKEN_HEADER = "X-Coordexp-Rollout-Token"

# The routes that change the server's weights or its weight-sync group (ms-swift 4.6.0's names).
WEIGHT_SYNC_ROUTES = frozenset(
    {
        "/init_communicator/",
        "/close_communicator/",
        "/update_named_param/",
        "/update_flattened_params/",
        "/update_adapter_flattened_param/",
        "/update_adapter_param/",
        "/process_weights_after_loading/",
    }
)


def new_token() -> str:
    """256 random bits, URL-safe (it travels in a header)."""
    return secrets.token_urlsafe(32)


def token_from_env(env: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if env is None else env).get(TOKEN_ENV, "").strip()
    return value or None


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison, so the answer's timing says nothing about how much of a guess was right."""
    return hmac.compare_digest(expected.encode("utf-8"), (given or "").encode("utf-8", "surrogateescape"))
