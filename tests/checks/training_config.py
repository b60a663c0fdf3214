"""Checks for the training-config capability: coordexp.config on real YAML files in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from coordexp.config import ConfigError, ConfigWarning, load_config
from coordexp.config.issues import display_path
from specgen import check

CAP = "training-config"
REPO = Path(__file__).resolve().parents[2]

STAGE1 = """\
custom:
  object_field_order: desc_first
  json_format: standard
  emit_norm: none
  train_jsonl: data/train.jsonl
training:
  seed: 17
"""

STAGE2 = """\
custom:
  object_field_order: desc_first
  json_format: standard
  emit_norm: none
  train_jsonl: data/train.jsonl
  trainer_variant: stage2_ab_training
training:
  seed: 17
  effective_batch_size: 4
stage2_ab:
  schedule:
    b_ratio: 0.5
rollout_matching:
  rollout_backend: hf
"""

VLLM = """\
global_max_length: 12000
rollout_matching:
  rollout_backend: vllm
  max_new_tokens: 2048
  vllm:
    mode: server
    max_model_len: 12000
    server:
      servers:
        - base_url: http://127.0.0.1:8000
          group_port: 51216
"""


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def leaf(root: Path, body: str, base: str = STAGE1, name: str = "configs/leaf.yaml") -> Path:
    """A leaf extending a base file, so a test only writes the keys it is about."""
    write(root, "configs/base.yaml", base)
    return write(root, name, "extends: base.yaml\n" + textwrap.dedent(body))


def errors(path: Path, **kw) -> list:
    with pytest.raises(ConfigError) as exc:
        load_config(path, **kw)
    return exc.value.errors


def error_keys(path: Path, **kw) -> dict[str, str]:
    return {e.key: e.message for e in errors(path, **kw)}


# ---------------------------------------------------------------- Config Inheritance


@check(CAP, "Config Inheritance", "Bases merge in list order and the leaf wins")
def check_bases_merge_in_order(tmp_path):
    write(tmp_path, "configs/a.yaml", STAGE1 + "  learning_rate: 1.0e-3\n")
    write(tmp_path, "configs/b.yaml", "training:\n  learning_rate: 2.0e-3\n")
    with_leaf = write(tmp_path, "configs/leaf.yaml", "extends: [a.yaml, b.yaml]\ntraining:\n  learning_rate: 3.0e-3\n")
    assert load_config(with_leaf).training["learning_rate"] == 3.0e-3
    no_leaf = write(tmp_path, "configs/leaf2.yaml", "extends: [a.yaml, b.yaml]\n")
    assert load_config(no_leaf).training["learning_rate"] == 2.0e-3
    reversed_order = write(tmp_path, "configs/leaf3.yaml", "extends: [b.yaml, a.yaml]\n")
    assert load_config(reversed_order).training["learning_rate"] == 1.0e-3


@check(CAP, "Config Inheritance", "Mappings deep-merge and lists replace")
def check_deep_merge_lists_replace(tmp_path):
    base = STAGE1 + "  learning_rate: 1.0e-3\ntuner:\n  target_modules: [q_proj, v_proj]\n"
    path = leaf(tmp_path, "training:\n  vit_lr: 5.0e-4\ntuner:\n  target_modules: [all-linear]\n", base=base)
    cfg = load_config(path)
    assert cfg.training["learning_rate"] == 1.0e-3 and cfg.training["vit_lr"] == 5.0e-4
    assert cfg.tuner["target_modules"] == ["all-linear"]


@check(CAP, "Config Inheritance", "inherit is an alias of extends")
def check_inherit_alias(tmp_path):
    write(tmp_path, "configs/base.yaml", STAGE1)
    a = write(tmp_path, "configs/a.yaml", "extends: base.yaml\ntraining:\n  vit_lr: 1.0e-4\n")
    b = write(tmp_path, "configs/b.yaml", "inherit: base.yaml\ntraining:\n  vit_lr: 1.0e-4\n")
    da, db = load_config(a).to_dict(), load_config(b).to_dict()
    for d in (da, db):
        d.pop("config_path")
    assert da == db


@check(CAP, "Config Inheritance", "An extends cycle is an error naming the chain")
def check_extends_cycle(tmp_path):
    a = write(tmp_path, "configs/a.yaml", "extends: b.yaml\n" + STAGE1)
    write(tmp_path, "configs/b.yaml", "extends: a.yaml\n")
    messages = [e.message for e in errors(a)]
    assert any("a.yaml -> b.yaml -> a.yaml" in m for m in messages), messages


@check(CAP, "Config Inheritance", "A missing base is reported at the extends line")
def check_missing_base(tmp_path):
    path = write(tmp_path, "configs/leaf.yaml", "extends: nowhere.yaml\n" + STAGE1)
    (err,) = errors(path)
    assert err.loc.file == str(path.resolve()) and err.loc.line == 1
    assert "nowhere.yaml" in err.message and err.format().endswith(err.message)


# ---------------------------------------------------------------- Strict Keys With Dotted Paths


@check(CAP, "Strict Keys With Dotted Paths", "An unknown nested key names its dotted path and line")
def check_unknown_nested_key(tmp_path):
    path = write(
        tmp_path,
        "configs/x.yaml",
        STAGE1.replace(
            "  train_jsonl: data/train.jsonl\n",
            "  train_jsonl: data/train.jsonl\n  coord_soft_ce_w1:\n    w1_wieght: 3.0\n",
        ),
    )
    assert path.read_text().splitlines()[6].strip() == "w1_wieght: 3.0"
    (err,) = errors(path)
    line = err.format()
    assert line.startswith(f"{display_path(path)}:7: error: custom.coord_soft_ce_w1.w1_wieght: unknown key"), line
    assert "Did you mean `custom.coord_soft_ce_w1.w1_weight`?" in line and "Migration guidance" in line


@check(CAP, "Strict Keys With Dotted Paths", "A key inside a list item names its index")
def check_list_index_path(tmp_path):
    body = VLLM.replace("          group_port: 51216\n", "          group_port: 51216\n          x: 1\n")
    path = leaf(tmp_path, body, base=STAGE2)
    keys = error_keys(path)
    assert "rollout_matching.vllm.server.servers[0].x" in keys, keys


@check(CAP, "Strict Keys With Dotted Paths", "Every problem is reported in one load")
def check_all_problems_reported(tmp_path):
    path = leaf(tmp_path, "model:\n  foo: 1\ncustom:\n  bar: 2\ntraining:\n  baz: 3\n")
    errs = errors(path)
    assert {e.key for e in errs} == {"model.foo", "custom.bar", "training.baz"}
    text = str(ConfigError(errs))
    assert sum(1 for ln in text.splitlines() if ": error: " in ln) == 3


@check(CAP, "Strict Keys With Dotted Paths", "ms-swift sections accept exactly ms-swift's fields")
def check_swift_sections(tmp_path):
    ok = leaf(
        tmp_path, "model:\n  attn_impl: sdpa\ntraining:\n  vit_lr: 1.0e-4\nrlhf:\n  beta: 0.1\n  llm_kd_weight: 1.0\n"
    )
    cfg = load_config(ok)
    assert cfg.model["attn_impl"] == "sdpa" and cfg.rlhf == {"beta": 0.1, "llm_kd_weight": 1.0}
    bad = leaf(tmp_path, "model:\n  attn_implementation: sdpa\ntraining:\n  beta: 0.1\n", name="configs/bad.yaml")
    keys = error_keys(bad)
    assert set(keys) == {"model.attn_implementation", "training.beta"}
    assert all("unknown key" in m for m in keys.values())


@check(CAP, "Strict Keys With Dotted Paths", "coordexp's training extras are accepted")
def check_training_extras(tmp_path):
    # save_delay_epochs, save_last_epoch, packing_avg_samples, packing_wait_timeout_s and
    # packing_length_cache_persist_every are accepted at their defaults only (coordexp.config.coverage
    # refuses any other value: nothing implements them)
    extras = {
        "effective_batch_size": 4,
        "save_delay_steps": 10,
        "save_delay_epochs": None,
        "save_last_epoch": True,
        "packing": True,
        "packing_mode": "static",
        "packing_buffer": 64,
        "packing_min_fill_ratio": 0.6,
        "packing_drop_last": True,
        "packing_allow_single_long": False,
        "eval_packing": False,
        "packing_avg_samples": None,
        "packing_wait_timeout_s": None,
        "packing_length_cache_persist_every": None,
    }
    body = "model:\n  attn_impl: flash_attention_2\ntraining:\n" + "".join(
        f"  {k}: {json.dumps(v)}\n" for k, v in extras.items()
    )
    cfg = load_config(leaf(tmp_path, body))
    for k, v in extras.items():
        assert cfg.training[k] == v, k


@check(CAP, "Strict Keys With Dotted Paths", "Top-level extra and prompts are rejected")
def check_top_level_extra_and_prompts(tmp_path):
    keys = error_keys(leaf(tmp_path, "extra:\n  a: 1\n"))
    assert "custom.extra" in keys["extra"] and "only open bucket" in keys["extra"]
    keys = error_keys(leaf(tmp_path, "prompts:\n  system: be nice\n", name="configs/p.yaml"))
    assert "fixed in code" in keys["prompts"]
    load_config(leaf(tmp_path, "prompts: {}\n", name="configs/empty.yaml"))  # an empty section is harmless


@check(CAP, "Strict Keys With Dotted Paths", "Duplicate YAML keys are errors")
def check_duplicate_keys(tmp_path):
    path = write(tmp_path, "configs/x.yaml", STAGE1 + "  learning_rate: 1.0e-3\n  learning_rate: 2.0e-3\n")
    (err,) = errors(path)
    assert len(STAGE1.splitlines()) == 7  # the two learning_rate lines are 8 and 9
    assert err.key == "training.learning_rate" and err.loc.line == 9
    assert "first set at line 8" in err.message


# ---------------------------------------------------------------- Migration Messages For Removed Keys

REMOVED_KEYS = [
    "training.packing_length",
    "custom.sample_limit",
    "custom.extra.rollout_matching.max_new_tokens",
    "rollout_matching.temperature",
    "rollout_matching.top_p",
    "rollout_matching.top_k",
    "rollout_matching.rollout_buffer",
    "rollout_matching.rollout_generate_batch_size",
    "rollout_matching.rollout_infer_batch_size",
    "rollout_matching.post_rollout_pack_scope",
    "rollout_matching.vllm.server.base_url",
    "rollout_matching.vllm.server.group_port",
    "stage2_ab.schedule.pattern",
    "stage2_ab.bbox_l1_weight",
    "stage2_ab.bbox_giou_weight",
    *(
        f"stage2_ab.channel_b.{k}"
        for k in (
            "mode",
            "async",
            "rollouts_per_step",
            "enable_pipeline",
            "rollout_decode_batch_size",
            "reordered_gt_sft",
            "desc_ce_weight_matched",
            "semantic_desc_gate",
            "stop_neutral",
        )
    ),
]


def _nested_yaml(dotted_key: str, value: str = "1") -> str:
    parts = dotted_key.split(".")
    head = "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(parts[:-1]))
    return head + f"{'  ' * (len(parts) - 1)}{parts[-1]}: {value}\n"


@pytest.mark.parametrize("key", REMOVED_KEYS)
@check(CAP, "Migration Messages For Removed Keys", "Every removed key names its replacement")
def check_removed_keys(tmp_path, key):
    path = leaf(tmp_path, _nested_yaml(key), base=STAGE2)
    errs = [e for e in errors(path) if key.startswith(e.key)]
    assert errs, f"no error at {key}"
    message = errs[0].message
    assert "unknown key" not in message and "Migration guidance" not in message
    assert any(w in message for w in ("use", "removed", "moved", "rollout_matching")), message


@check(CAP, "Migration Messages For Removed Keys", "Audit-era soft-context keys are valid")
def check_softctx_keys_valid(tmp_path):
    body = "stage2_ab:\n  n_softctx_iter: 3\n  softctx_grad_mode: em_detach\n  softctx_temperature: 0.5\n"
    s2 = load_config(leaf(tmp_path, body, base=STAGE2)).stage2_ab
    assert (s2.n_softctx_iter, s2.softctx_grad_mode, s2.softctx_temperature) == (3, "em_detach", 0.5)


@check(CAP, "Migration Messages For Removed Keys", "The deprecated coord_loss warns")
def check_coord_loss_warns(tmp_path):
    path = leaf(tmp_path, "custom:\n  coord_loss:\n    enabled: true\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(path)
    assert "coord_loss" not in cfg.to_dict()["custom"]
    hits = [str(w.message) for w in caught if issubclass(w.category, ConfigWarning)]
    assert any(f"{display_path(path)}:3: warning: custom.coord_loss:" in h for h in hits), hits
    assert any("custom.coord_loss" in w for w in cfg.warnings)


@check(CAP, "Migration Messages For Removed Keys", "coord_expectation_metrics fails with guidance")
def check_coord_expectation_metrics(tmp_path):
    keys = error_keys(leaf(tmp_path, "custom:\n  coord_expectation_metrics: true\n"))
    assert "custom.coord_soft_ce_w1" in keys["custom.coord_expectation_metrics"]


@check(CAP, "Migration Messages For Removed Keys", "Unimplemented features are accepted only when inert")
def check_inert_only(tmp_path):
    load_config(leaf(tmp_path, "custom:\n  augmentation: null\n  visual_kd:\n    enabled: false\n"))
    keys = error_keys(leaf(tmp_path, "custom:\n  augmentation:\n    enabled: true\n", name="configs/on.yaml"))
    assert "not implemented" in keys["custom.augmentation"] and "ignored" in keys["custom.augmentation"]


@check(CAP, "Migration Messages For Removed Keys", "ms-swift fields that bypass a contract are rejected")
def check_contract_bypass_fields(tmp_path):
    keys = error_keys(leaf(tmp_path, "template:\n  system: You are a cat.\n  norm_bbox: norm1000\n"))
    assert "fixed in code" in keys["template.system"]
    assert "never" in keys["template.norm_bbox"] and "rescale" in keys["template.norm_bbox"]


# ---------------------------------------------------------------- Typed Values


@check(CAP, "Typed Values", "Booleans and numbers do not mix")
def check_bool_number(tmp_path):
    keys = error_keys(leaf(tmp_path, "custom:\n  coord_tokens:\n    enabled: 1\n"))
    assert "true or false" in keys["custom.coord_tokens.enabled"]
    keys = error_keys(leaf(tmp_path, "stage2_ab:\n  n_softctx_iter: true\n", base=STAGE2, name="configs/b.yaml"))
    assert "integer" in keys["stage2_ab.n_softctx_iter"]


@check(CAP, "Typed Values", "Enumerations and bounds are enforced")
def check_enums_bounds(tmp_path):
    body = (
        "stage2_ab:\n  schedule:\n    b_ratio: 1.5\n  softctx_grad_mode: detach\n"
        "rollout_matching:\n  decoding:\n    top_k: 0\n"
    )
    keys = error_keys(leaf(tmp_path, body, base=STAGE2))
    assert "<= 1.0" in keys["stage2_ab.schedule.b_ratio"] and "1.5" in keys["stage2_ab.schedule.b_ratio"]
    grad_mode = keys["stage2_ab.softctx_grad_mode"]
    assert "'unroll', 'em_detach'" in grad_mode and "detach" in grad_mode
    assert "-1" in keys["rollout_matching.decoding.top_k"] and "got 0" in keys["rollout_matching.decoding.top_k"]


@check(CAP, "Typed Values", "Exponent floats without a dot are floats")
def check_exponent_floats(tmp_path):
    cfg = load_config(leaf(tmp_path, "custom:\n  coord_offset:\n    embed_lr: 1e-4\n"))
    assert isinstance(cfg.custom.coord_offset.embed_lr, float) and cfg.custom.coord_offset.embed_lr == 0.0001


# ---------------------------------------------------------------- Bounded Reading Of Config Files


def _hostile_run(module: str, path: Path, cwd: Path) -> subprocess.CompletedProcess:
    """The entry point on one file; a run that outlives the timeout fails the check (it is unbounded)."""
    try:
        return subprocess.run(
            [sys.executable, "-m", module, str(path)], capture_output=True, text=True, cwd=cwd, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"python -m {module} {path.name}: still running after 60 s (an unbounded read)")


def _assert_one_line_error(r: subprocess.CompletedProcess, name: str) -> list[str]:
    assert r.returncode == 2, (name, r.returncode, r.stderr[-500:])
    assert "Traceback" not in r.stderr and r.stdout == "", (name, r.stderr[-500:])
    lines = [ln for ln in r.stderr.splitlines() if ": error: " in ln]
    assert lines and all(ln.split(":")[1].isdigit() for ln in lines), (name, r.stderr)
    return lines


def alias_bomb(levels: int = 9) -> str:
    names = [f"l{i}" for i in range(levels)]
    out = f"{names[0]}: &{names[0]} [x, x, x, x, x, x, x, x, x]\n"
    for prev, cur in zip(names, names[1:], strict=False):
        out += f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    return out + f"custom:\n  extra: *{names[-1]}\n"


@check(CAP, "Bounded Reading Of Config Files", "An alias bomb and an extends fan-out stop with one error")
def check_alias_bomb_and_extends_fan_out(tmp_path):
    bomb = write(tmp_path, "configs/bomb.yaml", alias_bomb())
    for i in range(30):
        write(tmp_path, f"configs/c{i}.yaml", f"extends: [c{i + 1}.yaml, c{i + 1}.yaml]\n" if i < 29 else STAGE1)
    for path, words in ((bomb, "aliases are expanded"), (tmp_path / "configs" / "c0.yaml", "twice")):
        lines = _assert_one_line_error(_hostile_run("coordexp.config", path, tmp_path), path.name)
        assert any(words in ln for ln in lines), lines


@check(CAP, "Bounded Reading Of Config Files", "Unreadable YAML gets the loader's one-line error")
def check_unreadable_yaml_is_one_line(tmp_path):
    files = {
        "latin1.yaml": "training:\n  seed: 17\n# caf\xe9\n".encode("latin-1"),
        "binary.yaml": bytes(range(256)) * 4,
        "recursive.yaml": b"custom:\n  extra: &a [1, *a]\n",
        "digits.yaml": b"training:\n  seed: " + b"9" * 5000 + b"\n",
        "deep.yaml": b"custom:\n  extra: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    }
    for name, data in files.items():
        path = tmp_path / "configs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        for module in ("coordexp.config", "coordexp.train"):
            _assert_one_line_error(_hostile_run(module, path, tmp_path), f"{module} {name}")


# ---------------------------------------------------------------- Checked Training Numbers


@check(CAP, "Checked Training Numbers", "Non-finite and mistyped training numbers are refused naming the key")
def check_training_numbers(tmp_path):
    cases = [
        ("learning_rate", ".nan", "nan"),
        ("learning_rate", ".inf", "inf"),
        ("learning_rate", '"fast"', "'fast'"),
        ("max_steps", "true", "True"),
        ("max_steps", "1e23", "1e+23"),
        ("max_steps", "-5", "-5"),
    ]
    for i, (key, text, shown) in enumerate(cases):
        path = leaf(tmp_path, f"training:\n  {key}: {text}\n", name=f"configs/n{i}.yaml")
        found = [e for e in errors(path) if e.key == f"training.{key}"]
        assert found and shown in found[0].message, (key, text, [e.format() for e in errors(path)])
    ok = leaf(tmp_path, "training:\n  learning_rate: 1.0e-4\n  max_steps: -1\n", name="configs/ok.yaml")
    assert load_config(ok).training["max_steps"] == -1


# ---------------------------------------------------------------- Required Keys And Coordinate Invariants


@check(CAP, "Required Keys And Coordinate Invariants", "object_field_order has no default")
def check_field_order_required(tmp_path):
    path = write(tmp_path, "configs/x.yaml", STAGE1.replace("  object_field_order: desc_first\n", ""))
    keys = error_keys(path)
    assert "required" in keys["custom.object_field_order"]


@check(CAP, "Required Keys And Coordinate Invariants", "Only standard JSON and no emit normalization")
def check_json_format_emit_norm(tmp_path):
    keys = error_keys(leaf(tmp_path, "custom:\n  json_format: compact\n  emit_norm: norm1000\n"))
    assert "'standard'" in keys["custom.json_format"] and "'none'" in keys["custom.emit_norm"]


@pytest.mark.parametrize("flag", ["enabled", "skip_bbox_norm"])
@check(CAP, "Required Keys And Coordinate Invariants", "Both coord-token flags must be true")
def check_coord_token_flags(tmp_path, flag):
    keys = error_keys(leaf(tmp_path, f"custom:\n  coord_tokens:\n    {flag}: false\n"))
    assert "must be true" in keys[f"custom.coord_tokens.{flag}"] and "targets" in keys[f"custom.coord_tokens.{flag}"]


@check(CAP, "Required Keys And Coordinate Invariants", "The training JSONL is required")
def check_train_jsonl_required(tmp_path):
    path = write(tmp_path, "configs/x.yaml", STAGE1.replace("  train_jsonl: data/train.jsonl\n", ""))
    assert "custom.train_jsonl" in error_keys(path)


@check(CAP, "Required Keys And Coordinate Invariants", "A real ms-swift dataset is refused")
def check_dummy_dataset(tmp_path):
    keys = error_keys(leaf(tmp_path, "data:\n  dataset: [coco]\n"))
    assert "custom.train_jsonl" in keys["data.dataset"]
    cfg = load_config(leaf(tmp_path, "training:\n  seed: 1\n", name="configs/ok.yaml"))
    assert cfg.data["dataset"] == ["dummy"] and cfg.data["val_dataset"] == ["dummy"]


# ---------------------------------------------------------------- Stage-2 Variant Sections


@check(CAP, "Stage-2 Variant Sections", "The Stage-2 variant requires its sections")
def check_stage2_requires_sections(tmp_path):
    path = leaf(tmp_path, "custom:\n  trainer_variant: stage2_ab_training\n")
    assert {"stage2_ab", "rollout_matching", "training.effective_batch_size"} <= set(error_keys(path))


@check(CAP, "Stage-2 Variant Sections", "Stage-2 sections without the variant are rejected")
def check_stage2_sections_without_variant(tmp_path):
    keys = error_keys(leaf(tmp_path, "stage2_ab:\n  schedule:\n    b_ratio: 0.5\n"))
    assert "ignored" in keys["stage2_ab"]


@check(CAP, "Stage-2 Variant Sections", "The eval batch is the decode batch")
def check_eval_batch_is_decode_batch(tmp_path):
    cfg = load_config(leaf(tmp_path, "rollout_matching:\n  decode_batch_size: 4\n", base=STAGE2))
    assert cfg.training["per_device_eval_batch_size"] == 4
    bad = leaf(
        tmp_path,
        "rollout_matching:\n  decode_batch_size: 4\ntraining:\n  per_device_eval_batch_size: 2\n",
        base=STAGE2,
        name="configs/bad.yaml",
    )
    assert "training.per_device_eval_batch_size" in error_keys(bad)


# ---------------------------------------------------------------- Length Coherence


@check(CAP, "Length Coherence", "global_max_length sets both lengths")
def check_global_max_length(tmp_path):
    cfg = load_config(leaf(tmp_path, "global_max_length: 4096\n"))
    assert cfg.template["max_length"] == 4096 and cfg.model["max_model_len"] == 4096
    keys = error_keys(leaf(tmp_path, "global_max_length: 4096\ntemplate:\n  max_length: 2048\n", name="configs/c.yaml"))
    assert "global_max_length" in keys["template.max_length"]


@check(CAP, "Length Coherence", "max_new_tokens must leave room in the server context")
def check_max_new_tokens_gate(tmp_path):
    bad = leaf(tmp_path, VLLM.replace("max_new_tokens: 2048", "max_new_tokens: 12000"), base=STAGE2)
    keys = error_keys(bad)
    assert set(keys) == {"rollout_matching.max_new_tokens"}, keys
    load_config(leaf(tmp_path, VLLM, base=STAGE2, name="configs/ok.yaml"))


@check(CAP, "Length Coherence", "The server context covers the learner length")
def check_server_context_gate(tmp_path):
    body = VLLM.replace("max_model_len: 12000", "max_model_len: 8000")
    keys = error_keys(leaf(tmp_path, body, base=STAGE2))
    assert ">= global_max_length" in keys["rollout_matching.vllm.max_model_len"]


@check(CAP, "Length Coherence", "Exactly one rollout server")
def check_one_server(tmp_path):
    two = VLLM + "        - base_url: http://127.0.0.1:8001\n          group_port: 51217\n"
    keys = error_keys(leaf(tmp_path, two, base=STAGE2))
    assert "exactly one" in keys["rollout_matching.vllm.server.servers[1]"]
    no_port = VLLM.replace("http://127.0.0.1:8000", "http://127.0.0.1")
    keys = error_keys(leaf(tmp_path, no_port, base=STAGE2, name="configs/p.yaml"))
    assert "port" in keys["rollout_matching.vllm.server.servers[0].base_url"]


# ---------------------------------------------------------------- Batch Derivation


@check(CAP, "Batch Derivation", "Gradient accumulation is derived")
def check_gas_derived(tmp_path):
    cfg = load_config(
        leaf(tmp_path, "training:\n  effective_batch_size: 64\n  per_device_train_batch_size: 2\n"), world_size=4
    )
    assert cfg.training["gradient_accumulation_steps"] == 8


@check(CAP, "Batch Derivation", "An indivisible effective batch is rejected")
def check_indivisible_batch(tmp_path):
    keys = error_keys(leaf(tmp_path, "training:\n  effective_batch_size: 30\n"), world_size=4)
    assert "multiple of 4" in keys["training.effective_batch_size"]


@check(CAP, "Batch Derivation", "A conflicting explicit GAS is rejected")
def check_conflicting_gas(tmp_path):
    keys = error_keys(
        leaf(tmp_path, "training:\n  effective_batch_size: 32\n  gradient_accumulation_steps: 4\n"), world_size=1
    )
    assert "= 32" in keys["training.gradient_accumulation_steps"]


@check(CAP, "Batch Derivation", "Packing means one pack per device step")
def check_packing_per_device(tmp_path):
    body = "model:\n  attn_impl: flash_attention_2\ntraining:\n  packing: true\n  per_device_train_batch_size: 4\n"
    assert "training.per_device_train_batch_size" in error_keys(leaf(tmp_path, body))


# ---------------------------------------------------------------- Packing Policy

PACKED = "model:\n  attn_impl: {attn}\ntraining:\n  packing: true\n"


@check(CAP, "Packing Policy", "Packing needs an isolating attention backend")
def check_packing_attention(tmp_path):
    keys = error_keys(leaf(tmp_path, PACKED.format(attn="flash_attention_3")))
    assert "isolates packed samples" in keys["model.attn_impl"]
    unset = leaf(tmp_path, "training:\n  packing: true\n", name="configs/unset.yaml")
    assert "model.attn_impl" in error_keys(unset)
    load_config(leaf(tmp_path, PACKED.format(attn="flash_attention_2"), name="configs/fa2.yaml"))


@check(CAP, "Packing Policy", "sdpa needs the 4-row collator")
def check_sdpa_collator(tmp_path):
    bad = leaf(tmp_path, PACKED.format(attn="sdpa") + "  packing_collator: swift_padding_free_3row\n")
    assert "attend to each other" in error_keys(bad)["training.packing_collator"]
    good = leaf(tmp_path, PACKED.format(attn="sdpa") + "  packing_collator: padding_free_4row\n", name="configs/g.yaml")
    assert load_config(good).training["packing_collator"] == "padding_free_4row"


@check(CAP, "Packing Policy", "Eval packing is an error")
def check_eval_packing(tmp_path):
    assert "training.eval_packing" in error_keys(leaf(tmp_path, "training:\n  eval_packing: true\n"))


@check(CAP, "Packing Policy", "Dynamic packing is refused")
def check_dynamic_packing(tmp_path):
    keys = error_keys(leaf(tmp_path, PACKED.format(attn="flash_attention_2") + "  packing_mode: dynamic\n"))
    assert "static" in keys["training.packing_mode"]


# ---------------------------------------------------------------- Stage-2 Profile Leaf Contract


def _shipped_leaves() -> list[Path]:
    return sorted(p for d in ("prod", "smoke") for p in (REPO / "configs" / "stage2_ab" / d).glob("*.yaml"))


@check(CAP, "Stage-2 Profile Leaf Contract", "The shipped leaves satisfy the contract")
def check_shipped_leaves(monkeypatch):
    leaves = _shipped_leaves()
    assert any(p.parent.name == "prod" for p in leaves) and any(p.parent.name == "smoke" for p in leaves)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for path in leaves:
        load_config(path)


def _profile_tree(tmp_path: Path) -> Path:
    base = (REPO / "configs" / "stage2_ab" / "base.yaml").read_text()
    write(tmp_path, "configs/base.yaml", (REPO / "configs" / "base.yaml").read_text())
    write(tmp_path, "configs/stage2_ab/base.yaml", base)
    return tmp_path / "configs" / "stage2_ab" / "prod"


@check(CAP, "Stage-2 Profile Leaf Contract", "A leaf must extend exactly ../base.yaml")
def check_leaf_one_hop(tmp_path):
    prod = _profile_tree(tmp_path)
    write(tmp_path, "configs/stage2_ab/prod/extra.yaml", "training:\n  logging_steps: 5\n")
    shipped = (REPO / "configs" / "stage2_ab" / "prod" / "ab_mixed.yaml").read_text()
    text = shipped.replace("extends: ../base.yaml", "extends: [../base.yaml, extra.yaml]")
    assert text != shipped
    path = write(tmp_path, "configs/stage2_ab/prod/leaf.yaml", text)
    keys = error_keys(path)
    assert "`extends: ../base.yaml`" in keys["extends"], keys
    assert prod.is_dir()


@check(CAP, "Stage-2 Profile Leaf Contract", "Missing pinned keys are listed by dotted path")
def check_leaf_pinned_keys(tmp_path):
    _profile_tree(tmp_path)
    shipped = (REPO / "configs" / "stage2_ab" / "prod" / "ab_mixed.yaml").read_text()
    text = shipped.replace("  learning_rate: 2.0e-5\n", "").replace("  n_softctx_iter: 2\n", "")
    assert text.count("\n") == shipped.count("\n") - 2
    errs = errors(write(tmp_path, "configs/stage2_ab/prod/leaf.yaml", text))
    pinned = sorted(e.key for e in errs if "pin this key" in e.message)
    assert pinned == ["stage2_ab.n_softctx_iter", "training.learning_rate"]
    assert len({e.format() for e in errs}) == len(errs)


# ---------------------------------------------------------------- Config Error Reporting


@check(CAP, "Config Error Reporting", "Errors point at the base file that set the key")
def check_error_in_base(tmp_path):
    base = STAGE2.replace("stage2_ab:\n", "stage2_ab:\n  softctx_temperature: 0\n")
    write(tmp_path, "configs/base.yaml", base)
    line = base.splitlines().index("  softctx_temperature: 0") + 1
    assert line > 1
    path = write(tmp_path, "configs/leaf.yaml", "extends: base.yaml\n")
    (err,) = errors(path)
    assert err.loc.file == str((tmp_path / "configs" / "base.yaml").resolve()) and err.loc.line == line
    assert err.key == "stage2_ab.softctx_temperature"


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "coordexp.config", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONHASHSEED": "random"},
    )


@check(CAP, "Config Error Reporting", "The CLI prints deterministic JSON")
def check_cli_deterministic_json():
    path = REPO / "configs" / "stage2_ab" / "prod" / "ab_mixed.yaml"
    a, b = _cli(path), _cli(path)
    assert a.returncode == 0 and b.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout
    data = json.loads(a.stdout)
    assert json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n" == a.stdout
    assert data["stage2_ab"]["schedule"]["b_ratio"] == 0.85


@check(CAP, "Config Error Reporting", "The CLI reports errors without a traceback")
def check_cli_errors(tmp_path):
    unknown = leaf(tmp_path, "custom:\n  nope: 1\n")
    broken = write(tmp_path, "configs/broken.yaml", "custom:\n  a: [1, 2\n")
    for path in (unknown, broken):
        r = _cli(path, cwd=tmp_path)
        assert r.returncode == 2, r
        assert r.stdout == "" and "Traceback" not in r.stderr
        assert any(": error: " in ln and ln.split(":")[1].isdigit() for ln in r.stderr.splitlines()), r.stderr


# ---------------------------------------------------------------- Paths Independent Of The Working Directory


@check(CAP, "Paths Independent Of The Working Directory", "The same config resolves the same from any directory")
def check_paths_cwd_independent(tmp_path, monkeypatch):
    path = write(tmp_path, "configs/x.yaml", STAGE1)
    seen = []
    for cwd in (tmp_path, Path("/")):
        monkeypatch.chdir(cwd)
        seen.append(load_config(path.resolve()).custom.train_jsonl)
    assert seen == [str(tmp_path.resolve() / "data" / "train.jsonl")] * 2


@check(CAP, "Paths Independent Of The Working Directory", "Dot paths are relative to the config file")
def check_dot_paths(tmp_path, monkeypatch):
    text = STAGE1.replace(
        "  train_jsonl: data/train.jsonl\n", "  train_jsonl: data/train.jsonl\n  val_jsonl: ./val.jsonl\n"
    )
    path = write(tmp_path, "configs/sub/x.yaml", text)
    monkeypatch.chdir("/")
    cfg = load_config(path)
    assert cfg.custom.val_jsonl == str(tmp_path.resolve() / "configs" / "sub" / "val.jsonl")
    assert cfg.custom.train_jsonl == str(tmp_path.resolve() / "data" / "train.jsonl")


# ---------------------------------------------------------------- Anchored Configs


@check(CAP, "Anchored Configs", "The anchored Stage-1 profile")
def check_anchored_stage1():
    cfg = load_config(REPO / "configs" / "stage1" / "ablation" / "geometry_first_coco80.yaml")
    c = cfg.custom
    assert c.object_field_order == "geometry_first" and c.extra["prompt_variant"] == "coco_80"
    sc = c.coord_soft_ce_w1
    assert sc.enabled and (sc.soft_ce_weight, sc.w1_weight, sc.gate_weight) == (1.0, 3.0, 5.0)
    assert (sc.temperature, sc.target_sigma, sc.target_truncate) == (0.9, 1.5, 8)
    assert cfg.training["packing"] is True and cfg.training["packing_mode"] == "static"
    assert cfg.training["eval_packing"] is False


@check(CAP, "Anchored Configs", "The production Stage-2 profile")
def check_anchored_stage2():
    cfg = load_config(REPO / "configs" / "stage2_ab" / "prod" / "ab_mixed.yaml", world_size=1)
    s2, rm = cfg.stage2_ab, cfg.rollout_matching
    assert s2.schedule.b_ratio == 0.85 and s2.n_softctx_iter == 2
    assert rm.rollout_backend == "vllm" and rm.max_new_tokens == 2048 and rm.vllm.max_model_len == 12000
    assert cfg.global_max_length == 12000 and rm.max_new_tokens < rm.vllm.max_model_len
    got = (s2.bbox_smoothl1_weight, s2.bbox_ciou_weight, s2.coord_gate_weight, s2.desc_ce_weight)
    assert got == (2.0, 0.2, 1.0, 1.0)
    sc = cfg.custom.coord_soft_ce_w1
    assert sc.enabled and (sc.soft_ce_weight, sc.w1_weight) == (0.2, 0.2)


@check(CAP, "Anchored Configs", "The CPU smoke profiles")
def check_smoke_profiles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    for rel in ("configs/stage1/smoke/tiny_cpu.yaml", "configs/stage2_ab/smoke/tiny_cpu.yaml"):
        cfg = load_config(REPO / rel)
        assert cfg.model["model"] == str(REPO / "build" / "tiny-qwen3vl"), rel
        assert cfg.custom.train_jsonl == str(REPO / "build" / "synthetic" / "train.coord.jsonl")
        assert cfg.custom.val_jsonl == str(REPO / "build" / "synthetic" / "val.coord.jsonl")
        assert cfg.global_max_length <= 2048


# ------------------------------------------------------------------ ms-swift Sections Mean What ms-swift Means

STAGE1_SMOKE = REPO / "configs" / "stage1" / "smoke" / "tiny_cpu.yaml"


@check(CAP, "ms-swift Sections Mean What ms-swift Means", "A key ms-swift accepts but no recipe reads is refused")
def check_unread_swift_keys_are_refused(tmp_path):
    import yaml

    from coordexp.config import coverage as cov
    from coordexp.config.swift_fields import train_fields

    fields = sorted(train_fields())
    assert len(fields) > 200 and "lora_bias" in fields and "loss_scale" in fields
    # every field but the read ones, in every ms-swift section (values do not matter: presence is refused)
    unread = {
        section: [f for f in fields if f"{section}.{f}" not in cov.SWIFT_HONOURED]
        for section in cov.SWIFT_OWNED_SECTIONS
    }
    for must in ("model.max_pixels", "data.dataloader_num_workers", "template.loss_scale"):
        section, key = must.split(".")
        assert key in unread[section], must
    leaf = tmp_path / "leaf.yaml"
    body = {section: {k: 1 for k in keys} for section, keys in unread.items()}
    leaf.write_text(f"extends: {STAGE1_SMOKE}\n" + yaml.safe_dump(body, sort_keys=True))
    with pytest.raises(ConfigError) as exc:
        load_config(leaf)
    at = {e.key for e in exc.value.errors}
    missed = [f"{s}.{k}" for s, keys in unread.items() for k in keys if f"{s}.{k}" not in at]
    assert not missed, f"{len(missed)} unread ms-swift keys load: {missed[:20]}"
    # the read ones load (the smoke's own values)
    load_config(STAGE1_SMOKE)


def _tiny_with_swift_meta():
    from types import SimpleNamespace

    from swift.model.model_arch import get_model_arch

    from coordexp.smoke.tiny import build_tiny_model

    model = build_tiny_model()
    model.model_meta = SimpleNamespace(model_arch=get_model_arch("qwen3_vl"))
    return model


@check(CAP, "ms-swift Sections Mean What ms-swift Means", "LoRA targets follow ms-swift's freeze flags")
def check_lora_targets_follow_swift(tmp_path):
    import itertools
    import re

    from swift.utils.transformers_utils import get_multimodal_target_regex

    from coordexp.training.model import apply_tuner, lora_targets

    model = _tiny_with_swift_meta()
    names = [n for n, _ in model.named_modules()]
    compared = 0
    for llm, vit, aligner in itertools.product((False, True), repeat=3):
        if llm and vit and aligner:
            continue
        flags = {"freeze_llm": llm, "freeze_vit": vit, "freeze_aligner": aligner}
        regex = get_multimodal_target_regex(model, **flags)
        want = {n for n in names if re.fullmatch(regex, n)}
        got = set(lora_targets(model, {"target_modules": ["all-linear"], **flags}))
        assert got == want, (flags, sorted(got ^ want)[:10])
        compared += 1
    assert compared == 7

    class Cfg:
        config_path = "leaf.yaml"
        tuner = {
            "tuner_type": "lora",
            "target_modules": ["all-linear"],
            "freeze_llm": False,
            "freeze_vit": True,
            "freeze_aligner": False,
        }

    wrapped = apply_tuner(Cfg, _tiny_with_swift_meta())
    lora = {n.split(".lora_A")[0] for n, _ in wrapped.named_parameters() if ".lora_A." in n}
    assert any(".visual.merger." in n for n in lora)
    assert not any(".visual.blocks." in n for n in lora)
    assert any(".language_model." in n for n in lora)


@check(CAP, "ms-swift Sections Mean What ms-swift Means", "Full tuning freezes what ms-swift freezes")
def check_full_tuning_freezes_like_swift():
    from coordexp.smoke.tiny import build_tiny_model
    from coordexp.training.model import apply_tuner

    def trainable(**flags):
        class Cfg:
            config_path = "leaf.yaml"
            tuner = {"tuner_type": "full", "freeze_llm": False, **flags}

        model = apply_tuner(Cfg, build_tiny_model())
        return {n: p.requires_grad for n, p in model.named_parameters()}

    aligner_prefixes = ("model.visual.merger.", "model.visual.deepstack_merger_list.")
    for freeze_aligner in (False, True):
        got = trainable(freeze_vit=True, freeze_aligner=freeze_aligner)
        aligner = [v for n, v in got.items() if n.startswith(aligner_prefixes)]
        vision = [v for n, v in got.items() if n.startswith("model.visual.") and not n.startswith(aligner_prefixes)]
        llm = [v for n, v in got.items() if n.startswith("model.language_model.")]
        assert aligner and vision and llm
        assert all(aligner) if not freeze_aligner else not any(aligner)
        assert not any(vision) and all(llm)
