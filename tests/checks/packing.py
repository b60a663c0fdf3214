"""Checks for capability `packing`: the static plan, padding-free collation and the leak gate,
on the real tiny Qwen3-VL (random weights, real architecture)."""

from __future__ import annotations

import random

import pytest
import torch

from coordexp.smoke.tiny import build_tiny_model
from coordexp.training.objectives import stage1_loss
from coordexp.training.packing import (
    IGNORE_INDEX,
    SAFE_ATTN_IMPLEMENTATIONS,
    PackingLeakError,
    PackingPolicy,
    assert_packing_isolated,
    collate_packed,
    collate_padded,
    model_inputs,
    plan_packs,
)
from specgen import check
from tests.coordexp.segments import synthetic_segment

COORD_START = 151670
TOL = 1e-4
LEAK = 1e-2  # a leak moves logits by ~0.1-1 on the tiny model; isolation keeps them within ~1e-6


@pytest.fixture(scope="module")
def model():
    return build_tiny_model()


def _segments(seed, grids):
    g = torch.Generator().manual_seed(seed)
    return [synthetic_segment(g, prompt_len=5 + 2 * k, answer_len=9 + k, grid=grid) for k, grid in enumerate(grids)]


def _alone(model, seg):
    ids = torch.tensor([seg.input_ids])
    kw = {"input_ids": ids, "use_cache": False}
    if seg.image_grid_thw is not None:
        kw.update(
            pixel_values=seg.pixel_values,
            image_grid_thw=seg.image_grid_thw,
            mm_token_type_ids=(ids == model.config.image_token_id).int(),
        )
    return model(**kw).logits[0]


def _packed_vs_alone(model, segs, **overrides):
    """max |packed - alone| over the samples after the first (the ones a leak can reach)."""
    batch = collate_packed(segs)
    inputs = {**model_inputs(batch), "use_cache": False, **overrides}
    inputs = {k: v for k, v in inputs.items() if v is not None}
    with torch.no_grad():
        packed = model(**inputs).logits[0]
        ref = torch.cat([_alone(model, s) for s in segs])
    first = len(segs[0].input_ids)
    return (packed[first:] - ref[first:]).abs().max().item(), batch


def _lengths(seed, n, lo, hi):
    r = random.Random(seed)
    return [r.randint(lo, hi) for _ in range(n)]


# ------------------------------------------------------------------ plan


@check("packing", "Deterministic static packing plan", "Two runs give the same plan")
def check_plan_is_deterministic():
    lengths = _lengths(1, 500, 20, 900)
    policy = PackingPolicy(packing_length=2048, world_size=3)
    a, b = plan_packs(lengths, policy), plan_packs(list(lengths), policy)
    assert a.to_json() == b.to_json()
    assert a.fingerprint == b.fingerprint
    # and the plan really depends on its inputs
    assert plan_packs(lengths[::-1], policy).fingerprint != a.fingerprint


@check("packing", "Deterministic static packing plan", "Packs respect the packing length and keep a stable order")
def check_plan_capacity_and_order():
    lengths = _lengths(2, 300, 1, 1000)
    plan = plan_packs(lengths, PackingPolicy(packing_length=1000))
    assert all(sum(lengths[i] for i in p) <= 1000 for p in plan.packs)
    assert all(list(p) == sorted(p) for p in plan.packs)
    firsts = [p[0] for p in plan.packs]
    assert firsts == sorted(firsts)
    assert sorted(i for p in plan.packs for i in p) == list(range(len(lengths)))
    # the first-fit invariant: no two packs could be merged into one
    sizes = sorted(sum(lengths[i] for i in p) for p in plan.packs)
    assert sizes[0] + sizes[1] > 1000


@check("packing", "Deterministic static packing plan", "Underfilled packs are kept and counted")
def check_underfilled_packs_are_kept():
    lengths = [900, 800, 700, 100, 50]  # bins: 900+100, 800+50, 700 -> fills 1.0, 0.85, 0.7
    plan = plan_packs(lengths, PackingPolicy(packing_length=1000, min_fill_ratio=0.9))
    assert sorted(i for p in plan.packs for i in p) == [0, 1, 2, 3, 4]
    assert plan.report.underfilled_packs == 2
    assert plan.report.dropped == ()
    assert "dropped 0" in plan.report.summary()


@check("packing", "Single-long policy", "A long sample becomes its own pack")
def check_single_long_pack():
    plan = plan_packs([300, 1500, 200], PackingPolicy(packing_length=1000, allow_single_long=True))
    assert (1,) in plan.packs
    assert plan.report.single_long_packs == 1
    assert plan.report.dropped == ()


@check("packing", "Single-long policy", "A long sample is dropped and reported")
def check_single_long_dropped_reported():
    plan = plan_packs([300, 1500, 200], PackingPolicy(packing_length=1000, allow_single_long=False))
    assert all(1 not in p for p in plan.packs)
    assert plan.report.dropped_too_long == (1,)
    assert "too long 1" in plan.report.summary()


