#!/usr/bin/env bash
# End-to-end CPU smoke: write a small memorisable synthetic set, train the tiny stage_1 on it until it
# has learnt it (configs/stage1/smoke/e2e_cpu.yaml), run inference with the checkpoint on the same
# images (then again: the finished run resumes with nothing left to generate), evaluate, draw, and
# run two stage_2 steps (A, B) and a rollout eval from the memorised model. Leaves
# build/e2e/ with gt_vs_pred.jsonl, metrics.json (COCO keys) and vis/*.png, and fails (exit 1, one
# line) unless bbox_AP50 is above E2E_MIN_AP50 (default 0.5): the model must produce the boxes by
# generation on its own. Builds the tiny model on first use. Prints each step's wall time.
set -euo pipefail
# shellcheck source=lib/python_env.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/python_env.sh"
CFG=configs/infer/smoke/e2e.yaml
TRAIN_CFG=configs/stage1/smoke/e2e_cpu.yaml
DATA=build/synthetic_e2e
OUT=build/e2e
MIN_AP50="${E2E_MIN_AP50:-0.5}"
S2_CFG=configs/stage2_ab/smoke/e2e_cpu_server.yaml
S2_OUT=build/runs/stage2_ab_e2e_cpu_server
rm -rf "$OUT" "$DATA" build/runs/stage1_e2e_cpu "$S2_OUT"
t0=$(date +%s)
step() {  # step <name> <command...>: run, time, stop on failure
  local name="$1"; shift
  local s; s=$(date +%s)
  echo "== smoke_e2e: $name"
  "$@"
  echo "== smoke_e2e: $name done in $(( $(date +%s) - s )) s"
}
# 4 images, one large box each (a side is 40-80 % of the image side): the set the e2e profile memorises
step data "$PY" scripts/tools/make_synthetic_dataset.py --out "$DATA" --n-train 4 --n-val 0 --seed 17 \
  --min-objects 1 --max-objects 1 --min-side 0.4 --max-side 0.8
step train scripts/train.sh "$TRAIN_CFG"
# the tiny model as a fresh checkout builds it (the train step reuses build/tiny-qwen3vl when it is there):
# seeded, so the rebuild is byte-identical to the model the smoke trained from
rebuild_tiny() {
  local tmp
  tmp=$(mktemp -d)
  "$PY" scripts/tools/build_tiny_model.py --out "$tmp/tiny"
  cmp "$tmp/tiny/model.safetensors" build/tiny-qwen3vl/model.safetensors || {
    echo "smoke_e2e: FAILED: a rebuilt tiny model differs from build/tiny-qwen3vl" >&2; rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
}
step tiny rebuild_tiny
step infer scripts/infer.sh "$CFG"
# a rerun of the finished run resumes it: every artifact row is checked, nothing is generated (no model load)
resume() {
  local out
  out=$(scripts/infer.sh "$CFG")
  echo "$out"
  grep -q " 0 generated, " <<<"$out" || { echo "smoke_e2e: FAILED: the rerun generated again" >&2; return 1; }
}
step resume resume
step eval scripts/eval.sh "$CFG"
step vis "$PY" -m coordexp.eval.vis "$CFG"
"$PY" - "$OUT" "$MIN_AP50" <<'PYEOF'
import json, sys
from pathlib import Path
out, min_ap50 = Path(sys.argv[1]), float(sys.argv[2])
m = json.loads((out / "metrics.json").read_text())
need = ["bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_APs", "bbox_APm", "bbox_APl", "bbox_AR100"]
missing = [k for k in need if k not in m]
pngs = sorted((out / "vis").glob("overlay_*.png"))
rows = (out / "gt_vs_pred.jsonl").read_text().count("\n")
if missing or not pngs or rows == 0:
    sys.exit(f"smoke_e2e: FAILED: missing keys {missing}, {len(pngs)} overlays, {rows} artifact rows")
c = m["counters"]
got = f"{c['pred_objects']} predictions for {c['gt_objects']} GT objects, {c['parse_failed_outputs']} unparsable outputs"
if not m["bbox_AP50"] > min_ap50:
    sys.exit(f"smoke_e2e: FAILED: {out}/metrics.json: bbox_AP50 {m['bbox_AP50']:.4f} is not above {min_ap50} ({got}): "
             "the trained model did not learn its images; see build/runs/stage1_e2e_cpu/train_summary.json")
print(f"smoke_e2e: ok: {rows} artifact rows, {len(pngs)} overlays, bbox_AP50 {m['bbox_AP50']:.4f} > {min_ap50}, "
      f"bbox_AP {m['bbox_AP']:.4f} ({got})")
PYEOF
# stage_2 from the memorised model ($S2_CFG), on the loopback rollout server: its rollouts hold the objects
# it learnt, so Channel B cuts them append-ready and matches them to the GT, and the rollout eval after the
# B step scores them. A full-tuning checkpoint holds weights and config only: the start folder gets the
# tiny model's tokenizer beside them.
stage2() {
  local ck=build/runs/stage1_e2e_cpu/checkpoint-80 init="$OUT/stage2_init"
  mkdir -p "$init"
  cp "$ck"/config.json "$ck"/*.safetensors "$init"/
  cp build/tiny-qwen3vl/{tokenizer.json,tokenizer_config.json,chat_template.jinja,coordexp_tiny.json} "$init"/
  scripts/train_stage2.sh "$S2_CFG"
  "$PY" - "$S2_OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
steps = [json.loads(x) for x in (out / "stage2_step_log.jsonl").read_text().splitlines()]
b = [m for m in steps if m.get("stage2/channel_b")]
evals = [h for p in sorted(out.glob("checkpoint-*/trainer_state.json"))
         for h in json.loads(p.read_text())["log_history"] if "eval_rollout/f1" in h]
if not b or not b[0].get("rollout/matched") or not evals or not evals[-1]["eval_rollout/f1"] > 0:
    sys.exit(f"smoke_e2e: FAILED: stage_2 from the memorised model: B step {b[:1]}, rollout eval {evals[-1:]}: "
             "its rollouts should hold objects that match the GT")
print(f"smoke_e2e: stage_2 ok: B step matched {b[0]['rollout/matched']:.0f} (fp {b[0].get('rollout/fp', 0):.0f}), "
      f"rollout eval f1 {evals[-1]['eval_rollout/f1']:.3f}, bbox_AP50 {evals[-1].get('eval_rollout/bbox_AP50')}")
PYEOF
}
step stage2 stage2
echo "== smoke_e2e: total $(( $(date +%s) - t0 )) s ($OUT)"
