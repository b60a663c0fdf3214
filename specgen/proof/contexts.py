"""pytest plugin for ``specgen proof`` (``-p specgen.proof.contexts``): one coverage.py context per binding.

Loaded only by the proof run, in a process that coverage.py measures (``COVERAGE_PROCESS_START``; with
xdist, in each worker too). Around every generated test it switches coverage.py's dynamic context to
``<view>|<scenario id>|<check>``, so the data says which lines each check executed, and back to ``""``
after; the processes a test starts inherit its context (see CONTEXT_ENV). A check marked
``@pytest.mark.reach_exception("why")`` is recorded with its reason: each process writes its own
``exceptions-<pid>.json`` into the folder named by ``SPECGEN_PROOF_EXCEPTIONS`` when its session ends
(the proof run reads them all).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SEP = "|"
EXCEPTIONS_ENV = "SPECGEN_PROOF_EXCEPTIONS"
# The context of the running test, for the processes it starts: the proof run's coverage config reads it as
# the static context (`context = ${SPECGEN_PROOF_CONTEXT-}`), so a check that runs the product in a
# subprocess (a script, a CLI call) is credited with what that subprocess executes.
CONTEXT_ENV = "SPECGEN_PROOF_CONTEXT"


def context_name(view: str, scenario_id: str, check: str) -> str:
    return SEP.join((view or "specs", scenario_id, check))


SUB = "sub"  # the first part of a context recorded in a process the test started


def parse_context(name: str) -> tuple[str, str, str] | None:
    parts = name.split(SEP)
    if len(parts) == 4 and parts[0] == SUB:
        parts = parts[1:]
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def in_subprocess(name: str) -> bool:
    return name.startswith(SUB + SEP)


_EXCEPTIONS: dict[str, str] = {}


def pytest_sessionfinish(session) -> None:
    folder = os.environ.get(EXCEPTIONS_ENV)
    if folder and _EXCEPTIONS:
        from specgen import fsio

        fsio.write_text(Path(folder) / f"exceptions-{os.getpid()}.json", json.dumps(_EXCEPTIONS, sort_keys=True) + "\n")


def _coverage():
    try:
        import coverage
    except ImportError:  # not measured: nothing to switch
        return None
    return coverage.Coverage.current()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    mark = item.get_closest_marker("specgen")
    cov = _coverage() if mark is not None else None
    if cov is None:
        yield
        return
    kw = mark.kwargs
    view, sid, check = kw.get("view") or "specs", kw.get("id") or "", kw.get("check") or ""
    exception = item.get_closest_marker("reach_exception")
    if exception is not None:
        reason = (exception.args[0] if exception.args else exception.kwargs.get("reason")) or ""
        _EXCEPTIONS[context_name(view, sid, check)] = str(reason)
    name = context_name(view, sid, check)
    cov.switch_context(name)
    os.environ[CONTEXT_ENV] = SUB + SEP + name
    try:
        yield
    finally:
        os.environ.pop(CONTEXT_ENV, None)
        cov.switch_context("")
