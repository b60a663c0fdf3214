"""Pushing the learner's weights to the rollout server, and the DDP-safe control flow around it.

Control flow (rollout-server-contract, Weight Sync On ms-swift's Protocol; docs/stage2.md), once per optimizer step
that needs fresh rollouts
(``step != last synced step``), run by EVERY rank at the same point:

1. rank 0 decides whether this step needs a sync and broadcasts the flag; barrier;
   (other ranks never decide on their own: their view of "last synced" may differ)
2. rank 0 alone syncs (``WeightPusher``: ms-swift's ``VLLMClient`` on CUDA, a gloo group on CPU);
3. rank 0 broadcasts ``None`` or the failure message (``broadcast_object_list``); barrier;
4. if rank 0 failed, EVERY rank raises ``WeightSyncError`` together.

Step 3 is the point: if rank 0 raised on its own, the other ranks would wait in the next
collective until the NCCL timeout (a hang of tens of minutes, or forever), and the run
would die without saying why.

The sync itself (``push_full``, ``WeightPusher``) follows ms-swift 4.6.0's server-mode sequence
(``swift/rlhf_trainers/rollout_mixin.py`` ``_move_full_model_to_vllm``): the client's
communicator is initialised once (``/get_world_size/``, ``/init_communicator/``); then per
bucket of tensors (``SWIFT_UPDATE_WEIGHTS_BUCKET_SIZE`` MB, default 512, ms-swift's
``FlattenedTensorBucket``) ``/update_flattened_params/`` with the JSON metadata while the
flattened tensor goes by a group broadcast, then a barrier; then
``/process_weights_after_loading/`` and ``/reset_prefix_cache/``; ``/close_communicator/`` at
exit. The transport is one seam (``sync_client``): ms-swift's ``VLLMClient`` over vLLM's PyNccl
on CUDA, a gloo group on CPU. Names are rewritten as ms-swift does for vLLM (PEFT prefixes off).

What is pushed is the learner's EFFECTIVE policy (``openspec/specs/rollout-server-contract``,
"Server Runs The Learner's Effective Weights"): with ``custom.coord_offset.enabled`` the offsets
live in a ``CoordOffset`` adapter beside the model (forward hooks), so the state dict alone would
leave them out and the server would roll out another policy than the one trained.
``effective_tensors`` adds the offset tables to the 1000 coord rows of the embedding and of the
LM head in the tensors sent (copies: the learner's own weights and hooks stay as they are), as
``coordexp.checkpoints.merge`` folds them into a merged checkpoint. A model whose head is tied to
its embedding can carry one offset table only, so separate head offsets on a tied model are
refused (``check_servable``) before the run trains.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from coordexp.errors import CoordExpError


class WeightSyncError(CoordExpError, RuntimeError):
    """Rank 0's weight sync failed; raised on every rank."""


def rewrite_param_name(name: str) -> str | None:
    """A merged PEFT model's parameter name as the server's model knows it; None = not sent."""
    if "original_module" in name or "lora_" in name:
        return None
    name = name.replace("base_model.model.", "", 1) if name.startswith("base_model.model.") else name
    return name.replace(".base_layer", "").replace("modules_to_save.default.", "")


def sync_state(model) -> dict:
    """The tensors to send: the (merged) state dict under server-side names."""
    out = {}
    for name, t in model.state_dict().items():
        new = rewrite_param_name(name)
        if new is not None:
            out[new] = t
    return out


def _names_of(model, tensor) -> list[str]:
    """The state-dict names (server-side) whose tensor is ``tensor`` (tied weights give several)."""
    ptr = tensor.data_ptr()
    return [
        new
        for name, t in model.state_dict(keep_vars=True).items()
        if t.data_ptr() == ptr and (new := rewrite_param_name(name)) is not None
    ]


