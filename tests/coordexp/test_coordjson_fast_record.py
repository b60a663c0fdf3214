"""The parser's well-formed-record shortcut reads every record exactly as the full scanner does.

``coordjson._classify_fast`` and ``coordjson._fast_record_end`` are only shortcuts: for each
record text below (valid ones, and near misses in every direction the patterns could get
wrong), parsing with them gives the same result, object for object, drop for drop and cut
for cut, as parsing with the scanner alone.
"""

import json
import random

import pytest

from coordexp.format import coordjson
from coordexp.format.coordjson import parse

DESCS = ["cat", "  padded ", "a}{b", 'say "hi"', "back\\slash", "caf\u00e9", "x]y", "tab\there", "\u2028", "",
         "   ", "\\u0063at", "slash at end\\", "{", "}}", 'q"}']


def _lit(v):
    return f"<|coord_{v}|>" if isinstance(v, int) else v


def _records(rng):
    ws = ["", " ", "  ", "\n", "\t", " \r\n "]
    for _ in range(1200):
        w = lambda: rng.choice(ws)  # noqa: E731
        geom = rng.choice(("bbox_2d", "bbox_2d", "bbox_2d", "poly", "bbox", "Bbox_2d"))
        n = (4 if geom != "poly" else rng.choice((6, 8, 10))) if rng.random() < 0.85 else rng.choice((3, 5, 7))
        vals = [rng.choice((0, 1, 57, 999, 1000, 4321, "<|coord_01|>", "<|coord_12345|>", "7", "<|coord_x|>"))
                if rng.random() < 0.04 else rng.randrange(1000) for _ in range(n)]
        desc = rng.choice(DESCS)
        dtext = json.dumps(desc, ensure_ascii=rng.random() < 0.3)
        if rng.random() < 0.05:
            dtext = '"bad \\q escape"'
        if rng.random() < 0.05:
            dtext = '"raw\ncontrol"'
        dkey = '"desc"' if rng.random() < 0.95 else rng.choice(('"\\u0064esc"', '"Desc"', "desc"))
        g = f'"{geom}"{w()}:{w()}[{w()}' + f"{w()},{w()}".join(_lit(v) for v in vals) + f"{w()}]"
        d = f"{dkey}{w()}:{w()}{dtext}"
        pairs = [d, g] if rng.random() < 0.5 else [g, d]  # the wrong order half the time
        if rng.random() < 0.05:
            pairs.append('"score": 1')
        if rng.random() < 0.03:
            pairs = [d]
        rec = "{" + w() + f"{w()},{w()}".join(pairs) + w() + "}"
        if rng.random() < 0.03:
            rec = rec.replace('"', '\\"', 2)  # an escaped quote where the key should close
        if rng.random() < 0.03:
            rec = rec[: rng.randrange(1, len(rec))]  # cut short: unbalanced
        yield rec


def _summary(res):
    return ([(o.desc, o.geometry, o.values, o.span, o.geometry_span, o.value_spans, o.index) for o in res.objects],
            res.drops, [(d.reason, d.pos, d.detail, d.span) for d in res.dropped], res.error, res.record_end_cuts,
            res.truncated, res.parse_failed, res.container_end)


@pytest.mark.parametrize("order", coordjson.FIELD_ORDERS)
def test_shortcut_equals_scanner(order, monkeypatch):
    rng = random.Random(order)
    texts = list(_records(rng))
    texts = ['{"objects": [' + ", ".join(texts[i:i + 5]) + "]}" for i in range(0, len(texts), 5)]
    fast = [_summary(parse(t, "salvage", order)) for t in texts]
    n_fast_kept = sum(len(f[0]) for f in fast)
    monkeypatch.setattr(coordjson, "_classify_fast", lambda *a: None)
    monkeypatch.setattr(coordjson, "_fast_record_end", lambda *a: None)
    slow = [_summary(parse(t, "salvage", order)) for t in texts]
    assert fast == slow
    n_drops = sum(sum(s[1].values()) for s in slow)
    assert n_fast_kept > 150 and n_drops > 500  # both sides of the shortcut are exercised


def test_shortcut_takes_the_common_record():
    text = '{"desc": "cat", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>]}'
    obj = coordjson._classify_fast(text, 0, len(text), "desc_first", 0)
    assert obj is not None and obj.values == (1, 2, 3, 4) and obj.desc == "cat"
    assert coordjson._classify_fast(text, 0, len(text), "geometry_first", 0) is None  # order is the scanner's call
