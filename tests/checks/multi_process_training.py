"""Checks for capability `multi-process-training` (torchrun ranks, rank-0 writes, DeepSpeed refusal), on the
tiny Qwen3-VL through scripts/train.sh."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from specgen import check
from tests.helpers.smoke_runs import REPO, SMOKE
from tests.helpers.smoke_runs import leaf_config as _leaf
from tests.helpers.smoke_runs import run_env as _env

SMOKE_2RANK = REPO / "configs" / "stage1" / "smoke" / "tiny_cpu_2rank.yaml"
AUDIT = REPO / "tests" / "helpers" / "write_audit"
STAGE2_SMOKE = REPO / "configs" / "stage2_ab" / "smoke" / "tiny_cpu.yaml"


def _train_sh(config: Path, *, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "train.sh"), str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The 2-rank smoke leaf, shortened, through train.sh with 2 ranks (write-audited) and 1 process."""
    tmp = tmp_path_factory.mktemp("ddp")
    # dropout off: each rank draws its own dropout masks, one process draws them in sequence
    body = (
        "training:\n  output_dir: {out}\n  max_steps: 2\n  eval_strategy: 'no'\n  save_strategy: steps\n"
        "  save_steps: 2\n  logging_steps: 1\ntuner:\n  lora_dropout: 0.0\n"
    )
    runs = {}
    for name, nproc in (("two", "2"), ("one", "1")):
        out = tmp / f"run_{name}"
        leaf = _leaf(tmp / f"{name}.yaml", SMOKE_2RANK, body.format(out=out))
        env = _env(NPROC_PER_NODE=nproc)
        if nproc == "2":
            env.update(
                PYTHONPATH=f"{AUDIT}{os.pathsep}{env['PYTHONPATH']}",
                COORDEXP_WRITE_AUDIT_ROOT=str(out),
                COORDEXP_WRITE_AUDIT_OUT=str(tmp / "audit"),
            )
        proc = _train_sh(leaf, env=env)
        runs[name] = (out, proc)
    return runs, tmp / "audit"


# Why the several-rank checks run off the entrypoints (reach_exception).
MULTI_PROCESS = (
    "several ranks: the entrypoints run every smoke as one process (the check starts its own 2-rank torchrun runs "
    "of the stage_1 smoke)"
)


@check("multi-process-training", "Torchrun launch", "Two CPU ranks train the stage-1 smoke like one process")
@pytest.mark.reach_exception(MULTI_PROCESS)
def check_two_ranks_match(two_runs):
    runs, _ = two_runs
    summaries = {}
    for name, (out, proc) in runs.items():
        assert proc.returncode == 0, proc.stderr[-3000:]
        summaries[name] = json.loads((out / "train_summary.json").read_text())
    assert "torchrun: 2 process(es)" in runs["two"][1].stderr
    a, b = summaries["two"]["logged_losses"], summaries["one"]["logged_losses"]
    assert len(a) == len(b) == 2
    for x, y in zip(a, b, strict=True):
        assert abs(x - y) <= 2e-4 * abs(y), (a, b)
    # rank 0's trainer gated its own packs only: half of the single process's
    assert 2 * summaries["two"]["gated_batches"] == summaries["one"]["gated_batches"]
    # the same global batch gives the same update: the saved weights agree, coord offsets included
    # (they sit outside the DDP module; a rank stepping them on its own share is off by ~lr = 1e-4)
    from safetensors.torch import load_file

    for name in ("adapter_model.safetensors", "coord_offset.safetensors"):
        a_t, b_t = (load_file(str(runs[k][0] / "checkpoint-2" / name)) for k in ("two", "one"))
        assert a_t.keys() == b_t.keys()
        worst = max(float((a_t[k] - b_t[k]).abs().max()) for k in a_t)
        assert worst <= 1e-5, (name, worst)


