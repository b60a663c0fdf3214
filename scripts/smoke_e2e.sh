#!/usr/bin/env bash
# End-to-end CPU smoke: train the tiny stage_1 on synthetic data, run inference with the checkpoint,
# evaluate, draw. Leaves build/e2e/ with gt_vs_pred.jsonl, metrics.json (COCO keys) and vis/*.png.
# Builds what it needs (tiny model, synthetic data) on first use. Prints each step's wall time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export PYTHON="$PY" TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's code, whatever the venv points at
CFG=configs/infer/smoke/e2e.yaml
OUT=build/e2e
rm -rf "$OUT"
t0=$(date +%s)
step() {  # step <name> <command...>: run, time, stop on failure
  local name="$1"; shift
  local s; s=$(date +%s)
  echo "== smoke_e2e: $name"
  "$@"
  echo "== smoke_e2e: $name done in $(( $(date +%s) - s )) s"
}
step train scripts/train.sh configs/stage1/smoke/tiny_cpu.yaml
step infer scripts/infer.sh "$CFG"
step eval scripts/eval.sh "$CFG"
step vis "$PY" -m coordexp.eval.vis "$CFG"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
m = json.loads((out / "metrics.json").read_text())
need = ["bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_APs", "bbox_APm", "bbox_APl", "bbox_AR100"]
missing = [k for k in need if k not in m]
pngs = sorted((out / "vis").glob("overlay_*.png"))
rows = (out / "gt_vs_pred.jsonl").read_text().count("\n")
if missing or not pngs or rows == 0:
    sys.exit(f"smoke_e2e: FAILED: missing keys {missing}, {len(pngs)} overlays, {rows} artifact rows")
print(f"smoke_e2e: ok: {rows} artifact rows, {len(pngs)} overlays, bbox_AP {m['bbox_AP']:.4f}")
PYEOF
echo "== smoke_e2e: total $(( $(date +%s) - t0 )) s ($OUT)"
