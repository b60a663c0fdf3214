#!/usr/bin/env bash
# scripts/lib/run_module.sh MODULE SCRIPT <config.yaml>: what scripts/infer.sh and scripts/eval.sh share:
# the one-argument check, then `python -m MODULE <config>` with the repository's venv when there is one
# ($PYTHON overrides). SCRIPT is the caller's name for the messages.
set -euo pipefail
module=$1 script=$2
shift 2
if [ $# -ne 1 ]; then
  echo "usage: $script <config.yaml>" >&2
  exit 2
fi
if [ ! -f "$1" ] || [ ! -r "$1" ]; then
  echo "$script: $1: config file not found or not readable" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
exec "$PY" -m "$module" "$1"
