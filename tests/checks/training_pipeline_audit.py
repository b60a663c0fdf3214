"""Checks for the cross-cutting requirements of `training-pipeline-audit`."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from specgen import check

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "coordexp"
CAP = "training-pipeline-audit"
_BROAD = {"Exception", "BaseException"}


def silent_handlers(root: Path) -> list[tuple[Path, int]]:
    """Broad exception handlers (bare, Exception, BaseException, or a tuple holding one) whose body does nothing."""
    found: list[tuple[Path, int]] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ExceptHandler):
                continue
            types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            broad = node.type is None or any(
                (isinstance(t, ast.Name) and t.id in _BROAD) or (isinstance(t, ast.Attribute) and t.attr in _BROAD)
                for t in types
            )
            # `pass`, `...` or a bare string: statements that do nothing.
            empty = all(
                isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
                for s in node.body
            )
            if broad and empty:
                found.append((path, node.lineno))
    return found


@check(CAP, "No Silent Exception Swallowing", "The source tree is clean")
@pytest.mark.reach_exception(
    "a static scan: parses every src/coordexp/**/*.py with ast for broad handlers that do nothing; "
    "no product function runs"
)
def check_source_tree_has_no_silent_handlers():
    assert SRC.is_dir(), f"{SRC} is missing"
    assert any(SRC.rglob("*.py")), "nothing to scan: the scan would be vacuous"
    found = silent_handlers(SRC)
    assert not found, "silent broad exception handlers: " + ", ".join(f"{p.relative_to(REPO)}:{n}" for p, n in found)


@check(CAP, "No Silent Exception Swallowing", "A planted blanket handler is caught")
@pytest.mark.reach_exception(
    "proves the static scan of src/coordexp on planted files in tmp_path (ast only); no product function runs"
)
def check_planted_blanket_handler_is_caught(tmp_path):
    planted = {
        "bare.py": "try:\n    x = 1\nexcept:\n    pass\n",
        "exc.py": "import os\ntry:\n    os.remove('x')\nexcept Exception:\n    pass\n",
        "tuple_ellipsis.py": "try:\n    y = 2\nexcept (ValueError, BaseException):\n    ...\n",
        "docstring_only.py": "try:\n    z = 3\nexcept Exception as e:\n    'ignored'\n",
    }
    for name, text in planted.items():
        (tmp_path / name).write_text(text)
    # Handlers that are fine: a narrow type, or a broad one that does something.
    (tmp_path / "ok.py").write_text(
        "import logging\ntry:\n    a = 1\nexcept KeyError:\n    pass\n"
        "try:\n    b = 2\nexcept Exception:\n    logging.warning('counted')\n    raise\n"
    )
    found = {(p.name, line) for p, line in silent_handlers(tmp_path)}
    assert found == {("bare.py", 3), ("exc.py", 4), ("tuple_ellipsis.py", 3), ("docstring_only.py", 3)}


@check(
    CAP, "Deferred GPU Smokes Are Manual Scenarios", "Stage_1 smoke on CUDA", manual="tests/manual/gpu_stage1_smoke.md"
)
def check_stage1_smoke_on_cuda():
    """Run by a person on a CUDA machine: tests/manual/gpu_stage1_smoke.py writes the evidence JSON."""


@check(
    CAP,
    "Stage-2 Server Mode Verified On vLLM",
    "Stage_2 server mode with vLLM",
    manual="tests/manual/gpu_stage2_vllm_smoke.md",
)
def check_stage2_server_mode_with_vllm():
    """Run by a person with GPUs and vLLM (change verify-stage2-vllm-server-smoke): see the procedure."""


# ---------------------------------------------------------------- anchored entrypoints

ANCHORED_STAGE1 = REPO / "configs" / "stage1" / "ablation" / "geometry_first_coco80.yaml"
ANCHORED_STAGE2 = REPO / "configs" / "stage2_ab" / "prod" / "ab_mixed.yaml"
ENTRYPOINTS = (REPO / "scripts" / "train.sh", REPO / "scripts" / "train_stage2.sh")


@check(CAP, "Audit Anchored On Operational Entrypoints", "Anchored configs load strictly")
def check_anchored_configs_load_strictly():
    from coordexp.config import load_config

    for path in (ANCHORED_STAGE1, ANCHORED_STAGE2):
        cfg = load_config(path)  # raises ConfigError listing every problem
        custom = cfg.custom
        assert custom.coord_tokens.enabled is True and custom.coord_tokens.skip_bbox_norm is True, path
        assert custom.emit_norm == "none", path


@check(CAP, "Audit Anchored On Operational Entrypoints", "Anchored stage_1 config keeps eval packing off")
def check_anchored_stage1_eval_packing_off():
    from coordexp.config import load_config

    training = load_config(ANCHORED_STAGE1).training
    assert training["packing"] is True
    assert training.get("packing_mode", "static") == "static"
    # the reference's anchored config had eval_packing on under the static-only policy
    assert training.get("eval_packing") is False


@check(CAP, "Audit Anchored On Operational Entrypoints", "Entrypoint scripts refuse a missing config")
@pytest.mark.reach_exception(
    "scripts/train.sh and scripts/train_stage2.sh refuse a missing config in bash, before any Python starts "
    "(scripts/bad_inputs/config.sh runs the same refusal): no product function runs to measure"
)
def check_entrypoints_refuse_missing_config(tmp_path):
    for script in ENTRYPOINTS:
        assert script.is_file(), f"{script.relative_to(REPO)} is missing"
        for args in ([], [str(tmp_path / "absent.yaml")]):
            proc = subprocess.run(
                ["bash", str(script), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
            )
            assert proc.returncode != 0, (script.name, args)
            assert "usage:" in proc.stderr, (script.name, args, proc.stderr)
            if args:
                assert "absent.yaml" in proc.stderr, (script.name, proc.stderr)


# ---------------------------------------------------------------- coverage of the audit

AUDITED = (
    "training-config",
    "jsonl-contract",
    "coord-token-mode",
    "coordjson",
    "chat-template",
    "packing",
    "stage1-objective",
    "run-artifacts",
    "stage2-ab-training",
    "rollout-server-contract",
)


@check(CAP, "Pipeline Capabilities Specified And Verified", "Every audited capability is in the specs")
def check_audited_capabilities_in_specs():
    from specgen.reader.load import load_tree

    specs = {s.id: s for s in load_tree(REPO).specs}
    missing = [c for c in AUDITED if c not in specs]
    assert not missing, f"not yet in openspec/specs/: {', '.join(missing)} (archive their change once verified)"
    empty = [c for c in AUDITED if not specs[c].requirements]
    assert not empty, f"specs without requirements: {', '.join(empty)}"


def _uses_cuda(node: ast.AST) -> bool:
    # What a check fakes is not what it needs: the target of `monkeypatch.setattr(torch.cuda, ...)` pretends
    # CUDA on a CPU machine (a refusal that only a multi-GPU learner would see), so it is left out of the scan.
    faked = {
        id(sub.args[0])
        for sub in ast.walk(node)
        if isinstance(sub, ast.Call)
        and isinstance(sub.func, ast.Attribute)
        and sub.func.attr == "setattr"
        and getattr(sub.func.value, "id", "") == "monkeypatch"
        and sub.args
    }
    for sub in ast.walk(node):
        if id(sub) in faked:
            continue
        if isinstance(sub, ast.Attribute) and sub.attr == "cuda":  # torch.cuda..., tensor.cuda()
            return True
        if (
            isinstance(sub, ast.Constant)
            and isinstance(sub.value, str)
            and (sub.value == "cuda" or sub.value.startswith("cuda:"))
        ):  # device="cuda"
            return True
    return False


def gpu_bound_checks(root: Path) -> list[tuple[Path, int, str]]:
    """Automated checks (no `manual=`) that use or skip on CUDA: they would not run on a CPU-only machine."""
    found = []
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            decos = [
                d
                for d in node.decorator_list
                if isinstance(d, ast.Call) and getattr(d.func, "id", getattr(d.func, "attr", "")) == "check"
            ]
            if not decos or any(k.arg == "manual" for d in decos for k in d.keywords):
                continue
            if _uses_cuda(node):  # the decorators are part of the node: a skipif on CUDA counts
                found.append((path, node.lineno, node.name))
    return found


@check(CAP, "Pipeline Capabilities Specified And Verified", "Checks need no GPU")
@pytest.mark.reach_exception(
    "a static scan: parses tests/checks/*.py with ast for automated checks that use CUDA; no product function runs"
)
def check_checks_need_no_gpu(tmp_path):
    checks_dir = REPO / "tests" / "checks"
    assert len(list(checks_dir.glob("*.py"))) > 5, "nothing to scan: the scan would be vacuous"
    found = gpu_bound_checks(checks_dir)
    assert not found, "automated checks that need CUDA: " + ", ".join(f"{p.name}:{n} {f}" for p, n, f in found)
    # the scan itself: a planted CUDA-bound automated check is found, a manual one is not
    (tmp_path / "planted.py").write_text(
        "import pytest, torch\nfrom specgen import check\n\n"
        "@check('c', 'R', 'S')\n@pytest.mark.skipif(not torch.cuda.is_available(), reason='gpu')\n"
        "def check_gpu():\n    pass\n\n"
        "@check('c', 'R', 'T', manual='tests/manual/x.md')\ndef check_manual():\n    '''needs CUDA'''\n\n"
        "@check('c', 'R', 'U')\ndef check_fakes_cuda(monkeypatch):\n"
        "    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)\n"
    )
    assert [(n, f) for _, n, f in gpu_bound_checks(tmp_path)] == [(6, "check_gpu")]


# ---------------------------------------------------------------- Config Key Coverage
# The registry is coordexp.config.coverage; these checks enumerate the schema and prove each entry.

STAGE2_SMOKE = REPO / "configs" / "stage2_ab" / "smoke" / "tiny_cpu_server.yaml"
STAGE1_SMOKE = REPO / "configs" / "stage1" / "smoke" / "tiny_cpu.yaml"
SCHEMA_ROOTS = (
    ("custom", "CustomConfig"),
    ("stage2_ab", "Stage2ABConfig"),
    ("rollout_matching", "RolloutMatchingConfig"),
    ("debug", "DebugConfig"),
    ("deepspeed", "DeepspeedConfig"),
    ("training", "TrainingExtras"),
)


def schema_keys(roots=None) -> list[str]:
    """Every leaf of coordexp's typed config sections, dotted (``servers[]`` for list items)."""
    import dataclasses
    import typing

    from coordexp.config import sections

    def leaves(cls, prefix):
        out, hints = [], typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp, args = hints[f.name], typing.get_args(hints[f.name])
            nested = [a for a in (tp, *args) if dataclasses.is_dataclass(a)]
            if typing.get_origin(tp) is list and args and dataclasses.is_dataclass(args[0]):
                out += leaves(args[0], f"{prefix}{f.name}[].")
            elif nested:
                out += leaves(nested[0], f"{prefix}{f.name}.")
            else:
                out.append(prefix + f.name)
        return out

    roots = roots or [(name, getattr(sections, cls)) for name, cls in SCHEMA_ROOTS]
    return [k for name, cls in roots for k in leaves(cls, f"{name}.")]


