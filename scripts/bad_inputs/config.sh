# Training configs a user gets wrong (tests/fixtures/bad_inputs/config/ or written to $WORK).
C=tests/fixtures/bad_inputs/config
refuse 2 bash scripts/train.sh "$WORK/missing.yaml"
printf 'unknown_top: 1\n' >"$WORK/unknown_top.yaml"
refuse 2 bash scripts/train.sh "$WORK/unknown_top.yaml"
# a value outside its enumeration; an unimplemented feature switched on; an alias bomb (refused unexpanded)
refuse 2 bash scripts/train.sh "$C/enum_typo.yaml"
refuse 2 bash scripts/train.sh "$C/inert_only_on.yaml"
refuse 2 bash scripts/train.sh "$C/alias_bomb.yaml"
# loads at one process, refused by the launch check (python -m coordexp.config) at two
refuse 2 env NPROC_PER_NODE=2 bash scripts/train.sh "$C/batch_per_rank.yaml"
# resuming from a checkpoint whose adapter file an interrupted save left empty (the smoke profile's inputs)
mkdir -p "$WORK/run/checkpoint-2" && : >"$WORK/run/checkpoint-2/adapter_model.safetensors"
printf 'extends: %s\ntraining:\n  output_dir: %s\n  resume_from_checkpoint: %s\n' \
    "$PWD/configs/stage1/smoke/tiny_cpu.yaml" "$WORK/resumed" "$WORK/run/checkpoint-2" >"$WORK/resume.yaml"
refuse 2 bash scripts/train.sh "$WORK/resume.yaml"
