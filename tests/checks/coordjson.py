"""Checks for the coordjson capability: render, strict/salvage parse, spans, inventory gate."""

from __future__ import annotations

import pytest

from coordexp.format.coordjson import (
    CoordJSONError,
    append_ready_cut,
    fn_fragment,
    parse,
    render,
)
from specgen import check
from tests.helpers.tools import load_tool

inventory = load_tool("inventory")
CAP = "coordjson"
DF, GF = "desc_first", "geometry_first"
C = "<|coord_{}|>".format
BOX = f"[{C(1)}, {C(2)}, {C(3)}, {C(4)}]"
BOX3 = f"[{C(1)}, {C(2)}, {C(3)}]"
REC_A = '{"desc": "a", "bbox_2d": ' + BOX + "}"
REC_B = '{"desc": "b", "bbox_2d": [' + ", ".join(C(k) for k in (5, 6, 7, 8)) + "]}"


# Why some checks are excepted from the reach gate (docs/proof.md). The product reads CoordJSON in two ways:
# model text (Stage-2 rollouts, inference outputs) in salvage mode, and text it rendered itself (the template's
# drift guard, Stage-2 GT targets) in strict mode. No command reads CoordJSON a user writes.
MODEL_TEXT = (
    "the record scanner runs on model-written records that are not well formed (Stage-2 rollouts, inference "
    "outputs); the smokes' models write none (the random tiny model writes no container, the memorised e2e "
    "model only well-formed records) and no command reads CoordJSON a user writes"
)
STRICT_OWN_TEXT = (
    "strict mode reads only text the product rendered itself (the template's drift guard, Stage-2 GT targets), "
    "so its refusal fires on a renderer defect, never on an input; model text is read in salvage mode"
)
STATIC_SCAN = "a static scan of the source tree (the inventory gate), not a product function"


def wrap(*records: str) -> str:
    return '{"objects": [' + ", ".join(records) + "]}"


def reason_of(record: str, field_order: str = DF) -> str:
    """The single drop reason salvage assigns to a record (and strict raises with)."""
    res = parse(wrap(record), "salvage", field_order)
    dropped = {k: v for k, v in res.drops.items() if v}
    assert res.objects == [] and sum(dropped.values()) == 1, (record, res)
    with pytest.raises(CoordJSONError) as e:
        parse(wrap(record), "strict", field_order)
    assert e.value.reason == next(iter(dropped)), (record, e.value)
    return e.value.reason


# ---------------------------------------------------------------- Canonical Rendering


@check(CAP, "Canonical Rendering", "Desc-first golden")
def check_desc_first_golden():
    assert (
        render([{"desc": "cat", "bbox_2d": [1, 2, 3, 4]}], DF)
        == '{"objects": [{"desc": "cat", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]}]}'
    )


@check(CAP, "Canonical Rendering", "Geometry-first golden")
def check_geometry_first_golden():
    assert (
        render([{"desc": "cat", "bbox_2d": [1, 2, 3, 4]}], GF)
        == '{"objects": [{"bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>], "desc": "cat"}]}'
    )


@check(CAP, "Canonical Rendering", "Poly golden")
def check_poly_golden():
    obj = {"desc": "poly-cat", "poly": [1, 2, 3, 4, 5, 6], "poly_points": 3}
    assert render([obj], GF) == (
        '{"objects": [{"poly": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>, '
        '<|coord_5|>, <|coord_6|>], "desc": "poly-cat"}]}'
    )


@check(CAP, "Canonical Rendering", "Negative image renders an empty array")
def check_negative_image_renders_empty_array():
    assert render([], DF) == '{"objects": []}'
    assert render([], GF) == '{"objects": []}'


