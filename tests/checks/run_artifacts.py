"""Checks for capability `run-artifacts`: the run manifest, weight-only checkpoints, the Trainer
surface, and one short real stage-1 run on the tiny model (shared by the run-level scenarios)."""

from __future__ import annotations

import inspect
import json
import subprocess
from pathlib import Path

import pytest

from coordexp.config import load_config
from coordexp.training import artifacts as A
from specgen import check

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "stage1" / "smoke" / "tiny_cpu.yaml"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """Two optimizer steps of the smoke profile, recording what exists when training starts."""
    from transformers import TrainerCallback

    from coordexp.stage1.trainer import run

    root = tmp_path_factory.mktemp("stage1_run")
    seen: dict = {}

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            seen["at_train_begin"] = sorted(p.name for p in Path(args.output_dir).iterdir())

    leaf = root / "leaf.yaml"  # the smoke profile, shortened as a user would: a leaf config
    leaf.write_text(
        f"extends: {SMOKE}\ntraining:\n  output_dir: {root / 'run'}\n  max_steps: 2\n  eval_steps: 2\n  save_steps: 1\n"
    )
    result = run(leaf, callbacks=[Probe()])
    seen["leaf"] = leaf
    return result, seen


def _manifest(tmp_path, monkeypatch, env=None, repo=REPO):
    for k in list(A.LAUNCHER_VARS):
        monkeypatch.delenv(k, raising=False)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    A.write_run_manifest(
        tmp_path,
        config_path=SMOKE,
        resolved={"training": {"seed": 17, "x": None}},
        dataset_seed=17,
        repo_root=repo,
        run_name="t",
    )
    return {n: json.loads((tmp_path / n).read_text()) for n in A.MANIFEST_FILES}


@check("run-artifacts", "Run manifest before training", "The manifest exists when training starts")
def check_manifest_before_training(smoke_run):
    _, seen = smoke_run
    assert set(A.MANIFEST_FILES) <= set(seen["at_train_begin"])
    assert not any(n.startswith("checkpoint-") for n in seen["at_train_begin"])


@check("run-artifacts", "Run manifest before training", "Resolved config records the config and the dataset seed")
def check_resolved_config(smoke_run):
    result, seen = smoke_run
    doc = json.loads((result.output_dir / A.RESOLVED_CONFIG).read_text())
    assert doc["schema_version"] == 1
    assert doc["config_path"] == str(seen["leaf"])
    assert doc["dataset_seed"] == doc["resolved"]["training"]["seed"] == 17

    def nulls(x):
        if isinstance(x, dict):
            return any(v is None or nulls(v) for v in x.values())
        return isinstance(x, list) and any(nulls(v) for v in x)

    def without_nulls(x):
        if isinstance(x, dict):
            return {k: without_nulls(v) for k, v in x.items() if v is not None}
        return [without_nulls(v) for v in x] if isinstance(x, (list, tuple)) else x

    assert not nulls(doc["resolved"])
    # what the run recorded is the config exactly as the loader materialises it, less its nulls
    cfg = load_config(seen["leaf"])
    assert doc["dataset_seed"] == cfg.dataset_seed
    assert doc["resolved"] == json.loads(json.dumps(without_nulls(cfg.to_dict())))
    assert doc["resolved"]["training"]["packing"] is True


