"""Unit tests for coordexp.format.coordjson: goldens, property-style round trips, edge cases."""

from __future__ import annotations

import random

import pytest

from coordexp.format.coordjson import CoordJSONError, is_canonical, parse, render

DF, GF = "desc_first", "geometry_first"

GOLDEN = {
    DF: '{"objects": [{"desc": "cat", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]}, '
    '{"desc": "poly-cat", "poly": [<|coord_10|>, <|coord_20|>, <|coord_30|>, <|coord_40|>, <|coord_50|>, '
    "<|coord_999|>]}]}",
    GF: '{"objects": [{"bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>], "desc": "cat"}, '
    '{"poly": [<|coord_10|>, <|coord_20|>, <|coord_30|>, <|coord_40|>, <|coord_50|>, <|coord_999|>], '
    '"desc": "poly-cat"}]}',
}
OBJS = [
    {"desc": "cat", "bbox_2d": ["<|coord_1|>", 2, 3, "<|coord_4|>"]},
    {"desc": "poly-cat", "poly": [10, 20, 30, 40, 50, 999]},
]


@pytest.mark.parametrize("order", [DF, GF])
def test_golden_both_orders_and_poly(order):
    text = render(OBJS, order)
    assert text == GOLDEN[order]
    assert is_canonical(text, order)
    assert not is_canonical(text, GF if order == DF else DF)
    assert [(o.desc, o.geometry, o.values) for o in parse(text, "strict", order).objects] == [
        ("cat", "bbox_2d", (1, 2, 3, 4)),
        ("poly-cat", "poly", (10, 20, 30, 40, 50, 999)),
    ]


def _random_objects(rng: random.Random):
    descs = ["cat", "dog", "traffic light", "café", 'quote"d', "a}{b", "back\\slash", "日本"]
    objs = []
    for _ in range(rng.randint(0, 6)):
        if rng.random() < 0.7:
            geo = {"bbox_2d": [rng.randint(0, 999) for _ in range(4)]}
        else:
            geo = {"poly": [rng.randint(0, 999) for _ in range(2 * rng.randint(3, 6))]}
        objs.append({"desc": rng.choice(descs), **geo})
    return objs


@pytest.mark.parametrize("seed", range(40))
def test_round_trip_render_parse(seed):
    rng = random.Random(seed)
    objs = _random_objects(rng)
    for order in (DF, GF):
        text = render(objs, order)
        assert "\n" not in text
        res = parse(text, "strict", order)
        back = [o.to_dict(order) for o in res.objects]
        assert back == [{k: v for k, v in o.items()} for o in objs]
        assert render(back, order) == text
        # salvage on the same text agrees and drops nothing
        sal = parse(text, "salvage", order)
        assert sal.objects == res.objects and sal.n_dropped == 0 and not sal.truncated


@pytest.mark.parametrize("seed", range(10))
def test_every_prefix_salvages_without_error(seed):
    """Any cut of a valid text (a truncated rollout) salvages: kept records are a prefix of the
    originals, and each cut reports either a closed container or truncated."""
    objs = _random_objects(random.Random(seed)) or [{"desc": "x", "bbox_2d": [1, 2, 3, 4]}]
    text = render(objs, DF)
    full = parse(text, "strict", DF).objects
    for cut in range(len(text) + 1):
        res = parse(text[:cut], "salvage", DF)
        if res.parse_failed:
            assert cut < len('{"objects": [')
            continue
        assert res.objects == full[: len(res.objects)]
        assert res.truncated != res.container_closed
        assert res.drops["dropped_incomplete_tail"] <= 1


def test_whitespace_tolerant_but_not_canonical():
    text = '{ "objects" : [ {"desc":"a","bbox_2d":[<|coord_1|>,<|coord_2|>,<|coord_3|>,<|coord_4|>]} ] }'
    assert parse(text, "strict", DF).objects[0].values == (1, 2, 3, 4)
    assert not is_canonical(text, DF)


def test_missing_comma_between_records_stops_salvage_and_counts():
    a = '{"desc": "a", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]}'
    text = '{"objects": [' + a + " " + a + "]}"
    with pytest.raises(CoordJSONError) as e:
        parse(text, "strict", DF)
    assert e.value.reason == "other"
    res = parse(text, "salvage", DF)
    assert len(res.objects) == 1 and res.drops["other"] == 1 and res.error


def test_unterminated_string_inside_balanced_record_is_other():
    text = '{"objects": [{"desc": "a\n", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]}]}'
    res = parse(text, "salvage", DF)
    assert res.drops["other"] == 1 and res.objects == []


def test_deep_nesting_is_other_not_recursion_error():
    text = '{"objects": [{"desc": "a", "x": ' + "[" * 200 + "]" * 200 + "}]}"
    assert parse(text, "salvage", DF).drops["other"] == 1


def test_parse_failed_result_has_no_objects_even_with_scanned_records():
    a = '{"desc": "a", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]}'
    res = parse('{"objects": [' + a + '], "n": 1}', "salvage", DF)
    assert res.parse_failed and res.objects == []


def test_bad_mode_and_type():
    with pytest.raises(ValueError, match="mode"):
        parse("{}", "lenient", DF)
    with pytest.raises(TypeError):
        parse(b'{"objects": []}', "strict", DF)


def test_deterministic_bytes():
    assert render(OBJS, DF).encode() == render([dict(o) for o in OBJS], DF).encode()


def test_append_ready_cut_of_a_closed_container_is_after_its_last_record():
    from coordexp.format.coordjson import append_ready_cut, parse, render

    objs = [{"desc": "cat", "bbox_2d": [1, 2, 3, 4]}, {"desc": "dog", "bbox_2d": [5, 6, 7, 8]}]
    text = render(objs, "desc_first")
    cut = append_ready_cut(parse(text, "salvage", "desc_first"))
    assert text[:cut].endswith("<|coord_8|>]}")
    assert text[cut:] == "]}"
    empty = render([], "desc_first")
    assert empty[: append_ready_cut(parse(empty, "salvage", "desc_first"))] == '{"objects": ['
