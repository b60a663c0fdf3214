"""Stage_1 smoke on CUDA: the GPU half of `training-pipeline-audit` / "Stage_1 smoke on CUDA".

Run on a machine with one CUDA GPU, from the repository root (see gpu_stage1_smoke.md):

    python tests/manual/gpu_stage1_smoke.py --out <folder>

It measures, on the GPU:
1. packing isolation of the tiny Qwen3-VL: packed logits vs each sample run alone, text-only and
   with images, for each attention backend and dtype available; and the same with a planted leak
   (an all-ones attention mask), which must move the logits;
2. the stage_1 entrypoint (`python -m coordexp.train`) on the CUDA smoke profile: finite losses,
   the run manifest written, weight-only checkpoints.
It writes `<out>/gpu_stage1_smoke.json` and exits non-zero when any measurement fails its bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOL = {"float32": 1e-4, "bfloat16": 5e-2}  # bf16 keeps ~3 significant digits: compare against its own noise
LEAK_MIN = 1e-2


def _isolation(device: str) -> list[dict]:
    import torch

    from coordexp.smoke.tiny import build_tiny_model
    from coordexp.training.packing import collate_packed, model_inputs
    from tests.coordexp.segments import synthetic_segment

    rows = []
    for attn in ("sdpa", "eager"):
        for dtype_name in ("float32", "bfloat16"):
            dtype = getattr(torch, dtype_name)
            model = build_tiny_model(attn_implementation=attn).to(device=device, dtype=dtype)
            for kind, grids in (("text", [None, None, None]), ("image", [(1, 4, 4), None, (1, 6, 4)])):
                g = torch.Generator().manual_seed(7)
                segs = [
                    synthetic_segment(g, prompt_len=5 + 2 * k, answer_len=9 + k, grid=grid)
                    for k, grid in enumerate(grids)
                ]
                batch = collate_packed(segs)

                def to_dev(v):
                    if not torch.is_tensor(v):
                        return v
                    return v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device)

                inputs = {k: to_dev(v) for k, v in model_inputs(batch).items() if v is not None}
                with torch.no_grad():
                    packed = model(**inputs, use_cache=False).logits[0].float()
                    alone = []
                    for s in segs:
                        ids = torch.tensor([s.input_ids], device=device)
                        kw = {"input_ids": ids, "use_cache": False}
                        if s.image_grid_thw is not None:
                            kw.update(
                                pixel_values=to_dev(s.pixel_values),
                                image_grid_thw=s.image_grid_thw.to(device),
                                mm_token_type_ids=(ids == model.config.image_token_id).int(),
                            )
                        alone.append(model(**kw).logits[0].float())
                    ref = torch.cat(alone)
                    leak_inputs = {**inputs, "attention_mask": torch.ones_like(inputs["input_ids"])}
                    leaked = model(**leak_inputs, use_cache=False).logits[0].float()
                first = len(segs[0].input_ids)
                diff = (packed[first:] - ref[first:]).abs().max().item()
                leak = (leaked[first:] - ref[first:]).abs().max().item()
                rows.append(
                    {
                        "attn": attn,
                        "dtype": dtype_name,
                        "samples": kind,
                        "tokens": int(packed.shape[0]),
                        "max_abs_diff_isolated": diff,
                        "max_abs_diff_planted_leak": leak,
                        "ok": diff < TOL[dtype_name] and leak > LEAK_MIN,
                    }
                )
            del model
            torch.cuda.empty_cache()
    return rows


def _train(out: Path) -> dict:
    cfg = REPO / "configs" / "stage1" / "smoke" / "tiny_cuda.yaml"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "coordexp.train", str(cfg)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    wall = time.time() - t0
    log = proc.stdout + proc.stderr
    (out / "gpu_stage1_train.log").write_text(log)
    losses = [float(x) for x in re.findall(r"'loss': '?([0-9.eE+-]+|nan|inf)'?", log)]
    run_dirs = sorted((REPO / "build" / "runs").glob("stage1_tiny_cuda*"))
    manifest, ckpt_files = {}, {}
    for d in run_dirs:
        for f in ("resolved_config.json", "runtime_env.json", "run_metadata.json"):
            for hit in d.rglob(f):
                manifest[f] = str(hit.relative_to(REPO))
        for ck in d.rglob("checkpoint-*"):
            if ck.is_dir():
                ckpt_files[str(ck.relative_to(REPO))] = sorted(p.name for p in ck.iterdir())
    forbidden = {"optimizer.pt", "scheduler.pt", "rng_state.pth"}
    weight_only = bool(ckpt_files) and all(not (forbidden & set(v)) for v in ckpt_files.values())
    return {
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "losses": losses,
        "finite": bool(losses) and all(l == l and abs(l) != float("inf") for l in losses),
        "manifest": manifest,
        "checkpoints": ckpt_files,
        "weight_only": weight_only,
        "ok": proc.returncode == 0 and bool(losses) and weight_only and len(manifest) == 3,
        "log_tail": log[-2000:],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the evidence JSON and the training log")
    ap.add_argument("--skip-train", action="store_true", help="only the isolation measurements")
    args = ap.parse_args()
    import torch
    import transformers

    if not torch.cuda.is_available():
        print("gpu_stage1_smoke: no CUDA device: this procedure needs a GPU", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    commit = git.stdout.strip() if git.returncode == 0 else ""  # a copy of the tree may have no .git
    report = {
        "procedure": "tests/manual/gpu_stage1_smoke.md",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit or os.environ.get("COORDEXP_COMMIT", "unknown"),
        "device": torch.cuda.get_device_name(0),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
    }
    report["isolation"] = _isolation("cuda")
    if not args.skip_train:
        report["train"] = _train(args.out)
    report["ok"] = all(r["ok"] for r in report["isolation"]) and (args.skip_train or report["train"]["ok"])
    (args.out / "gpu_stage1_smoke.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    for r in report["isolation"]:
        print(
            f"isolation {r['attn']:5} {r['dtype']:8} {r['samples']:5}: isolated {r['max_abs_diff_isolated']:.2e} "
            f"planted-leak {r['max_abs_diff_planted_leak']:.2e} {'ok' if r['ok'] else 'FAIL'}"
        )
    if "train" in report:
        t = report["train"]
        print(f"train: exit {t['exit_code']} wall {t['wall_s']}s losses {t['losses']} weight-only {t['weight_only']}")
    print("gpu_stage1_smoke:", "ok" if report["ok"] else "FAILED")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
