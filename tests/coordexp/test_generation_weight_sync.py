"""Weight-sync protocol: name rewrite, buckets, single-process path, and 2 gloo ranks."""

from __future__ import annotations

import time

import pytest
import torch

from coordexp.generation import weight_sync as ws
from tests.helpers.ddp_harness import run_ranks


def test_rewrite_param_name():
    assert ws.rewrite_param_name("base_model.model.model.layers.0.q_proj.base_layer.weight") == \
        "model.layers.0.q_proj.weight"
    assert ws.rewrite_param_name("base_model.model.lm_head.modules_to_save.default.weight") == "lm_head.weight"
    assert ws.rewrite_param_name("base_model.model.x.lora_A.default.weight") is None
    assert ws.rewrite_param_name("a.original_module.weight") is None


def test_buckets_respect_the_size_and_keep_every_name():
    named = {f"t{i}": torch.zeros(256) for i in range(5)}  # 1 KiB each
    b = ws.buckets(named, 2048)
    assert b == [["t0", "t1"], ["t2", "t3"], ["t4"]]
    assert ws.buckets({"big": torch.zeros(4096)}, 1024) == [["big"]]


def test_single_process_syncs_once_per_new_step():
    calls = []
    state = ws.SyncState()
    assert ws.sync_step_sequence([0, 0, 1, 1, 2], state, lambda: calls.append(1)) == [True, False, True, False, True]
    assert len(calls) == 3 and state.last_synced_step == 2


def test_single_process_failure_raises_and_keeps_the_step_unsynced():
    def boom():
        raise ConnectionError("down")

    state = ws.SyncState()
    with pytest.raises(ws.WeightSyncError, match="ConnectionError: down"):
        ws.maybe_sync(4, state, boom)
    assert state.last_synced_step is None


def test_two_ranks_take_the_same_path(tmp_path):
    out = run_ranks("ok", tmp_path)
    assert out[0]["returns"] == out[1]["returns"] == [True, False, True, True]
    assert out[0]["error"] is None and out[1]["error"] is None
    assert (out[0]["sync_calls"], out[1]["sync_calls"]) == (3, 0)


def test_rank0_failure_raises_on_every_rank_without_hanging(tmp_path):
    t0 = time.monotonic()
    out = run_ranks("rank0_fails", tmp_path, timeout_s=40.0, pg_timeout_s=60.0)
    assert not any(o.get("hung") for o in out.values()), f"a rank hung: {out}"
    assert time.monotonic() - t0 < 40  # under the process-group timeout: nobody waited for it
    for r in (0, 1):
        assert out[r].get("hung") is None and out[r]["returns"] == [True, False]
        assert out[r]["error"].startswith(f"WeightSyncError: rank {r}: rollout weight sync failed on rank 0 "
                                          "at optimizer step 1: ConnectionError: planted")
