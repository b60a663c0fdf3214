"""Unit tests of coordexp.config internals (the spec-level behaviour is in tests/checks/training_config.py)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from coordexp.config import ConfigError, dotted, load_config
from coordexp.config.__main__ import main as cli_main
from coordexp.config.legacy import REMOVED, is_inert, legacy_message
from coordexp.config.paths import repo_root_for, resolve_path
from coordexp.config import swift_fields

BASE = """\
custom:
  object_field_order: desc_first
  json_format: standard
  emit_norm: none
  train_jsonl: data/train.jsonl
training:
  seed: 3
"""


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def keys_of(path: Path, **kw) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        load_config(path, **kw)
    return {e.key: e.message for e in exc.value.errors}


def test_dotted_paths():
    assert dotted(("rollout_matching", "vllm", "server", "servers", 0, "x")) == "rollout_matching.vllm.server.servers[0].x"
    assert dotted(("a", 1, 2)) == "a[1][2]"
    assert dotted(()) == "<root>"


def test_legacy_lookup_wildcards_and_indices():
    assert legacy_message(("custom", "extra", "rollout_matching", "decode_batch_size"))
    assert legacy_message(("rollout_matching", "train_monitor_dump", "enabled"))
    assert legacy_message(("custom", "object_field_order")) is None
    assert all(msg and not msg.endswith(".") for msg in REMOVED.values())


@pytest.mark.parametrize("value,inert", [(None, True), (False, True), (0, True), ("", True), ([], True), ({}, True),
                                         ({"enabled": False, "x": 1}, True), (True, False), (0.5, False),
                                         ({"enabled": True}, False), ("path", False)])
def test_is_inert(value, inert):
    assert is_inert(value) is inert


def test_diamond_extends_is_not_a_cycle(tmp_path):
    write(tmp_path, "configs/d.yaml", BASE)
    write(tmp_path, "configs/b.yaml", "extends: d.yaml\ntraining:\n  vit_lr: 1.0e-4\n")
    write(tmp_path, "configs/c.yaml", "extends: d.yaml\ntraining:\n  aligner_lr: 2.0e-4\n")
    cfg = load_config(write(tmp_path, "configs/a.yaml", "extends: [b.yaml, c.yaml]\n"))
    assert cfg.training["vit_lr"] == 1.0e-4 and cfg.training["aligner_lr"] == 2.0e-4
    assert [Path(p).name for p in cfg.base_config_paths] == ["d.yaml", "b.yaml", "d.yaml", "c.yaml"]


def test_self_extends_and_both_aliases(tmp_path):
    me = write(tmp_path, "configs/me.yaml", "extends: me.yaml\n" + BASE)
    assert "cycle" in keys_of(me)["extends"]
    both = write(tmp_path, "configs/both.yaml", "extends: me.yaml\ninherit: me.yaml\n" + BASE)
    assert "inherit" in keys_of(both)


def test_yaml_syntax_error_has_line(tmp_path):
    path = write(tmp_path, "configs/x.yaml", BASE + "training:\n  a: [1,\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (err,) = exc.value.errors
    assert "invalid YAML" in err.message and err.loc.line >= 8


def test_non_mapping_file_and_sections(tmp_path):
    assert keys_of(write(tmp_path, "configs/list.yaml", "- a\n- b\n"))
    keys = keys_of(write(tmp_path, "configs/s.yaml", BASE.replace("training:\n  seed: 3\n", "training: 5\n")))
    assert "mapping" in keys["training"]


def test_merge_keeps_line_of_overriding_file(tmp_path):
    write(tmp_path, "configs/base.yaml", BASE + "stage2_ab:\n  schedule:\n    b_ratio: 0.2\n")
    leaf = write(tmp_path, "configs/leaf.yaml", "extends: base.yaml\n\n\nstage2_ab:\n  schedule:\n    b_ratio: 7\n")
    with pytest.raises(ConfigError) as exc:
        load_config(leaf)
    bad = [e for e in exc.value.errors if e.key == "stage2_ab.schedule.b_ratio"]
    assert bad and bad[0].loc.file == str(leaf.resolve()) and bad[0].loc.line == 6


def test_stage2_two_channel_gets_head_message(tmp_path):
    text = BASE.replace("  train_jsonl:", "  trainer_variant: stage2_two_channel\n  train_jsonl:")
    path = write(tmp_path, "configs/x.yaml", text)
    keys = keys_of(path)
    assert "stage2_ab_training" in keys["custom.trainer_variant"] and "later-CoordExp" in keys["custom.trainer_variant"]


STAGE2 = BASE.replace("  train_jsonl:", "  trainer_variant: stage2_ab_training\n  train_jsonl:") + """\
  effective_batch_size: 4
stage2_ab:
  schedule: {b_ratio: 0.5}
rollout_matching:
  rollout_backend: hf
