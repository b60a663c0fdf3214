"""specgen's import graph (the rules: tests/helpers/import_graph.py): no cycle, imports only to a lower layer, no
``_private`` name across modules, and the layers never import the test harness.

The layers, lowest first (docs/compiler.md, "Layout"):

0. ``errors``: ``SpecgenError`` and the ``Issue`` every layer reports
1. ``fsio`` (atomic writes inside the project), ``model`` (the spec model)
2. ``config`` (``[tool.specgen]`` and the project's roots), ``results`` (the results file)
3. ``reader``: OpenSpec as the official CLI reads it
4. ``rules``: validate, merge, archive
5. ``compile`` (ids, bindings, the lock, generated tests) and ``archive`` (carrying out an archive the rules
   planned: writes, journal, the move)
6. ``adopt``: init, baseline, evidence
7. ``proof``: reach and strength
8. ``report``: verdicts, the gate, report files
9. ``cli`` and 10. ``__main__``

Outside the order: the package's ``__init__`` (``from specgen import check``), ``plugin`` and ``runtime`` (what
pytest and the generated tests import). They import the layers; the layers never import them.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.import_graph import Graph, graph_problems, unlayered

LAYERS = {
    "errors": 0,
    "fsio": 1,
    "model": 1,
    "config": 2,
    "results": 2,
    "reader": 3,
    "rules": 4,
    "compile": 5,
    "archive": 5,
    "adopt": 6,
    "proof": 7,
    "report": 8,
    "cli": 9,
    "__main__": 10,
}
HARNESS = frozenset({"", "plugin", "runtime"})
SPECGEN = Graph(Path(__file__).resolve().parents[2], "specgen", LAYERS, HARNESS, "the test harness")


def test_the_import_graph_holds():
    problems = graph_problems(SPECGEN)
    assert not problems, "\n".join(problems)


def test_every_module_has_a_layer():
    assert not unlayered(SPECGEN)


def test_the_rules_see_a_harness_import_and_an_upward_one(tmp_path):
    pkg = tmp_path / "specgen"
    (pkg / "rules").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "rules" / "__init__.py").write_text("")
    (pkg / "rules" / "a.py").write_text(
        "def f():\n    from specgen.report import gate\n    from specgen import plugin\n"
    )
    (pkg / "report").mkdir()
    (pkg / "report" / "__init__.py").write_text("")
    (pkg / "report" / "gate.py").write_text("")
    (pkg / "plugin.py").write_text("from specgen.rules import a\n")
    got = "\n".join(graph_problems(Graph(tmp_path, "specgen", LAYERS, HARNESS, "the test harness")))
    assert "specgen.rules.a (layer 4) imports specgen.report.gate (layer 8)" in got
    assert "specgen.rules.a imports the test harness (specgen.plugin)" in got
    assert "import cycle: specgen.plugin <-> specgen.rules.a" in got
    assert len(got.splitlines()) == 3, got
