# Sourced by the smoke scripts: ROOT (the repository), the Python to run (PY: $PYTHON, else the repository's
# venv, else python3, exported as PYTHON for the tools they call) and this checkout's code on PYTHONPATH.
# Leaves the caller in ROOT.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export PYTHON="$PY" TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's code, whatever the venv points at