def _tied(model) -> bool:
    return model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def check_servable(model, coord_offset) -> None:
    """Refuse offsets the server's weights cannot carry: a separate head table on a tied model."""
    m = getattr(model, "module", model)
    if coord_offset is None:
        return
    if hasattr(m, "get_base_model"):
        m = m.get_base_model()
    if coord_offset.head is not None and _tied(m):
        raise WeightSyncError(
            "custom.coord_offset.tie_head is false but the model ties its LM head to its embedding: the "
            "rollout server's model holds one matrix for both, so it cannot carry separate head offsets; "
            "set custom.coord_offset.tie_head: true (or train with the hf rollout backend)"
        )


def effective_tensors(model, coord_offset=None) -> dict:
    """``sync_tensors`` with the coord offsets folded into the embedding and LM-head rows sent.

    ``model`` is the plain (merged) model the server mirrors; ``coord_offset`` the run's
    ``CoordOffset`` or None. Rows ``start .. start+999`` of every name holding the embedding gain
    the embedding table, of every name holding the head gain the head table (the embedding table
    when tied); on a tied model both names are one matrix and gain the one table once.
    """
    import torch

    named = sync_tensors(model)
    if coord_offset is None:
        return named
    check_servable(model, coord_offset)
    start, n = coord_offset.start, coord_offset.embed.shape[0]
    emb_names = _names_of(model, model.get_input_embeddings().weight)
    head_names = [] if _tied(model) else _names_of(model, model.get_output_embeddings().weight)
    head_table = coord_offset.embed if coord_offset.head is None else coord_offset.head
    if not emb_names or (not _tied(model) and not head_names):
        raise WeightSyncError("coord offsets: the embedding or LM-head weight is not among the tensors sent")
    with torch.no_grad():
        for names, table in ((emb_names, coord_offset.embed), (head_names, head_table)):
            for name in names:
                t = named[name].clone()
                t[start : start + n] += table.detach().to(device=t.device, dtype=t.dtype)
                named[name] = t
    return named


def buckets(named: dict, bucket_bytes: int) -> list[list[str]]:
    """Names grouped so each bucket stays under bucket_bytes (a larger tensor goes alone)."""
    out: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for name in sorted(named):
        n = named[name].numel() * named[name].element_size()
        if cur and size + n > bucket_bytes:
            out.append(cur)
            cur, size = [], 0
        cur.append(name)
        size += n
    if cur:
        out.append(cur)
    return out


