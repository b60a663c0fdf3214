# Training configs a user gets wrong (tests/fixtures/bad_inputs/config/ or written to $WORK).
refuse 2 bash scripts/train.sh "$WORK/missing.yaml"
printf 'unknown_top: 1\n' >"$WORK/unknown_top.yaml"
refuse 2 bash scripts/train.sh "$WORK/unknown_top.yaml"
