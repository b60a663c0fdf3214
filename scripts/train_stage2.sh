#!/usr/bin/env bash
# Stage-2 AB training with a rollout server: scripts/train_stage2.sh <config.yaml>
#
# 1. CPU preflight (python -m coordexp.stage2.launcher preflight): config, one server, URL, model dir,
#    max_model_len coherence, disjoint GPUs, JSONL guards. Nothing starts if it fails.
# 2. The rollout server starts in its own process group (setsid) on COORDEXP_STAGE2_SERVER_GPUS:
#    `swift rollout` (vLLM), or the CPU loopback server with COORDEXP_STAGE2_SERVER_IMPL=loopback.
# 3. Readiness: GET /health/ every COORDEXP_STAGE2_READY_INTERVAL_S (2) s until 200, at most
#    COORDEXP_STAGE2_READY_TIMEOUT_S (900) s; then GET /get_world_size/ must equal DP x TP (else exit 1).
# 4. The learner runs on COORDEXP_STAGE2_LEARNER_GPUS with the COORDEXP_STAGE2_* variables exported
#    (recorded in run_metadata.json): `python -m coordexp.train <config>`, or
#    COORDEXP_STAGE2_LEARNER_CMD (tests) run with the config path as its last argument.
#    Several learner processes (DDP) as scripts/train.sh starts them: NPROC_PER_NODE=N (default: one
#    per GPU in COORDEXP_STAGE2_LEARNER_GPUS, else 1) launches N ranks with torchrun
#    (`python -m torch.distributed.run --standalone`); CPU ranks talk over gloo. Rank 0 alone pushes
#    the weights to the server, once per Channel-B step, after the ranks agree (weight_sync.maybe_sync).
# On every exit path (learner done or failed, INT, TERM) the server's process group gets TERM,
# then KILL after 3 s. The script exits with the learner's status (1 when preflight or readiness fails).
set -uo pipefail
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
  [ $# -eq 1 ] && echo "error: $1: config file not found" >&2
  echo "usage: scripts/train_stage2.sh <config.yaml>" >&2
  exit 2
fi
CONFIG="$1"
if [ -n "${NPROC_PER_NODE:-}" ]; then
  NPROC="$NPROC_PER_NODE"
elif [ -n "${COORDEXP_STAGE2_LEARNER_GPUS:-}" ]; then
  IFS=, read -r -a _gpus <<< "$COORDEXP_STAGE2_LEARNER_GPUS"
  NPROC="${#_gpus[@]}"
else
  NPROC=1
fi
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
  echo "scripts/train_stage2.sh: NPROC_PER_NODE=$NPROC: must be a positive integer (learner processes)" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export PYTHON="$PY"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"

# A smoke profile's inputs under build/ (tiny model, synthetic data), built when missing (progress on stderr).
"$PY" -m coordexp.smoke.inputs "$CONFIG" || exit 1
# The preflight loads the config at the learner's world size (effective_batch_size must divide by it).
ENV_LINES="$(WORLD_SIZE="$NPROC" "$PY" -m coordexp.stage2.launcher preflight "$CONFIG")" || exit 1
eval "$ENV_LINES"
# Tests only: replace the server command (e.g. a server that ignores TERM).
[ -n "${COORDEXP_STAGE2_SERVER_CMD_OVERRIDE:-}" ] && COORDEXP_STAGE2_SERVER_CMD="$COORDEXP_STAGE2_SERVER_CMD_OVERRIDE"

SERVER_PID=""
LEARNER_PID=""
# stop_group NAME PID: TERM the process group PID, KILL it if still there after 3 s.
stop_group() {
  local name="$1" pid="$2"
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  echo "train_stage2: stopping $name (process group $pid)" >&2
  kill -TERM -- "-$pid" 2>/dev/null
  for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || break
    [ -r "/proc/$pid/stat" ] && [ "$(cut -d')' -f2 "/proc/$pid/stat" | awk '{print $1}')" = Z ] && break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null && [ "$(cut -d')' -f2 "/proc/$pid/stat" 2>/dev/null | awk '{print $1}')" != Z ]; then
    echo "train_stage2: $name ignored TERM for 3 s: KILL" >&2
    kill -KILL -- "-$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$LEARNER_PID" ] && stop_group learner "$LEARNER_PID"
  [ -n "$SERVER_PID" ] && stop_group "rollout server" "$SERVER_PID"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "train_stage2: starting rollout server: $COORDEXP_STAGE2_SERVER_CMD" >&2
# Without job control a background job is not a group leader, so setsid execs in place:
# $! is the server's pid and its process-group id.
# CUDA_VISIBLE_DEVICES is set only when GPUs are named (an empty value would hide every GPU).
SERVER_ENV=(); LEARNER_ENV=()
[ -n "$COORDEXP_STAGE2_SERVER_GPUS" ] && SERVER_ENV=("CUDA_VISIBLE_DEVICES=$COORDEXP_STAGE2_SERVER_GPUS")
[ -n "$COORDEXP_STAGE2_LEARNER_GPUS" ] && LEARNER_ENV=("CUDA_VISIBLE_DEVICES=$COORDEXP_STAGE2_LEARNER_GPUS")
eval "env \"\${SERVER_ENV[@]}\" setsid $COORDEXP_STAGE2_SERVER_CMD &"
SERVER_PID=$!

"$PY" -m coordexp.stage2.launcher wait "$COORDEXP_STAGE2_SERVER_BASE_URL" \
  --interval "${COORDEXP_STAGE2_READY_INTERVAL_S:-2}" --timeout "${COORDEXP_STAGE2_READY_TIMEOUT_S:-900}" \
  --pid "$SERVER_PID" \
  --expect-world-size "$(( COORDEXP_STAGE2_SERVER_DP * COORDEXP_STAGE2_SERVER_TP ))" || exit 1

if [ -n "${COORDEXP_STAGE2_LEARNER_CMD:-}" ]; then
  eval "env \"\${LEARNER_ENV[@]}\" setsid $COORDEXP_STAGE2_LEARNER_CMD \"\$CONFIG\" &"  # & inside: $! is the learner
elif [ "$NPROC" -gt 1 ]; then
  echo "train_stage2: torchrun: ${NPROC} learner process(es)" >&2
  env "${LEARNER_ENV[@]}" setsid "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" \
    -m coordexp.train "$CONFIG" &
else
  env "${LEARNER_ENV[@]}" setsid "$PY" -m coordexp.train "$CONFIG" &
fi
LEARNER_PID=$!
wait "$LEARNER_PID"
rc=$?
LEARNER_PID=""
exit "$rc"
