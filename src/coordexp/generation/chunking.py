"""How many rollout requests each learner rank sends per ``/infer/`` call.

``decode_batch_size`` is a cap per rollout GPU. With rollout_world = the sum of the
servers' world sizes (``GET /get_world_size/``) and learner_world learner ranks sending
at the same time, each rank's chunk is floor(cap * rollout_world / learner_world): the
servers then never see more than cap requests per GPU at once. When cap * rollout_world
< learner_world a rank would get 0: infeasible, an error that says what to change.
"""

from __future__ import annotations

from coordexp.errors import CoordExpError


class ChunkingError(CoordExpError, ValueError):
    pass


def _pos_int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ChunkingError(f"{what} must be an int >= 1, got {v!r}")
    return v


def per_rank_chunk(decode_batch_size: int, rollout_world: int, learner_world: int) -> int:
    cap = _pos_int(decode_batch_size, "rollout_matching.decode_batch_size")
    rw = _pos_int(rollout_world, "rollout server world size")
    lw = _pos_int(learner_world, "learner world size")
    if cap * rw < lw:
        raise ChunkingError(
            f"rollout_matching.decode_batch_size={cap} x rollout world size {rw} < learner world size {lw}: "
            f"each learner rank would get 0 requests per call; raise decode_batch_size to at least "
            f"{-(-lw // rw)} or add rollout GPUs"
        )
    return cap * rw // lw


def chunks(n_requests: int, chunk: int) -> list[tuple[int, int]]:
    """[start, end) ranges covering 0..n_requests in order."""
    if isinstance(n_requests, bool) or not isinstance(n_requests, int) or n_requests < 0:
        raise ChunkingError(f"request count must be an int >= 0, got {n_requests!r}")
    _pos_int(chunk, "chunk size")
    return [(s, min(s + chunk, n_requests)) for s in range(0, n_requests, chunk)]
