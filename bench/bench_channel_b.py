"""Channel-B throughput: parse + match + target-encode of synthetic rollouts (real tokenizer).

A batch of 256 rollouts with 30 objects each: every rollout holds the GT boxes jittered by
a few bins (most match), a few boxes far from every GT (FP), and misses a few GT (FN), so
the FN injection, CE weights and closure scan all run. Prints rollouts per second of
``stage2.channel_b.build_target`` (decode frame, salvage parse, cut, strict drops,
matching, fragment encode, weights, geometry targets): the median wall time of
``--repeat`` passes over the batch (after one warm-up pass: per-tokenizer tables are built
once per process), and the median process CPU time of the same passes (on a shared machine
the CPU figure moves less with the neighbours' load). ``--profile`` adds a cProfile of one
more pass (top functions by own CPU time) on stderr.

    PYTHONPATH=.:src .venv/bin/python bench/bench_channel_b.py [--rollouts 256] [--objects 30] [--repeat 5]
        [--profile [N]]

See docs/performance.md for the figures measured here.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time


def synthetic(tok, n: int, k: int, seed: int = 0):
    from coordexp.format.coord import COORD_BINS
    from coordexp.format.prompts import COCO_80_CLASSES

    rng = random.Random(seed)
    first = tok.convert_tokens_to_ids("<|coord_0|>")
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    out = []
    for _ in range(n):
        gt = []
        for _ in range(k):
            x1, y1 = rng.randrange(0, 900), rng.randrange(0, 900)
            gt.append({"desc": rng.choice(COCO_80_CLASSES),
                       "bbox_2d": [x1, y1, x1 + rng.randrange(20, 99), y1 + rng.randrange(20, 99)]})
        gt.sort(key=lambda o: (o["bbox_2d"][1], o["bbox_2d"][0]))
        preds = []
        for o in gt[: k - 3]:  # the last 3 GT are missed (FN)
            b = [min(COORD_BINS - 1, max(0, v + rng.randrange(-3, 4))) for v in o["bbox_2d"]]
            b = [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])]
            preds.append((b, o["desc"]))
        preds += [([990, 990 - i, 999, 999], "kite") for i in range(3)]  # FP
        preds.sort(key=lambda p: (p[0][1], p[0][0]))
        text = '{"objects": [' + ", ".join(
            '{"bbox_2d": [' + ", ".join(f"<|coord_{v}|>" for v in b) + f'], "desc": "{d}"}}' for b, d in preds) + "]}"
        ids = tok.encode(text, add_special_tokens=False) + [im_end]
        assert all(0 <= i for i in ids) and first > 0
        out.append((ids, gt))
    return out


def main(argv=None) -> int:
    from coordexp.format.coord import load_tokenizer
    from coordexp.stage2.channel_b import ChannelBConfig, build_target
    from coordexp.stage2.matching import MatchConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rollouts", type=int, default=256)
    ap.add_argument("--objects", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", type=int, nargs="?", const=25, default=0, metavar="N",
                    help="after the timed passes, profile one more pass and print the top N functions")
    ns = ap.parse_args(argv)
    if ns.rollouts < 1 or ns.objects < 4 or ns.repeat < 1:
        ap.error("--rollouts and --repeat must be >= 1, --objects >= 4")
    tok = load_tokenizer()
    batch = synthetic(tok, ns.rollouts, ns.objects)
    cfg = ChannelBConfig("geometry_first", match=MatchConfig(fp_cost=0.5, fn_cost=2.0))

    def one_pass() -> tuple[int, int]:
        matched = fn = 0
        for ids, gt in batch:
            tgt = build_target(tok, ids, gt, cfg)
            matched += len(tgt.match.matched)
            fn += len(tgt.match.fn)
        return matched, fn

    one_pass()  # warm-up: per-tokenizer tables, imports
    wall, cpu = [], []
    for _ in range(ns.repeat):
        t, c = time.perf_counter(), time.process_time()
        matched, fn = one_pass()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    med, med_cpu = statistics.median(wall), statistics.median(cpu)
    print(f"channel_b build_target: {ns.rollouts} rollouts x {ns.objects} objects: median of {ns.repeat} "
          f"{med:.3f} s -> {ns.rollouts / med:.1f} rollouts/s (cpu {med_cpu:.3f} s -> "
          f"{ns.rollouts / med_cpu:.1f} rollouts/cpu-s; matched {matched}, fn {fn} per pass)")
    if ns.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile(time.process_time)  # CPU time: the neighbours' load does not count
        prof.runcall(one_pass)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(ns.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
