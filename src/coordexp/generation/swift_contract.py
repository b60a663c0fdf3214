"""ms-swift 4.6.0's own weight-sync types (no vllm, no CUDA): both sides of the CPU sync build and
parse their bodies and buckets with them, so a body ms-swift's server would refuse is refused here too.
(The validators that check our rollout payloads against ms-swift's types are test oracles:
tests/helpers/swift_oracle.py.)

Importing ``swift.infer_engine.protocol`` takes several seconds (~4,300 modules): this
module imports it lazily, once.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def protocol():
    from swift.infer_engine import protocol as p

    return p


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
