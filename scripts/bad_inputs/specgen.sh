# specgen on projects a user gets wrong: a copy of tests/fixtures/compiler-basic in $WORK with one bad piece
# from tests/fixtures/bad_inputs/specgen/ (a pyproject, a lock, a hand-written file where specgen writes).
SG_BAD=tests/fixtures/bad_inputs/specgen

# sg_project NAME: a fresh copy of the fixture project at $WORK/sg-NAME (printed).
sg_project() {
    rm -rf "$WORK/sg-$1"
    cp -r tests/fixtures/compiler-basic "$WORK/sg-$1"
    chmod -R u+w "$WORK/sg-$1"
    echo "$WORK/sg-$1"
}

# [tool.specgen] with a misspelt key, a path out of the project, no OpenSpec folder; a pyproject that is not TOML
sg_p=$(sg_project unknown-key) && cp "$SG_BAD/unknown_key.toml" "$sg_p/pyproject.toml"
refuse 2 "$PY" -m specgen check --root "$sg_p"
refuse 2 "$PY" -m specgen report --gate --root "$sg_p"
sg_p=$(sg_project outside) && cp "$SG_BAD/output_outside.toml" "$sg_p/pyproject.toml"
refuse 2 "$PY" -m specgen generate --root "$sg_p"
sg_p=$(sg_project not-toml) && cp "$SG_BAD/not_toml.toml" "$sg_p/pyproject.toml"
refuse 2 "$PY" -m specgen list --root "$sg_p"
sg_p="$WORK/sg-no-openspec" && mkdir -p "$sg_p" && cp "$SG_BAD/no_openspec.toml" "$sg_p/pyproject.toml"
refuse 2 "$PY" -m specgen generate --root "$sg_p"
refuse 2 "$PY" -m specgen show greeting --root "$sg_p"

# a scenario id that names nothing; a change that does not exist
sg_p=$(sg_project ids)
refuse 2 "$PY" -m specgen stub greeting/no/such --root "$sg_p"
refuse 2 "$PY" -m specgen apply no-such-change --root "$sg_p"

# a damaged lock; a test file specgen did not write where it writes its own
sg_p=$(sg_project lock) && cp "$SG_BAD/short_line.lock" "$sg_p/specgen.lock"
refuse 2 "$PY" -m specgen check --root "$sg_p"
sg_p=$(sg_project foreign) && mkdir -p "$sg_p/generated" && cp "$SG_BAD/foreign_test.py" "$sg_p/generated/test_greeting.py"
refuse 2 "$PY" -m specgen generate --root "$sg_p"

# several roots: one that does not exist, an item two roots hold
sg_p="$WORK/sg-mono" && rm -rf "$sg_p" && cp -r tests/fixtures/monorepo "$sg_p" && chmod -R u+w "$sg_p"
refuse 2 "$PY" -m specgen check --only gamma --root "$sg_p"
refuse 2 "$PY" -m specgen show greet --root "$sg_p"

# the GitHub action's extra arguments with an unbalanced quote
# (the action runs in the project folder: $PY made absolute, this checkout's specgen on the path)
sg_p=$(sg_project action)
case "$PY" in /*) sg_py=$PY ;; */*) sg_py=$PWD/$PY ;; *) sg_py=$PY ;; esac
refuse 2 env -C "$sg_p" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" SPECGEN_ARGS="--source-url 'https://example.com" \
    "$sg_py" -m specgen.cli.action report
unset sg_p sg_py