@check("multi-process-training", "Torchrun launch", "A bad process count is refused")
@pytest.mark.reach_exception(
    "scripts/train.sh refuses NPROC_PER_NODE in its shell code, before any Python runs, so no product function "
    "executes (scripts/bad_inputs/serving.sh runs the same refusal)"
)
def check_bad_nproc(tmp_path):
    proc = _train_sh(SMOKE, env=_env(NPROC_PER_NODE="two", PYTHON="/nonexistent/python"), timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "NPROC_PER_NODE" in lines[0]


@check("multi-process-training", "Rank-0 writes", "Only rank 0 writes into the output folder")
@pytest.mark.reach_exception(MULTI_PROCESS)
def check_rank0_writes(two_runs):
    runs, audit = two_runs
    out, proc = runs["two"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = {p for _, p in json.loads((audit / "rank0.json").read_text())}
    rank1 = json.loads((audit / "rank1.json").read_text())
    assert {"resolved_config.json", "run_metadata.json", "packing_plan.json", "train_summary.json"} <= rank0
    assert any(p.startswith("checkpoint-2") for p in rank0)
    assert rank1 == []
    assert (out / "checkpoint-2" / "coord_offset.safetensors").is_file()


@check("multi-process-training", "DeepSpeed refusal", "DeepSpeed is refused on CPU")
def check_deepspeed_refused(tmp_path):
    leaf = _leaf(
        tmp_path / "ds.yaml", SMOKE, f"training:\n  output_dir: {tmp_path / 'out'}\ndeepspeed:\n  enabled: true\n"
    )
    proc = _train_sh(leaf, env=_env(CUDA_VISIBLE_DEVICES=""), timeout=300)  # no GPU visible, as on this CPU box
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "deepspeed.enabled" in errors[0] and "NPROC_PER_NODE" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "resolved_config.json").exists()


STAGE2_SERVER_SMOKE = REPO / "configs" / "stage2_ab" / "smoke" / "tiny_cpu_server.yaml"


@pytest.fixture(scope="module")
def stage2_runs(tmp_path_factory):
    """The stage_2 server smoke through train_stage2.sh with 2 learner ranks (write-audited) and with 1,
    each on its own free server and weight-sync ports."""
    import socket

    def free_port() -> int:
        with socket.socket() as sk:
            sk.bind(("127.0.0.1", 0))
            return sk.getsockname()[1]

    tmp = tmp_path_factory.mktemp("ddp2")
    runs = {}
    for name, nproc in (("two", "2"), ("one", "1")):
        out = tmp / f"run_{name}"
        body = (
            f"training:\n  output_dir: {out}\n  logging_dir: {out}/tb\n"
            "rollout_matching:\n  vllm:\n    server:\n      servers:\n"
            f"        - base_url: http://127.0.0.1:{free_port()}\n          group_port: {free_port()}\n"
        )
        leaf = _leaf(tmp / f"{name}.yaml", STAGE2_SERVER_SMOKE, body)
        env = _env(NPROC_PER_NODE=nproc)
        if nproc == "2":
            env.update(
                PYTHONPATH=f"{AUDIT}{os.pathsep}{env['PYTHONPATH']}",
                COORDEXP_WRITE_AUDIT_ROOT=str(out),
                COORDEXP_WRITE_AUDIT_OUT=str(tmp / "audit"),
            )
        proc = subprocess.run(
            ["bash", str(REPO / "scripts" / "train_stage2.sh"), str(leaf)],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            cwd=REPO,
        )
        runs[name] = (out, proc)
    return runs, tmp / "audit"


@check(
    "multi-process-training", "Stage-2 learner ranks", "Two CPU ranks train the stage-2 server smoke like one process"
)
def check_two_stage2_ranks_match(stage2_runs):
    import re

    runs, audit = stage2_runs
    losses, chans = {}, {}
    for name, (out, proc) in runs.items():
        assert proc.returncode == 0, proc.stderr[-3000:]
        log = [json.loads(line) for line in (out / "stage2_step_log.jsonl").read_text().splitlines()]
        losses[name] = [m["loss/total"] for m in log]
        chans[name] = "".join("B" if m.get("stage2/channel_b") else "A" for m in log)
        # one sync per Channel-B step, from one learner process, with the server's digest equal to the learner's
        learner = re.findall(r"learner: weight sync (\d+): .* sha256 ([0-9a-f]{64})", proc.stderr)
        server = re.findall(
            r"rollout server: weights after sync (\d+): .* sha256 ([0-9a-f]{64})", proc.stdout + proc.stderr
        )
        assert [n for n, _ in learner] == ["1", "2"] and learner == server, (name, learner, server)
    assert "torchrun: 2 learner process(es)" in runs["two"][1].stderr
    assert chans["two"] == chans["one"] == "ABAB"
    for x, y in zip(losses["two"], losses["one"], strict=True):
        assert abs(x - y) <= 1e-3 * abs(y), losses
    rank0 = {p for _, p in json.loads((audit / "rank0.json").read_text())}
    rank1 = json.loads((audit / "rank1.json").read_text())
    assert "stage2_step_log.jsonl" in rank0 and any(p.startswith("checkpoint-4") for p in rank0)
    assert rank1 == []


@check("multi-process-training", "Stage-2 learner ranks", "Several learner devices without torchrun are refused")
def check_several_stage2_devices_without_torchrun_are_refused(monkeypatch, tmp_path):
    from coordexp.stage2 import trainer as s2

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    loaded = []
    monkeypatch.setattr(s2, "build_model", lambda cfg: loaded.append(cfg))
    with pytest.raises(s2.Stage2SetupError, match=r"sees 2 CUDA devices but runs as one process.*torchrun"):
        s2.run(_leaf(tmp_path / "gpu.yaml", STAGE2_SMOKE, "training:\n  use_cpu: false\n"))
    assert loaded == []
