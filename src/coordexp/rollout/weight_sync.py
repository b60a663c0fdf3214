"""Pushing the learner's weights to the rollout server, and the DDP-safe control flow around it.

Control flow (DOMAIN §8), once per optimizer step that needs fresh rollouts
(``step != last synced step``), run by EVERY rank at the same point:

1. rank 0 decides whether this step needs a sync and broadcasts the flag; barrier;
   (other ranks never decide on their own: their view of "last synced" may differ)
2. rank 0 alone syncs (production: ms-swift ``VLLMClient`` over NCCL; CPU: ``http_push``);
3. rank 0 broadcasts ``None`` or the failure message (``broadcast_object_list``); barrier;
4. if rank 0 failed, EVERY rank raises ``WeightSyncError`` together.

Step 3 is the point: if rank 0 raised on its own, the other ranks would wait in the next
collective until the NCCL timeout (a hang of tens of minutes, or forever), and the run
would die without saying why.

CPU weight transport (the loopback ``coordexp.rollout.server``): the full state dict,
names rewritten as ms-swift does for vLLM, sent in buckets (``SWIFT_UPDATE_WEIGHTS_BUCKET_SIZE``
MB, default 512) as safetensors bodies to ``/update_flattened_params/``, then
``/reset_prefix_cache/``. Production sends only JSON metadata over HTTP and the tensors
over NCCL (``VLLMClient.init_communicator`` / ``update_flattened_params``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable

SAFETENSORS_TYPE = "application/x-safetensors"


class WeightSyncError(RuntimeError):
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


def http_push(base_url: str, model, *, bucket_mb: int | None = None, timeout_s: float = 240.0) -> int:
    """Send the model's weights to the loopback server; returns the number of tensors sent."""
    import requests
    from safetensors.torch import save

    mb = bucket_mb if bucket_mb is not None else int(os.environ.get("SWIFT_UPDATE_WEIGHTS_BUCKET_SIZE", "512"))
    named, seen = {}, set()
    for k, v in sync_state(model).items():
        v = v.detach().to("cpu").contiguous()
        # tied weights (lm_head = embed_tokens) share storage, which safetensors refuses to
        # serialize: every tensor after the first on a storage travels as its own copy
        ptr = v.untyped_storage().data_ptr()
        named[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    base = base_url.rstrip("/")
    sent = 0
    with requests.Session() as s:
        for names in buckets(named, mb * 1024 * 1024):
            body = save({n: named[n] for n in names})
            r = s.post(f"{base}/update_flattened_params/", data=body, headers={"Content-Type": SAFETENSORS_TYPE},
                       timeout=timeout_s)
            if r.status_code != 200:
                raise WeightSyncError(f"{base}/update_flattened_params/: HTTP {r.status_code}: {r.text[:300]}")
            sent += len(names)
        r = s.post(f"{base}/reset_prefix_cache/", timeout=timeout_s)
        if r.status_code != 200:
            raise WeightSyncError(f"{base}/reset_prefix_cache/: HTTP {r.status_code}: {r.text[:300]}")
    return sent


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
        raise WeightSyncError(f"rank {rank}: rollout weight sync failed on rank 0 at optimizer step {step}: "
                              f"{failure[0]}") from cause
    state.last_synced_step = step
    state.syncs += 1
    return True


def sync_step_sequence(steps: Iterable[int], state: SyncState, sync_fn: Callable[[], object]) -> list[bool]:
    """maybe_sync over several steps (tests and dry runs)."""
    return [maybe_sync(s, state, sync_fn) for s in steps]
