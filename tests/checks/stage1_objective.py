"""Checks for capability `stage1-objective`: the stage-1 loss terms, their gradients and normalisation.

Logit-level checks use a small synthetic vocabulary laid out like the real one (text ids, then
1000 contiguous coord ids) so that they run in milliseconds; the packed-vs-padded check runs on
the real tiny Qwen3-VL (see also the packing capability).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from coordexp.smoke.tiny import build_tiny_model
from coordexp.training.objectives import COORD_BINS, CoordLossWeights, coord_terms, soft_targets, stage1_loss
from coordexp.training.packing import collate_packed, collate_padded, model_inputs
from specgen import check
from tests.coordexp.segments import synthetic_segment

CS = 300  # coord ids 300..1299 in the synthetic vocabulary
V = CS + COORD_BINS + 20
TOL = 1e-4


def _batch(seed, rows=2, length=24, coord_share=0.4):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, length, V, generator=g) * 3
    labels = torch.randint(0, CS, (rows, length), generator=g)
    coord = torch.rand(rows, length, generator=g) < coord_share
    labels[coord] = CS + torch.randint(0, COORD_BINS, (int(coord.sum()),), generator=g)
    labels[:, :4] = -100  # prompt
    return logits.requires_grad_(True), labels


def _masks(labels):
    tgt = labels[:, 1:]
    valid = tgt != -100
    is_coord = valid & (tgt >= CS) & (tgt < CS + COORD_BINS)
    return valid & ~is_coord, is_coord


NO_COORD = CoordLossWeights(soft_ce=0, w1=0, gate=0, ce=0)


@check("stage1-objective", "CE over non-coord targets only", "CE equals the token mean over non-coord targets")
def check_ce_is_mean_over_text_targets():
    logits, labels = _batch(1)
    text, is_coord = _masks(labels)
    assert text.any() and is_coord.any()
    out = stage1_loss(logits, labels, coord_start=CS, weights=NO_COORD)
    ref = F.cross_entropy(logits[:, :-1][text], labels[:, 1:][text])
    assert abs(out.loss.item() - ref.item()) < TOL
    # and including coord targets would have given a different number
    all_ = F.cross_entropy(logits[:, :-1][text | is_coord], labels[:, 1:][text | is_coord])
    assert abs(all_.item() - ref.item()) > 1e-3
    assert out.num_text == int(text.sum()) and out.num_coord == int(is_coord.sum())


@check("stage1-objective", "CE over non-coord targets only", "Coord targets get no CE gradient")
def check_no_ce_gradient_through_coords():
    logits, labels = _batch(2)
    _, is_coord = _masks(labels)
    stage1_loss(logits, labels, coord_start=CS, weights=NO_COORD).loss.backward()
    g = logits.grad[:, :-1]
    assert g[is_coord].abs().max().item() == 0.0
    assert g[~is_coord & (labels[:, 1:] != -100)].abs().max().item() > 0


def _reference_terms(z, k, w: CoordLossWeights):
    """The formulas of openspec/specs/stage1-objective and docs/stage1.md, evaluated in float64 position by position."""
    z = [float(x) for x in z.double()]
    tau = w.temperature
    s = z[CS : CS + COORD_BINS]

    def lse(xs):
        m = max(xs)
        return m + math.log(sum(math.exp(x - m) for x in xs))

    ls = lse([x / tau for x in s])
    p = [math.exp(x / tau - ls) for x in s]
    q = [
        math.exp(-((j - k) ** 2) / (2 * w.sigma**2)) if w.radius is None or abs(j - k) <= w.radius else 0.0
        for j in range(COORD_BINS)
    ]
    zq = sum(q)
    q = [x / zq for x in q]
    soft = -sum(qj * math.log(pj) for qj, pj in zip(q, p, strict=True) if qj > 0)
    cp = cq = w1 = 0.0
    for pj, qj in zip(p, q, strict=True):
        cp += pj
        cq += qj
        w1 += abs(cp - cq)
    w1 /= COORD_BINS - 1
    gate = max(0.0, lse([x / tau for x in z]) - ls)
    hard = -(s[k] - lse(s))
    return soft, w1, gate, hard


@check("stage1-objective", "Coord distribution losses", "Terms match the formulas")
def check_terms_match_formulas():
    g = torch.Generator().manual_seed(3)
    w = CoordLossWeights(soft_ce=1.0, w1=3.0, gate=5.0, ce=0.5, temperature=0.9, sigma=1.5, radius=8)
    z = torch.randn(4, V, generator=g) * 2
    bins = torch.tensor([0, 3, 500, 999])
    got = coord_terms(z, bins, CS, w)
    for i in range(4):
        ref = _reference_terms(z[i], int(bins[i]), w)
        for name, a, b in zip(("softCE", "W1", "gate", "hardCE"), (t[i].item() for t in got), ref, strict=True):
            assert abs(a - b) < TOL, (name, i, a, b)
    # the weighted mean over coord positions is what the loss uses
    labels = torch.full((1, 5), -100)
    labels[0, 1:] = CS + bins
    logits = torch.cat([z, z[:1]]).unsqueeze(0)
    out = stage1_loss(logits, labels, coord_start=CS, weights=w)
    refs = [_reference_terms(z[i], int(bins[i]), w) for i in range(4)]
    expected = sum(1.0 * r[0] + 3.0 * r[1] + 5.0 * r[2] + 0.5 * r[3] for r in refs) / 4
    assert abs(out.loss.item() - expected) < 1e-3, (out.loss.item(), expected)


@check("stage1-objective", "Coord distribution losses", "Soft target respects sigma and radius")
def check_soft_target_shape():
    q = soft_targets(torch.tensor([500, 2]), sigma=1.5, radius=8)
    assert torch.allclose(q.sum(-1), torch.ones(2), atol=1e-6)
    k = torch.arange(COORD_BINS)
    assert q[0][(k - 500).abs() > 8].abs().max().item() == 0.0
    assert q[0][(k - 500).abs() <= 8].min().item() > 0
    assert torch.allclose(q[0][492:500], q[0][501:509].flip(0))
    assert int(q[1].argmax()) == 2 and q[1][:2].sum() > 0  # clipped at the range edge, still normalised
    wide = soft_targets(torch.tensor([500]), sigma=4.0, radius=None)
    assert wide[0, 500] < q[0, 500]  # a larger sigma spreads the mass


@check("stage1-objective", "Coord distribution losses", "A prediction equal to the soft target has zero W1")
def check_w1_zero_at_target():
    w = CoordLossWeights(temperature=0.9, sigma=2.0, radius=None)
    q = soft_targets(torch.tensor([321]), sigma=2.0, radius=None, dtype=torch.float64)[0]
    z = torch.full((1, V), -50.0, dtype=torch.float64)
    # far bins underflow to q = 0: give them a tiny finite logit (a distance of ~1e-200 from q)
    z[0, CS : CS + COORD_BINS] = w.temperature * torch.log(q.clamp_min(1e-200))
    soft, w1, _, _ = coord_terms(z, torch.tensor([321]), CS, w)
    assert w1.item() < 1e-9
    entropy = -torch.special.xlogy(q, q).sum().item()
    assert abs(soft.item() - entropy) < 1e-9
    # a shifted prediction has a W1 that grows with the shift, and stays in [0, 1]
    shifted = coord_terms(z, torch.tensor([330]), CS, w)[1].item()
    far = coord_terms(z, torch.tensor([900]), CS, w)[1].item()
    assert 0 < shifted < far <= 1


@check("stage1-objective", "Coord distribution losses", "The gate measures the mass outside the coord vocabulary")
def check_gate_is_mass_outside_coords():
    w = CoordLossWeights(temperature=1.0)
    z = torch.zeros(2, V)
    z[0, CS : CS + COORD_BINS] = 20.0  # almost all mass on coord ids
    z[1, 7] = 40.0  # almost all mass on a text id
    gate = coord_terms(z, torch.tensor([5, 5]), CS, w)[2]
    assert gate[0].item() < 1e-6
    assert gate[1].item() > 20
    z = torch.randn(50, V) * 5
    assert coord_terms(z, torch.zeros(50, dtype=torch.long), CS, w)[2].min().item() >= 0


@check("stage1-objective", "Coord distribution losses", "Coord terms only reach coord positions")
def check_coord_terms_gradient_locality():
    logits, labels = _batch(4)
    text, is_coord = _masks(labels)
    only_coord = CoordLossWeights(soft_ce=1.0, w1=3.0, gate=5.0, ce=0.5)
    stage1_loss(logits, labels, coord_start=CS, weights=only_coord, num_text=0).loss.backward()
    g = logits.grad[:, :-1]
    # with num_text=0 the CE term is off: only coord positions may get a gradient
    assert g[text].abs().max().item() == 0.0
    assert g[is_coord].abs().max().item() > 0
    logits2 = logits.detach().clone().requires_grad_(True)
    no_gate = CoordLossWeights(soft_ce=1.0, w1=3.0, gate=0.0, ce=0.5)
    stage1_loss(logits2, labels, coord_start=CS, weights=no_gate, num_text=0).loss.backward()
    gc = logits2.grad[:, :-1][is_coord]
    outside = torch.ones(V, dtype=torch.bool)
    outside[CS : CS + COORD_BINS] = False
    assert gc[:, outside].abs().max().item() == 0.0
    assert gc[:, ~outside].abs().max().item() > 0


@pytest.fixture(scope="module")
def model():
    return build_tiny_model()


@check("stage1-objective", "Token-count normalisation", "The same tokens in different rows give the same loss")
def check_packed_equals_padded_loss(model):
    g = torch.Generator().manual_seed(5)
    segs = [synthetic_segment(g, prompt_len=4 + k, answer_len=6 + 3 * k) for k in range(3)]
    packed = collate_packed(segs)
    padded = collate_padded(segs, pad_token_id=0)
    with torch.no_grad():
        lp = stage1_loss(model(**model_inputs(packed), use_cache=False).logits, packed["labels"], coord_start=151670)
        lu = stage1_loss(
            model(**{k: v for k, v in padded.items() if k != "labels"}, use_cache=False).logits,
            padded["labels"],
            coord_start=151670,
        )
    assert (lp.num_text, lp.num_coord) == (lu.num_text, lu.num_coord)
    assert abs(lp.loss.item() - lu.loss.item()) < TOL
    # a per-row mean (the defect this normalisation avoids) would differ on rows of unequal length
    row_means = []
    for r in range(len(segs)):
        logits = model(
            input_ids=padded["input_ids"][r : r + 1],
            attention_mask=padded["attention_mask"][r : r + 1],
            use_cache=False,
        ).logits.detach()
        row = stage1_loss(logits, padded["labels"][r : r + 1], coord_start=151670)
        row_means.append(row.loss.item())
    assert abs(sum(row_means) / len(row_means) - lu.loss.item()) > 1e-3


@check("stage1-objective", "Token-count normalisation", "Gradient accumulation invariance")
def check_grad_accumulation_invariance():
    from coordexp.training.objectives import count_targets

    logits, labels = _batch(6, rows=4, length=20)
    w = CoordLossWeights(soft_ce=1.0, w1=3.0, gate=5.0, ce=0.0, temperature=0.9, sigma=1.5, radius=8)
    whole = stage1_loss(logits, labels, coord_start=CS, weights=w)
    whole.loss.backward()
    g_whole = logits.grad.clone()
    logits.grad = None
    splits = [(0, 1), (1, 4)]  # unequal micro-batches: a per-micro-batch mean would not add up
    counts = [count_targets(labels[a:b], CS) for a, b in splits]
    n_text, n_coord = sum(c[0] for c in counts), sum(c[1] for c in counts)
    total = 0.0
    for a, b in splits:
        part = stage1_loss(logits[a:b], labels[a:b], coord_start=CS, weights=w, num_text=n_text, num_coord=n_coord)
        part.loss.backward()
        total += part.loss.item()
    assert abs(total - whole.loss.item()) < TOL
    assert (logits.grad - g_whole).abs().max().item() < 1e-6
    naive = sum(stage1_loss(logits[a:b], labels[a:b], coord_start=CS, weights=w).loss.item() for a, b in splits) / len(
        splits
    )
    assert abs(naive - whole.loss.item()) > 1e-3


@check("stage1-objective", "Numerical guards and validated weights", "NaN and infinite logits give a finite loss")
def check_nan_guard():
    logits, labels = _batch(7)
    with torch.no_grad():
        logits[0, 5, 10] = float("nan")
        logits[1, 6, CS + 3] = float("inf")
        logits[1, 7, 2] = float("-inf")
    out = stage1_loss(logits, labels, coord_start=CS, weights=CoordLossWeights(ce=1.0))
    assert math.isfinite(out.loss.item())
    out.loss.backward()
    assert torch.isfinite(logits.grad).all()


@check("stage1-objective", "Numerical guards and validated weights", "Invalid knobs are rejected")
@pytest.mark.parametrize(
    "knob,value",
    [
        ("soft_ce", -1.0),
        ("w1", -0.1),
        ("gate", float("nan")),
        ("ce", -2.0),
        ("temperature", 0.0),
        ("sigma", -1.0),
        ("radius", -1),
    ],
)
def check_invalid_knobs(knob, value):
    with pytest.raises(ValueError, match=knob):
        CoordLossWeights(**{knob: value})
