"""Checks for the cross-cutting requirements of `training-pipeline-audit`."""

from __future__ import annotations

import ast
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