@check(CAP, "Canonical Rendering", "Strings escaped without ASCII escapes")
def check_strings_escaped_without_ascii_escapes():
    text = render([{"desc": 'café "big"', "bbox_2d": [1, 2, 3, 4]}], DF)
    assert '"desc": "café \\"big\\""' in text
    assert "\n" not in text and "\\u" not in text
    assert parse(text, "strict", DF).objects[0].desc == 'café "big"'


@check(CAP, "Canonical Rendering", "Field order is required")
@pytest.mark.parametrize("order", [None, "desc_last"])
def check_field_order_is_required(order):
    obj = [{"desc": "cat", "bbox_2d": [1, 2, 3, 4]}]
    text = render(obj, DF)
    for call in (
        lambda: render(obj, order),
        lambda: parse(text, "strict", order),
        lambda: parse(text, "salvage"),
    ):
        with pytest.raises(ValueError, match="custom.object_field_order"):
            call()


@check(CAP, "Canonical Rendering", "Invalid objects refused at render time")
@pytest.mark.parametrize(
    "bad, where",
    [
        ({"desc": "x", "geometry": [1, 2, 3, 4]}, r"objects\[1\]"),
        ({"desc": "x", "bbox": [1, 2, 3, 4]}, r"objects\[1\]"),
        ({"desc": "x", "bbox_2d": [1, 2, 3]}, r"objects\[1\]\.bbox_2d"),
        ({"desc": "x", "bbox_2d": [1, 2, 3, 4.5]}, r"objects\[1\]\.bbox_2d\[3\]"),
        ({"desc": "  ", "bbox_2d": [1, 2, 3, 4]}, r"objects\[1\]\.desc"),
    ],
)
def check_invalid_objects_refused_at_render_time(bad, where):
    with pytest.raises(ValueError, match=where):
        render([{"desc": "ok", "bbox_2d": [1, 2, 3, 4]}, bad], DF)


# ---------------------------------------------------------------- Container Structure


@check(CAP, "Container Structure", "Comma after the array rejects the container")
@pytest.mark.reach_exception(STRICT_OWN_TEXT)
def check_comma_after_array_rejects_container():
    text = '{"objects": [' + REC_A + '], "extra": 1}'
    with pytest.raises(CoordJSONError) as e:
        parse(text, "strict", DF)
    assert e.value.reason == "extra_top_level_key" and text[e.value.pos] == ","
    res = parse(text, "salvage", DF)
    assert res.parse_failed and res.objects == []


@check(CAP, "Container Structure", "Salvage continues after a rejected container")
@pytest.mark.reach_exception(STRICT_OWN_TEXT)
def check_salvage_continues_after_a_rejected_container():
    text = '{"objects": [' + REC_A + '], "extra": 1} then ' + wrap(REC_B)
    res = parse(text, "salvage", DF)
    assert [o.desc for o in res.objects] == ["b"] and not res.parse_failed and res.container_end == len(text)
    assert res.container_start == text.index('{"objects"', 1)
    assert [(start, err.split(" ")[0], n) for start, err, n in res.rejected_containers] == [
        (0, "extra_top_level_key", 1)
    ]
    with pytest.raises(CoordJSONError) as e:
        parse(text, "strict", DF)
    assert e.value.reason == "extra_top_level_key"


@check(CAP, "Container Structure", "No container")
@pytest.mark.reach_exception(STRICT_OWN_TEXT)
@pytest.mark.parametrize("text", ["I see a cat.", '{"detections": [], "objects": []}'])
def check_no_container(text):
    with pytest.raises(CoordJSONError) as e:
        parse(text, "strict", DF)
    assert e.value.reason == "no_container"
    assert parse(text, "salvage", DF).parse_failed
    assert parse(text, "salvage", DF).objects == []


@check(CAP, "Container Structure", "First container only")
def check_first_container_only():
    res = parse(f"Sure! {wrap(REC_A)} and {wrap(REC_B)}", "salvage", DF)
    assert [o.desc for o in res.objects] == ["a"]
    assert not res.parse_failed and res.n_dropped == 0


