#!/usr/bin/env bash
# Stage-1 training: scripts/train.sh <config.yaml>
# Runs `python -m coordexp.train <config>` with the repository's venv when there is one.
# Builds what a smoke profile needs under build/ (tiny model, synthetic data) when missing.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: scripts/train.sh <config.yaml>" >&2
  exit 2
fi
if [ ! -f "$1" ] || [ ! -r "$1" ]; then
  echo "scripts/train.sh: $1: config file not found or not readable" >&2
  echo "usage: scripts/train.sh <config.yaml>" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
exec "$PY" -m coordexp.train "$1"
