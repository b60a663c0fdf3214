#!/usr/bin/env bash
# The product's own commands on bad inputs, as users hit them: every case must be refused cleanly (the exit
# status it names, no Python traceback). The cases live in scripts/bad_inputs/<area>.sh, one `refuse` line each;
# their inputs under tests/fixtures/bad_inputs/<area>/ (or built in a temporary folder by the area file).
# A [tool.specgen.proof] entrypoint: the refusal paths are part of what the product runs.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cases=0
failed=0

# refuse EXIT COMMAND...: COMMAND must exit with status EXIT and print no traceback.
refuse() {
    local want=$1 out got
    shift
    cases=$((cases + 1))
    out=$("$@" 2>&1)
    got=$?
    if [ "$got" != "$want" ] || grep -q "Traceback (most recent call last)" <<<"$out"; then
        failed=$((failed + 1))
        echo "smoke_bad_inputs: FAIL: exit $got (want $want): $*"
        tail -n 5 <<<"$out" | sed 's/^/    /'
    fi
}

for area in scripts/bad_inputs/*.sh; do
    [ -e "$area" ] || continue
    # shellcheck source=/dev/null
    . "$area"
done
echo "smoke_bad_inputs: $cases case(s), $failed failed"
[ "$failed" = 0 ] && [ "$cases" -gt 0 ]
