"""Unit tests for the checkpoint tools' pieces on the tiny Qwen3-VL: the coord-offset fold for every
tying combination (against the training-time hooks), the full-model resume, load_config overrides."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from coordexp.checkpoints.merge import CoordOffsetTables, fold_coord_offset, probe_inputs
from coordexp.smoke.tiny import build_tiny_model
from coordexp.training.model import CoordOffset

START = 151670
SMOKE = Path(__file__).resolve().parents[2] / "configs" / "stage1" / "smoke" / "tiny_cpu.yaml"


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model()


def _untied(model):
    m = copy.deepcopy(model)
    m.get_output_embeddings().weight = torch.nn.Parameter(m.get_input_embeddings().weight.detach().clone())
    m.config.tie_word_embeddings = False
    return m


def _logits(model, inputs):
    with torch.no_grad():
        return model(**inputs, use_cache=False).logits


@pytest.mark.parametrize("model_tied", [True, False])
@pytest.mark.parametrize("tie_head", [True, False])
def test_fold_equals_the_training_hooks(tiny, model_tied, tie_head):
    g = torch.Generator().manual_seed(1)
    hidden = tiny.get_input_embeddings().weight.shape[1]
    embed = 0.1 * torch.randn(1000, hidden, generator=g)
    head = None if tie_head else 0.1 * torch.randn(1000, hidden, generator=g)
    base = tiny if model_tied else _untied(tiny)
    inputs = probe_inputs(tiny.config)

    hooked = copy.deepcopy(base)
    hooks = CoordOffset(hooked, start=START, tie_head=tie_head)
    hooks.embed.data.copy_(embed)
    if head is not None:
        hooks.head.data.copy_(head)
    folded = copy.deepcopy(base)
    untied = fold_coord_offset(folded, CoordOffsetTables(START, embed, head))

    assert untied == (model_tied and not tie_head)
    diff = (_logits(hooked, inputs) - _logits(folded, inputs)).abs().max()
    assert float(diff) < 1e-5
    # and the offsets matter: the unfolded model is far off
    assert float((_logits(hooked, inputs) - _logits(base, inputs)).abs().max()) > 1e-2


def test_fold_refuses_a_model_without_the_rows(tiny):
    from coordexp.checkpoints.files import CheckpointError

    hidden = tiny.get_input_embeddings().weight.shape[1]
    with pytest.raises(CheckpointError, match="rows"):
        fold_coord_offset(copy.deepcopy(tiny), CoordOffsetTables(152000, torch.zeros(1000, hidden), None))


def test_full_model_resume_restores_every_weight(tiny, tmp_path):
    from coordexp.training.saving import restore_weights

    tiny.save_pretrained(tmp_path / "ckpt")
    other = copy.deepcopy(tiny)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    restored = restore_weights(other, None, tmp_path / "ckpt", where="t.yaml")
    assert restored["model_tensors"] > 0
    for (name, a), (_, b) in zip(tiny.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), name


def test_resume_refuses_a_missing_folder(tiny, tmp_path):
    from coordexp.training.saving import restore_weights
    from coordexp.training.settings import TrainSetupError

    with pytest.raises(TrainSetupError, match="training.resume_from_checkpoint"):
        restore_weights(tiny, None, tmp_path / "nope", where="t.yaml")


def _damage(path: Path, how: str) -> None:
    import os

    data = path.read_bytes()
    path.unlink()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00not safetensors" * 64)
    elif how == "header-size":  # an 8-byte length far past the file's end
        path.write_bytes((10**15).to_bytes(8, "little") + b"{}")
    elif how == "fifo":  # opening it would block the run forever
        os.mkfifo(path)
    elif how == "folder":
        path.mkdir()


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage", "header-size", "fifo", "folder"])
def test_resume_from_a_damaged_checkpoint_is_one_line_exit_2(tiny, tmp_path, how, capsys):
    from coordexp.training.entry import run_reported
    from coordexp.training.saving import restore_weights

    tiny.save_pretrained(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    _damage(weights, how)
    other = copy.deepcopy(tiny)
    capsys.readouterr()  # the save's progress bar
    _, rc = run_reported(
        "coordexp.train", lambda _c: restore_weights(other, None, tmp_path / "ckpt", where="t.yaml"), "t"
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "\n" not in err and "Traceback" not in err
    assert "training.resume_from_checkpoint" in err and str(weights) in err


def test_resume_names_a_damaged_coord_offset_file(tiny, tmp_path):
    from coordexp.training.model import CoordOffset
    from coordexp.training.saving import COORD_OFFSET_FILE, restore_weights
    from coordexp.training.settings import TrainSetupError

    tiny.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / COORD_OFFSET_FILE).write_bytes(b"\x01\x02garbage")
    model = copy.deepcopy(tiny)
    hooks = CoordOffset(model, start=START, tie_head=True)
    with pytest.raises(TrainSetupError, match=f"{COORD_OFFSET_FILE}: not a readable safetensors file"):
        restore_weights(model, hooks, tmp_path / "ckpt", where="t.yaml")


def test_override_into_a_scalar_is_a_config_error():
    from coordexp.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="override global_max_length.x"):
        load_config(SMOKE, overrides={"global_max_length.x": 1})


def test_unknown_override_key_is_refused_like_a_file_key():
    from coordexp.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="training.no_such_knob"):
        load_config(SMOKE, overrides={"training.no_such_knob": 1})
