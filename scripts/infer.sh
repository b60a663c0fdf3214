#!/usr/bin/env bash
# scripts/infer.sh <config.yaml>: runs `python -m coordexp.infer <config>` with the repository's venv when there is one.
# See docs/inference-and-evaluation.md for the config sections and the artifact.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: scripts/infer.sh <config.yaml>" >&2
  exit 2
fi
if [ ! -f "$1" ] || [ ! -r "$1" ]; then
  echo "scripts/infer.sh: $1: config file not found or not readable" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
exec "$PY" -m coordexp.infer "$1"
