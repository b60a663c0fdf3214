"""Checks for the cross-cutting requirements of `training-pipeline-audit`."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

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
def check_source_tree_has_no_silent_handlers():
    assert SRC.is_dir(), f"{SRC} is missing"
    assert any(SRC.rglob("*.py")), "nothing to scan: the scan would be vacuous"
    found = silent_handlers(SRC)
    assert not found, "silent broad exception handlers: " + ", ".join(f"{p.relative_to(REPO)}:{n}" for p, n in found)


@check(CAP, "No Silent Exception Swallowing", "A planted blanket handler is caught")
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


@check(CAP, "Deferred GPU Smokes Are Manual Scenarios", "Stage_1 smoke on CUDA",
       manual="tests/manual/gpu_stage1_smoke.md")
def check_stage1_smoke_on_cuda():
    """Run by a person on a CUDA machine: tests/manual/gpu_stage1_smoke.py writes the evidence JSON."""


@check(CAP, "Deferred GPU Smokes Are Manual Scenarios", "Stage_2 server mode with vLLM",
       manual="tests/manual/gpu_stage2_vllm_smoke.md")
def check_stage2_server_mode_with_vllm():
    """Run by a person with GPUs and vLLM: see the procedure."""


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
    # the reference's anchored config had eval_packing on under the static-only policy (DOMAIN §11)
    assert training.get("eval_packing") is False


@check(CAP, "Audit Anchored On Operational Entrypoints", "Entrypoint scripts refuse a missing config")
def check_entrypoints_refuse_missing_config(tmp_path):
    for script in ENTRYPOINTS:
        assert script.is_file(), f"{script.relative_to(REPO)} is missing"
        for args in ([], [str(tmp_path / "absent.yaml")]):
            proc = subprocess.run(["bash", str(script), *args], cwd=tmp_path, capture_output=True, text=True,
                                  timeout=120)
            assert proc.returncode != 0, (script.name, args)
            assert "usage:" in proc.stderr, (script.name, args, proc.stderr)
            if args:
                assert "absent.yaml" in proc.stderr, (script.name, proc.stderr)


# ---------------------------------------------------------------- coverage of the audit

AUDITED = ("training-config", "jsonl-contract", "coord-token-mode", "coordjson", "chat-template", "packing",
           "stage1-objective", "run-artifacts", "stage2-ab-training", "rollout-server-contract")


@check(CAP, "Pipeline Capabilities Specified And Verified", "Every audited capability is in the specs")
def check_audited_capabilities_in_specs():
    from specgen.reader.project import load_project

    specs = {s.id: s for s in load_project(REPO).specs}
    missing = [c for c in AUDITED if c not in specs]
    assert not missing, f"not yet in openspec/specs/: {', '.join(missing)} (archive their change once verified)"
    empty = [c for c in AUDITED if not specs[c].requirements]
    assert not empty, f"specs without requirements: {', '.join(empty)}"


def _uses_cuda(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr == "cuda":  # torch.cuda..., tensor.cuda()
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and (
                sub.value == "cuda" or sub.value.startswith("cuda:")):  # device="cuda"
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
            decos = [d for d in node.decorator_list
                     if isinstance(d, ast.Call) and getattr(d.func, "id", getattr(d.func, "attr", "")) == "check"]
            if not decos or any(k.arg == "manual" for d in decos for k in d.keywords):
                continue
            if _uses_cuda(node):  # the decorators are part of the node: a skipif on CUDA counts
                found.append((path, node.lineno, node.name))
    return found


@check(CAP, "Pipeline Capabilities Specified And Verified", "Checks need no GPU")
def check_checks_need_no_gpu(tmp_path):
    checks_dir = REPO / "tests" / "checks"
    assert len(list(checks_dir.glob("*.py"))) > 5, "nothing to scan: the scan would be vacuous"
    found = gpu_bound_checks(checks_dir)
    assert not found, "automated checks that need CUDA: " + ", ".join(f"{p.name}:{n} {f}" for p, n, f in found)
    # the scan itself: a planted CUDA-bound automated check is found, a manual one is not
    (tmp_path / "planted.py").write_text(
        "import pytest, torch\nfrom specgen import check\n\n"
        "@check('c', 'R', 'S')\n@pytest.mark.skipif(not torch.cuda.is_available(), reason='gpu')\ndef check_gpu():\n    pass\n\n"
        "@check('c', 'R', 'T', manual='tests/manual/x.md')\ndef check_manual():\n    '''needs CUDA'''\n"
    )
    assert [(n, f) for _, n, f in gpu_bound_checks(tmp_path)] == [(6, "check_gpu")]