def coverage_problems(keys) -> list[str]:
    """Keys in no table or in several, and table entries that are not schema keys."""
    from coordexp.config import coverage as cov

    tables = {
        "PROBED": cov.PROBED,
        "CHECKED": cov.CHECKED,
        "REFUSED": cov.REFUSED,
        "NOT_IMPLEMENTED": cov.NOT_IMPLEMENTED,
    }
    out = []
    for k in keys:
        where = [t for t, table in tables.items() if k in table]
        if len(where) != 1:
            out.append(
                f"{k}: in {where or 'no table'}: a config key must be wired (PROBED or CHECKED) or refused "
                "(REFUSED or NOT_IMPLEMENTED) in coordexp.config.coverage, exactly once"
            )
    for t, table in tables.items():
        out += [f"{t}: {k}: not a schema key" for k in table if k not in keys]
    return out


def _nest(overrides: dict) -> dict:
    out: dict = {}
    for dotted, value in overrides.items():
        d = out
        *parents, last = dotted.split(".")
        for p in parents:
            d = d.setdefault(p, {})
        d[last] = value
    return out


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "extra" else v
    return out


def write_leaf(tmp: Path, base: Path, overrides: dict, name: str) -> Path:
    """A leaf extending ``base`` with absolute model/data/output paths plus ``overrides`` (dotted keys)."""
    import yaml

    from coordexp.config import load_config
    from coordexp.training.inputs import ensure_inputs

    cfg = load_config(base)
    ensure_inputs(cfg)
    fixed = {
        "model.model": cfg.model["model"],
        "custom.train_jsonl": cfg.custom.train_jsonl,
        "custom.val_jsonl": cfg.custom.val_jsonl,
        "training.output_dir": str(tmp / name / "out"),
        "training.logging_dir": str(tmp / name / "tb"),
    }
    body = _merge(_nest(fixed), _nest(overrides))
    leaf = tmp / name / "leaf.yaml"
    leaf.parent.mkdir(parents=True, exist_ok=True)
    leaf.write_text(f"extends: {base}\n" + yaml.safe_dump(body, sort_keys=True))
    return leaf


