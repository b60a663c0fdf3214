"""Checks for capability `stage2-ab-training`: schedule, matching, Channel-B prefix, FN
injection, CE weights, closure, geometry targets, losses and metric aggregation, on the
real coord-extended Qwen tokenizer."""

from __future__ import annotations

import pytest
import torch

from coordexp.coord import load_tokenizer
from coordexp.coordjson import parse
from coordexp.stage2.channel_b import (
    ChannelBConfig, ClosureError, build_target, locate_closure, rollout_prefix,
)
from coordexp.stage2.losses import ciou_loss, expectation_decode, geometry_losses
from coordexp.stage2.matching import MatchConfig, Shape, candidates, match
from coordexp.stage2.metrics import StepMetrics, reduce_ranks
from coordexp.stage2.schedule import RealizedRatio, channel_for_step, is_channel_b
from coordexp.template import decode_pieces
from specgen import check

CAP = "stage2-ab-training"
DF = "desc_first"
C = "<|coord_{}|>".format
COORD0 = 151670
B = lambda *v: Shape("bbox_2d", tuple(v))  # noqa: E731


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def rec(desc, box, geom="bbox_2d"):
    return '{"desc": "' + desc + f'", "{geom}": [' + ", ".join(C(k) for k in box) + "]}"


def ids(tok, text):
    return tok.encode(text, add_special_tokens=False)


def token_starts(pieces):
    out, pos = [], 0
    for p in pieces:
        out.append(pos)
        pos += len(p)
    return out


GT = [{"desc": "cat", "bbox_2d": [105, 100, 300, 300]}, {"desc": "bird", "bbox_2d": [0, 0, 50, 50]}]


# ---------------------------------------------------------------- Bresenham Channel Schedule

@check(CAP, "Bresenham Channel Schedule", "Exact B count")
def check_exact_b_count():
    assert sum(is_channel_b(s, 0.875) for s in range(1000)) == 875


@check(CAP, "Bresenham Channel Schedule", "Realized ratio converges")
def check_realized_ratio_converges():
    rr = RealizedRatio()
    flags = []
    for s in range(1000):
        flags.append(is_channel_b(s, 0.85))
        rr.record(s, flags[-1])
        if s >= 199:
            assert abs(rr.value - 0.85) <= 1 / 200, s
    assert abs(sum(flags) / 1000 - 0.85) <= 2 / 1000


@check(CAP, "Bresenham Channel Schedule", "Extremes")
def check_extremes():
    assert [channel_for_step(s, 0) for s in range(300)] == ["A"] * 300
    assert [channel_for_step(s, 1) for s in range(300)] == ["B"] * 300


@check(CAP, "Bresenham Channel Schedule", "Resume continues the sequence")
def check_resume_continues_the_sequence():
    import subprocess
    import sys
    code = "from coordexp.stage2.schedule import channel_for_step as c; print(''.join(c(s, 0.85) for s in range(137, 300)))"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert fresh == "".join(channel_for_step(s, 0.85) for s in range(300))[137:]


@check(CAP, "Bresenham Channel Schedule", "Step recorded twice is refused")
def check_step_recorded_twice_is_refused():
    rr = RealizedRatio()
    rr.record(4, True)
    with pytest.raises(ValueError, match="once"):
        rr.record(4, True)


# ---------------------------------------------------------------- Gated Hungarian Matching

@check(CAP, "Gated Hungarian Matching", "Candidates by IoU with index ties")
def check_candidates_by_iou_with_index_ties():
    gts = [B(500, 500, 600, 600), B(0, 0, 10, 10), B(0, 0, 10, 10)]
    assert candidates(B(0, 0, 10, 10), gts, 2) == [1, 2]


@check(CAP, "Gated Hungarian Matching", "Nearest centers when nothing overlaps")
def check_nearest_centers_when_nothing_overlaps():
    gts = [B(0, 0, 10, 10), B(900, 900, 910, 910), B(200, 200, 210, 210)]
    assert candidates(B(400, 400, 410, 410), gts, 2) == [2, 0]


@check(CAP, "Gated Hungarian Matching", "Gated pairs are rejected and counted")
def check_gated_pairs_are_rejected_and_counted():
    res = match([B(250, 250, 400, 400)], [B(100, 100, 300, 300)], MatchConfig(maskiou_gate=0.3))
    assert (res.matched, res.fp, res.fn, res.gating_rejections) == ([], [0], [0], 1)


