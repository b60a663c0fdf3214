"""Golden outputs of ``stage2.channel_b.build_target`` over seeded synthetic rollouts.

The cases are built from a seed with the real coord-extended Qwen tokenizer: clean
rollouts in both field orders, truncated ones (cut at any token), fallbacks (no container,
an extra top-level key, a bad close, empty ids), a ``<|im_end|>`` in the middle (as the
special token or spelled by plain-text tokens), poly and wrong-arity records, unexpected
keys, missing descs, order violations, inverted boxes, junk before and after the
container, odd whitespace, descs with braces and quotes, re-chunked tokenizations (so
token boundaries fall anywhere) and random-token noise; GT lists and Channel-B / matching
configs vary per case. Every field of the result (or the error raised) is serialized to
one compact JSON line per case, so ``tests/coordexp/test_stage2_channel_b_golden.py``
compares an implementation against the recorded outputs bit for bit.

No case places a second ``{"objects": [`` after a rejected container, nor the word
"objects" in junk: the golden records Channel-B's target building, not the parser's
choice of container.

Rebuild (only when the behaviour is meant to change, and say why in the commit):

    PYTHONPATH=.:src .venv/bin/python -m tests.helpers.channel_b_golden --write
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

SEED = 1313
N_CASES = 320
GOLDEN = Path(__file__).parent / "golden" / "channel_b_build_target.jsonl"

DF, GF = "desc_first", "geometry_first"
DESCS = ("cat", "dog", "person", "traffic light", "a}{b", 'say "hi"', "back\\slash", "  padded  ",
         "fire hydrant", "kite", "zebra", "tennis racket", "cell phone", "caf\u00e9", "x]y")
JUNK = ("Sure! Here is the result:\n", "```json\n", "I see ", "<think>boxes</think>", "{}", "[1, 2]",
        "The image shows", "\n\n", " }]} ", '{"desc": "stray"}')
SEPS = (", ", ",", ",\n  ", " , ", ",\n")
COLONS = (": ", ":", " : ")


@dataclass
class Case:
    name: str
    ids: list[int]
    gt: list[dict]
    config: dict  # ChannelBConfig kwargs, with "match" as MatchConfig kwargs


# ----------------------------------------------------------------------------- text


def _box(rng: random.Random, *, degenerate: bool = False) -> list[int]:
    x1, y1 = rng.randrange(0, 960), rng.randrange(0, 960)
    if degenerate and rng.random() < 0.5:
        return [x1, y1, x1, min(999, y1 + rng.randrange(0, 30))]
    return [x1, y1, min(999, x1 + rng.randrange(1, 300)), min(999, y1 + rng.randrange(1, 300))]


def _coords(values, sep=", ") -> str:
    return sep.join(f"<|coord_{v}|>" for v in values)


def _record(rng, order, desc, values, geom="bbox_2d", colon=": ", sep=", ") -> str:
    d = f'"desc"{colon}{json.dumps(desc, ensure_ascii=False)}'
    g = f'"{geom}"{colon}[{_coords(values, rng.choice((", ", ",", " ,")))}]'
    return "{" + (f"{d}{sep}{g}" if order == DF else f"{g}{sep}{d}") + "}"


def _bad_record(rng, order) -> str:
    """One record that the parser or the strict Channel-B rules drop, or that the
    tokenization makes ambiguous."""
    kind = rng.choice(("poly", "arity3", "arity5", "number", "extra_key", "no_desc", "order", "inverted",
                       "empty_desc", "nested", "bad_coord"))
    b = _box(rng)
    if kind == "poly":
        pts = [rng.randrange(0, 1000) for _ in range(rng.choice((6, 8, 10, 7)))]
        return _record(rng, order, rng.choice(DESCS), pts, geom="poly")
    if kind == "arity3":
        return _record(rng, order, "three", b[:3])
    if kind == "arity5":
        return _record(rng, order, "five", b + [7])
    if kind == "number":
        return '{"desc": "num", "bbox_2d": [' + ", ".join(str(v) for v in b) + "]}"
    if kind == "extra_key":
        return '{"desc": "ek", "bbox_2d": [' + _coords(b) + '], "score": 0.9}'
    if kind == "no_desc":
        return '{"bbox_2d": [' + _coords(b) + "]}"
    if kind == "order":
        return _record(rng, GF if order == DF else DF, "swapped", b)
    if kind == "inverted":
        return _record(rng, order, "inv", [b[2], b[3], b[0], b[1]] if b[2] > b[0] else [b[0], 999, b[2], 0])
    if kind == "empty_desc":
        return _record(rng, order, "   ", b)
    if kind == "nested":
        return '{"desc": {"a": [1, {"b": 2}]}, "bbox_2d": [' + _coords(b) + "]}"
    return '{"desc": "bc", "bbox_2d": [<|coord_1000|>, <|coord_01|>, <|coord_3|>, <|coord_4|>]}'


# ----------------------------------------------------------------------------- ids


def _encode(tok, text: str) -> list[int]:
    return list(tok.encode(text, add_special_tokens=False))


def _encode_chunked(tok, rng, text: str) -> list[int]:
    """Encode in random chunks: token boundaries fall where one encode would merge."""
    if not text:
        return []
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randrange(1, 8)))) if len(text) > 1 else []
    out, last = [], 0
    for c in [*cuts, len(text)]:
        out += _encode(tok, text[last:c])
        last = c
    return out


def _spell_plain(tok, piece: str) -> list[int]:
    """A special-token literal spelled by plain-text tokens (no special id matches it)."""
    return _encode(tok, piece[:2]) + _encode(tok, piece[2:-2]) + _encode(tok, piece[-2:])


# ----------------------------------------------------------------------------- cases


def _gt_for(rng, preds: list[tuple[str, list[int]]]) -> list[dict]:
    gt = []
    for desc, b in preds:
        if rng.random() < 0.75:  # a GT near this prediction
            j = [min(999, max(0, v + rng.randrange(-6, 7))) for v in b]
            j = [min(j[0], j[2]), min(j[1], j[3]), max(j[0], j[2]), max(j[1], j[3])]
            gt.append({"desc": desc.strip() or "obj", "bbox_2d": j})
    for _ in range(rng.choice((0, 0, 1, 2, 3, 5))):  # missed objects
        gt.append({"desc": rng.choice(DESCS).strip(), "bbox_2d": _box(rng, degenerate=rng.random() < 0.1)})
    rng.shuffle(gt)
    if rng.random() < 0.07:
        gt = []
    return gt


def _config(rng, order: str) -> dict:
    return {
        "field_order": order,
        "desc_ce_weight": rng.choice((1.0, 1.0, 0.5, 0.0, 2.0)),
        "drop_invalid_struct_ce_multiplier": rng.choice((1.0, 1.0, 2.0, 4.0, 1.5)),
        "match": {
            "candidate_top_k": rng.choice((5, 5, 1, 3, 10)),
            "maskiou_gate": rng.choice((0.3, 0.3, 0.0, 0.7, 1.0)),
            "maskiou_resolution": rng.choice((256, 256, 8, 64, 100, 999)),
            "fp_cost": rng.choice((1.0, 0.5, 0.0, 3.0)),
            "fn_cost": rng.choice((1.0, 2.0, 0.0)),
        },
    }


def _body(rng, order, n_obj, n_bad, colon, sep):
    preds, records = [], []
    for _ in range(n_obj):
        desc = rng.choice(DESCS)
        b = _box(rng, degenerate=rng.random() < 0.05)
        if rng.random() < 0.25:  # far from everything: FP or nearest-center candidate
            b = [990 - rng.randrange(0, 20), 990 - rng.randrange(0, 20), 999, 999]
        preds.append((desc, b))
        records.append(_record(rng, order, desc, b, colon=colon))
    for _ in range(n_bad):
        records.insert(rng.randrange(0, len(records) + 1), _bad_record(rng, order))
    return preds, records


def _container(records, colon, sep, close="]}") -> str:
    return "{" + f'"objects"{colon}[' + sep.join(records) + close


KINDS = ("clean", "clean", "mixed", "mixed", "truncated", "truncated", "im_end", "junk", "invalid", "empty",
         "chunked", "noise", "big")


def make_case(tok, rng: random.Random, k: int) -> Case:
    kind = KINDS[k % len(KINDS)] if k < 2 * len(KINDS) else rng.choice(KINDS)
    order = rng.choice((DF, GF))
    colon, sep = rng.choice(COLONS), rng.choice(SEPS)
    n_obj = 20 + rng.randrange(0, 11) if kind == "big" else rng.choice((0, 1, 1, 2, 3, 4, 5, 6, 8, 10))
    n_bad = rng.choice((1, 2, 3)) if kind in ("mixed", "junk", "chunked") else (1 if rng.random() < 0.15 else 0)
    preds, records = _body(rng, order, n_obj, n_bad, colon, sep)
    text = _container(records, colon, sep, close=rng.choice(("]}", "]}", "]\n}", " ] }")))
    ids = _encode(tok, text)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    tail = [im_end] if rng.random() < 0.8 else []

    if kind == "truncated":
        ids = ids[: rng.randrange(0, len(ids) + 1)]
        tail = []
    elif kind == "im_end":
        pos = rng.randrange(0, len(ids) + 1)
        mode = rng.choice(("special", "special", "plain", "fused_text", "after_close"))
        if mode == "special":
            ids = ids[:pos] + [im_end] + ids[pos:]
        elif mode == "plain":
            ids = ids[:pos] + _spell_plain(tok, "<|im_end|>") + ids[pos:]
        elif mode == "fused_text":  # "<|im_end|>" glued to text in one encode call
            ids = _encode(tok, text[: len(text) // 2] + "<|im_end|>" + text[len(text) // 2:])
        else:
            ids = ids + [im_end] + _encode(tok, " " + _record(rng, order, "after", _box(rng)))
    elif kind == "junk":
        before = rng.choice(JUNK) if rng.random() < 0.7 else ""
        after = rng.choice(JUNK) if rng.random() < 0.7 else ""
        ids = _encode(tok, before + text + after)
    elif kind == "invalid":
        mode = rng.choice(("prose", "extra_key", "bad_close", "array_junk", "object_not_array", "array_only"))
        if mode == "prose":
            ids = _encode(tok, rng.choice(JUNK) + " no container here")
        elif mode == "extra_key":
            ids = _encode(tok, text[:-1] + ', "extra": 1}')
        elif mode == "bad_close":
            ids = _encode(tok, text[:-1] + "]")
        elif mode == "array_junk":
            ids = _encode(tok, _container(records + ["oops"], colon, sep))
        elif mode == "object_not_array":
            ids = _encode(tok, '{"objects": {"desc": "cat"}}')
        else:
            ids = _encode(tok, "[" + sep.join(records) + "]")
    elif kind == "empty":
        mode = rng.choice(("ids", "container", "open", "ws"))
        ids = {"ids": [], "container": _encode(tok, '{"objects": []}'), "open": _encode(tok, '{"objects": ['),
               "ws": _encode(tok, '  {\n"objects" :\n[\n]\n}  ')}[mode]
    elif kind == "chunked":
        ids = _encode_chunked(tok, rng, text)
    elif kind == "noise":
        pool = [rng.randrange(0, 5000) for _ in range(40)] + [rng.randrange(151670, 152670) for _ in range(10)]
        ids = list(ids)
        for _ in range(rng.randrange(1, 6)):
            ids.insert(rng.randrange(0, len(ids) + 1), rng.choice(pool))
    return Case(f"{k:03d}-{kind}", ids + tail, _gt_for(rng, preds), _config(rng, order))


def cases(tok, seed: int = SEED, n: int = N_CASES) -> list[Case]:
    rng = random.Random(seed)
    return [make_case(tok, rng, k) for k in range(n)]


# ----------------------------------------------------------------------------- outcome


def _runs(values) -> list:
    """Run-length form [[value, count], ...]: CE weights come in long runs."""
    out: list = []
    for v in values:
        if out and out[-1][0] == v and type(out[-1][0]) is type(v):
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return out


def _same_or(value, expected):
    """``"="`` when value equals what the other fields imply, else the value itself:
    lossless, and it keeps the derived copies of long texts out of the file."""
    return "=" if value == expected and type(value) is type(expected) else value


def _nonzero(counts: dict, keys) -> dict:
    if list(counts) != list(keys):
        return {"keys": list(counts), "values": counts}  # a changed key set shows up as a diff
    return {k: v for k, v in counts.items() if v}


def _parse_dict(res) -> dict | None:
    from coordexp.format.coordjson import REASONS

    if res is None:
        return None
    return {
        "objects": [[o.desc, o.geometry, list(o.values), list(o.span), list(o.geometry_span),
                     [list(s) for s in o.value_spans], o.index] for o in res.objects],
        "drops": _nonzero(res.drops, REASONS),
        "dropped": [[d.reason, d.pos, d.detail, list(d.span)] for d in res.dropped],
        "truncated": res.truncated, "parse_failed": res.parse_failed, "error": res.error,
        "container_start": res.container_start, "container_end": res.container_end,
        "objects_array_open_cut": res.objects_array_open_cut, "record_end_cuts": res.record_end_cuts,
    }


def _rollout_text(tok, ids) -> str:
    """The rollout decoded id by id with the tokenizer itself, cut at the first <|im_end|>."""
    text = "".join(tok.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False) for i in ids)
    stop = text.find("<|im_end|>")
    return text if stop < 0 else text[:stop]


def _head_and_rest(ids: list[int], rollout: list[int]) -> dict:
    """``ids`` as its longest common head with the rollout ids (a length) and the rest."""
    n = 0
    while n < min(len(ids), len(rollout)) and ids[n] == rollout[n]:
        n += 1
    return {"rollout_head": n, "rest": ids[n:]}


def target_dict(t, tok=None, rollout_ids=None) -> dict:
    """Every field of a ChannelBTarget (and of its prefix, parse and match) as plain JSON.
    Lossless: a field that merely repeats others (the prefix text as ``text[:cut]``, the
    prefix ids as the head of the assistant ids, the rollout text as the tokenizer's own
    decode of the rollout ids) is written as ``"="``; the assistant ids as their common
    head with the rollout ids (a length) and the rest."""
    from coordexp.stage2.channel_b import ALL_REASONS

    p, m = t.prefix, t.match
    rollout_ids = list(rollout_ids or [])
    counters = t.counters  # same keys in every case: their order as a digest, then the non-zero values
    return {
        "assistant_ids": _head_and_rest(t.assistant_ids, rollout_ids), "ce_weights": _runs(t.ce_weights),
        "groups": [[g.kind, list(g.positions), list(g.target_bins), g.gt_index] for g in t.groups],
        "fragment": t.fragment, "prefix_len": t.prefix_len, "closure": list(t.closure),
        "text": _same_or(t.text, p.prefix_text + t.fragment + "<|im_end|>"),
        "counters": {"key_order": _digest(list(counters)), **{k: v for k, v in counters.items() if v}},
        "match": {"matched": [list(x) for x in m.matched], "fp": m.fp, "fn": m.fn,
                  "gating_rejections": m.gating_rejections, "n_candidate_pairs": m.n_candidate_pairs,
                  "mask_iou": [[i, j, v] for (i, j), v in m.mask_iou.items()]},
        "prefix": {"text": _same_or(p.text, _rollout_text(tok, rollout_ids)) if tok is not None else p.text,
                   "prefix_text": _same_or(p.prefix_text, p.text[:p.cut] if p.cut is not None else None),
                   "prefix_ids": _same_or(p.prefix_ids, t.assistant_ids[:t.prefix_len]),
                   "invalid_rollout": p.invalid_rollout, "fallback_reason": p.fallback_reason,
                   "kept": [[k.obj.index, list(k.coord_positions)] for k in p.kept],
                   "drops": _nonzero(p.drops, ALL_REASONS),
                   "truncated": p.truncated, "cut": p.cut, "n_valid_pred": p.n_valid_pred,
                   "n_drop_invalid": p.n_drop_invalid, "parse": _parse_dict(p.parse)},
    }


def _digest(obj) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _input_digest(case: Case) -> str:
    return _digest([case.ids, case.gt, case.config])


def outcome(tok, case: Case) -> dict:
    from coordexp.stage2.channel_b import ChannelBConfig, build_target
    from coordexp.stage2.matching import MatchConfig

    cfg = dict(case.config)
    cfg = ChannelBConfig(**{**cfg, "match": MatchConfig(**cfg["match"])})
    out: dict = {"case": case.name, "input": _input_digest(case)}
    try:
        out["target"] = target_dict(build_target(tok, case.ids, case.gt, cfg), tok, case.ids)
    except ValueError as exc:  # ChannelBError and its kin: the recorded outcome is the error
        out["error"] = [type(exc).__name__, str(exc)]
    return out


def line(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def render_golden(tok, seed: int = SEED, n: int = N_CASES) -> list[str]:
    return [line(outcome(tok, c)) for c in cases(tok, seed, n)]


def main(argv=None) -> int:
    from coordexp.format.coord import load_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite {GOLDEN.name}")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--cases", type=int, default=N_CASES)
    ns = ap.parse_args(argv)
    lines = render_golden(load_tokenizer(), ns.seed, ns.cases)
    if ns.write:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{GOLDEN}: {len(lines)} cases")
        return 0
    old = GOLDEN.read_text(encoding="utf-8").splitlines() if GOLDEN.is_file() else []
    diff = [i for i, (a, b) in enumerate(zip(old, lines)) if a != b]
    print(f"{len(lines)} cases, {len(diff) + abs(len(old) - len(lines))} differ from {GOLDEN.name}")
    return 1 if diff or len(old) != len(lines) else 0


if __name__ == "__main__":
    raise SystemExit(main())
