"""Whether the test results a report reads belong to the code it reports on.

A report built from no results, or from results older than what they claim to test, would show
every check as missing or, worse, passing for code that never ran. ``results_issues`` says so as
warning issues (``missing-results``, ``stale-results``), which `specgen report` prints and
`--gate` fails on (see docs/compiler.md):

- missing: no results file at the path the report reads, while some automated check is bound (a
  project with no automated check yet, say one adopting specgen with a baseline, has nothing to run);
- stale: the file is older than a generated test module or a check module (a test run since then
  would have run other code). The lock is not one of them: `specgen review` stamps it without
  changing any test, and the review is what clears a suspect binding (openspec/specs/spec-test-compiler);
- from another run: the file holds records, and none of them is for a binding of this project.
"""

from __future__ import annotations

import os
from pathlib import Path

from specgen.compile.compiler import Compilation
from specgen.compile.generator import existing_generated, rel_path
from specgen.errors import WARNING, Issue

RERUN = "run `pytest tests/generated` (or your test command) and then `specgen report` again"


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _newest_input(comp: Compilation) -> tuple[float, Path] | None:
    """The newest of the generated test modules and the check modules: (mtime, path)."""
    out = comp.config.output_dir
    paths = [out / name for name in existing_generated(out)] + [m.path for m in comp.modules]
    stamped = [(t, p) for p in paths if (t := _mtime(p)) is not None]
    return max(stamped, default=None)


def results_issues(comp: Compilation, path: Path, results: dict) -> list[Issue]:
    """Warnings about the results file at `path` (already loaded as `results`); [] when it is fresh."""
    where = path.resolve()
    when = _mtime(path)
    if when is None:
        if not any(b.decl.manual is None for b in comp.bound):
            return []
        return [
            Issue(
                WARNING,
                where,
                None,
                f"no test results: {RERUN}; until then every automated check counts as missing",
                "missing-results",
            )
        ]
    newest = _newest_input(comp)
    if newest is not None and newest[0] > when:
        return [
            Issue(
                WARNING,
                where,
                None,
                f"test results are older than {rel_path(newest[1], comp.root)}: stale; {RERUN}",
                "stale-results",
            )
        ]
    known = {(b.view, b.scenario_id, b.decl.check_key) for b in comp.bound}
    if results and comp.bound and not known.intersection(results):
        return [
            Issue(
                WARNING,
                where,
                None,
                f"test results are from another run: none of their {len(results)} "
                f"record(s) is for a binding of this project; {RERUN}",
                "stale-results",
            )
        ]
    return []
