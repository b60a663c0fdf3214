"""Our rollout payloads checked against ms-swift 4.6.0's own types (no vllm, no CUDA).

Two kinds of function live here. The weight-sync bodies and buckets (the second half) are on
the production path: both sides of the CPU sync build and parse them with ms-swift's models.
The validators of the first half (``validate_infer_request``, ``validate_request_config``,
``validate_output``, ``rollout_cli_flags``, ``swift_rollout_routes``) are test oracles: the
server ms-swift runs already parses what we send, so production does not call them; the
rollout-server-contract checks run them over what production builds, sends and receives
(the requests of ``request.from_messages``, the client's ``/infer/`` bodies, the loopback
server's answers, the launcher's server command, the loopback server's route table).

- requests: validated as ``RolloutInferRequest`` with pydantic, which is how the server's
  FastAPI route parses ``infer_requests`` (``swift.infer_engine.protocol``);
- request config: its keys must be exactly ``RequestConfig``'s fields, and it must build one;
- responses: canned answers must validate as ``RolloutOutput`` / ``ChatCompletionResponse``;
- CLI flags: read from ``HfArgumentParser([RolloutArguments])`` (the ``swift rollout`` CLI
  module itself needs vllm, which is CUDA-only).

Importing ``swift.infer_engine.protocol`` takes several seconds (~4,300 modules): this
module imports it lazily, once.
"""

from __future__ import annotations

import dataclasses
import functools

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


@functools.lru_cache(maxsize=1)
def protocol():
    from swift.infer_engine import protocol as p

    return p


def request_config_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(protocol().RequestConfig))


def validate_infer_request(req: dict):
    """Test oracle (an oracle for tests, not called by production): the request as ms-swift's
    server would parse it (raises pydantic.ValidationError)."""
    from pydantic import TypeAdapter

    return TypeAdapter(protocol().RolloutInferRequest).validate_python(req)


def validate_request_config(config: dict):
    """Test oracle (an oracle for tests, not called by production): a request config has exactly
    ``RequestConfig``'s keys and builds one (raises ValueError or pydantic.ValidationError)."""
    fields = set(request_config_fields())
    extra, missing = sorted(set(config) - fields), sorted(fields - set(config))
    if extra or missing:
        raise ValueError(f"request_config keys differ from ms-swift RequestConfig: extra {extra}, missing {missing}")
    from pydantic import TypeAdapter

    return TypeAdapter(protocol().RequestConfig).validate_python(config)


def validate_output(item: dict):
    """Test oracle (an oracle for tests, not called by production): one ``/infer/`` answer item as
    ms-swift's ``RolloutOutput`` (raises pydantic.ValidationError)."""
    return protocol().RolloutOutput.model_validate(item)


@functools.lru_cache(maxsize=1)
def rollout_cli_flags() -> frozenset[str]:
    """Test oracle (an oracle for tests, not called by production): the flags ``swift rollout``
    accepts, ``RolloutArguments``' fields as ``HfArgumentParser`` reads them."""
    from swift.arguments import RolloutArguments
    from transformers import HfArgumentParser

    parser = HfArgumentParser([RolloutArguments])
    return frozenset(a.dest for a in parser._actions)


# Where ms-swift registers the rollout server's routes. The module imports vllm at load
# time, so it is read as text, never imported.
SWIFT_ROLLOUT_MODULE = ("pipelines", "infer", "rollout.py")
_ROUTE_RE = r"self\.app\.(get|post)\(\s*['\"]([^'\"]+)['\"]"


def swift_rollout_source() -> str:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("swift")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ms-swift is not installed: cannot read the rollout server's routes")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*SWIFT_ROLLOUT_MODULE)
    return path.read_text(encoding="utf-8")


def swift_rollout_routes(source: str | None = None) -> frozenset[tuple[str, str]]:
    """Test oracle (an oracle for tests, not called by production): {(METHOD, path)} that
    ``swift rollout`` serves, parsed from ms-swift's source text."""
    import re

    text = swift_rollout_source() if source is None else source
    routes = frozenset((m.upper(), p) for m, p in re.findall(_ROUTE_RE, text))
    if not routes:
        raise RuntimeError(
            "no routes found in ms-swift's rollout module: its registration code changed; re-pin the route list"
        )
    return routes


# ----------------------------------------------------------------------------- weight sync
# ms-swift's weight-sync request models and bucket class (``swift.rlhf_trainers.utils`` and
# ``swift.infer_engine.protocol``): pydantic models and a plain class, importable without vLLM.
# Both sides of our CPU sync build and parse bodies with them, so a body ms-swift's server
# would refuse is refused here too.


@functools.lru_cache(maxsize=1)
def sync_models():
    """(InitCommunicatorRequest, UpdateFlattenedParamsRequest, FlattenedTensorMetadata, FlattenedTensorBucket)."""
    from swift.rlhf_trainers.utils import FlattenedTensorBucket, FlattenedTensorMetadata, UpdateFlattenedParamsRequest

    return (
        protocol().InitCommunicatorRequest,
        UpdateFlattenedParamsRequest,
        FlattenedTensorMetadata,
        FlattenedTensorBucket,
    )


def init_communicator_body(host: str, port: int, world_size: int) -> dict:
    init_req = sync_models()[0]
    return init_req(host=host, port=port, world_size=world_size).model_dump(mode="json")


def update_flattened_params_body(metadatas) -> dict:
    """The JSON body of ``/update_flattened_params/`` as ms-swift's client sends it."""
    req = sync_models()[1]
    return req(metadatas=list(metadatas)).model_dump(mode="json")


def parse_init_communicator(body):
    """``InitCommunicatorRequest`` (raises pydantic.ValidationError, as the FastAPI route would)."""
    return sync_models()[0].model_validate(body)


def parse_update_flattened_params(body):
    """``UpdateFlattenedParamsRequest`` (raises pydantic.ValidationError)."""
    return sync_models()[1].model_validate(body)


def flattened_bucket(named_tensors: list):
    """ms-swift's ``FlattenedTensorBucket`` over [(name, tensor), ...] (one uint8 tensor + metadata)."""
    return sync_models()[3](named_tensors=named_tensors)


def reconstruct(metadatas, flattened_tensor) -> dict:
    return sync_models()[3](metadata=list(metadatas), flattened_tensor=flattened_tensor).reconstruct_tensors()
