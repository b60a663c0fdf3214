#!/usr/bin/env bash
# scripts/eval.sh <config.yaml>: runs `python -m coordexp.eval <config>` with the repository's venv when there is one.
# See docs/inference-and-evaluation.md for the config sections and the artifact.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/lib/run_module.sh" coordexp.eval scripts/eval.sh "$@"
