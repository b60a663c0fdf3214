#!/usr/bin/env bash
# Checkpoint preparation on the tiny model, the steps docs/checkpoints.md runs on a real release:
#   1. a stock-shaped Qwen3-VL (no coord vocabulary, padded rows): scripts/tools/build_tiny_model.py --base,
#      standing in for the downloaded release;
#   2. scripts/tools/expand_coord_vocab.py adds the coord vocabulary and verifies it by reloading (exit 0);
#   3. scripts/tools/merge_checkpoint.py folds a stage_1 checkpoint into a plain model folder and verifies its
#      logits against the adapter model's (exit 0).
# The stage_1 checkpoint is $SMOKE_CHECKPOINT when set, else the newest checkpoint of the stage_1 CPU smoke
# (build/runs/stage1_tiny_cpu), which scripts/train.sh configs/stage1/smoke/tiny_cpu.yaml writes (and this
# script runs when there is none). A [tool.specgen.proof] entrypoint. Prints each step's wall time.
set -euo pipefail
# shellcheck source=lib/python_env.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/python_env.sh"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
step() {  # step <name> <command...>: run, time, stop on failure
  local name="$1" s
  shift
  s=$(date +%s)
  echo "== smoke_checkpoints: $name"
  "$@"
  echo "== smoke_checkpoints: $name done in $(( $(date +%s) - s )) s"
}
step stock "$PY" scripts/tools/build_tiny_model.py --base --out "$WORK/stock"
step expand "$PY" scripts/tools/expand_coord_vocab.py --src "$WORK/stock" --dst "$WORK/coord"
CKPT="${SMOKE_CHECKPOINT:-}"
if [ -z "$CKPT" ]; then
  latest() { find build/runs/stage1_tiny_cpu -maxdepth 1 -name 'checkpoint-*' -type d 2>/dev/null | sort -V | tail -n 1; }
  CKPT=$(latest)
  if [ -z "$CKPT" ]; then
    step "stage_1 smoke (for a checkpoint)" bash scripts/train.sh configs/stage1/smoke/tiny_cpu.yaml
    CKPT=$(latest)
  fi
fi
step merge "$PY" scripts/tools/merge_checkpoint.py --checkpoint "$CKPT" --out "$WORK/merged"
echo "smoke_checkpoints: ok"
