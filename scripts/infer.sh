#!/usr/bin/env bash
# scripts/infer.sh <config.yaml>: runs `python -m coordexp.infer <config>` with the repository's venv when there is one.
# See docs/inference-and-evaluation.md for the config sections and the artifact.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/lib/run_module.sh" coordexp.infer scripts/infer.sh "$@"