def sync_tensors(model) -> dict:
    """name -> detached CPU tensor, as the server's model names them (tied tensors each sent)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in sync_state(model).items()}


def digest(named: dict) -> str:
    """sha256 over the names and raw bytes, in name order: the same weights give the same digest."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for name in sorted(named):
        t = named[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def bucket_bytes_from_env(bucket_mb: int | None = None) -> int:
    mb = bucket_mb if bucket_mb is not None else int(os.environ.get("SWIFT_UPDATE_WEIGHTS_BUCKET_SIZE", "512"))
    return mb * 1024 * 1024


def push_full(client, named: dict, bucket_bytes: int) -> int:
    """One full sync, ms-swift's sequence: per bucket ``update_flattened_params`` (JSON metadata +
    broadcast + barrier), then ``process_weights_after_loading`` and ``reset_prefix_cache``.

    ``client`` is ms-swift's ``VLLMClient`` or ``sync_client.GlooSyncClient``, already
    initialised. Buckets are ms-swift's ``FlattenedTensorBucket``. Returns the bucket count.
    """
    from coordexp.generation.swift_contract import flattened_bucket

    groups = buckets(named, bucket_bytes)
    for names in groups:
        bucket = flattened_bucket([(n, named[n]) for n in names])
        client.update_flattened_params(bucket.get_metadata(), bucket.get_flattened_tensor())
    client.process_weights_after_loading()
    client.reset_prefix_cache()
    if hasattr(client, "reset_encoder_cache") and _vllm_at_least("0.16"):
        client.reset_encoder_cache()  # as ms-swift does with vLLM >= 0.16 (its encoder cache survives otherwise)
    return len(groups)


def _vllm_at_least(v: str) -> bool:
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False
    from swift.rlhf_trainers.utils import check_vllm_version_ge

    return bool(check_vllm_version_ge(v))


@dataclass
class PushRecord:
    tensors: int
    buckets: int
    digest: str


class WeightPusher:
    """``weight_sync(model)`` for server mode: full sync on ms-swift's protocol (rank 0 only).

    The client is created and its communicator initialised on the first push (so only the rank
    that syncs ever joins the group) and closed by ``close()`` or at interpreter exit. A PEFT
    model is merged on a copy (``merge_and_unload``), never merged and unmerged in place as
    ms-swift does on GPU: that round trip would perturb the learner's base weights by rounding.
    """

    def __init__(
        self,
        base_url: str,
        *,
        group_port: int = 51216,
        timeout_s: float = 240.0,
        bucket_mb: int | None = None,
        client_factory: Callable[[], object] | None = None,
        log: Callable[[str], None] | None = None,
        coord_offset=None,
    ):
        """``coord_offset``: the run's ``CoordOffset`` adapter (or None); its tables are folded
        into every push (``effective_tensors``)."""
        from urllib.parse import urlsplit

        from coordexp.generation.sync_client import choose_transport, make_sync_client

        host = urlsplit(base_url).hostname or "127.0.0.1"
        if client_factory is None:
            transport = choose_transport()  # up front: a CUDA learner without vLLM is refused here
            client_factory = lambda: make_sync_client(  # noqa: E731
                base_url, group_port=group_port, timeout_s=timeout_s, host=host, transport=transport
            )
        self.client_factory = client_factory
        self.bucket_bytes = bucket_bytes_from_env(bucket_mb)
        self.client = None
        self.records: list[PushRecord] = []
        self.log = log
        self.coord_offset = coord_offset

    def __call__(self, model) -> PushRecord:
        import copy

        from coordexp.generation.sync_client import init_client

        m = getattr(model, "module", model)  # DDP / accelerate wrapper
        if hasattr(m, "merge_and_unload"):
            m = copy.deepcopy(m).merge_and_unload()
        named = effective_tensors(m, self.coord_offset)
        if self.client is None:
            client = self.client_factory()
            init_client(client)
            self.client = client
        n_buckets = push_full(self.client, named, self.bucket_bytes)
        rec = PushRecord(tensors=len(named), buckets=n_buckets, digest=digest(named))
        self.records.append(rec)
        if self.log is not None:
            self.log(
                f"weight sync {len(self.records)}: {rec.tensors} tensors in {rec.buckets} buckets, sha256 {rec.digest}"
            )
        return rec

    def close(self) -> None:
        if self.client is not None:
            self.client.close_communicator()
            self.client = None


@dataclass
class SyncState:
    last_synced_step: int | None = None
    syncs: int = 0


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1 else None


def maybe_sync(step: int, state: SyncState, sync_fn: Callable[[], object]) -> bool:
    """Run the DDP-safe sync protocol for optimizer step ``step`` on every rank.

    ``sync_fn`` runs on rank 0 only. Returns whether a sync happened (the same on all
    ranks). Raises ``WeightSyncError`` on every rank when rank 0's sync failed.
    """
    dist = _dist()
    rank = dist.get_rank() if dist is not None else 0
    flag = [step != state.last_synced_step] if rank == 0 else [None]
    if dist is not None:
        dist.broadcast_object_list(flag, src=0)
        dist.barrier()
    if not flag[0]:
        return False
    failure: list = [None]
    cause: BaseException | None = None
    if rank == 0:
        try:
            sync_fn()
        except Exception as exc:  # any failure must reach the other ranks (step 3), then it is re-raised
            cause = exc
            failure = [f"{type(exc).__name__}: {exc}"]
    if dist is not None:
        dist.broadcast_object_list(failure, src=0)
        dist.barrier()
    if failure[0] is not None:
        raise WeightSyncError(
            f"rank {rank}: rollout weight sync failed on rank 0 at optimizer step {step}: {failure[0]}"
        ) from cause
    state.last_synced_step = step
    state.syncs += 1
    return True


def sync_step_sequence(steps: Iterable[int], state: SyncState, sync_fn: Callable[[], object]) -> list[bool]:
    """maybe_sync over several steps (tests and dry runs)."""
    return [maybe_sync(s, state, sync_fn) for s in steps]
