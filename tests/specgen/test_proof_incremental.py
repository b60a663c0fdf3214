"""Incremental reach (docs/proof.md "Incremental reach"): after each change to the proof fixture, the reach an
incremental `specgen proof` measures equals what `specgen proof --full` measures, and it reran only what the
change touched."""

from __future__ import annotations

import json
from pathlib import Path

from specgen.proof import incremental
from tests.checks import proof_harness as H
from tests.specgen import cli_project as P

# A second product module only a new check executes: a change to it reruns that check alone.
FMT = 'def show(x):\n    return f"<{x}>"\n'
FMT_SPEC = """
### Requirement: Formatting
The calculator SHALL show a value in angle brackets.

#### Scenario: Shown
- **WHEN** `5` is shown
- **THEN** the text is `"<5>"`
"""
FMT_CHECK = """

@check("calc", "Formatting", "Shown")
def check_shown():
    from calc.fmt import show

    assert show(5) == "<5>"
"""


def _project(tmp_path: Path) -> Path:
    root = H.make(tmp_path / "proj", probe=False)
    (root / "calc" / "fmt.py").write_text(FMT, encoding="utf-8")
    _append(root / "openspec" / "specs" / "calc" / "spec.md", FMT_SPEC)
    _append(root / "tests" / "checks" / "calc.py", FMT_CHECK)
    assert H.specgen(root, "generate").returncode == 0
    return root


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, path
    path.write_text(text.replace(old, new), encoding="utf-8")


def _proof(root: Path, *args: str) -> dict:
    proc = H.specgen(root, "proof", *args)
    assert proc.returncode == 0, P.output(proc)
    return json.loads((root / "build" / "specgen" / "proof.json").read_text(encoding="utf-8"))


def _incremental_equals_full(root: Path) -> dict:
    """An incremental run, then a full one: the same reach per scenario. The incremental run's `reach_run`."""
    inc = _proof(root)
    full = _proof(root, "--full")
    assert full["reach_run"]["mode"] == "full"
    assert inc["scenarios"] == full["scenarios"], (inc["scenarios"], full["scenarios"])
    return inc["reach_run"]


def test_an_incremental_run_measures_what_a_full_run_measures(tmp_path):
    root = _project(tmp_path)
    first = _proof(root)
    assert first["reach_run"]["mode"] == "full" and first["reach_run"]["rerun"] == 4  # no record yet
    assert first["scenarios"]["calc/totals/a-list"]["status"] == "off-path"

    # Nothing changed: nothing reruns, the entrypoints' data is kept.
    assert _incremental_equals_full(root) == {"mode": "incremental", "rerun": 0, "kept": 4, "entrypoints": "kept"}

    # A module only the Formatting check executes: that check alone reruns; the entrypoints rerun (source changed).
    _edit(root / "calc" / "fmt.py", 'f"<{x}>"', 'f"<{x}" + ">"')
    assert _incremental_equals_full(root) == {"mode": "incremental", "rerun": 1, "kept": 3, "entrypoints": "run"}

    # The module every other check executes, changed so that the entrypoint now runs legacy_total: reach changes.
    _edit(root / "calc" / "__init__.py", "    return a + b\n", "    return legacy_total([a, b])\n")
    assert _incremental_equals_full(root) == {"mode": "incremental", "rerun": 3, "kept": 1, "entrypoints": "run"}
    assert _proof(root)["scenarios"]["calc/totals/a-list"]["status"] == "on-path"

    # One scenario's text: its binding alone reruns; the product is unchanged, so the entrypoints' data stands.
    _edit(root / "openspec" / "specs" / "calc" / "spec.md", "- **WHEN** the list is", "- **WHEN** the given list is")
    assert H.specgen(root, "generate").returncode == 0
    assert _incremental_equals_full(root) == {"mode": "incremental", "rerun": 1, "kept": 3, "entrypoints": "kept"}


def test_the_test_results_of_an_incremental_run_feed_the_report(tmp_path):
    root = _project(tmp_path)
    _proof(root)
    _edit(root / "tests" / "checks" / "calc.py", "assert add(-2, 5) == 3", "assert add(-2, 5) == 4")
    run = _proof(root)
    assert run["reach_run"]["rerun"] == 4  # the check module changed: each of its checks reruns
    report = H.specgen(root, "report")
    data = json.loads((root / "build" / "specgen" / "report.json").read_text(encoding="utf-8"))
    verdicts = {r["name"]: r["verdict"] for r in data["requirements"]}
    assert verdicts["Addition"] == "failing" and verdicts["Formatting"] == "verified", (verdicts, P.output(report))
    assert not [i for i in data["issues"] if i["code"] in ("missing-results", "stale-results")], data["issues"]


def test_records_from_other_settings_are_not_used(tmp_path):
    key = {"source": ["calc"], "entrypoints": ["x"], "output": "tests/generated", "specgen": "0", "python": "3"}
    rec = incremental.Record("s", "m", {"calc/a.py": "h"}, {"calc/a.py": [3]}, {}, None)
    incremental.save(tmp_path, key, incremental.Prior({"specs|a/b/c|k": rec}))
    assert not incremental.entrypoints_reusable(incremental.load(tmp_path, key), "code", ["x"])  # none ran in full
    incremental.save_entrypoints(tmp_path, "code", [{"command": "x", "exit": 0}])
    prior = incremental.load(tmp_path, key)
    assert prior is not None and prior.checks["specs|a/b/c|k"] == rec
    assert incremental.load(tmp_path, dict(key, entrypoints=["y"])) is None
    (tmp_path / incremental.CHECKS_NAME).write_text("{not json", encoding="utf-8")
    assert incremental.load(tmp_path, key) is None
    wanted = {"specs|a/b/c|k": ("s", "m"), "specs|a/b/d|k": ("s", "m")}
    assert incremental.to_rerun(prior, wanted, {"calc/a.py": "h"}) == {"specs|a/b/d|k"}  # no record: rerun
    assert incremental.to_rerun(prior, wanted, {}) == set(wanted)  # its file is gone
    assert incremental.to_rerun(prior, {"specs|a/b/c|k": ("s2", "m")}, {"calc/a.py": "h"}) == {"specs|a/b/c|k"}
    assert incremental.entrypoints_reusable(prior, "code", ["x"]) and not incremental.entrypoints_reusable(
        prior, "other", ["x"]
    )
