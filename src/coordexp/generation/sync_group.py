"""The weight-sync process group on CPU: a gloo group standing in for vLLM's PyNccl communicator.

ms-swift 4.6.0 sends tensors to a ``swift rollout`` server over vLLM's ``PyNcclCommunicator``
on a ``StatelessProcessGroup`` (CUDA only). This module gives the same three operations on CPU
so the CPU smoke runs the real sequence end to end:

- ``GlooGroup.create(host, port, rank, world_size)``: rank 0 (the first server rank) hosts
  the rendezvous store on host:port, as ``StatelessProcessGroup.create`` does; the learner
  joins as the last rank (world_size - 1);
- ``broadcast(tensor, src)``: in place on every rank, like ``communicator.broadcast``;
- ``barrier()``: like ``communicator.group.barrier()``.

The group is a standalone ``ProcessGroupGloo``, never the default process group: the learner's
rank 0 already belongs to the DDP group, and a server may hold several ranks in one process
(one thread each). Every operation has a timeout, so a protocol slip (a skipped barrier, a
missing broadcast) fails with an error instead of hanging.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from coordexp.errors import CoordExpError

DEFAULT_TIMEOUT_S = 60.0


class SyncGroupError(CoordExpError, RuntimeError):
    """A group operation failed or timed out."""


@dataclass
class GlooGroup:
    pg: object
    store: object
    rank: int
    world_size: int

    @classmethod
    def create(
        cls, host: str, port: int, rank: int, world_size: int, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> GlooGroup:
        import torch.distributed as dist

        if not 0 <= rank < world_size:
            raise SyncGroupError(f"rank {rank} outside the group of {world_size}")
        timeout = datetime.timedelta(seconds=timeout_s)
        try:
            store = dist.TCPStore(
                host, port, world_size, is_master=(rank == 0), timeout=timeout, wait_for_workers=False
            )
            pg = dist.ProcessGroupGloo(dist.PrefixStore("coordexp-weight-sync", store), rank, world_size, timeout)
        except (RuntimeError, OSError) as exc:  # DistStoreError and gloo's errors are RuntimeErrors
            raise SyncGroupError(f"weight-sync group {host}:{port} (rank {rank} of {world_size}): {exc}") from None
        return cls(pg=pg, store=store, rank=rank, world_size=world_size)

    def broadcast(self, tensor, src: int) -> None:
        import torch.distributed as dist

        opts = dist.BroadcastOptions()
        opts.rootRank = src
        try:
            self.pg.broadcast([tensor], opts).wait()
        except RuntimeError as exc:
            raise SyncGroupError(f"broadcast from rank {src} (rank {self.rank}): {exc}") from None

    def barrier(self) -> None:
        try:
            self.pg.barrier().wait()
        except RuntimeError as exc:
            raise SyncGroupError(f"barrier (rank {self.rank}): {exc}") from None

    def close(self) -> None:
        self.pg = None
        self.store = None
