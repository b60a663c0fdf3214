# Training data a user gets wrong, through the commands that read it (inputs under tests/fixtures/bad_inputs/data/
# or built in $WORK): the launcher's pre-check, a training run, inference, the offline converter and the
# template inspector.
D=tests/fixtures/bad_inputs/data
V=scripts/tools/validate_jsonl.py
C=scripts/tools/convert_jsonl.py

# validate_jsonl.py: exit 1 and one `file:line: error: path: message` line per problem; 2 on bad usage.
refuse 1 "$PY" "$V" "$D/records.jsonl"   # legacy key, unknown key, size rules, desc, arity, order, coord values
refuse 1 "$PY" "$V" "$D/strict_json.jsonl"   # NaN, a duplicate key, a cut line
refuse 1 "$PY" "$V" "$D/messages.jsonl"   # pre-rendered messages: content not a list, a turn not an object
{
    cat "$D/hostile.jsonl"   # a lone surrogate, metadata nested past the depth bound
    head -c 100000 /dev/zero | tr '\0' '['   # nesting that would exhaust the decoder's stack
    echo
} >"$WORK/hostile.jsonl"
refuse 1 "$PY" "$V" "$WORK/hostile.jsonl"
refuse 1 "$PY" "$V" "$D/images.jsonl"   # size on disk, missing image, '..' and absolute paths
refuse 1 "$PY" "$V" "$D/bomb.jsonl" --max-pixels 1000000000   # refused by its header, never decoded
mkdir -p "$WORK/real_images" "$WORK/linked"
cp "$D/images/a.png" "$WORK/real_images/a.png"
ln -s ../real_images "$WORK/linked/images"
printf '{"images": ["images/a.png"], "width": 64, "height": 64, "objects": []}\n' >"$WORK/linked/train.jsonl"
refuse 1 "$PY" "$V" "$WORK/linked/train.jsonl"   # the images folder is a symlink
refuse 1 "$PY" "$V" "$D/stage2.jsonl" --stage stage2   # a poly and an image without objects
refuse 1 "$PY" "$V" "$WORK/no_such.jsonl"
refuse 2 "$PY" "$V" "$D/records.jsonl" --stage stage3

# A training run on a JSONL that breaks the contract stops before the first step (exit 2, every problem listed).
refuse 2 bash scripts/train.sh "$D/stage1_records.yaml"
# So does inference over it, before the checkpoint loads.
refuse 2 bash scripts/infer.sh "$D/infer_records.yaml"

# convert_jsonl.py: an unreadable line or an object without pixel geometry is exit 2; objects that no repair
# makes valid are dropped and counted (exit 0; here one poly outside the grid and one box outside the image),
# never silently; a poly of zero area becomes its extent box.
refuse 2 "$PY" "$C" "$D/pixels_not_json.jsonl" "$WORK/converted.jsonl"
refuse 2 "$PY" "$C" "$D/pixels_no_geometry.jsonl" "$WORK/converted.jsonl"
refuse 0 "$PY" "$C" "$D/pixels_polys.jsonl" "$WORK/polys.coord.jsonl"

# inspect_chat_template.py: a desc holding a chat-control token is refused when the sample is encoded.
refuse 2 "$PY" scripts/tools/inspect_chat_template.py "$D/control_token_desc.jsonl"