@check(CAP, "Container Structure", "Forbidden legacy keys")
@pytest.mark.reach_exception(f"{MODEL_TEXT}; {STRICT_OWN_TEXT}")
def check_forbidden_legacy_keys():
    assert reason_of('{"desc": "a", "geometry": ' + BOX + "}") == "unexpected_keys"
    legacy = '{"object_1": {"desc": "a", "bbox_2d": ' + BOX + "}}"
    assert parse(legacy, "salvage", DF).parse_failed
    with pytest.raises(CoordJSONError, match="no_container"):
        parse(legacy, "strict", DF)


# ---------------------------------------------------------------- Record Validation


@check(CAP, "Record Validation", "Two keys per record")
@pytest.mark.reach_exception(f"{MODEL_TEXT}; {STRICT_OWN_TEXT}")
def check_two_keys_per_record():
    assert reason_of('{"desc": "a", "bbox_2d": ' + BOX + ', "score": 0.9}') == "unexpected_keys"
    assert reason_of('{"desc": "a"}') == "unexpected_keys"
    assert (
        reason_of('{"desc": "a", "bbox_2d": ' + BOX + ', "poly": [' + ", ".join([C(1)] * 6) + "]}") == "unexpected_keys"
    )
    assert reason_of('{"desc": "a", "desc": "b", "bbox_2d": ' + BOX + "}") == "missing_desc"


@check(CAP, "Record Validation", "Field order violation")
@pytest.mark.reach_exception(f"{MODEL_TEXT}; {STRICT_OWN_TEXT}")
def check_field_order_violation():
    assert reason_of('{"bbox_2d": ' + BOX + ', "desc": "a"}', DF) == "order_violation"
    assert reason_of(REC_A, GF) == "order_violation"
    assert parse(wrap('{"bbox_2d": ' + BOX + ', "desc": "a"}'), "strict", GF).objects[0].values == (1, 2, 3, 4)


@check(CAP, "Record Validation", "Geometry arity")
@pytest.mark.reach_exception(f"{MODEL_TEXT}; {STRICT_OWN_TEXT}")
def check_geometry_arity():
    def rec(key, n):
        return '{"desc": "a", "' + key + '": [' + ", ".join(C(k) for k in range(n)) + "]}"

    for key, n in (("bbox_2d", 3), ("bbox_2d", 5), ("poly", 4), ("poly", 5), ("poly", 7)):
        assert reason_of(rec(key, n)) == "wrong_arity", (key, n)
    ok = parse(wrap(rec("poly", 6), rec("bbox_2d", 4)), "strict", DF).objects
    assert [(o.geometry, len(o.values)) for o in ok] == [("poly", 6), ("bbox_2d", 4)]


@check(CAP, "Record Validation", "Coord literal range")
@pytest.mark.reach_exception(f"{MODEL_TEXT}; {STRICT_OWN_TEXT}")
@pytest.mark.parametrize("bad", ["<|coord_1000|>", "<|coord_12", '"<|coord_1|>"', "5"])
def check_coord_literal_range(bad):
    assert reason_of('{"desc": "a", "bbox_2d": [' + f"{C(1)}, {C(2)}, {C(3)}, {bad}" + "]}") == "wrong_arity"


@check(CAP, "Record Validation", "Blank desc")
@pytest.mark.reach_exception(f"{MODEL_TEXT}; {STRICT_OWN_TEXT}")
@pytest.mark.parametrize("desc", ["   ", ""])
def check_blank_desc(desc):
    assert reason_of('{"desc": "' + desc + '", "bbox_2d": ' + BOX + "}") == "missing_desc"


# ---------------------------------------------------------------- Strict Mode


