"""Unit tests for the training core's config mapping (coordexp.training.settings) and the
coordexp.train dispatch (no training)."""

from pathlib import Path

import pytest

from coordexp.config import load_config
from coordexp.train import main
from coordexp.training.settings import RunSettings, TrainSetupError, training_arguments

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "stage1" / "smoke" / "tiny_cpu.yaml"


def test_unsupported_training_key_is_refused():
    cfg = load_config(SMOKE, overrides={"training.torch_compile": True})
    with pytest.raises(TrainSetupError, match="training.torch_compile"):
        RunSettings.from_config(cfg)


def test_checkpoints_must_be_weight_only():
    cfg = load_config(SMOKE, overrides={"training.save_only_model": False})
    with pytest.raises(TrainSetupError, match="save_only_model"):
        RunSettings.from_config(cfg)


def test_overrides_reach_the_typed_extras_and_the_batch_rule():
    """An override goes through load_config's checks: the typed extras and the derived GAS follow it."""
    cfg = load_config(SMOKE, overrides={"training.effective_batch_size": 4, "training.packing_buffer": 64})
    assert cfg.extras.effective_batch_size == 4 and cfg.extras.packing_buffer == 64
    assert cfg.training["gradient_accumulation_steps"] == 4
    assert RunSettings.from_config(cfg).per_rank_batch == 4


def test_image_cap_default_is_read_in_one_place():
    cfg = load_config(SMOKE)
    cfg.template.pop("max_pixels", None)
    assert RunSettings.from_config(cfg).max_pixels == 786432
    assert RunSettings.from_config(load_config(SMOKE, overrides={"template.max_pixels": 4096})).max_pixels == 4096


def test_smoke_arguments(tmp_path):
    cfg = load_config(SMOKE, overrides={"training.output_dir": str(tmp_path)})
    args = training_arguments(RunSettings.from_config(cfg))
    assert args.save_only_model and args.per_device_train_batch_size == 1
    assert args.gradient_accumulation_steps == cfg.training["effective_batch_size"]  # one rank: GAS = packs per step
    assert args.seed == 17 and args.data_seed == 17


def test_a_data_seed_the_sampler_would_ignore_is_refused(tmp_path):
    import pytest

    from coordexp.training.settings import TrainSetupError

    cfg = load_config(SMOKE, overrides={"training.output_dir": str(tmp_path), "training.data_seed": 5})
    with pytest.raises(TrainSetupError, match=r"training\.data_seed 5: the training order is data\.epoch_permutation"):
        RunSettings.from_config(cfg)
    same = load_config(SMOKE, overrides={"training.output_dir": str(tmp_path), "training.data_seed": 17})
    assert training_arguments(RunSettings.from_config(same)).data_seed == 17


def test_cli_missing_config_is_a_one_line_error(capsys, tmp_path):
    assert main([str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "config" in err and "Traceback" not in err


def test_ms_swift_callback_patch_is_undone():
    """ms-swift patches transformers' default callbacks on import; our trainers must not run with them."""
    import swift.trainers.patcher as patcher  # the import applies the process-wide patch
    from transformers import trainer_callback as tc
    from transformers.trainer_callback import CallbackHandler

    from coordexp.training.trainer import restore_transformers_callbacks

    class Mine(tc.TrainerCallback):
        pass

    mine = Mine()
    handler = CallbackHandler([patcher.DefaultFlowCallbackNew(), mine], None, None, None, None)
    handler.add_callback(patcher.ProgressCallbackNew())
    assert restore_transformers_callbacks(handler) == 2
    assert [type(cb) for cb in handler.callbacks] == [tc.DefaultFlowCallback, Mine, tc.ProgressCallback]
    assert handler.callbacks[1] is mine
    assert restore_transformers_callbacks(handler) == 0
