"""Two CPU ranks over gloo on 127.0.0.1 running the weight-sync protocol, with a hard timeout.

``run_ranks(scenario, tmp_dir)`` spawns 2 processes; each runs ``maybe_sync`` over a few
steps and writes ``rank<r>.json`` = {"returns": [...], "error": "Type: msg" | None,
"sync_calls": n}. A rank that has not finished within ``timeout_s`` is killed and reported
as ``{"hung": True}``; nothing outlives the call.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta
from pathlib import Path

STEPS = (0, 0, 1, 3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, scenario: str, out_dir: str, pg_timeout_s: float) -> None:
    import torch.distributed as dist

    from coordexp.generation import weight_sync as ws

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=pg_timeout_s))
    calls = []

    def sync_fn():
        calls.append(1)
        if scenario == "rank0_fails" and len(calls) == 2:
            raise ConnectionError("planted: server unreachable")

    # Ranks start with different views of the last synced step: only rank 0's may count.
    state = ws.SyncState(last_synced_step=None if rank == 0 else 0)
    result = {"returns": [], "error": None}
    try:
        for step in STEPS:
            result["returns"].append(ws.maybe_sync(step, state, sync_fn))
    except Exception as exc:  # reported to the parent, which asserts on it
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["sync_calls"] = len(calls)
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    if result["error"] is None:
        dist.destroy_process_group()
        return
    # A failed rank stays alive until every rank has reported, as a real trainer process does
    # (crash handlers, logging, torchrun's grace period). Exiting at once would let gloo end a
    # peer's wait with "connection closed" and hide a missing failure broadcast; with NCCL that
    # peer would hang instead.
    while not all(Path(out_dir, f"rank{r}.json").is_file() for r in range(world)):
        time.sleep(0.1)


def run_ranks(scenario: str, out_dir: Path, *, world: int = 2, timeout_s: float = 40.0,
              pg_timeout_s: float = 60.0) -> dict[int, dict]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(r, world, port, scenario, str(out_dir), pg_timeout_s))
             for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    out = {}
    for r, p in enumerate(procs):
        if p.is_alive():
            p.kill()
            p.join(5)
            out[r] = {"hung": True}
            continue
        f = Path(out_dir, f"rank{r}.json")
        out[r] = json.loads(f.read_text()) if f.is_file() else {"crashed": p.exitcode}  # inventory: json-ok(test result file)
    return out
