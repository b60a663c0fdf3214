"""Incremental reach (docs/proof.md "Incremental reach"): after each change to the proof fixture, the reach an
incremental `specgen proof` measures equals what `specgen proof --full` measures, and it reran only what the
change touched."""

from __future__ import annotations

import json
from pathlib import Path

from specgen.proof import incremental
from tests.checks import proof_harness as H
from tests.specgen import cli_project as P

# A second product module only a new check executes: a change to it reruns that check alone. Its constant
# comes from a third module that only the import (at collection, outside any check's context) runs.
CONSTS = "LOUD = False\n"
FMT = """from calc.consts import LOUD


def show(x):
    if LOUD:
        return _loud(x)
    return f"<{x}>"


def _loud(x):
    return "<" + str(x) + ">"
"""
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
    assert show(5) == "<5>"
"""


def _project(tmp_path: Path) -> Path:
    root = H.make(tmp_path / "proj", probe=False)
    (root / "calc" / "fmt.py").write_text(FMT, encoding="utf-8")
    (root / "calc" / "consts.py").write_text(CONSTS, encoding="utf-8")
    _append(root / "openspec" / "specs" / "calc" / "spec.md", FMT_SPEC)
    _append(root / "tests" / "checks" / "calc.py", FMT_CHECK)
    _edit(
        root / "tests" / "checks" / "calc.py", "from calc import add", "from calc.fmt import show\nfrom calc import add"
    )
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


def _run(rerun: int, kept: int, entry_rerun: int, module_level: tuple = ()) -> dict:
    return {
        "mode": "incremental",
        "rerun": rerun,
        "kept": kept,
        "module_level": list(module_level),
        "entrypoints": {"rerun": entry_rerun, "kept": 1 - entry_rerun},
    }


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

    # Nothing changed: nothing reruns, the entrypoint's data is kept.
    assert _incremental_equals_full(root) == _run(0, 4, 0)

    # Inside a function of a module only the Formatting check executes (and the entrypoint never runs): that check
    # alone reruns, and the entrypoint's data stands.
    _edit(root / "calc" / "fmt.py", 'f"<{x}>"', 'f"<{x}" + ">"')
    assert _incremental_equals_full(root) == _run(1, 3, 0)

    # Module-level code of a module no check runs a line of (the import ran it): every binding reruns, and reach
    # changes (show now calls _loud).
    _edit(root / "calc" / "consts.py", "LOUD = False", "LOUD = True")
    assert _incremental_equals_full(root) == _run(4, 0, 0, ["calc/consts.py"])
    assert "calc/fmt.py:10 _loud" in _proof(root)["scenarios"]["calc/formatting/shown"]["functions"]

    # Inside a function every other check and the entrypoint execute, changed so that the entrypoint now runs
    # legacy_total: those checks and the entrypoint rerun, and reach changes.
    _edit(root / "calc" / "__init__.py", "    return a + b\n", "    return legacy_total([a, b])\n")
    assert _incremental_equals_full(root) == _run(3, 1, 1)
    assert _proof(root)["scenarios"]["calc/totals/a-list"]["status"] == "on-path"

    # One scenario's text: its binding alone reruns; the product is unchanged.
    _edit(root / "openspec" / "specs" / "calc" / "spec.md", "- **WHEN** the list is", "- **WHEN** the given list is")
    assert H.specgen(root, "generate").returncode == 0
    assert _incremental_equals_full(root) == _run(1, 3, 0)


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
    incremental.save(tmp_path, key, {"specs|a/b/c|k": rec}, {"calc/a.py": ["h", "o"]})
    assert not incremental.entry_reusable(incremental.load(tmp_path, key, 1), 0, "x", {})  # it never ran in full
    incremental.save_entry(tmp_path, 0, {"command": "x", "exit": 0, "seconds": 1.0, "files": {"calc/a.py": "h"}})
    prior = incremental.load(tmp_path, key, 1)
    assert prior is not None and prior.checks["specs|a/b/c|k"] == rec and prior.files == {"calc/a.py": ["h", "o"]}
    assert incremental.entry_reusable(prior, 0, "x", {"calc/a.py": "h"})
    assert not incremental.entry_reusable(prior, 0, "x", {"calc/a.py": "h2"})  # a file it ran changed
    assert not incremental.entry_reusable(prior, 0, "y", {"calc/a.py": "h"})
    assert incremental.load(tmp_path, dict(key, entrypoints=["y"]), 1) is None
    (tmp_path / incremental.CHECKS_NAME).write_text("{not json", encoding="utf-8")
    assert incremental.load(tmp_path, key, 1) is None
    wanted = {"specs|a/b/c|k": ("s", "m"), "specs|a/b/d|k": ("s", "m")}
    assert incremental.to_rerun(prior, wanted, {"calc/a.py": "h"}) == {"specs|a/b/d|k"}  # no record: rerun
    assert incremental.to_rerun(prior, wanted, {}) == set(wanted)  # its file is gone
    assert incremental.to_rerun(prior, {"specs|a/b/c|k": ("s2", "m")}, {"calc/a.py": "h"}) == {"specs|a/b/c|k"}