@check(CAP, "Gated Hungarian Matching", "Dummies decide a weak match")
def check_dummies_decide_a_weak_match():
    pred, gts = [B(100, 100, 300, 180)], [B(100, 100, 300, 300)]
    assert match(pred, gts, MatchConfig(maskiou_gate=0.0, fp_cost=0.1, fn_cost=0.1)).matched == []
    assert match(pred, gts, MatchConfig(maskiou_gate=0.0, fp_cost=1.0, fn_cost=1.0)).matched == [(0, 0)]


@check(CAP, "Gated Hungarian Matching", "Matching is deterministic")
def check_matching_is_deterministic():
    gts = [B(500, 500, 700, 700), B(100, 100, 300, 300), B(800, 0, 900, 100)]
    preds = [B(0, 800, 50, 900), B(105, 100, 300, 300), B(500, 505, 700, 700), B(100, 100, 290, 300)]
    runs = [match(preds, gts, MatchConfig(fp_cost=0.5, fn_cost=2.0)) for _ in range(3)]
    assert all((r.matched, r.fp, r.fn) == (runs[0].matched, runs[0].fp, runs[0].fn) for r in runs)
    assert runs[0].matched == [(1, 1), (2, 0)] and runs[0].fp == [0, 3] and runs[0].fn == [2]


# ---------------------------------------------------------------- Append-Ready Rollout Prefix

@check(CAP, "Append-Ready Rollout Prefix", "Im_end is a hard stop")
def check_im_end_is_a_hard_stop(tok):
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + "<|im_end|>, " + rec("dog", (1, 2, 3, 4)) + "]}"
    p = rollout_prefix(tok, ids(tok, text), DF)
    assert [k.obj.desc for k in p.kept] == ["cat"] and "<|im_end|>" not in p.text and "dog" not in p.prefix_text


@check(CAP, "Append-Ready Rollout Prefix", "Token-internal cut is re-encoded")
def check_token_internal_cut_is_re_encoded(tok):
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + ', {"desc": "half'
    rollout = ids(tok, text)
    assert "]}," in decode_pieces(tok, rollout)  # the cut really falls inside a token
    p = rollout_prefix(tok, rollout, DF)
    assert p.prefix_text.endswith("]}") and not p.invalid_rollout
    assert p.prefix_ids[-len(ids(tok, "]}")):] == ids(tok, "]}")
    assert "".join(decode_pieces(tok, p.prefix_ids)) == p.prefix_text


@check(CAP, "Append-Ready Rollout Prefix", "Invalid rollout falls back")
def check_invalid_rollout_falls_back(tok):
    t = build_target(tok, ids(tok, "There are two animals."), GT, ChannelBConfig(DF))
    assert t.prefix.prefix_text == '{"objects": [' and t.counters["stage2_ab/channel_b/invalid_rollout"] == 1
    assert t.prefix.n_valid_pred == 0 and t.match.fn == [0, 1]
    assert [o.desc for o in parse(t.text[:-len("<|im_end|>")], "strict", DF).objects] == ["cat", "bird"]


@check(CAP, "Append-Ready Rollout Prefix", "Strict drops are counted by reason")
def check_strict_drops_are_counted_by_reason(tok):
    poly = rec("p", (1, 2, 30, 2, 30, 40), geom="poly")
    head = ids(tok, '{"objects": [' + poly + ", " + rec("inv", (300, 300, 100, 400)) + ", ")
    plain = ids(tok, '{"desc": "amb", "bbox_2d": [') + ids(tok, "<|") + ids(tok, "coord") + ids(tok, "_1|>") + \
        ids(tok, ", " + ", ".join(C(k) for k in (2, 3, 4)) + "]}")
    tail = ids(tok, ", " + rec("ok", (1, 1, 9, 9)) + "]}")
    p = rollout_prefix(tok, head + plain + tail, DF)
    assert (p.drops["poly_unsupported"], p.drops["bbox_invalid"], p.drops["wrong_arity"]) == (1, 1, 1)
    assert p.n_drop_invalid == 3 and [k.obj.desc for k in p.kept] == ["ok"]


# ---------------------------------------------------------------- FN Injection

@check(CAP, "FN Injection", "Fragment tokenized separately")
def check_fragment_tokenized_separately(tok):
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + "]}"
    t = build_target(tok, ids(tok, text), GT, ChannelBConfig(DF))
    assert t.assistant_ids == t.prefix.prefix_ids + ids(tok, t.fragment) + [tok.convert_tokens_to_ids("<|im_end|>")]
    assert t.fragment.startswith(", ") and t.fragment.endswith("]}")
    objs = parse(t.text[:-len("<|im_end|>")], "strict", DF).objects
    assert [(o.desc, o.values) for o in objs] == [("cat", (100, 100, 300, 300)), ("bird", (0, 0, 50, 50))]


# ---------------------------------------------------------------- Channel-B CE Weights

