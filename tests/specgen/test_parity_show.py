"""Parity with the official OpenSpec CLI 1.13.2: for every spec and change of every corpus
(this project's own openspec/, the three public corpora, and the tricky fixtures under
tests/fixtures/parity-parse/), `specgen show --json` / `specgen list --json` print exactly what
`openspec show --json` / `openspec list --json` print, minus the `name` and `line` specgen adds.

The corpora are listed when the tests are collected, so specs added to openspec/ are covered
without editing this file. The public corpora are found through $SPECGEN_CORPORA (tests/specgen/corpora.py).
"""

from __future__ import annotations

import pytest

from tests.specgen import corpora
from tests.specgen.corpora import marks
from tests.specgen.parity import CORPORA, compare, corpus_items


def _params():
    out = []
    for name in CORPORA:
        for item in corpus_items(name):
            out.append(pytest.param(item, id=str(item), marks=marks(name)))
    return out


def test_public_corpora_are_compared():
    assert set(corpora.NAMES) <= set(CORPORA)


def test_fixture_corpora_are_found():
    assert sum(1 for n in CORPORA if n.startswith("fixture:")) >= 4


@pytest.mark.parametrize("item", _params())
def test_same_json_as_openspec(item):
    diff = compare(item)
    assert diff is None, f"{item}: specgen and the OpenSpec CLI disagree\n{diff}"
