"""Test oracles: our rollout payloads checked against ms-swift 4.6.0's own types (no vllm, no CUDA).

Production never calls these (the server ms-swift runs already parses what we send), so they live with the
tests, not in ``coordexp.generation``: the rollout-server-contract checks run them over what production
builds, sends and receives (the requests of ``request.from_messages``, the client's ``/infer/`` bodies, the
rollout server's answers, the launcher's server command, the server's route table).

- requests: validated as ``RolloutInferRequest`` with pydantic, which is how the server's FastAPI route
  parses ``infer_requests`` (``swift.infer_engine.protocol``);
- request config: its keys must be exactly ``RequestConfig``'s fields, and it must build one;
- responses: answers must validate as ``RolloutOutput``;
- CLI flags: read from ``HfArgumentParser([RolloutArguments])`` (the ``swift rollout`` CLI module itself
  needs vllm, which is CUDA-only);
- routes: parsed from the text of ms-swift's rollout module (importing it imports vllm).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import re
from pathlib import Path

from coordexp.generation.swift_contract import protocol

# The flags the launcher passes to `swift rollout` (rollout-server-contract, Rollout CLI Flags), all RolloutArguments
# fields.
LAUNCHER_FLAGS = (
    "model",
    "host",
    "port",
    "infer_backend",
    "torch_dtype",
    "template",
    "max_pixels",
    "max_length",
    "vllm_data_parallel_size",
    "vllm_tensor_parallel_size",
    "vllm_enforce_eager",
    "vllm_gpu_memory_utilization",
    "vllm_max_model_len",
    "vllm_enable_lora",
    "vllm_enable_prefix_caching",
    "vllm_engine_kwargs",
    "truncation_strategy",
)

# Where ms-swift registers the rollout server's routes, read as text (never imported).
SWIFT_ROLLOUT_MODULE = ("pipelines", "infer", "rollout.py")
_ROUTE_RE = r"self\.app\.(get|post)\(\s*['\"]([^'\"]+)['\"]"


def request_config_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(protocol().RequestConfig))


def validate_infer_request(req: dict):
    """The request as ms-swift's server would parse it (raises pydantic.ValidationError)."""
    from pydantic import TypeAdapter

    return TypeAdapter(protocol().RolloutInferRequest).validate_python(req)


def validate_request_config(config: dict):
    """A request config has exactly ``RequestConfig``'s keys and builds one (raises ValueError or
    pydantic.ValidationError)."""
    fields = set(request_config_fields())
    extra, missing = sorted(set(config) - fields), sorted(fields - set(config))
    if extra or missing:
        raise ValueError(f"request_config keys differ from ms-swift RequestConfig: extra {extra}, missing {missing}")
    from pydantic import TypeAdapter

    return TypeAdapter(protocol().RequestConfig).validate_python(config)


def validate_output(item: dict):
    """One ``/infer/`` answer item as ms-swift's ``RolloutOutput`` (raises pydantic.ValidationError)."""
    return protocol().RolloutOutput.model_validate(item)


@functools.lru_cache(maxsize=1)
def rollout_cli_flags() -> frozenset[str]:
    """The flags ``swift rollout`` accepts, ``RolloutArguments``' fields as ``HfArgumentParser`` reads them."""
    from swift.arguments import RolloutArguments
    from transformers import HfArgumentParser

    parser = HfArgumentParser([RolloutArguments])
    return frozenset(a.dest for a in parser._actions)


def swift_rollout_source() -> str:
    spec = importlib.util.find_spec("swift")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ms-swift is not installed: cannot read the rollout server's routes")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*SWIFT_ROLLOUT_MODULE)
    return path.read_text(encoding="utf-8")


def swift_rollout_routes(source: str | None = None) -> frozenset[tuple[str, str]]:
    """{(METHOD, path)} that ``swift rollout`` serves, parsed from ms-swift's source text."""
    text = swift_rollout_source() if source is None else source
    routes = frozenset((m.upper(), p) for m, p in re.findall(_ROUTE_RE, text))
    if not routes:
        raise RuntimeError(
            "no routes found in ms-swift's rollout module: its registration code changed; re-pin the route list"
        )
    return routes
