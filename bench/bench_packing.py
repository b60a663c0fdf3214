"""Benchmark (not a test): packed vs padded-batch training throughput on the tiny Qwen3-VL, and the
packing fill ratio of the synthetic dataset.

    python bench/bench_packing.py [--samples 48] [--packing-length 2048] [--batch 4]

Throughput counts real (non-padding) tokens per second of forward + backward + optimizer step with
the stage-1 loss. Both arms see the same samples in the same order; the padded arm batches them
`--batch` at a time (right-padded, attention mask), the packed arm uses the static plan.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _segments(n: int, seed: int):
    import torch

    if str(REPO) not in sys.path:  # the stand-in samples are a test fixture of this checkout
        sys.path.insert(0, str(REPO))
    from tests.coordexp.segments import synthetic_segment

    g = torch.Generator().manual_seed(seed)
    r = random.Random(seed)
    out = []
    for _ in range(n):
        prompt = r.randint(40, 400)
        grid = (1, 2 * r.randint(2, 6), 2 * r.randint(2, 6)) if r.random() < 0.5 else None
        out.append(synthetic_segment(g, prompt_len=prompt, answer_len=r.randint(20, 200), grid=grid))
    return out


def _to(batch: dict, device: str) -> dict:
    import torch

    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def _epoch_runner(model, batches, forward_inputs):
    """A function that trains one pass over `batches` and returns its tokens per second (after a warm-up)."""
    import torch

    from coordexp.training.objectives import stage1_loss_targets, supervised_positions

    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step(batch):
        labels = batch["labels"]
        idx = supervised_positions(labels)
        logits = model(**forward_inputs(batch), use_cache=False, logits_to_keep=idx).logits
        loss = stage1_loss_targets(logits, labels[:, idx + 1], coord_start=151670).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    tokens = sum(int(b["real_tokens"]) for b in batches)
    step(batches[0])  # warm-up

    def epoch() -> float:
        sync()
        t0 = time.perf_counter()
        for b in batches:
            step(b)
        sync()
        return tokens / (time.perf_counter() - t0)

    return epoch


def bench_throughput(n: int, packing_length: int, batch: int, repeats: int, device: str = "cpu") -> dict:
    import torch

    from coordexp.training.packing import PackingPolicy, collate_packed, collate_padded, model_inputs, plan_packs
    from coordexp.smoke.tiny import build_tiny_model

    torch.manual_seed(0)
    segs = _segments(n, seed=1)
    plan = plan_packs([len(s.input_ids) for s in segs], PackingPolicy(packing_length=packing_length))
    packed = []
    for p in plan.packs:
        b = _to(collate_packed([segs[i] for i in p]), device)
        b["real_tokens"] = b["input_ids"].shape[1]
        packed.append(b)
    padded = []
    for i in range(0, n, batch):
        b = _to(collate_padded(segs[i : i + batch], pad_token_id=0), device)
        b["real_tokens"] = int(b["attention_mask"].sum())
        b["padded_tokens"] = b["input_ids"].numel()
        padded.append(b)
    drop = ("labels", "real_tokens", "padded_tokens")
    packed_epoch = _epoch_runner(
        build_tiny_model().to(device), packed, lambda b: model_inputs({k: v for k, v in b.items() if k not in drop})
    )
    padded_epoch = _epoch_runner(
        build_tiny_model().to(device), padded, lambda b: {k: v for k, v in b.items() if k not in drop}
    )
    pk_runs, pd_runs = [], []
    for _ in range(repeats):  # alternating, so drift in machine load hits both alike
        pk_runs.append(packed_epoch())
        pd_runs.append(padded_epoch())
    pk, pd = statistics.median(pk_runs), statistics.median(pd_runs)
    real = sum(len(s.input_ids) for s in segs)
    return {
        "device": device,
        "samples": n,
        "real_tokens": real,
        "packing_length": packing_length,
        "packs": len(plan.packs),
        "pack_fill_ratio": plan.report.fill_ratio,
        "padded_batch": batch,
        "padded_token_efficiency": round(real / sum(b["padded_tokens"] for b in padded), 4),
        "packed_tokens_per_s": round(pk, 1),
        "padded_tokens_per_s": round(pd, 1),
        "speedup": round(pk / pd, 3),
        "repeats": repeats,
    }


def bench_fill(config: Path) -> dict:
    """Fill ratio of the static plan on the synthetic dataset, encoded as the smoke profile does."""
    from coordexp.config import load_config
    from coordexp.format.coord import load_tokenizer
    from coordexp.training.packing import PackingPolicy, plan_packs
    from coordexp.stage1.trainer import encode_split
    from coordexp.smoke.inputs import build_missing
    from coordexp.training.settings import RunSettings

    cfg = load_config(config)
    build_missing(cfg)
    tok = load_tokenizer()
    samples = encode_split(cfg.custom.train_jsonl, tok, cfg, RunSettings.from_config(cfg), limit=None, split="train")
    lengths = [len(s.input_ids) for s in samples]
    out = {
        "samples": len(lengths),
        "min_len": min(lengths),
        "max_len": max(lengths),
        "mean_len": round(sum(lengths) / len(lengths), 1),
    }
    for cap in sorted({int(cfg.global_max_length), 2048, 4096, 12000}):
        if cap < max(lengths):
            continue
        rep = plan_packs(lengths, PackingPolicy(packing_length=cap)).report
        out[f"fill@{cap}"] = {"packs": rep.num_packs, "fill_ratio": rep.fill_ratio}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--packing-length", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="alternating packed/padded passes; medians reported")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the throughput arm only)")
    ap.add_argument("--skip-fill", action="store_true", help="only the throughput arm (no config, no ms-swift)")
    ap.add_argument("--config", type=Path, default=REPO / "configs/stage1/smoke/tiny_cpu.yaml")
    args = ap.parse_args(argv)
    result = {"throughput": bench_throughput(args.samples, args.packing_length, args.batch, args.repeats, args.device)}
    if not args.skip_fill:
        result["synthetic_fill"] = bench_fill(args.config)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
