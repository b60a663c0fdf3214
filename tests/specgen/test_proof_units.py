"""The proof layer's pure pieces: the function map, the mutant swap, sampling, `--since` parsing, and the
configuration errors of [tool.specgen.proof]."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

from specgen.config import load_config
from specgen.errors import SpecgenError
from specgen.proof import functions, strength
from tests.specgen import cli_project as P

SOURCE = textwrap.dedent(
    """\
    def outer(x):
        def inner(y):
            return y + 1
        return inner(x) * 2


    class Box:
        @staticmethod
        def size(n):
            return n - 1

        @property
        def label(self):
            return "box"
    """
)


def test_lines_belong_to_the_innermost_function_and_def_lines_to_none(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(SOURCE, encoding="utf-8")
    fmap = functions.map_file(path)
    assert fmap.function_at(1) is None  # the def line runs at import
    assert fmap.function_at(3).qualname == "outer.<locals>.inner" and fmap.function_at(3).outer == "outer"
    assert fmap.function_at(4).qualname == "outer"
    assert fmap.function_at(10).qualname == "Box.size" and fmap.function_at(14).qualname == "Box.label"
    broken = tmp_path / "b.py"
    broken.write_text("def (:\n", encoding="utf-8")
    assert functions.map_file(broken) is None


def _module(tmp_path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(SOURCE, encoding="utf-8")
    module = types.ModuleType(name)
    module.__file__ = str(path)
    exec(compile(SOURCE, str(path), "exec"), module.__dict__)
    sys.modules[name] = module
    return path, module


def test_a_mutant_is_swapped_into_the_live_functions(tmp_path):
    path, module = _module(tmp_path, "proof_swap_probe")
    try:
        held = module.outer  # a reference taken before the swap sees the mutant too
        assert held(3) == 8
        assert strength.swap_in(path, SOURCE.replace("return y + 1", "return y - 1"), "outer")
        assert held(3) == 4
        assert strength.swap_in(path, SOURCE.replace("return n - 1", "return n + 1"), "Box.size")
        assert module.Box.size(5) == 6
        assert strength.swap_in(path, SOURCE.replace('"box"', '"bag"'), "Box.label")
        assert module.Box().label == "bag"
        assert not strength.swap_in(path, SOURCE, "missing")
    finally:
        del sys.modules["proof_swap_probe"]


def test_the_sample_is_seeded(tmp_path):
    sites = [strength.Site("a.py", line, "core/X", i) for i, line in enumerate(range(1, 40))]
    one, two = strength.pick(sites, 5, 7, "cap/req"), strength.pick(sites, 5, 7, "cap/req")
    assert one == two and len(one) == 5
    assert strength.pick(sites, 5, 8, "cap/req") != one
    assert strength.pick(sites, 100, 7, "cap/req") == sorted(
        sites, key=lambda s: (s.file, s.line, s.operator, s.occurrence)
    )


def test_since_reads_the_changed_lines(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "m.py").write_text("a = 1\nb = 2\nc = 3\n", encoding="utf-8")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    (tmp_path / "m.py").write_text("a = 1\nb = 20\nc = 3\nd = 4\n", encoding="utf-8")
    assert strength.changed_lines(tmp_path, "HEAD", ["m.py"]) == {"m.py": {2, 4}}
    with pytest.raises(SpecgenError, match="--since nope"):
        strength.changed_lines(tmp_path, "nope", ["m.py"])


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('source = "src"', "tool.specgen.proof.source: expected a list"),
        ('sources = ["src"]', "tool.specgen.proof.sources: unknown key"),
        ("min_strength = 2", "tool.specgen.proof.min_strength: expected a number from 0 to 1"),
        ('gate = "yes"', "tool.specgen.proof.gate: expected a boolean"),
        ('source = ["../elsewhere"]', "must be a path or package inside the project"),
    ],
)
def test_bad_proof_settings_name_the_dotted_key(tmp_path, table, words):
    (tmp_path / "pyproject.toml").write_text(f"[tool.specgen]\n\n[tool.specgen.proof]\n{table}\n", encoding="utf-8")
    with pytest.raises(SpecgenError, match=words.replace("(", r"\(").replace(".", r"\.")):
        load_config(tmp_path)


def test_proof_without_settings_is_one_line_and_exit_2(tmp_path):
    root = P.make_project(tmp_path / "proj")
    (root / "openspec" / "specs").mkdir(parents=True)
    proc = P.specgen(root, "proof")
    P.assert_no_crash(proc, "specgen proof")
    assert proc.returncode == 2 and "needs [tool.specgen.proof] source" in proc.stderr, P.output(proc)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_mutants_run_breadth_first_and_a_budget_leaves_no_requirement_without_a_score():
    from specgen.proof import mutate

    assert mutate.rounds([("a", 3), ("b", 1), ("c", 0), ("d", 2)]) == [
        ("a", 0),
        ("b", 0),
        ("d", 0),
        ("a", 1),
        ("d", 1),
        ("a", 2),
    ]
    plans = [mutate.Plan(key, [f"{key}::t"], picked=[f"{key}{i}" for i in range(3)]) for key in "abc"]
    plans.append(mutate.Plan("failing", ["f::t"], picked=["f0", "f1"]))
    ran: list[str] = []
    ticks = iter(range(100))

    def out_of_time() -> bool:  # a budget of five starts (the failing requirement's unmutated run is one)
        return next(ticks) >= 5

    sequence = mutate.execute(
        plans, lambda p: p.key != "failing", lambda p, site: ran.append(site), out_of_time=out_of_time
    )
    assert ran == ["a0", "b0", "c0", "a1"]  # every requirement's first mutant before any second
    assert sequence == ["a#0", "b#0", "c#0", "a#1"]
    assert [p.ran for p in plans] == [2, 1, 1, 0] and plans[3].blocked
