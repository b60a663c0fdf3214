import pytest

from coordexp.format.coord import load_tokenizer
from coordexp.format.template import decode_pieces
from coordexp.stage2.alignment import PromptMismatchError
from coordexp.stage2.channel_b import (
    ChannelBConfig,
    ChannelBError,
    ClosureError,
    build_target,
    locate_closure,
    rollout_prefix,
    teacher_forced_row,
)
from coordexp.stage2.matching import MatchConfig

DF, GF = "desc_first", "geometry_first"
C = "<|coord_{}|>".format


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def rec(desc, box, order=DF, geom="bbox_2d"):
    g = f'"{geom}": [' + ", ".join(C(k) for k in box) + "]"
    d = f'"desc": "{desc}"'
    return "{" + (f"{d}, {g}" if order == DF else f"{g}, {d}") + "}"


def ids_of(tok, text):
    return tok.encode(text, add_special_tokens=False)


def weights_by_piece(tok, target):
    return list(zip(decode_pieces(tok, target.assistant_ids), target.ce_weights))


GT = [{"desc": "cat", "bbox_2d": [105, 100, 300, 300]}, {"desc": "bird", "bbox_2d": [0, 0, 50, 50]}]


def test_matched_fp_fn_weights_and_groups(tok):
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + ", " + rec("zzfp", (900, 900, 950, 950)) + "]}"
    t = build_target(tok, ids_of(tok, text), GT, ChannelBConfig(DF, desc_ce_weight=0.5))
    pieces = decode_pieces(tok, t.assistant_ids)
    w = {}
    for p, x in zip(pieces, t.ce_weights):
        w.setdefault(p, set()).add(x)
    assert w["cat"] == {0.0}  # matched desc neutral
    assert w["bird"] == {0.5}  # FN desc at desc_ce_weight
    assert all(x == 0 for i, x in zip(t.assistant_ids, t.ce_weights) if 151670 <= i < 152670)  # coords
    assert t.ce_weights[-1] == 1.0 and pieces[-1] == "<|im_end|>"
    # every token starting inside the FP record is neutral
    a, b = t.prefix.parse.objects[1].span
    starts = [sum(map(len, pieces[:k])) for k in range(len(pieces))]
    fp_tokens = [k for k, s in enumerate(starts) if a <= s < b]
    assert len(fp_tokens) > 10 and all(t.ce_weights[k] == 0 for k in fp_tokens)
    # the matched record's structure tokens are supervised
    a, b = t.prefix.parse.objects[0].span
    struct = [k for k, s in enumerate(starts) if a <= s < b and pieces[k] != "cat" and "coord" not in pieces[k]]
    assert len(struct) > 10 and all(t.ce_weights[k] == 1 for k in struct)
    assert [(g.kind, g.target_bins) for g in t.groups] == [("matched", (105, 100, 300, 300)), ("fn", (0, 0, 50, 50))]
    for g in t.groups:
        assert [t.assistant_ids[p] - 151670 for p in g.positions] == (
            [100, 100, 300, 300] if g.kind == "matched" else [0, 0, 50, 50]
        )
    assert t.counters["rollout/fp"] == 1 and t.counters["rollout/fn"] == 1


def test_token_internal_cut_is_reencoded(tok):
    # "]}," is one token: the cut after the first record falls inside it
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + ', {"desc": "unfinished'
    p = rollout_prefix(tok, ids_of(tok, text), DF)
    assert p.truncated and not p.invalid_rollout
    assert p.prefix_text.endswith("]}") and "".join(decode_pieces(tok, p.prefix_ids)) == p.prefix_text
    assert p.drops["dropped_incomplete_tail"] == 1 and p.n_drop_invalid == 0


def test_im_end_is_a_hard_stop(tok):
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + "]}<|im_end|>" + rec("x", (1, 2, 3, 4))
    p = rollout_prefix(tok, ids_of(tok, text), DF)
    assert "<|im_end|>" not in p.text and len(p.kept) == 1


@pytest.mark.parametrize("text", ["I see nothing", '{"objects": [], "extra": 1}', ""])
def test_fallback(tok, text):
    t = build_target(tok, ids_of(tok, text), GT, ChannelBConfig(DF))
    assert t.prefix.invalid_rollout and t.prefix.fallback_reason
    assert t.text.startswith('{"objects": [{"desc": "cat"') and t.counters["stage2/invalid_rollout"] == 1
    assert [g.kind for g in t.groups] == ["fn", "fn"] and t.prefix.n_valid_pred == 0


