"""The steps of the composite GitHub action (action.yml), one function each: ``python -m specgen.cli.action STEP``.

The action's YAML only calls these, so what a step does is ordinary Python a test can run with a fake
``GITHUB_*`` environment (tests/specgen/test_action.py). Inputs arrive as environment variables, never
pasted into a shell line: ``SPECGEN_ARGS`` (extra arguments for ``specgen report --gate``) and
``SPECGEN_PYTEST_ARGS`` (extra arguments for pytest) are split with :func:`shlex.split`, so quotes group
words and nothing in them is run.

- ``check``: ``specgen check --format github``; its exit status is the step's.
- ``tests``: the generated tests of the configured ``[tool.specgen] output`` (every root's, with several
  roots), with pytest-xdist (``-n auto``) when it is installed, writing ``<report>/junit.xml``. Failing
  tests do not fail this step (the gate judges them from the results file); pytest failing to run at all
  (usage error, internal error, interrupted) does. The action runs it even when ``check`` failed, so the
  gate never reads results older than the tree.
- ``report``: ``specgen report --gate --format github`` plus ``SPECGEN_ARGS``; its exit status is the step's.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys

from specgen import config as specgen_config
from specgen.errors import SpecgenError

# pytest exit codes: 0 passed, 1 some failed, 5 nothing collected are a run; 2, 3, 4 are not.
_RAN = (0, 1, 5)


def _words(name: str) -> list[str]:
    try:
        return shlex.split(os.environ.get(name, ""))
    except ValueError as exc:  # an unbalanced quote: say which input
        raise SpecgenError(f"{name}: cannot split into arguments: {exc}") from None


def check() -> int:
    from specgen.cli import main

    return main(["check", "--format", "github"])


def tests_argv(config, xdist: bool, extra: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "pytest", config.output, "-p", "no:cacheprovider"]
    argv += [f"--junitxml={config.report}/junit.xml"]
    return argv + (["-n", "auto"] if xdist else []) + extra


def tests() -> int:
    config = specgen_config.resolve(None)
    xdist = importlib.util.find_spec("xdist") is not None
    if not xdist:
        print("::notice title=specgen::pytest-xdist is not installed: the generated tests run on one core")
    argv = tests_argv(config, xdist, _words("SPECGEN_PYTEST_ARGS"))
    print("+ " + shlex.join(argv[1:]), flush=True)
    rc = subprocess.run(argv, cwd=config.root, check=False).returncode
    if rc not in _RAN:
        print(f"::error title=specgen::pytest could not run the generated tests (exit {rc})")
        return rc
    if rc == 1:
        print("::notice title=specgen::some generated tests failed; the gate below says what that means")
    return 0


def report() -> int:
    from specgen.cli import main

    return main(["report", "--gate", "--format", "github", *_words("SPECGEN_ARGS")])


STEPS = {"check": check, "tests": tests, "report": report}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in STEPS:
        print(f"usage: python -m specgen.cli.action {{{','.join(STEPS)}}}", file=sys.stderr)
        return 2
    try:
        return STEPS[argv[0]]()
    except SpecgenError as exc:
        print(f"specgen: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
