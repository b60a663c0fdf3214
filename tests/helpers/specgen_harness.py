"""A small OpenSpec project in tmp_path, driven through specgen's CLI (in-process) and pytest (subprocess).

Shared by the spec-test-compiler checks; it binds nothing itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "compiler-basic"
SPEC = "openspec/specs/greeting/spec.md"
CHECKS = "checks/greeting.py"


@dataclass
class Run:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Proj:
    def __init__(self, root: Path, fixture: Path = FIXTURE):
        shutil.copytree(fixture, root, dirs_exist_ok=True)
        self.root = root

    def specgen(self, *args: str) -> Run:
        from specgen.cli import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([args[0], "--root", str(self.root), *args[1:]])
            except SystemExit as exc:  # argparse usage errors
                rc = exc.code
        return Run(rc, out.getvalue(), err.getvalue())

    def pytest(self, *args: str) -> Run:
        # CI and BUILD_NUMBER make pytest print whole failure messages in its summary lines: the
        # fixture run must read the same in CI as on a laptop.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "COV_")) and k not in ("CI", "BUILD_NUMBER")
        }
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "generated",
                "-q",
                "-p",
                "no:cacheprovider",
                "--junitxml=build/specgen/junit.xml",
                *args,
            ],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def pipeline(self) -> tuple[Run, Run, Run]:
        """What `make spec-tests` does: generate, run the generated tests, report with the gate."""
        gen = self.specgen("generate")
        assert gen.rc == 0, gen.text
        return gen, self.pytest(), self.specgen("report", "--gate")

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def edit(self, rel: str, old: str, new: str) -> None:
        text = self.read(rel)
        assert old in text, f"{old!r} not in {rel}"
        self.write(rel, text.replace(old, new, 1))

    def report(self) -> dict:
        return json.loads(self.read("build/specgen/report.json"))

    def requirement(self, name: str) -> dict:
        return next(r for r in self.report()["requirements"] if r["name"] == name)

    def scenario(self, scenario_id: str) -> dict:
        return next(s for r in self.report()["requirements"] for s in r["scenarios"] if s["id"] == scenario_id)

    def add_change(self, change_id: str, delta: str, capability: str = "greeting") -> None:
        self.write(
            f"openspec/changes/{change_id}/proposal.md",
            f"## Why\nA change for the compiler's checks.\n\n## What Changes\n- {capability}\n",
        )
        self.write(f"openspec/changes/{change_id}/specs/{capability}/spec.md", delta)
