"""Tests that read the public corpora (tests/specgen/corpora.py) and what happens when they are absent.

A test marked `@pytest.mark.corpus("name", ...)` whose corpus is missing is not run: it is skipped at
set-up, and the session ends with ONE loud line counting such tests and naming the missing corpora.
With `SPECGEN_REQUIRE_CORPORA=1` (CI) it fails instead, naming them. The names travel in the test's
`user_properties`, so the summary is right under xdist too.
"""

from __future__ import annotations

import pytest

from tests.specgen import corpora

PROPERTY = "missing_corpora"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"corpus(*names): reads public corpora found under ${corpora.ENV_DIR}; not run where absent"
    )


def pytest_runtest_setup(item):
    names = [n for mark in item.iter_markers("corpus") for n in mark.args]
    missing = sorted({n for n in names if not corpora.present(n)})
    if not missing:
        return
    item.user_properties.append((PROPERTY, ",".join(missing)))
    where = f"{corpora.corpora_dir()} (${corpora.ENV_DIR})"
    if corpora.required():
        pytest.fail(
            f"corpora missing under {where}: {', '.join(missing)} (${corpora.ENV_REQUIRE} is set)", pytrace=False
        )
    pytest.skip(f"corpora missing under {where}: {', '.join(missing)}")


def _missing_of(report) -> set[str]:
    for key, value in getattr(report, "user_properties", ()):
        if key == PROPERTY:
            return set(value.split(","))
    return set()


def pytest_terminal_summary(terminalreporter):
    hit = [
        r
        for outcome in ("skipped", "failed", "error")
        for r in terminalreporter.stats.get(outcome, [])
        if getattr(r, "when", "") == "setup" and _missing_of(r)
    ]
    if not hit:
        return
    names = sorted(set().union(*(_missing_of(r) for r in hit)))
    verdict = "FAILED" if corpora.required() else "NOT RUN"
    terminalreporter.write_sep(
        "!",
        f"{len(hit)} corpus tests {verdict}: missing {', '.join(names)} under {corpora.corpora_dir()} "
        f"(set ${corpora.ENV_DIR}; ${corpora.ENV_REQUIRE}=1 makes absence a failure)",
        red=True,
        bold=True,
    )
