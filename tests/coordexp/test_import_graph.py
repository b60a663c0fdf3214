"""coordexp's import graph, read from the source with ``ast`` (every import, the ones inside functions included):

- no import cycle between modules;
- no import from a lower layer to a higher one (the layers are ``LAYERS`` below);
- no ``_private`` name imported across modules, neither ``from m import _x`` nor ``m._x`` on an imported module;
- no production module imports the smoke helpers (``coordexp.smoke``: the tiny model, the synthetic data).

The layers, lowest first. A package may import its own modules and any package of a LOWER layer; packages that
share a layer do not import each other. ``coordexp.smoke`` sits outside the order: it may import production code
(it builds inputs for it), production never imports it.

0. ``coordexp`` (the package's own ``__init__``) and ``errors`` (``CoordExpError``, the base of its error classes)
1. ``format``: coord tokens, CoordJSON, prompts, the chat template, the JSONL contract
2. ``config``: loading and validating a run's YAML
3. ``training`` (the core both stages call) and ``generation`` (rollouts for inference and stage_2), side by side
4. ``checkpoints``: vocabulary expansion, merge
5. ``infer``: a checkpoint over a JSONL -> the artifact
6. ``eval``: the artifact -> metrics and pictures
7. ``stage1`` and ``stage2``: the recipes
8. ``train``: the entry that picks a recipe
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.import_graph import Graph, graph_problems, unlayered

SRC = Path(__file__).resolve().parents[2] / "src"

LAYERS = {
    "": 0,
    "errors": 0,
    "format": 1,
    "config": 2,
    "training": 3,
    "generation": 3,
    "checkpoints": 4,
    "infer": 5,
    "eval": 6,
    "stage1": 7,
    "stage2": 7,
    "train": 8,
}

COORDEXP = Graph(SRC, "coordexp", LAYERS, frozenset({"smoke"}), "the smoke helpers")


def test_the_import_graph_holds():
    problems = graph_problems(COORDEXP)
    assert not problems, "\n".join(problems)


def test_every_package_has_a_layer():
    assert not unlayered(COORDEXP)


def test_the_rules_see_what_they_forbid(tmp_path):
    """Each rule on a small tree that breaks it (the same functions read the real tree above)."""
    pkg = tmp_path / "coordexp"
    for sub in ("format", "training", "smoke"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "format" / "a.py").write_text("def f():\n    from coordexp.format import b\n")
    (pkg / "format" / "b.py").write_text("from coordexp.format.a import f\nfrom coordexp.training.u import g\n")
    (pkg / "training" / "t.py").write_text(
        "from coordexp.format import a\nfrom coordexp.format.a import _hidden\nfrom . import u\n"
        "def run():\n    from coordexp.smoke import tiny\n    return a._private()\n"
    )
    (pkg / "training" / "u.py").write_text("def g():\n    pass\n")
    (pkg / "smoke" / "tiny.py").write_text("from coordexp.training import u\n")
    got = "\n".join(graph_problems(Graph(tmp_path, "coordexp", LAYERS, frozenset({"smoke"}), "the smoke helpers")))
    assert "import cycle: coordexp.format.a <-> coordexp.format.b" in got
    assert "coordexp.format.b (layer 1) imports coordexp.training.u (layer 3)" in got
    assert "imports the private name coordexp.format.a._hidden" in got
    assert "uses the private name coordexp.format.a._private" in got
    assert "coordexp.training.t imports the smoke helpers (coordexp.smoke.tiny)" in got
    assert len(got.splitlines()) == 5, got