def _model_summary(model) -> str:
    """What the model a run trains is: every parameter (name, shape, dtype, trainable), the tuner's config
    and the attention implementation."""
    import hashlib

    params = [(n, tuple(p.shape), str(p.dtype), p.requires_grad) for n, p in model.named_parameters()]
    peft = getattr(model, "peft_config", None)
    attn = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return hashlib.sha256(repr((params, repr(peft), attn)).encode()).hexdigest()


class _Stop(Exception):
    """Raised instead of training: the stage_1 probe records what run() built, then stops."""


def stage1_built(leaf: Path) -> object:
    """What the stage_1 recipe's run() builds from a config before training: trainer kwargs, packing policy,
    dataset contents (or the setup error it raises)."""
    import hashlib
    from unittest import mock

    from coordexp.stage1 import trainer as stage1
    from coordexp.training import packing as packing_mod
    from coordexp.training.settings import TrainSetupError

    seen: dict = {}
    real_policy = packing_mod.PackingPolicy

    def policy(**kw):
        seen["policy"] = sorted(kw.items())
        return real_policy(**kw)

    class Recorder:
        def __init__(self, **kw):
            ds = kw["train_dataset"]
            samples = getattr(ds, "samples", [])
            seen["trainer"] = {
                "gas": kw["args"].gradient_accumulation_steps,
                "packing": kw["packing"],
                "lr_buckets": repr(kw["lr_buckets"]),
                "loss_weights": repr(kw["loss_weights"]),
                "coord_offset": None
                if kw["coord_offset"] is None
                else (kw["coord_offset"].start, kw["coord_offset"].head is None),
                "callbacks": [sorted(vars(c).items()) for c in kw["callbacks"]],
                "train": (
                    len(samples),
                    hashlib.sha256(repr([[int(i) for i in s.input_ids] for s in samples]).encode()).hexdigest(),
                ),
                "val": len(kw["eval_dataset"]) if kw["eval_dataset"] is not None else 0,
                "collator": type(kw["data_collator"]).__name__,
                "model": _model_summary(kw["model"]),
            }

        def train(self):
            raise _Stop

    with mock.patch.object(packing_mod, "PackingPolicy", policy), mock.patch.object(stage1, "Stage1Trainer", Recorder):
        try:
            stage1.run(leaf)
        except _Stop:
            return seen
        except (TrainSetupError, ValueError) as exc:  # ConfigError is a ValueError
            return f"error: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    raise AssertionError("stage_1 run() trained instead of stopping at the recording trainer")