def test_strict_drops(tok):
    poly = '{"desc": "p", "poly": [' + ", ".join(C(k) for k in (1, 2, 30, 2, 30, 40)) + "]}"
    inv = rec("inv", (300, 300, 100, 400))
    # a coord literal spelled by plain-text tokens: no coord-id token lines up with it
    ambiguous_ids = (
        ids_of(tok, '{"desc": "amb", "bbox_2d": [')
        + ids_of(tok, "<|")
        + ids_of(tok, "coord")
        + ids_of(tok, "_1|>")
        + ids_of(tok, ", " + ", ".join(C(k) for k in (2, 3, 4)) + "]}")
    )
    head = ids_of(tok, '{"objects": [' + poly + ", " + inv + ", ")
    tail = ids_of(tok, ", " + rec("ok", (1, 1, 9, 9)) + "]}")
    p = rollout_prefix(tok, head + ambiguous_ids + tail, DF)
    assert p.drops["poly_unsupported"] == 1 and p.drops["bbox_invalid"] == 1 and p.drops["wrong_arity"] == 1
    assert [k.obj.desc for k in p.kept] == ["ok"] and p.n_drop_invalid == 3


def test_invalid_records_neutral_and_multiplier(tok):
    text = '{"objects": [{"desc": "bad", "bbox_2d": [' + C(1) + "]}, " + rec("cat", (100, 100, 300, 300)) + "]}"
    cfg = ChannelBConfig(DF, drop_invalid_struct_ce_multiplier=2.0)
    t = build_target(tok, ids_of(tok, text), GT, cfg)
    assert t.prefix.drops["wrong_arity"] == 1
    bad_end = t.text.index(', {"desc": "cat"')
    starts = [sum(map(len, decode_pieces(tok, t.assistant_ids[:k]))) for k in range(len(t.assistant_ids))]
    assert all(w == 0 for s, w in zip(starts, t.ce_weights) if s < bad_end - 3)
    tail = t.ce_weights[t.prefix_len :]
    assert 2.0 in tail and t.ce_weights[t.closure[0]] == 2.0


def test_closure_ignores_braces_in_desc(tok):
    gt = [{"desc": "a}{b", "bbox_2d": [0, 0, 50, 50]}]
    text = '{"objects": [' + rec("x}y{", (100, 100, 300, 300)) + "]}"
    t = build_target(tok, ids_of(tok, text), gt, ChannelBConfig(DF))
    brace, im_end = t.closure
    assert im_end == len(t.assistant_ids) - 1
    assert decode_pieces(tok, [t.assistant_ids[brace]])[0].endswith("}") and t.ce_weights[brace] == 1


def test_closure_of_truncated_target_is_not_located(tok):
    ids = ids_of(tok, '{"objects": [' + rec("cat", (1, 2, 3, 4)) + "<|im_end|>")
    with pytest.raises(ClosureError):
        pieces = decode_pieces(tok, ids)
        offsets = [0]
        for piece in pieces:
            offsets.append(offsets[-1] + len(piece))
        locate_closure(ids, "".join(pieces), offsets, DF, tok.convert_tokens_to_ids("<|im_end|>"))


def test_geometry_first(tok):
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300), GF) + "]}"
    t = build_target(tok, ids_of(tok, text), GT, ChannelBConfig(GF))
    assert t.fragment.startswith(', {"bbox_2d"')
    pieces = weights_by_piece(tok, t)
    assert ("cat", 0.0) in pieces and ("bird", 1.0) in pieces


def test_gt_poly_rejected(tok):
    with pytest.raises(ChannelBError, match="bbox_2d GT only"):
        build_target(tok, ids_of(tok, "{}"), [{"desc": "p", "poly": [1, 2, 3, 4, 5, 6]}], ChannelBConfig(DF))


def test_deterministic(tok):
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + ", " + rec("dog", (110, 100, 300, 300)) + "]}"
    cfg = ChannelBConfig(DF, match=MatchConfig(fp_cost=0.5, fn_cost=2.0))
    a = build_target(tok, ids_of(tok, text), GT, cfg)
    b = build_target(tok, ids_of(tok, text), GT, cfg)
    assert (a.assistant_ids, a.ce_weights, a.groups) == (b.assistant_ids, b.ce_weights, b.groups)


def test_teacher_forced_row_and_alignment(tok):
    text = '{"objects": [' + rec("cat", (100, 100, 300, 300)) + "]}"
    t = build_target(tok, ids_of(tok, text), GT, ChannelBConfig(DF))
    prompt = ids_of(tok, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    row = teacher_forced_row(prompt, list(prompt), t)
    assert row.input_ids[: len(prompt)] == prompt and row.labels[: len(prompt)] == [-100] * len(prompt)
    g = row.groups[0]
    assert [row.input_ids[p] for p in g.positions] == [t.assistant_ids[p] for p in t.groups[0].positions]
    with pytest.raises(PromptMismatchError, match="prompt tokenization mismatch"):
        teacher_forced_row(prompt, prompt[:-1], t)