@check("packing", "DDP alignment", "Truncation reports the dropped samples")
def check_ddp_truncation_reports_drops():
    lengths = [600, 600, 600, 600, 600]  # five packs of one sample each
    plan = plan_packs(lengths, PackingPolicy(packing_length=1000, world_size=2, drop_last=True))
    assert len(plan.packs) == 4
    kept = {i for p in plan.packs for i in p}
    assert plan.report.dropped_by_alignment == tuple(sorted(set(range(5)) - kept))
    assert len(plan.report.dropped_by_alignment) == 1
    assert "DDP truncation 1" in plan.report.summary()


@check("packing", "DDP alignment", "Repetition pads with the first packs")
def check_ddp_repetition():
    lengths = [600] * 5
    plan = plan_packs(lengths, PackingPolicy(packing_length=1000, world_size=4, drop_last=False))
    assert len(plan.packs) == 8
    assert plan.packs[5:] == plan.packs[:3]
    assert plan.report.repeated_packs == 3
    assert plan.report.dropped == ()


# ------------------------------------------------------------------ collation


@check("packing", "Padding-free collation", "One row with segment boundaries")
def check_one_row_with_boundaries():
    segs = _segments(3, [None, None, None])
    batch = collate_packed(segs)
    n = [len(s.input_ids) for s in segs]
    assert batch["input_ids"].shape == (1, sum(n))
    assert "attention_mask" not in batch
    assert batch["cu_seq_lens_q"].tolist() == [0, n[0], n[0] + n[1], sum(n)]
    assert batch["input_ids"][0].tolist() == [t for s in segs for t in s.input_ids]


@check("packing", "Padding-free collation", "Position ids restart per sample in four rows")
def check_position_ids_restart_four_rows():
    segs = _segments(4, [None, None])
    batch = collate_packed(segs)
    pos = batch["position_ids"]
    n0, n1 = (len(s.input_ids) for s in segs)
    assert pos.shape == (4, 1, n0 + n1)
    expected = list(range(n0)) + list(range(n1))
    for row in range(4):
        assert pos[row, 0].tolist() == expected


@check("packing", "Padding-free collation", "Image positions follow the image grid")
def check_image_positions_follow_grid(model):
    segs = _segments(5, [None, (1, 4, 6), (1, 6, 4)])
    batch = collate_packed(segs)
    pos = batch["position_ids"][:, 0]
    cu = batch["cu_seq_lens_q"].tolist()
    for k, seg in enumerate(segs):
        a, b = cu[k], cu[k + 1]
        ids = torch.tensor([seg.input_ids])
        assert pos[0, a:b].tolist() == list(range(b - a))
        if seg.image_grid_thw is None:
            continue
        ref, _ = model.model.get_rope_index(
            ids, mm_token_type_ids=(ids == model.config.image_token_id).int(), image_grid_thw=seg.image_grid_thw
        )
        assert torch.equal(pos[1:, a:b], ref[:, 0])
        assert not torch.equal(pos[1, a:b], pos[0, a:b])  # the grid really shapes them


@check("packing", "Padding-free collation", "Labels stay aligned and segment starts are unsupervised")
def check_labels_aligned():
    segs = _segments(6, [None, (1, 4, 4), None])
    for s in segs:
        s.labels[0] = s.input_ids[0]  # a supervised first token must still be masked in the pack
    batch = collate_packed(segs)
    labels = batch["labels"][0].tolist()
    cu = batch["cu_seq_lens_q"].tolist()
    for k, seg in enumerate(segs):
        got = labels[cu[k] : cu[k + 1]]
        assert got[0] == IGNORE_INDEX
        assert got[1:] == seg.labels[1:]
        # supervised labels sit on the token they name (ms-swift alignment; the loss shifts)
        assert all(lab == tok for lab, tok in zip(got, seg.input_ids, strict=True) if lab != IGNORE_INDEX)


# ------------------------------------------------------------------ packed == alone


@check("packing", "Packed forward equals per-sample forward", "Text-only samples")
def check_packed_equals_alone_text(model):
    diff, batch = _packed_vs_alone(model, _segments(7, [None, None, None]))
    assert_packing_isolated(batch, attn_implementation=model.config._attn_implementation, use_cache=False)
    assert diff < TOL, diff


@check("packing", "Packed forward equals per-sample forward", "Image samples")
def check_packed_equals_alone_images(model):
    diff, batch = _packed_vs_alone(model, _segments(8, [(1, 4, 6), None, (1, 6, 4)]))
    assert "pixel_values" in batch and batch["image_grid_thw"].shape == (2, 3)
    assert diff < TOL, diff


