#!/usr/bin/env bash
# Training: scripts/train.sh <config.yaml>
# Runs `python -m coordexp.train <config>` with the repository's venv when there is one.
# Builds what a smoke profile needs under build/ (tiny model, synthetic data) when missing.
#
# Several processes: NPROC_PER_NODE=N (N > 1) launches N ranks on this node with torchrun
# (`python -m torch.distributed.run`); CPU ranks talk over gloo, GPU ranks over NCCL. The
# config's training.effective_batch_size must divide by the world size (checked by the loader).
# MASTER_ADDR/MASTER_PORT pick the rendezvous (default: torchrun --standalone, a free local port);
# NNODES/NODE_RANK are passed through for several nodes.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: [NPROC_PER_NODE=N] scripts/train.sh <config.yaml>" >&2
  exit 2
fi
if [ ! -f "$1" ] || [ ! -r "$1" ]; then
  echo "scripts/train.sh: $1: config file not found or not readable" >&2
  echo "usage: [NPROC_PER_NODE=N] scripts/train.sh <config.yaml>" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
NPROC="${NPROC_PER_NODE:-1}"
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
  echo "scripts/train.sh: NPROC_PER_NODE=$NPROC: must be a positive integer (processes on this node)" >&2
  exit 2
fi
if ! [[ "${NNODES:-1}" =~ ^[1-9][0-9]*$ ]]; then
  echo "scripts/train.sh: NNODES=${NNODES}: must be a positive integer (nodes)" >&2
  exit 2
fi
# A smoke profile's inputs under build/ (tiny model, synthetic data) are built here, once, when missing:
# the recipes only require them to exist.
"$PY" -m coordexp.smoke.inputs "$1" || exit 2
if [ "$NPROC" -eq 1 ] && [ "${NNODES:-1}" = "1" ]; then
  exec "$PY" -m coordexp.train "$1"
fi
RDZV=(--standalone)
if [ -n "${MASTER_PORT:-}" ] || [ "${NNODES:-1}" != "1" ]; then
  RDZV=(--nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}" --master_addr "${MASTER_ADDR:-127.0.0.1}"
        --master_port "${MASTER_PORT:-29500}")
fi
# Check the config once, at the launch's world size, before any rank starts: a bad config is then
# one error report instead of one per rank followed by torchrun's failure summary.
WORLD=$(( NPROC * ${NNODES:-1} ))
WORLD_SIZE="$WORLD" "$PY" -m coordexp.config "$1" > /dev/null || exit 2
echo "scripts/train.sh: torchrun: ${NPROC} process(es) per node (${RDZV[*]})" >&2
exec "$PY" -m torch.distributed.run "${RDZV[@]}" --nproc_per_node "$NPROC" -m coordexp.train "$1"
