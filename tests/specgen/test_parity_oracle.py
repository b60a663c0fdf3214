"""The batch oracle (oracle_batch.mjs, the CLI's command classes in one Node process) prints
what the `openspec` binary prints. Checked on a sample covering each job kind, success and
failure, so the whole-corpus parity tests can trust it."""

from __future__ import annotations

import pytest

from tests.specgen import oracle
from tests.specgen.corpora import marks
from tests.specgen.parity import CORPORA, Item, _job, oracle_outputs

SAMPLE = [
    Item("openspec-self", "list-specs"),
    Item("openspec-self", "list-changes"),
    Item("openspec-self", "spec", "cli-validate"),
    Item("openspec-self", "change", "fix-spec-parser-fidelity"),
    Item("fixture:specs-structure", "list-specs"),
    Item("fixture:specs-structure", "spec", "no-purpose"),  # fails: no Purpose
    Item("fixture:changes-deltas", "change", "removed-forms"),
    Item("fixture:changes-deltas", "change", "no-proposal"),  # fails: no proposal.md
    Item("fixture:changes-deltas", "list-changes"),
]


@pytest.mark.parametrize("item", [pytest.param(i, id=str(i), marks=marks(i.corpus)) for i in SAMPLE])
def test_batch_driver_matches_the_binary(item):
    batch = oracle_outputs(item.corpus)[item]
    job = _job(item)
    if job["cmd"] == "list":
        args = ["list", "--json"] + (["--specs"] if job["mode"] == "specs" else [])
    else:
        args = ["show", job["id"], "--json", "--type", job["type"], "--no-interactive"]
    proc = oracle.run(CORPORA[item.corpus], *args)
    assert proc.returncode == batch["exitCode"]
    assert proc.stdout == batch["stdout"]
