"""Unit tests for coordexp.train's config mapping (no training)."""

from pathlib import Path

import pytest

from coordexp.config import load_config
from coordexp.train import TrainSetupError, _training_arguments, main

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "stage1" / "smoke" / "tiny_cpu.yaml"


def test_unsupported_training_key_is_refused():
    cfg = load_config(SMOKE)
    cfg.training["torch_compile"] = True
    with pytest.raises(TrainSetupError, match="training.torch_compile"):
        _training_arguments(cfg)


def test_checkpoints_must_be_weight_only():
    cfg = load_config(SMOKE)
    cfg.training["save_only_model"] = False
    with pytest.raises(TrainSetupError, match="save_only_model"):
        _training_arguments(cfg)


def test_smoke_arguments(tmp_path):
    cfg = load_config(SMOKE)
    cfg.training["output_dir"] = str(tmp_path)
    args = _training_arguments(cfg)
    assert args.save_only_model and args.per_device_train_batch_size == 1
    assert args.gradient_accumulation_steps == cfg.training["effective_batch_size"]  # one rank: GAS = packs per step
    assert args.seed == 17 and args.data_seed == 17


def test_cli_missing_config_is_a_one_line_error(capsys, tmp_path):
    assert main([str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "config" in err and "Traceback" not in err


def test_ms_swift_callback_patch_is_undone():
    """ms-swift patches transformers' default callbacks on import; our trainers must not run with them."""
    import swift.trainers.patcher as patcher  # the import applies the process-wide patch
    from transformers import trainer_callback as tc
    from transformers.trainer_callback import CallbackHandler

    from coordexp.train import restore_transformers_callbacks

    class Mine(tc.TrainerCallback):
        pass

    mine = Mine()
    handler = CallbackHandler([patcher.DefaultFlowCallbackNew(), mine], None, None, None, None)
    handler.add_callback(patcher.ProgressCallbackNew())
    assert restore_transformers_callbacks(handler) == 2
    assert [type(cb) for cb in handler.callbacks] == [tc.DefaultFlowCallback, Mine, tc.ProgressCallback]
    assert handler.callbacks[1] is mine
    assert restore_transformers_callbacks(handler) == 0
