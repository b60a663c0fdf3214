"""The proof fixture (tests/fixtures/proof-basic) as a user runs it: a copy in a scratch folder, the
`specgen` and `pytest` commands as separate processes (the fixture's `tests` package is its own).

Shared by the proof checks; it binds nothing itself. :func:`proven` runs the whole pipeline (generate, the
tests, `specgen proof --mutants 20`) once per process and `specgen report --gate` for each caller.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.specgen import cli_project as P

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "proof-basic"


def make(root: Path, probe: bool = True) -> Path:
    """A copy of the fixture at `root`: three requirements (strong on-path, off-path, `is not None`) and,
    with `probe`, a fourth whose check runs no product code."""
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("probe.*", "*.in", "__pycache__"))
    text = (FIXTURE / "pyproject.toml.in").read_text(encoding="utf-8")
    (root / "pyproject.toml").write_text(text.replace("{python}", sys.executable), encoding="utf-8")
    if probe:
        for rel, extra in (("openspec/specs/calc/spec.md", "probe.md"), ("tests/checks/calc.py", "probe.py")):
            path = root / rel
            path.write_text(path.read_text(encoding="utf-8") + (FIXTURE / extra).read_text(encoding="utf-8"), "utf-8")
    return root


def specgen(root: Path, *args: str):
    proc = P.specgen(root, *args, timeout=600)
    P.assert_no_crash(proc, f"specgen {' '.join(args)}")
    return proc


@dataclass
class Proven:
    root: Path
    proof: object  # the `specgen proof` process
    gate: object  # the `specgen report --gate` process

    def report(self) -> dict:
        return json.loads((self.root / "build" / "specgen" / "report.json").read_text(encoding="utf-8"))

    def requirement(self, name: str) -> dict:
        return next(r for r in self.report()["requirements"] if r["name"] == name)


def pipeline(root: Path, mutants: int = 20) -> Proven:
    gen = specgen(root, "generate")
    assert gen.returncode == 0, P.output(gen)
    tests = P.pytest_run(root, "tests/generated", "-q", "-p", "no:cacheprovider")
    assert tests.returncode == 0, P.output(tests)
    proof = specgen(root, "proof", "--mutants", str(mutants), "--seed", "1")
    assert proof.returncode == 0, P.output(proof)
    return Proven(root, proof, specgen(root, "report", "--gate"))


@functools.cache
def _proven_once() -> Proven:
    folder = Path(tempfile.mkdtemp(prefix="specgen-proof-"))
    atexit.register(shutil.rmtree, folder, True)
    return pipeline(make(folder / "proj"))


def proven() -> Proven:
    """The fixture with the probe through the whole pipeline: the proof run once per process, then
    `specgen report --gate` again for each caller. Every check that reads the report runs the command that
    writes it, so its reach is measured (a cached run would be credited to the first caller only)."""
    first = _proven_once()
    return Proven(first.root, first.proof, specgen(first.root, "report", "--gate"))