@check(CAP, "Channel-B CE Weights", "Matched structure supervised, desc and coords neutral")
def check_matched_structure_supervised(tok):
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + "]}"
    t = build_target(tok, ids(tok, text), GT, ChannelBConfig(DF))
    pieces = decode_pieces(tok, t.assistant_ids)
    a, b = t.prefix.parse.objects[0].span
    inside = [k for k, s in enumerate(token_starts(pieces)) if a <= s < b]
    desc = [k for k in inside if pieces[k] == "cat"]
    coords = [k for k in inside if COORD0 <= t.assistant_ids[k] < COORD0 + 1000]
    struct = [k for k in inside if k not in desc and k not in coords]
    assert len(desc) == 1 and len(coords) == 4 and len(struct) >= 10
    assert all(t.ce_weights[k] == 0 for k in desc + coords)
    assert all(t.ce_weights[k] == 1 for k in struct)


@check(CAP, "Channel-B CE Weights", "FP and invalid records neutral")
def check_fp_and_invalid_records_neutral(tok):
    fp = rec("kite", (900, 900, 950, 950))
    bad = '{"desc": "bad", "bbox_2d": [' + C(7) + "]}"
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + ", " + fp + ", " + bad + "]}"
    t = build_target(tok, ids(tok, text), GT, ChannelBConfig(DF))
    assert t.match.fp == [1] and [k.obj.desc for k in t.prefix.kept] == ["cat", "kite"]
    assert t.prefix.drops["wrong_arity"] == 1
    starts = token_starts(decode_pieces(tok, t.assistant_ids))
    for needle in (fp, bad):
        a = t.text.index(needle)
        toks = [k for k, s in enumerate(starts) if a <= s < a + len(needle)]
        assert len(toks) >= 3 and all(t.ce_weights[k] == 0 for k in toks), needle


@check(CAP, "Channel-B CE Weights", "Tail supervised with the FN desc weight")
def check_tail_supervised_with_fn_desc_weight(tok):
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + "]}"
    t = build_target(tok, ids(tok, text), GT, ChannelBConfig(DF, desc_ce_weight=0.5))
    pieces = decode_pieces(tok, t.assistant_ids)
    tail = range(t.prefix_len, len(pieces))
    desc = [k for k in tail if pieces[k] == "bird"]
    coords = [k for k in tail if COORD0 <= t.assistant_ids[k] < COORD0 + 1000]
    rest = [k for k in tail if k not in desc and k not in coords]
    assert len(desc) == 1 and len(coords) == 4 and pieces[-1] == "<|im_end|>"
    assert [t.ce_weights[k] for k in desc] == [0.5] and all(t.ce_weights[k] == 0 for k in coords)
    assert all(t.ce_weights[k] == 1 for k in rest)


# ---------------------------------------------------------------- String-Aware Closure Supervision

@check(CAP, "String-Aware Closure Supervision", "Braces inside quoted descs are ignored")
def check_braces_inside_quoted_descs_are_ignored(tok):
    gt = [{"desc": "x}{y", "bbox_2d": [105, 100, 300, 300]}, {"desc": "a{b}}", "bbox_2d": [0, 0, 50, 50]}]
    text = '{"objects": [' + rec("cat {", (100, 100, 300, 300)) + "]}"
    t = build_target(tok, ids(tok, text), gt, ChannelBConfig(DF))
    brace, im_end = t.closure
    pieces = decode_pieces(tok, t.assistant_ids)
    assert im_end == len(pieces) - 1 and brace == im_end - 1 and pieces[brace].endswith("}")
    assert t.ce_weights[brace] == 1 and t.ce_weights[im_end] == 1


@check(CAP, "String-Aware Closure Supervision", "Unclosed target is refused")
def check_unclosed_target_is_refused(tok):
    # a target cut (e.g. by a length limit) after its records: the last "}" closes a record
    text = '{"objects": [' + rec("a}", (1, 2, 3, 4)) + ", " + rec("b", (5, 6, 7, 8)) + "<|im_end|>"
    with pytest.raises(ClosureError):
        locate_closure(tok, ids(tok, text), DF)


# ---------------------------------------------------------------- Geometry Targets

@check(CAP, "Geometry Targets", "Matched, FN and FP slots")
def check_matched_fn_and_fp_slots(tok):
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + ", " + rec("kite", (900, 900, 950, 950)) + "]}"
    t = build_target(tok, ids(tok, text), GT, ChannelBConfig(DF))
    assert [(g.kind, g.target_bins) for g in t.groups] == [("matched", (105, 100, 300, 300)),
                                                            ("fn", (0, 0, 50, 50))]
    assert [t.assistant_ids[p] - COORD0 for p in t.groups[0].positions] == [100, 100, 300, 300]
    assert [t.assistant_ids[p] - COORD0 for p in t.groups[1].positions] == [0, 0, 50, 50]
    fp_slots = set(t.prefix.kept[1].coord_positions)
    assert len(fp_slots) == 4 and not fp_slots & {p for g in t.groups for p in g.positions}