@check(CAP, "Strict Mode", "Strict raises with reason and position")
@pytest.mark.reach_exception(f"{MODEL_TEXT}; {STRICT_OWN_TEXT}")
def check_strict_raises_with_reason_and_position():
    text = wrap(REC_A, '{"desc": "b", "bbox_2d": ' + BOX3 + "}")
    with pytest.raises(CoordJSONError) as e:
        parse(text, "strict", DF)
    assert e.value.reason == "wrong_arity"
    assert e.value.pos == text.index("[", text.index('"b"')) and text[e.value.pos] == "["
    assert f"char {e.value.pos}" in str(e.value)


@check(CAP, "Strict Mode", "Strict rejects junk")
@pytest.mark.reach_exception(STRICT_OWN_TEXT)
def check_strict_rejects_junk():
    text = wrap(REC_A)
    for junk, reason in (("Sure: " + text, "no_container"), (text + " done", "junk_after")):
        with pytest.raises(CoordJSONError) as e:
            parse(junk, "strict", DF)
        assert e.value.reason == reason
    assert len(parse(" \n" + text + "\n ", "strict", DF).objects) == 1


@check(CAP, "Strict Mode", "Strict rejects truncation")
@pytest.mark.reach_exception(STRICT_OWN_TEXT)
def check_strict_rejects_truncation():
    text = wrap(REC_A, REC_B)
    with pytest.raises(CoordJSONError) as e:
        parse(text[:-10], "strict", DF)
    assert e.value.reason == "truncated"


# ---------------------------------------------------------------- Salvage Mode


@check(CAP, "Salvage Mode", "Invalid records dropped and counted")
@pytest.mark.reach_exception(MODEL_TEXT)
def check_invalid_records_dropped_and_counted():
    text = wrap(
        REC_B,
        '{"bbox_2d": ' + BOX + ', "desc": "x"}',
        '{"desc": "y", "bbox_2d": ' + BOX3 + "}",
        '{"desc": "z", "bbox_2d": ' + BOX + ', "score": 1}',
        REC_A,
    )
    res = parse(text, "salvage", DF)
    assert [(o.desc, o.values) for o in res.objects] == [("b", (5, 6, 7, 8)), ("a", (1, 2, 3, 4))]
    assert {k: v for k, v in res.drops.items() if v} == {"order_violation": 1, "wrong_arity": 1, "unexpected_keys": 1}
    assert [o.index for o in res.objects] == [0, 4]
    assert not res.truncated and not res.parse_failed


@check(CAP, "Salvage Mode", "Truncated tail dropped and counted")
def check_truncated_tail_dropped_and_counted():
    full = wrap(REC_A, REC_B, '{"desc": "c", "bbox_2d": ' + BOX + "}")
    cut = full[: full.index('"c"') + 10]
    res = parse(cut, "salvage", DF)
    assert [o.desc for o in res.objects] == ["a", "b"]
    assert res.truncated and res.drops["dropped_incomplete_tail"] == 1 and res.n_dropped == 1


@check(CAP, "Salvage Mode", "Junk around the container ignored")
def check_junk_around_container_ignored():
    res = parse("<think>ok</think> " + wrap(REC_A, REC_B) + " <|im_end|> trailing", "salvage", DF)
    assert [o.desc for o in res.objects] == ["a", "b"]
    assert res.n_dropped == 0 and not res.truncated and res.container_end is not None


# ---------------------------------------------------------------- String-Aware Record Scanning


@check(CAP, "String-Aware Record Scanning", "Braces inside strings ignored")
def check_braces_inside_strings_ignored():
    text = wrap('{"desc": "a}{b}", "bbox_2d": ' + BOX + "}", REC_B)
    for mode in ("strict", "salvage"):
        res = parse(text, mode, DF)
        assert [o.desc for o in res.objects] == ["a}{b}", "b"]