"""


def test_stage2_packing_needs_drop_last(tmp_path):
    body = STAGE2 + "model:\n  attn_impl: flash_attention_2\n"
    body = body.replace("  effective_batch_size: 4\n", "  effective_batch_size: 4\n  packing: true\n"
                                                          "  packing_drop_last: false\n")
    keys = keys_of(write(tmp_path, "configs/x.yaml", body))
    assert {"training.packing_drop_last", "training.dataloader_drop_last"} <= set(keys)


def test_rollout_decode_and_sync_rules(tmp_path):
    body = STAGE2.replace("  rollout_backend: hf\n", "  rollout_backend: hf\n  num_beams: 3\n")
    assert "greedy" in keys_of(write(tmp_path, "configs/a.yaml", body))["rollout_matching.num_beams"]
    body = STAGE2.replace("  rollout_backend: hf\n", "  rollout_backend: vllm\n  vllm:\n    max_model_len: 100\n"
                                                     "    sync: {mode: adapter}\n") + "global_max_length: 100\n"
    keys = keys_of(write(tmp_path, "configs/b.yaml", body))
    assert "only full weight sync is implemented" in keys["rollout_matching.vllm.sync.mode"]
    assert "rollout_matching.max_new_tokens" in keys  # 512 default >= 100
    assert "exactly one" in keys["rollout_matching.vllm.server.servers"]


def test_coord_offset_and_soft_ce_rules(tmp_path):
    text = BASE.replace("  train_jsonl: data/train.jsonl\n", "  train_jsonl: data/train.jsonl\n"
                        "  coord_offset: {enabled: true, ids: {start: 0, end: 10}}\n"
                        "  coord_soft_ce_w1: {enabled: true, soft_ce_weight: 0, w1_weight: 0, gate_weight: 0}\n")
    keys = keys_of(write(tmp_path, "configs/x.yaml", text))
    assert "1000" in keys["custom.coord_offset.ids"] and "every weight 0" in keys["custom.coord_soft_ce_w1"]


def test_world_size_from_env(tmp_path, monkeypatch):
    path = write(tmp_path, "configs/x.yaml", BASE + "  effective_batch_size: 8\n")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert load_config(path).training["gradient_accumulation_steps"] == 2
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert "training.effective_batch_size" in keys_of(path)
    monkeypatch.setenv("WORLD_SIZE", "two")
    assert "WORLD_SIZE" in keys_of(path)


def test_seed_default_warns(tmp_path):
    path = write(tmp_path, "configs/x.yaml", BASE.replace("training:\n  seed: 3\n", ""))
    with pytest.warns(UserWarning, match="training.seed"):
        cfg = load_config(path)
    assert cfg.dataset_seed == 42


def test_missing_file(tmp_path):
    assert keys_of(tmp_path / "nope.yaml") == {"": "config file not found"}


def test_cli_world_size_and_output(tmp_path, capsys):
    path = write(tmp_path, "configs/x.yaml", BASE + "  effective_batch_size: 8\n")
    assert cli_main([str(path), "--world-size", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["training"]["gradient_accumulation_steps"] == 4 and out["world_size"] == 2
    assert "extras" not in out
    assert cli_main([str(path), "--world-size", "3"]) == 2
    err = capsys.readouterr().err
    assert "training.effective_batch_size" in err and err.rstrip().endswith("the config was not loaded")


def test_paths_helpers(tmp_path):
    cfg = tmp_path / "repo" / "configs" / "a" / "b.yaml"
    assert repo_root_for(cfg) == (tmp_path / "repo").resolve()
    assert repo_root_for(tmp_path / "loose.yaml") == tmp_path.resolve()
    assert resolve_path("/abs/x", cfg) == Path("/abs/x")
    assert resolve_path("../x", cfg) == (tmp_path / "repo" / "configs" / "x").resolve()
    # a bare path that exists only next to the config falls back to the config folder
    (cfg.parent).mkdir(parents=True)
    (cfg.parent / "local.jsonl").write_text("")
    assert resolve_path("local.jsonl", cfg) == (cfg.parent / "local.jsonl").resolve()
    assert resolve_path("data/t.jsonl", cfg) == (tmp_path / "repo" / "data" / "t.jsonl").resolve()


def test_swift_field_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("COORDEXP_CACHE_DIR", str(tmp_path))
    swift_fields.field_sets.cache_clear()
    calls = []
    real = swift_fields._read_from_swift
    monkeypatch.setattr(swift_fields, "_read_from_swift", lambda: calls.append(1) or real())
    try:
        first = swift_fields.field_sets()
        assert calls == [1] and list(tmp_path.glob("swift-fields-*.json"))
        swift_fields.field_sets.cache_clear()
        assert swift_fields.field_sets() == first and calls == [1]  # second read comes from disk
        assert {"learning_rate", "attn_impl", "max_pixels"} <= first["train"] and "beta" in first["rlhf"]
        assert "beta" not in first["train"]
    finally:
        swift_fields.field_sets.cache_clear()


@pytest.mark.parametrize("key", ["monitor_dump", "offload", "desc_monitor"])
def test_unimplemented_rollout_features_are_refused_when_on(tmp_path, key):
    smoke = Path(__file__).resolve().parents[2] / "configs" / "stage2_ab" / "smoke" / "tiny_cpu.yaml"
    leaf = write(tmp_path, "configs/stage2_ab/x/leaf.yaml",
                 f"extends: {smoke}\nrollout_matching:\n  {key}:\n    enabled: true\n")
    errors = keys_of(leaf)
    assert f"rollout_matching.{key}.enabled" in errors
    assert "not implemented" in errors[f"rollout_matching.{key}.enabled"]