def stage2_built(leaf: Path) -> object:
    from coordexp.config import load_config
    from coordexp.format.coord import load_tokenizer
    from coordexp.stage2.trainer import Stage2SetupError, engine_config

    try:
        return repr(engine_config(load_config(leaf), load_tokenizer(), None))
    except Stage2SetupError as exc:
        return f"error: {exc}"


def launcher_built(leaf: Path) -> object:
    from coordexp.stage2.launcher import PreflightError, run_preflight, server_command

    try:
        return server_command(run_preflight(str(leaf), {}, validate_jsonl=lambda f, m: []), "swift")
    except PreflightError as exc:
        return f"error: {exc}"


CONSUMERS = {
    "stage1_run": (STAGE1_SMOKE, stage1_built),
    "stage2_engine": (STAGE2_SMOKE, stage2_built),
    "launcher": (STAGE2_SMOKE, launcher_built),
}


@check(CAP, "Config Key Coverage", "Every schema key is registered once")
@pytest.mark.reach_exception(
    "a static scan: reads the dataclass fields of coordexp.config.sections and the tables of "
    "coordexp.config.coverage (data, no product function runs)"
)
def check_every_schema_key_is_registered_once():
    from coordexp.config import coverage as cov

    keys = schema_keys() + sorted(cov.SWIFT_HONOURED)  # ms-swift's sections: the keys a recipe reads
    assert len(keys) > 100 and "rollout_matching.vllm.sync.mode" in keys and "training.packing_buffer" in keys
    assert "tuner.freeze_aligner" in keys and "template.max_pixels" in keys
    problems = coverage_problems(keys)
    assert not problems, "\n".join(problems)


@check(CAP, "Config Key Coverage", "A key added without wiring is reported")
@pytest.mark.reach_exception(
    "proves the static scan of coordexp.config.sections against coordexp.config.coverage's tables on a planted "
    "field (data, no product function runs)"
)
def check_a_key_added_without_wiring_is_reported():
    import dataclasses

    from coordexp.config import sections

    planted = dataclasses.make_dataclass(
        "PlantedRollout",
        [("new_knob", bool, dataclasses.field(default=False))],
        bases=(sections.RolloutMatchingConfig,),
    )
    roots = [
        (name, planted if cls == "RolloutMatchingConfig" else getattr(sections, cls)) for name, cls in SCHEMA_ROOTS
    ]
    from coordexp.config import coverage as cov

    problems = coverage_problems(schema_keys(roots) + sorted(cov.SWIFT_HONOURED))
    assert [p for p in problems if p.startswith("rollout_matching.new_knob: in no table")], problems
    assert len(problems) == 1, problems