@check(CAP, "String-Aware Record Scanning", "Escaped quotes honoured")
def check_escaped_quotes_honoured():
    rec = '{"desc": "say \\"}\\"", "bbox_2d": ' + BOX + "}"
    text = wrap(rec, REC_B)
    res = parse(text, "strict", DF)
    assert res.objects[0].desc == 'say "}"'
    assert text[slice(*res.objects[0].span)] == rec
    # an escaped backslash right before the closing quote: the quote really closes the string
    rec2 = '{"desc": "x\\\\", "bbox_2d": ' + BOX + "}"
    text2 = wrap(rec2, '{"desc": "}{", "bbox_2d": ' + BOX + "}", REC_B)
    for mode in ("strict", "salvage"):
        res2 = parse(text2, mode, DF)
        assert [o.desc for o in res2.objects] == ["x\\", "}{", "b"]
        assert text2[slice(*res2.objects[0].span)] == rec2


# ---------------------------------------------------------------- Reason Precedence


@check(CAP, "Reason Precedence", "Order violation outranks blank desc and arity")
@pytest.mark.reach_exception(f"{MODEL_TEXT}; {STRICT_OWN_TEXT}")
def check_order_violation_outranks_blank_desc_and_arity():
    assert reason_of('{"bbox_2d": ' + BOX3 + ', "desc": "   "}', DF) == "order_violation"


@check(CAP, "Reason Precedence", "Precedence ladder")
@pytest.mark.reach_exception(f"{MODEL_TEXT}; {STRICT_OWN_TEXT}")
@pytest.mark.parametrize(
    "record, expected",
    [
        ('{"desc": "a", "score" 1, "bbox_2d": ' + BOX + "}", "other"),
        ('{"score": 1, "desc": "a", "bbox_2d": [' + f"{C(1)}, {C(2)}, {C(3)}, <|coord_1000|>" + "]}", "wrong_arity"),
        ('{"score": 1, "bbox_2d": ' + BOX + "}", "unexpected_keys"),
        ('{"bbox_2d": ' + BOX + ', "desc": "a", "desc": "b"}', "missing_desc"),
        ('{"bbox_2d": ' + BOX + ', "poly": [' + ", ".join([C(1)] * 6) + '], "desc": "a"}', "unexpected_keys"),
        ('{"desc": " ", "bbox_2d": ' + BOX3 + "}", "missing_desc"),
    ],
)
def check_precedence_ladder(record, expected):
    assert reason_of(record, DF) == expected


# ---------------------------------------------------------------- Character Spans


@check(CAP, "Character Spans", "Record and geometry spans")
def check_record_and_geometry_spans():
    text = render([{"desc": "a", "bbox_2d": [1, 2, 3, 4]}, {"desc": "p", "poly": [9, 8, 7, 6, 5, 4]}], GF)
    res = parse(text, "strict", GF)
    assert [text[slice(*o.span)] for o in res.objects] == [
        '{"bbox_2d": ' + BOX + ', "desc": "a"}',
        '{"poly": [' + ", ".join(C(k) for k in (9, 8, 7, 6, 5, 4)) + '], "desc": "p"}',
    ]
    assert text[slice(*res.objects[0].geometry_span)] == BOX
    for o in res.objects:
        assert [text[slice(*s)] for s in o.value_spans] == [C(k) for k in o.values]


@check(CAP, "Character Spans", "Array-open cut and record end cuts")
@pytest.mark.reach_exception(MODEL_TEXT)
def check_array_open_cut_and_record_end_cuts():
    bad = '{"desc": "x", "bbox_2d": ' + BOX3 + "}"
    text = '{"objects": [' + REC_A + ", " + bad + ', {"desc": "tail", "bb'
    res = parse(text, "salvage", DF)
    assert text[: res.objects_array_open_cut] == '{"objects": ['
    end_a = len('{"objects": [' + REC_A)
    end_bad = end_a + 2 + len(bad)
    assert res.record_end_cuts == [end_a, end_bad]
    assert append_ready_cut(res) == end_bad and text[:end_bad].endswith("}")
    assert [o.desc for o in res.objects] == ["a"] and res.drops["wrong_arity"] == 1


