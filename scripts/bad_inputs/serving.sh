# Serving: stage_2 launches, inference profiles and rollout-server requests a user or a client gets wrong
# (inputs in tests/fixtures/bad_inputs/serving/ or written to $WORK).
FIX=tests/fixtures/bad_inputs/serving

# scripts/train_stage2.sh: usage, a config the loader refuses, a config the launcher's preflight refuses
refuse 2 bash scripts/train_stage2.sh
refuse 2 bash scripts/train_stage2.sh "$WORK/no_such_stage2.yaml"
refuse 1 bash scripts/train_stage2.sh "$FIX/stage2_two_servers.yaml"
refuse 1 bash scripts/train_stage2.sh "$FIX/stage2_truncation_left.yaml"
refuse 1 bash scripts/train_stage2.sh "$FIX/stage2_do_resize.yaml"
refuse 2 env NPROC_PER_NODE=two bash scripts/train_stage2.sh "$FIX/stage2_do_resize.yaml"

# scripts/train.sh: DeepSpeed on a machine with no CUDA device; a bad process count
refuse 2 env CUDA_VISIBLE_DEVICES= bash scripts/train.sh "$FIX/train_deepspeed_cpu.yaml"
refuse 2 env NPROC_PER_NODE=0 bash scripts/train.sh "$FIX/train_deepspeed_cpu.yaml"

# scripts/infer.sh: a profile with a misspelt key and a batch size of 0 (both listed, each at its line)
refuse 2 bash scripts/infer.sh "$FIX/infer_bad_profile.yaml"

# The rollout server's CLI, and requests a client gets wrong, sent as a client sends them. `post` exits with
# the answer's status class (4 for a 4xx: a refusal; 5 for a 5xx: a bug) and prints the answer. The tiny
# model is the one the stage_2 smoke serves (built when missing).
refuse 2 "$PY" -m coordexp.generation.server --model "$WORK/no_model"
refuse 2 "$PY" -m coordexp.generation.server --model build/tiny-qwen3vl --host 0.0.0.0
# the server on a free port, as the launcher starts it (the run's token in its environment)
"$PY" -m coordexp.smoke.inputs configs/stage2_ab/smoke/tiny_cpu_server.yaml >/dev/null 2>&1
COORDEXP_ROLLOUT_TOKEN=bad-inputs-token "$PY" -m coordexp.generation.server --model build/tiny-qwen3vl --port 0 \
    >"$WORK/server.log" 2>&1 &
SERVING_PID=$!
for _ in $(seq 600); do
    grep -q "listening on" "$WORK/server.log" && break
    kill -0 "$SERVING_PID" 2>/dev/null || break
    sleep 0.1
done
URL=$(grep -o "http://127.0.0.1:[0-9]*" "$WORK/server.log")
if [ -z "$URL" ]; then
    kill -TERM "$SERVING_PID" 2>/dev/null
    cases=$((cases + 1)) failed=$((failed + 1))
    echo "smoke_bad_inputs: FAIL: the rollout server did not start:"
    tail -n 5 "$WORK/server.log" | sed 's/^/    /'
else
    post() {  # post URL CURL-ARGS...
        local url=$1 code
        shift
        code=$(curl -sS -o "$WORK/answer" -w '%{http_code}' -X POST "$@" "$url") || return 99
        echo "HTTP $code: $(cat "$WORK/answer")"
        return $((code / 100))
    }
    TOK=(-H "X-Coordexp-Rollout-Token: bad-inputs-token")
    JSON=(-H "Content-Type: application/json")
    mkfifo "$WORK/image.fifo"
    # a form body; a body that is not the /infer/ shape; an image that is a FIFO; a bad request_config
    refuse 4 post "$URL/infer/" -d 'infer_requests=1'
    refuse 4 post "$URL/infer/" "${JSON[@]}" -d '{"infer_requests": 3}'
    refuse 4 post "$URL/infer/" "${JSON[@]}" -d '{"infer_requests": [{"messages": [{"role": "user", "content":
        [{"type": "image", "image": "'"$WORK/image.fifo"'"}, {"type": "text", "text": "detect"}]}]}],
        "request_config": {"return_details": true, "max_tokens": 4, "seed": 1}}'
    refuse 4 post "$URL/infer/" "${JSON[@]}" \
        -d '{"infer_requests": [], "request_config": {"return_details": true, "n": 2}}'
    # weight sync: without the run's token; with it but a body ms-swift refuses; params before a communicator
    refuse 4 post "$URL/init_communicator/" "${JSON[@]}" -d '{"host": "127.0.0.1", "port": 1, "world_size": 2}'
    refuse 4 post "$URL/init_communicator/" "${TOK[@]}" "${JSON[@]}" -d '{"host": "127.0.0.1", "port": "x"}'
    refuse 4 post "$URL/update_flattened_params/" "${TOK[@]}" "${JSON[@]}" -d '{"metadatas": []}'
    kill -TERM "$SERVING_PID"  # as the launcher stops it: the server exits 0
    wait "$SERVING_PID" && ! grep -q "Traceback (most recent call last)" "$WORK/server.log" || {
        cases=$((cases + 1)) failed=$((failed + 1))
        echo "smoke_bad_inputs: FAIL: the rollout server did not exit 0 on TERM, or logged a traceback"
        tail -n 5 "$WORK/server.log" | sed 's/^/    /'
    }
fi