# ---------------------------------------------------------------- Expectation Decoding And Pooled Geometry Losses

CS, V = 10, 1010


@check(CAP, "Expectation Decoding And Pooled Geometry Losses", "Expectation is a mean, not an argmax")
def check_expectation_is_a_mean():
    z = torch.full((2, V), -1e4)
    z[0, CS] = z[0, CS + 999] = 0.0
    assert expectation_decode(z, [1], CS).item() == pytest.approx(0.5, abs=1e-6)


@check(CAP, "Expectation Decoding And Pooled Geometry Losses", "CIoU canonicalizes and clips")
def check_ciou_canonicalizes_and_clips():
    g = torch.tensor([[0.0, 0.1, 0.5, 0.5]])
    assert ciou_loss(torch.tensor([[0.5, 0.5, 0.0, 0.1]]), g).item() == pytest.approx(0, abs=1e-6)
    assert ciou_loss(torch.tensor([[-0.3, 0.1, 0.5, 0.5]]), g).item() == pytest.approx(0, abs=1e-6)
    p = torch.tensor([[0.3, 0.3, 0.3, 0.3]], requires_grad=True)
    loss = ciou_loss(p, torch.tensor([[0.3, 0.3, 0.3, 0.3]])).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(p.grad).all()


@check(CAP, "Expectation Decoding And Pooled Geometry Losses", "Matched and FN boxes are pooled")
def check_matched_and_fn_boxes_are_pooled():
    from coordexp.stage2.channel_b import GeometryGroup
    bins = [100, 200, 300, 400, 0, 0, 999, 999]
    z = torch.full((9, V), -1e4)
    for p, b in enumerate(bins, start=1):
        z[p - 1, CS + b] = 1e4
    groups = [GeometryGroup("matched", (1, 2, 3, 4), (100, 200, 300, 400), 0),
              GeometryGroup("fn", (5, 6, 7, 8), (0, 0, 499, 999), 1)]
    out = geometry_losses(z, groups, CS)
    assert out.n_boxes == 2
    assert out.smoothl1.item() == pytest.approx(0.5 * (500 / 999) ** 2 / 8, rel=1e-4)


@check(CAP, "Expectation Decoding And Pooled Geometry Losses", "Sliced logits are rejected")
def check_sliced_logits_are_rejected():
    with pytest.raises(ValueError, match="full-vocabulary"):
        expectation_decode(torch.zeros(3, 1000), [1], CS)


# ---------------------------------------------------------------- Stage-2 Metric Aggregation

@check(CAP, "Stage-2 Metric Aggregation", "Within-step weighted means and sums")
def check_within_step_weighted_means_and_sums():
    m = StepMetrics("B")
    m.add({"loss/bbox_ciou": 1.0, "stage2/raw_rollouts": 2}, segments=1)
    m.add({"loss/bbox_ciou": 4.0, "stage2/raw_rollouts": 3}, segments=3)
    out = m.finalize()
    assert out["loss/bbox_ciou"] == pytest.approx(3.25) and out["stage2/raw_rollouts"] == 5


@check(CAP, "Stage-2 Metric Aggregation", "Across ranks")
def check_across_ranks():
    r0, r1 = StepMetrics("B"), StepMetrics("B")
    r0.add({"time/forward_s": 2.0, "rollout/parse_truncated": 1, "stage2/raw_rollouts": 1}, segments=1)
    r1.add({"time/forward_s": 5.0, "rollout/parse_truncated": 0, "stage2/raw_rollouts": 3}, segments=3)
    out = reduce_ranks([r0.finalize(), r1.finalize()])
    assert out["time/forward_s"] == 5.0 and out["stage2/raw_rollouts"] == 4
    assert out["rollout/parse_truncated_rate"] == pytest.approx(0.25)


@check(CAP, "Stage-2 Metric Aggregation", "No rollout timings on Channel-A steps")
def check_no_rollout_timings_on_channel_a_steps():
    m = StepMetrics("A")
    with pytest.raises(ValueError, match="time/rollout_"):
        m.add({"time/rollout_generate_s": 0.0}, segments=1)
    m.add({"time/forward_s": 1.0, "loss/bbox_ciou": 0.1}, segments=1)
    assert not [k for k in m.finalize() if k.startswith("time/rollout_")]
