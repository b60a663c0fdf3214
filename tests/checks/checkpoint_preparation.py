"""Checks for capabilities `checkpoint-preparation` (coord vocabulary expansion, stage_1 merge,
weight-only resume) and `multi-process-training` (torchrun ranks, rank-0 writes, DeepSpeed
refusal), on the tiny Qwen3-VL through the real tools and scripts/train.sh."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from specgen import check

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "stage1" / "smoke" / "tiny_cpu.yaml"
SMOKE_2RANK = REPO / "configs" / "stage1" / "smoke" / "tiny_cpu_2rank.yaml"
STAGE2_SMOKE = REPO / "configs" / "stage2_ab" / "smoke" / "tiny_cpu.yaml"
AUDIT = REPO / "tests" / "coordexp" / "write_audit"
TOL = 1e-5  # fp32 merge: ~5e-7 measured on the tiny model


def _env(**extra) -> dict:
    env = dict(
        os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'src'}", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false"
    )
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE", "NNODES"):
        env.pop(k, None)
    env.update(extra)
    return env


def _tool(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "tools" / name), *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )


def _leaf(path: Path, extends: Path, body: str) -> Path:
    path.write_text(f"extends: {extends}\n{body}")
    return path


# ----------------------------------------------------------------------------- vocabulary expansion


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    from coordexp.smoke.tiny import save_tiny_base

    return save_tiny_base(tmp_path_factory.mktemp("stock") / "tiny-stock")


@pytest.fixture(scope="module")
def expanded(stock, tmp_path_factory):
    dst = tmp_path_factory.mktemp("expanded") / "tiny-coord"
    proc = _tool("expand_coord_vocab.py", "--src", stock, "--dst", dst)
    return dst, proc


@check(
    "checkpoint-preparation", "Coord vocabulary expansion", "The expanded tokenizer holds one contiguous coord block"
)
def check_expanded_ids(expanded):
    from transformers import AutoTokenizer

    from coordexp.format.coord import COORD_WILDCARD, coord_token

    dst, proc = expanded
    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stdout
    tok = AutoTokenizer.from_pretrained(dst)  # as saved: nothing is added on load
    assert tok.convert_tokens_to_ids(COORD_WILDCARD) == 151669
    assert tok.convert_tokens_to_ids([coord_token(k) for k in range(1000)]) == list(range(151670, 152670))
    for k in (0, 1, 500, 998, 999):
        assert tok.encode(f"x{coord_token(k)}y", add_special_tokens=False)[1:-1] == [151670 + k]
    assert json.loads((dst / "coord_tokens.json").read_text())[:2] == [COORD_WILDCARD, coord_token(0)]


@check(
    "checkpoint-preparation", "Coord vocabulary expansion", "Old rows are unchanged and new rows are at the old mean"
)
def check_expanded_rows(stock, expanded, tmp_path):
    from transformers import Qwen3VLForConditionalGeneration

    from coordexp.checkpoints.files import embedding_rows

    dst, proc = expanded
    assert proc.returncode == 0, proc.stderr
    old, new = embedding_rows(stock), embedding_rows(dst)
    assert old.shape[0] == 151936 and new.shape[0] == 152670
    assert torch.equal(new[:151936], old)
    added = new[151936:]
    assert torch.isfinite(added).all()
    assert torch.allclose(added, old.mean(0).expand_as(added), atol=1e-5)
    model = Qwen3VLForConditionalGeneration.from_pretrained(dst, local_files_only=True)
    assert model.config.tie_word_embeddings
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    again = tmp_path / "again"
    assert _tool("expand_coord_vocab.py", "--src", stock, "--dst", again).returncode == 0
    assert (again / "model.safetensors").read_bytes() == (dst / "model.safetensors").read_bytes()


@check("checkpoint-preparation", "Coord vocabulary expansion", "An expanded model is refused")
def check_expanded_refused(expanded, tmp_path):
    dst, _ = expanded
    out = tmp_path / "twice"
    proc = _tool("expand_coord_vocab.py", "--src", dst, "--dst", out)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "expanded already" in lines[0] and "Traceback" not in proc.stderr
    assert not any(out.glob("*.safetensors"))


# ----------------------------------------------------------------------------- merge


@pytest.fixture(scope="module")
def stage1_checkpoint(tmp_path_factory):
    """Two optimizer steps of the stage-1 smoke (DoRA + tied coord offsets): a real checkpoint."""
    from coordexp.stage1.trainer import run

    out = tmp_path_factory.mktemp("stage1_ckpt") / "run"
    result = run(
        SMOKE,
        overrides={
            "output_dir": str(out),
            "max_steps": 2,
            "eval_strategy": "no",
            "save_strategy": "no",
            "logging_steps": 1,
        },
    )
    return result.final_checkpoint


@pytest.fixture(scope="module")
def merged(stage1_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("merged") / "tiny-merged"
    proc = _tool("merge_checkpoint.py", "--checkpoint", stage1_checkpoint, "--out", out)
    return out, proc


@check("checkpoint-preparation", "Stage-1 checkpoint merge", "Merged logits equal the adapter model's")
def check_merge_logits(stage1_checkpoint, merged, tmp_path):
    from coordexp.checkpoints import merge as M

    out, proc = merged
    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stdout
    chk = M.verify_merge(stage1_checkpoint, out)
    assert chk.max_abs_diff <= TOL and chk.tokens > 20
    # the comparison can fail: the same merge without the coord offsets is far off on the coord columns
    bare = tmp_path / "bare"
    model, _, base = M.load_unmerged(stage1_checkpoint)
    model.merge_and_unload().save_pretrained(bare)
    from transformers import AutoConfig

    inputs = M.probe_inputs(AutoConfig.from_pretrained(out))
    without = (M.merged_logits(bare, inputs) - M.adapter_logits(stage1_checkpoint, None, inputs)).abs().max()
    assert float(without) > 100 * TOL
    report = json.loads((out / M.REPORT).read_text())
    assert report["adapter"] == "dora" and report["coord_offset"] == "tied" and report["coord_start"] == 151670


@check("checkpoint-preparation", "Stage-1 checkpoint merge", "Stage-2 starts from the merged folder")
def check_stage2_from_merged(merged, tmp_path):
    from coordexp.stage2.trainer import run

    out, proc = merged
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in out.iterdir()}
    assert "adapter_config.json" not in names and "adapter_model.safetensors" not in names
    assert "coord_offset.safetensors" not in names
    seen = {}

    from transformers import TrainerCallback

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            seen["rows"] = model.get_input_embeddings().weight.shape[0]

    result = run(
        STAGE2_SMOKE,
        overrides={
            "model.model": str(out),
            "training.output_dir": str(tmp_path / "s2"),
            "training.max_steps": 1,
            "training.eval_strategy": "no",
            "training.save_strategy": "no",
        },
        callbacks=[Probe()],
    )
    assert len(result.step_log) == 1 and "loss/total" in result.step_log[0]
    resolved = json.loads((tmp_path / "s2" / "resolved_config.json").read_text())
    assert resolved["resolved"]["model"]["model"] == str(out)
    assert seen["rows"] == 152670


# ----------------------------------------------------------------------------- resume


@check("checkpoint-preparation", "Weight-only resume", "Resume restores the weights and restarts the rest")
def check_resume(stage1_checkpoint, tmp_path, caplog, monkeypatch):
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from coordexp.stage1.trainer import run

    saved = load_file(str(stage1_checkpoint / "adapter_model.safetensors"))
    offsets = load_file(str(stage1_checkpoint / "coord_offset.safetensors"))
    seen = {}

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            live = get_peft_model_state_dict(model)
            seen["adapter_equal"] = all(torch.equal(live[k].cpu(), v) for k, v in saved.items())
            seen["step"] = state.global_step
            seen["adapter_keys"] = set(saved) <= set(live)

    class Offsets(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            seen["offset_equal"] = torch.equal(captured["trainer"].coord_offset.embed.detach().cpu(), offsets["embed"])

    import coordexp.stage1.trainer as S

    captured = {}
    real_init = S.Stage1Trainer.__init__

    def spy(self, *a, **kw):  # the coord-offset adapter is reachable through the trainer only
        real_init(self, *a, **kw)
        captured["trainer"] = self

    monkeypatch.setattr(S.Stage1Trainer, "__init__", spy)
    with caplog.at_level(logging.WARNING, logger="coordexp.training"):
        result = run(
            SMOKE,
            overrides={
                "output_dir": str(tmp_path / "resumed"),
                "max_steps": 1,
                "eval_strategy": "no",
                "save_strategy": "no",
                "logging_steps": 1,
                "resume_from_checkpoint": str(stage1_checkpoint),
            },
            callbacks=[Probe(), Offsets()],
        )
    assert seen == {"adapter_equal": True, "step": 0, "adapter_keys": True, "offset_equal": True}
    assert result.final_checkpoint.name == "checkpoint-1"
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "weights restored" in msg and "optimizer, LR scheduler, step counter and data order restart" in msg


@check("checkpoint-preparation", "Weight-only resume", "A checkpoint that does not fit is refused")
def check_resume_refused(stage1_checkpoint, tmp_path):
    from coordexp.stage1.trainer import run
    from coordexp.training.settings import TrainSetupError

    with pytest.raises(TrainSetupError) as exc:
        run(
            SMOKE,
            overrides={
                "output_dir": str(tmp_path / "r"),
                "max_steps": 1,
                "resume_from_checkpoint": str(stage1_checkpoint),
                "custom.coord_offset.enabled": False,
            },
        )
    assert "training.resume_from_checkpoint" in str(exc.value) and "coord_offset.safetensors" in str(exc.value)
    assert not (tmp_path / "r" / "resolved_config.json").exists()


# ----------------------------------------------------------------------------- multi-process


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


@check("multi-process-training", "Torchrun launch", "Two CPU ranks train the stage-1 smoke like one process")
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
def check_bad_nproc(tmp_path):
    proc = _train_sh(SMOKE, env=_env(NPROC_PER_NODE="two", PYTHON="/nonexistent/python"), timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "NPROC_PER_NODE" in lines[0]


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
def check_several_stage2_devices_without_torchrun_are_refused(monkeypatch):
    from coordexp.stage2 import trainer as s2

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    loaded = []
    monkeypatch.setattr(s2, "build_model", lambda cfg: loaded.append(cfg))
    with pytest.raises(s2.Stage2SetupError, match=r"sees 2 CUDA devices but runs as one process.*torchrun"):
        s2.run(STAGE2_SMOKE, overrides={"use_cpu": False})
    assert loaded == []


@check("multi-process-training", "Rank-0 writes", "Only rank 0 writes into the output folder")
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