# ---------------------------------------------------------------- Transpile Before JSON


@check(CAP, "No JSON Decoding Of Model Text", "Source tree is clean")
@pytest.mark.reach_exception(STATIC_SCAN)
def check_source_tree_is_clean():
    findings = inventory.scan_tree(inventory.default_root())
    assert findings == [], "\n".join(map(str, findings))


def _tree(tmp_path, source: str):
    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "rollout.py").write_text(source)
    return inventory.scan_tree(tmp_path / "src")


@check(CAP, "No JSON Decoding Of Model Text", "Planted json.loads is caught")
@pytest.mark.reach_exception(STATIC_SCAN)
@pytest.mark.parametrize(
    "source, expected",
    [
        ("import json\n\ndef preds(text):\n    return json.loads(text)\n", [("json-load", 4)]),
        ("from json import loads as _l\n\ndef preds(text):\n    return _l(text)['objects']\n", [("json-load", 4)]),
        (
            "import json\n\ndef cfg(p):\n    with open(p) as f:\n"
            "        return json.load(f)  # inventory: json-ok(run config file, not model output)\n",
            [],
        ),
        (
            "import json\n\ndef cfg(p):\n    with open(p) as f:\n        return json.load(f)  # inventory: json-ok()\n",
            [("json-load", 5), ("pragma", 5)],
        ),
    ],
)
def check_planted_json_loads_is_caught(tmp_path, source, expected):
    found = _tree(tmp_path, source)
    assert [(f.rule, f.line) for f in found] == expected
    assert all(f.path.endswith("rollout.py") for f in found)


@check(CAP, "No JSON Decoding Of Model Text", "Numbered object keys are caught")
@pytest.mark.reach_exception(STATIC_SCAN)
@pytest.mark.parametrize("source", ['KEY = "object_3"\n', 'def k(i):\n    return f"object_{i}"\n'])
def check_numbered_object_keys_are_caught(tmp_path, source):
    found = _tree(tmp_path, source)
    assert [f.rule for f in found] == ["object-n-key"]


# ---------------------------------------------------------------- FN Append Fragment


@check(CAP, "FN Append Fragment", "Fragment after a record")
@pytest.mark.reach_exception(
    "Channel B cuts after a rollout's last record only when the model wrote a container; the Stage-2 smokes' "
    "random tiny model writes none"
)
def check_fragment_after_a_record():
    text = wrap(REC_A)[:-2] + ', {"desc": "cut'
    prefix = text[: append_ready_cut(parse(text, "salvage", DF))]
    frag = fn_fragment(prefix, [{"desc": "fn", "bbox_2d": [9, 9, 10, 10]}], DF)
    assert frag.startswith(", ") and frag.endswith("]}")
    assert [o.desc for o in parse(prefix + frag, "strict", DF).objects] == ["a", "fn"]


@check(CAP, "FN Append Fragment", "Fragment after the array open")
def check_fragment_after_the_array_open():
    assert fn_fragment('{"objects": [', [], DF) == "]}"
    frag = fn_fragment('{"objects": [', [{"desc": "fn", "bbox_2d": [1, 2, 3, 4]}], GF)
    assert '{"objects": [' + frag == render([{"desc": "fn", "bbox_2d": [1, 2, 3, 4]}], GF)


@check(CAP, "FN Append Fragment", "Invalid prefixes refused")
@pytest.mark.reach_exception(
    "Channel B hands fn_fragment a prefix it cut itself (never a closed container, never a trailing ',' "
    "without FN records): the refusals are an API guard no command reaches"
)
def check_invalid_prefixes_refused():
    with pytest.raises(ValueError, match="','"):
        fn_fragment('{"objects": [' + REC_A + ",", [], DF)
    with pytest.raises(ValueError, match="closed"):
        fn_fragment(wrap(REC_A), [{"desc": "fn", "bbox_2d": [1, 2, 3, 4]}], DF)
