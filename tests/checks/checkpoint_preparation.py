"""Checks for capability `checkpoint-preparation` (coord vocabulary expansion, stage_1 merge,
weight-only resume), on the tiny Qwen3-VL through the real tools and scripts/train.sh."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import torch

from specgen import check
from tests.helpers.smoke_runs import REPO, SMOKE, leaf_config
from tests.helpers.smoke_runs import run_env as _env

STAGE2_SMOKE = REPO / "configs" / "stage2_ab" / "smoke" / "tiny_cpu.yaml"
TOL = 1e-5  # fp32 merge: ~5e-7 measured on the tiny model


def _tool(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "tools" / name), *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )


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

    root = tmp_path_factory.mktemp("stage1_ckpt")
    body = f"training:\n  output_dir: {root / 'run'}\n  max_steps: 2\n  eval_strategy: 'no'\n  save_strategy: 'no'\n"
    return run(leaf_config(root / "leaf.yaml", SMOKE, body)).final_checkpoint


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

    body = (
        f"model:\n  model: {out}\n"
        f"training:\n  output_dir: {tmp_path / 's2'}\n  max_steps: 1\n  eval_strategy: 'no'\n  save_strategy: 'no'\n"
    )
    result = run(leaf_config(tmp_path / "leaf.yaml", STAGE2_SMOKE, body), callbacks=[Probe()])
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
        body = (
            f"training:\n  output_dir: {tmp_path / 'resumed'}\n  max_steps: 1\n  eval_strategy: 'no'\n"
            f"  save_strategy: 'no'\n  resume_from_checkpoint: {stage1_checkpoint}\n"
        )
        result = run(leaf_config(tmp_path / "leaf.yaml", SMOKE, body), callbacks=[Probe(), Offsets()])
    assert seen == {"adapter_equal": True, "step": 0, "adapter_keys": True, "offset_equal": True}
    assert result.final_checkpoint.name == "checkpoint-1"
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "weights restored" in msg and "optimizer, LR scheduler, step counter and data order restart" in msg


@check("checkpoint-preparation", "Weight-only resume", "A checkpoint that does not fit is refused")
def check_resume_refused(stage1_checkpoint, tmp_path):
    from coordexp.stage1.trainer import run
    from coordexp.training.settings import TrainSetupError

    body = (
        f"training:\n  output_dir: {tmp_path / 'r'}\n  max_steps: 1\n"
        f"  resume_from_checkpoint: {stage1_checkpoint}\ncustom:\n  coord_offset:\n    enabled: false\n"
    )
    with pytest.raises(TrainSetupError) as exc:
        run(leaf_config(tmp_path / "leaf.yaml", SMOKE, body))
    assert "training.resume_from_checkpoint" in str(exc.value) and "coord_offset.safetensors" in str(exc.value)
    assert not (tmp_path / "r" / "resolved_config.json").exists()
