"""``build_target`` reproduces its recorded outputs bit for bit (tests/helpers/golden/).

The golden file holds every field of the result (or the error) for seeded synthetic
rollouts built with the real tokenizer (see ``tests/helpers/channel_b_golden.py``).
Speed work on Channel-B must keep every line identical.
"""

import json

import pytest

from coordexp.format.coord import load_tokenizer
from tests.helpers import channel_b_golden as golden


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def lines():
    return golden.GOLDEN.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def recorded(lines):
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def cases(tok):
    return golden.cases(tok)


def _first_difference(a, b, path="") -> str:
    if type(a) is not type(b):
        return f"{path or '/'}: {type(a).__name__} {a!r:.80} != {type(b).__name__} {b!r:.80}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}/{k}: present only in {'recorded' if k in a else 'current'}"
            if a[k] != b[k] or type(a[k]) is not type(b[k]):
                return _first_difference(a[k], b[k], f"{path}/{k}")
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y or type(x) is not type(y):
                return _first_difference(x, y, f"{path}/{i}")
    return f"{path or '/'}: {a!r:.120} != {b!r:.120}"


def test_golden_covers_the_promised_kinds(recorded):
    kinds = {r["case"].split("-", 1)[1] for r in recorded}
    assert kinds == set(golden.KINDS)
    assert len(recorded) == golden.N_CASES >= 300
    targets = [r["target"] for r in recorded if "target" in r]
    assert sum(t["prefix"]["invalid_rollout"] for t in targets) >= 20  # fallbacks
    assert sum(t["prefix"]["truncated"] for t in targets) >= 40
    assert sum(bool(t["match"]["matched"]) for t in targets) >= 100
    assert sum(t["match"]["gating_rejections"] for t in targets) >= 100
    drops = {k for t in targets for k in t["prefix"]["drops"]}
    assert {"wrong_arity", "poly_unsupported", "bbox_invalid", "dropped_incomplete_tail", "missing_desc",
            "unexpected_keys", "order_violation", "other"} <= drops


def test_inputs_are_the_recorded_ones(recorded, cases):
    """The generator still builds the same rollouts (else the comparison below is moot)."""
    assert [(c.name, golden._input_digest(c)) for c in cases] == [(r["case"], r["input"]) for r in recorded]


def test_build_target_matches_golden_bit_for_bit(tok, lines, recorded, cases):
    assert len(cases) == len(lines)
    bad = []
    for case, line, rec in zip(cases, lines, recorded):
        got = golden.outcome(tok, case)
        if golden.line(got) != line:
            bad.append(f"{case.name}: {_first_difference(rec, got)}")
    assert not bad, f"{len(bad)} of {len(cases)} cases differ from {golden.GOLDEN.name}:\n" + "\n".join(bad[:10])