@check("run-artifacts", "Runtime environment whitelist", "Only whitelisted variables are recorded")
def check_env_whitelist(tmp_path, monkeypatch):
    docs = _manifest(
        tmp_path,
        monkeypatch,
        {
            "OMP_NUM_THREADS": "2",
            "SLURM_JOB_ID": "77",
            "HF_HOME": "",
            "HF_TOKEN": "hf_secret",
            "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        },
    )
    env = docs[A.RUNTIME_ENV]["env"]
    assert env["OMP_NUM_THREADS"] == "2" and env["SLURM_JOB_ID"] == "77"
    assert "HF_HOME" not in env and "HF_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert all(k in A.ENV_WHITELIST or k.startswith("SLURM_") for k in env)
    text = (tmp_path / A.RUNTIME_ENV).read_text() + (tmp_path / A.RUN_METADATA).read_text()
    assert "hf_secret" not in text and "s3cr3t" not in text


@check("run-artifacts", "Run metadata and upstream provenance", "Git sha and dirty flag are recorded")
def check_git_sha_and_dirty(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*a):
        return subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (repo / "f.txt").write_text("a\n")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    out = tmp_path / "out"
    meta = _manifest(out, monkeypatch, repo=repo)[A.RUN_METADATA]
    assert meta["git_sha"] == git("rev-parse", "HEAD") and meta["git_dirty"] is False
    (repo / "f.txt").write_text("b\n")
    meta = _manifest(out, monkeypatch, repo=repo)[A.RUN_METADATA]
    assert meta["git_dirty"] is True and any("f.txt" in line for line in meta["git_status_porcelain"])


@check(
    "run-artifacts", "Run metadata and upstream provenance", "Upstream versions are recorded or marked not installed"
)
def check_upstream_versions(tmp_path, monkeypatch):
    import importlib.metadata as md

    up = _manifest(tmp_path, monkeypatch)[A.RUN_METADATA]["upstream"]
    assert up["transformers"]["version"] == md.version("transformers")
    assert up["torch"]["version"] == md.version("torch")
    assert up["swift"]["version"] == md.version("ms-swift")
    assert up["vllm"] == {"error": "not installed"}  # never installed on the CPU machines


@check("run-artifacts", "Run metadata and upstream provenance", "ms-swift source provenance is recorded")
def check_ms_swift_source(tmp_path, monkeypatch):
    import importlib.util

    ms = _manifest(tmp_path, monkeypatch)[A.RUN_METADATA]["upstream"]["ms_swift"]
    assert ms["install_dir"] == str(Path(importlib.util.find_spec("swift").origin).parent)
    # installed from a wheel inside the repo's ignored .venv: not mistaken for an ms-swift checkout
    assert ms["git_checkout"] is False


@check("run-artifacts", "Run metadata and upstream provenance", "Rollout-server launch flags are recorded when set")
def check_launcher_flags(tmp_path, monkeypatch):
    meta = _manifest(
        tmp_path,
        monkeypatch,
        {
            "COORDEXP_STAGE2_SERVER_TP": "2",
            "COORDEXP_STAGE2_SERVER_BASE_URL": "http://h:8000",
            "COORDEXP_STAGE2_SERVER_DP": "",
        },
    )[A.RUN_METADATA]
    assert meta["launcher"] == {"COORDEXP_STAGE2_SERVER_TP": "2", "COORDEXP_STAGE2_SERVER_BASE_URL": "http://h:8000"}


@check("run-artifacts", "Weight-only checkpoints", "A checkpoint holds weights only")
def check_weight_only_checkpoint(smoke_run, tmp_path):
    result, _ = smoke_run
    ckpts = sorted(result.output_dir.glob("checkpoint-*"))
    assert ckpts
    for ck in ckpts:
        assert A.checkpoint_problems(ck) == [], A.checkpoint_problems(ck)
    # the policy check itself catches a full checkpoint
    bad = tmp_path / "checkpoint-9"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"")
    (bad / "optimizer.pt").write_bytes(b"")
    (bad / "rng_state.pth").write_bytes(b"")
    assert len(A.checkpoint_problems(bad)) == 2


@check("run-artifacts", "Weight-only checkpoints", "Training ends with a checkpoint and an evaluation")
def check_final_checkpoint_and_eval(smoke_run):
    result, _ = smoke_run
    assert result.final_checkpoint == result.output_dir / "checkpoint-2"
    assert result.final_checkpoint.is_dir() and A.checkpoint_problems(result.final_checkpoint) == []
    state = json.loads((result.final_checkpoint / "trainer_state.json").read_text())
    assert any("eval_loss" in h and "eval_token_acc" in h for h in state["log_history"])


PINNED = {
    "create_optimizer": ["self", "model"],
    "create_optimizer_and_scheduler": ["self", "num_training_steps"],
    "create_scheduler": ["self", "num_training_steps", "optimizer"],
    "get_optimizer_cls_and_kwargs": ["args", "model"],
    "get_decay_parameter_names": ["self", "model"],
    "compute_loss": ["self", "model", "inputs", "return_outputs", "num_items_in_batch"],
    "training_step": ["self", "model", "inputs", "num_items_in_batch"],
    "get_batch_samples": ["self", "epoch_iterator", "num_batches", "device"],
}


@check("run-artifacts", "Trainer surface contract", "Optimizer helper signatures are pinned")
@pytest.mark.reach_exception(
    "inspects the installed transformers Trainer's signatures (inspect.signature): a static contract on the "
    "dependency that runs no coordexp function"
)
def check_trainer_signatures():
    from transformers import Trainer

    from coordexp.stage1.trainer import Stage1Trainer

    got = {name: list(inspect.signature(getattr(Trainer, name)).parameters) for name in PINNED}
    assert got == PINNED
    assert isinstance(inspect.getattr_static(Trainer, "get_optimizer_cls_and_kwargs"), staticmethod)
    # our overrides keep the same parameter lists
    for name in ("compute_loss", "get_batch_samples", "create_optimizer"):
        assert list(inspect.signature(getattr(Stage1Trainer, name)).parameters) == PINNED[name]


@check("run-artifacts", "Stage-1 training entrypoint", "The smoke run trains packed and the loss goes down")
def check_smoke_trains_packed(smoke_run):
    result, _ = smoke_run
    gas = load_config(SMOKE).training["effective_batch_size"]  # packs per optimizer step, one rank
    assert result.gated_batches >= 2 * gas  # 2 steps, every micro-batch through the packing gate
    assert len(result.logged_losses) >= 2
    assert result.logged_losses[-1] < result.logged_losses[0]
    plan = json.loads((result.output_dir / "packing_plan.json").read_text())
    assert plan["report"]["dropped_too_long"] == [] and plan["report"]["num_samples"] == 64
    assert max(len(p) for p in plan["packs"]) >= 2, "the smoke profile must really pack several samples"
