"""Parity with the official OpenSpec CLI 1.13.2: for every spec and change of every corpus
(this project's own openspec/, OpenSpec's own tree, and the tricky fixtures under
tests/fixtures/parity-parse/), `specgen show --json` / `specgen list --json` print exactly what
`openspec show --json` / `openspec list --json` print, minus the `name` and `line` specgen adds.

The corpora are listed when the tests are collected, so specs other helpers add to openspec/
are covered without editing this file.
"""

from __future__ import annotations

import pytest

from tests.specgen.parity import CORPORA, SHARED_CORPUS, compare, corpus_items


def _params():
    out = []
    for name in CORPORA:
        for item in corpus_items(name):
            out.append(pytest.param(item, id=str(item)))
    return out


def test_shared_corpus_is_present():
    assert (SHARED_CORPUS / "openspec" / "specs").is_dir(), f"missing corpus: {SHARED_CORPUS}"


def test_fixture_corpora_are_found():
    assert sum(1 for n in CORPORA if n.startswith("fixture:")) >= 4


@pytest.mark.parametrize("item", _params())
def test_same_json_as_openspec(item):
    diff = compare(item)
    assert diff is None, f"{item}: specgen and the OpenSpec CLI disagree\n{diff}"
