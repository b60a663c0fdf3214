"""pytest plugin for ``specgen proof`` (``-p specgen.proof.contexts``): one coverage.py context per binding.

Loaded only by the proof run, in a process that coverage.py measures (``COVERAGE_PROCESS_START``; with
xdist, in each worker too). Around every generated test it switches coverage.py's dynamic context to
``<view>|<scenario id>|<check>``, so the data says which lines each check executed, and back to ``""``
after; the processes a test starts inherit its context (see CONTEXT_ENV). An incremental run names the
bindings to run (ONLY_ENV); every other generated test is deselected. A check marked
``@pytest.mark.reach_exception("why")`` is recorded with its reason: each process writes its own
``exceptions-<pid>.json`` into the folder named by ``SPECGEN_PROOF_EXCEPTIONS`` when its session ends
(the proof run reads them all).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from specgen.proof.names import CONTEXT_ENV, EXCEPTIONS_ENV, ONLY_ENV, SEP, SUB, context_name

_EXCEPTIONS: dict[str, str] = {}


def pytest_sessionfinish(session) -> None:
    folder = os.environ.get(EXCEPTIONS_ENV)
    if folder and _EXCEPTIONS:
        from specgen import fsio

        fsio.write_text(Path(folder) / f"exceptions-{os.getpid()}.json", json.dumps(_EXCEPTIONS, sort_keys=True) + "\n")


def pytest_collection_modifyitems(session, config, items) -> None:
    """An incremental run (``SPECGEN_PROOF_ONLY`` names a JSON list of context names) runs only those bindings."""
    path = os.environ.get(ONLY_ENV)
    if not path:
        return
    wanted = set(json.loads(Path(path).read_text(encoding="utf-8")))
    keep, drop = [], []
    for item in items:
        mark = item.get_closest_marker("specgen")
        kw = mark.kwargs if mark is not None else {}
        name = context_name(kw.get("view") or "specs", kw.get("id") or "", kw.get("check") or "")
        (keep if mark is not None and name in wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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
