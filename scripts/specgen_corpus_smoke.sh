#!/usr/bin/env bash
# specgen as a user runs it over a public OpenSpec tree: a copy of one corpus (default agent-validator,
# from ../shared/corpora or $SPECGEN_CORPORA) under build/, then init, generate, check, report. An
# entrypoint of `make proof` (docs/proof.md): it puts specgen's own code on the path of its checks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
CORPORA="${SPECGEN_CORPORA:-../shared/corpora}"
case "$CORPORA" in /*) ;; *) CORPORA="$ROOT/$CORPORA" ;; esac
SRC="$CORPORA/${1:-agent-validator}"
if [ ! -d "$SRC/openspec" ]; then
  echo "scripts/specgen_corpus_smoke.sh: no OpenSpec corpus at $SRC; set SPECGEN_CORPORA" >&2
  exit 2
fi
OUT="$ROOT/build/specgen-corpus"
rm -rf "$OUT"
mkdir -p "$OUT"
cp -r "$SRC/openspec" "$OUT/openspec"
chmod -R u+w "$OUT"
printf '[project]\nname = "corpus"\n' > "$OUT/pyproject.toml"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's specgen
cd "$OUT"
"$PY" -m specgen list --specs > /dev/null
"$PY" -m specgen validate --all > /dev/null 2>&1 || true  # the corpus has invalid specs; reading them is the point
"$PY" -m specgen init
"$PY" -m specgen generate
"$PY" -m specgen check > /dev/null || true  # every scenario is unbound: check reports them
"$PY" -m specgen report > /dev/null
echo "specgen over $(basename "$SRC"): ok"