@check("packing", "Packed forward equals per-sample forward", "Packed loss and gradients equal the unpacked ones")
def check_packed_loss_and_grads_equal(model):
    segs = _segments(9, [None, (1, 4, 4), None])
    for s in segs:
        s.labels[0] = IGNORE_INDEX

    def loss_and_grads(batch, **fwd):
        model.zero_grad(set_to_none=True)
        logits = model(**fwd, use_cache=False).logits
        out = stage1_loss(logits, batch["labels"], coord_start=COORD_START)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out.loss.item(), grads

    packed = collate_packed(segs)
    padded = collate_padded(segs, pad_token_id=0)
    lp, gp = loss_and_grads(packed, **model_inputs(packed))
    lu, gu = loss_and_grads(padded, **{k: v for k, v in padded.items() if k != "labels"})
    model.zero_grad(set_to_none=True)
    assert abs(lp - lu) < TOL, (lp, lu)
    assert gp.keys() == gu.keys() and gp
    worst = max((gp[n] - gu[n]).abs().max().item() for n in gp)
    assert worst < TOL, worst


# ------------------------------------------------------------------ leak gate


@pytest.fixture(scope="module")
def leak_batch():
    return collate_packed(_segments(10, [None, None]))


@check("packing", "Leaking configurations fail fast", "An attention mask of ones is refused")
def check_ones_mask_refused(model, leak_batch):
    bad = {**leak_batch, "attention_mask": torch.ones_like(leak_batch["input_ids"])}
    with pytest.raises(PackingLeakError, match="attention_mask"):
        assert_packing_isolated(bad, attn_implementation="sdpa", use_cache=False)
    diff, _ = _packed_vs_alone(model, _segments(10, [None, None]), attention_mask=bad["attention_mask"])
    assert diff > LEAK, diff


@check("packing", "Leaking configurations fail fast", "Three-row position ids are refused")
def check_three_row_positions_refused(model, leak_batch):
    bad = {**leak_batch, "position_ids": leak_batch["position_ids"][1:]}
    with pytest.raises(PackingLeakError, match=r"\[4, 1, L\]"):
        assert_packing_isolated(bad, attn_implementation="sdpa", use_cache=False)
    diff, _ = _packed_vs_alone(model, _segments(10, [None, None]), position_ids=bad["position_ids"])
    assert diff > LEAK, diff


@check("packing", "Leaking configurations fail fast", "The KV cache is refused")
def check_kv_cache_refused(model, leak_batch):
    with pytest.raises(PackingLeakError, match="cache"):
        assert_packing_isolated(leak_batch, attn_implementation="sdpa", use_cache=True)
    with pytest.raises(PackingLeakError, match="cache"):
        assert_packing_isolated(leak_batch, attn_implementation="sdpa", use_cache=None, model_use_cache=True)
    assert_packing_isolated(leak_batch, attn_implementation="sdpa", use_cache=None, model_use_cache=False)
    diff, _ = _packed_vs_alone(model, _segments(10, [None, None]), use_cache=True)
    assert diff > LEAK, diff


@check("packing", "Leaking configurations fail fast", "An unknown attention backend is refused")
def check_unknown_backend_refused(model, leak_batch):
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def causal_only(module, q, k, v, attention_mask, **kw):  # a backend that ignores the packed mask
        return sdpa_attention_forward(module, q, k, v, None, is_causal=True, **kw)

    AttentionInterface.register("coordexp_causal_only", causal_only)
    AttentionMaskInterface.register("coordexp_causal_only", sdpa_mask)
    assert "coordexp_causal_only" not in SAFE_ATTN_IMPLEMENTATIONS
    with pytest.raises(PackingLeakError, match="coordexp_causal_only"):
        assert_packing_isolated(leak_batch, attn_implementation="coordexp_causal_only", use_cache=False)
    previous = model.config._attn_implementation
    model.set_attn_implementation({"text_config": "coordexp_causal_only"})
    try:
        diff, _ = _packed_vs_alone(model, _segments(10, [None, None]))
    finally:
        model.set_attn_implementation({"text_config": previous})
    assert diff > LEAK, diff
    assert _packed_vs_alone(model, _segments(10, [None, None]))[0] < TOL  # restored


@check("packing", "Leaking configurations fail fast", "Position ids that do not restart are refused")
def check_non_restarting_positions_refused(leak_batch):
    pos = leak_batch["position_ids"].clone()
    n = pos.shape[-1]
    pos[0, 0] = torch.arange(n)  # the text row runs on across the boundary
    with pytest.raises(PackingLeakError, match="restart"):
        assert_packing_isolated({**leak_batch, "position_ids": pos}, attn_implementation="sdpa", use_cache=False)
    pos = leak_batch["position_ids"].clone()
    pos[1:, 0] = torch.arange(n)  # mRoPE rows continue while the text row restarts
    with pytest.raises(PackingLeakError, match="mRoPE"):
        assert_packing_isolated({**leak_batch, "position_ids": pos}, attn_implementation="sdpa", use_cache=False)


@check("packing", "Leaking configurations fail fast", "A supervised segment start is refused")
def check_supervised_segment_start_refused(leak_batch):
    labels = leak_batch["labels"].clone()
    b = int(leak_batch["cu_seq_lens_q"][1])
    labels[0, b] = leak_batch["input_ids"][0, b]
    with pytest.raises(PackingLeakError, match="first token"):
        assert_packing_isolated({**leak_batch, "labels": labels}, attn_implementation="sdpa", use_cache=False)