@check(CAP, "Config Key Coverage", "Probed keys change what the run is built from")
def check_probed_keys_change_what_the_run_is_built_from(tmp_path):
    from coordexp.config import coverage as cov

    base = {name: fn(write_leaf(tmp_path, path, {}, f"base-{name}")) for name, (path, fn) in CONSUMERS.items()}
    for name, b in base.items():
        assert not (isinstance(b, str) and b.startswith("error")), (name, b)
    same = []
    for i, (key, (consumer, value)) in enumerate(sorted(cov.PROBED.items())):
        path, fn = CONSUMERS[consumer]
        overrides = value if isinstance(value, dict) else {key: value}
        got = fn(write_leaf(tmp_path, path, overrides, f"probe-{i}"))
        if got == base[consumer]:
            same.append(f"{key} = {value!r}: {consumer} unchanged")
    assert not same, "keys that change nothing (silent knobs):\n" + "\n".join(same)


@check(CAP, "Config Key Coverage", "Checked keys name a bound check")
def check_checked_keys_name_a_bound_check():
    import importlib
    import inspect

    from coordexp.config import coverage as cov
    from specgen import config as specgen_config
    from specgen.compile.compiler import compile_project

    # Bound as `specgen check` and `specgen generate` see it: the compiler's bindings of openspec/specs (a
    # binding to nothing, or to an active change only, does not count). defer_store: nothing is written.
    comp = compile_project(specgen_config.roots(specgen_config.resolve(REPO))[0].config, defer_store=True)
    bound = {b.decl.check_key for b in comp.bound if b.view == comp.specs.name}
    assert cov.CHECKED
    for key, ref in sorted(cov.CHECKED.items()):
        module, func = ref.split("::")
        fn = getattr(importlib.import_module(f"tests.checks.{module}"), func, None)
        assert fn is not None, f"{key}: {ref} does not exist"
        assert f"tests.checks.{module}:{func}" in bound, f"{key}: {ref} is not bound to a scenario"
        leaf = key.rsplit(".", 1)[-1].replace("[]", "")
        assert leaf in inspect.getsource(fn), f"{key}: {ref} never names {leaf!r}"


def _refused_value(key: str):
    """A value other than the schema default for a NOT_IMPLEMENTED key."""
    from coordexp.config import sections

    special = {
        "rollout_matching.vllm.mode": "colocate",
        "rollout_matching.vllm.sync.mode": "adapter",
        "rollout_matching.ot_cost": "l1",
        "deepspeed.config": "zero2",
        "rollout_matching.eval_prompt_variant": "coco_80",
    }
    if key in special:
        return special[key]
    root, rest = key.split(".", 1)
    cls = dict(SCHEMA_ROOTS)[root]
    obj = getattr(sections, cls)()
    for part in rest.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, bool):
        return not obj
    if isinstance(obj, (int, float)):
        return obj + 1
    return 1 if obj is None and "limit" in key or key.endswith(("_s", "_every", "_samples", "_epochs")) else "x"


@check(CAP, "Config Key Coverage", "Refused keys fail naming the key")
def check_refused_keys_fail_naming_the_key(tmp_path):
    from coordexp.config import ConfigError, load_config
    from coordexp.config import coverage as cov

    cases = {**cov.REFUSED, **{k: _refused_value(k) for k in cov.NOT_IMPLEMENTED}}
    assert "deepspeed.enabled" in cases and "rollout_matching.vllm.server.debug_dump.enabled" in cases
    missed, stage1 = [], 0
    for i, (key, value) in enumerate(sorted(cases.items())):
        # a stage_1 config has no stage_2 sections: every other key is refused there too
        bases = [STAGE2_SMOKE] + ([] if key.startswith(("rollout_matching.", "stage2_ab.")) else [STAGE1_SMOKE])
        stage1 += len(bases) - 1
        for base in bases:
            leaf = write_leaf(tmp_path, base, {key: value}, f"refused-{i}-{base.parent.parent.name}")
            try:
                load_config(leaf)
            except ConfigError as exc:
                if f": {key}: " not in str(exc):
                    missed.append(f"{base.name}: {key} = {value!r}: refused, but not at the key: {str(exc)[:200]}")
            else:
                missed.append(f"{base.parent.parent.name}/{base.name}: {key} = {value!r}: loads")
    assert stage1 >= 10, stage1  # debug.*, deepspeed.*, the training extras, custom.*
    assert not missed, "\n".join(missed)
