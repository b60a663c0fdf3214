#!/usr/bin/env bash
# specgen as its users run it on projects with checks, each a copy of a fixture in a temporary folder
# (nothing is written inside the repository):
# - tests/fixtures/compiler-basic: read and validate the specs, generate, check, run the generated tests, gate
#   the report; add a scenario and write its check from `stub --write`; review an edited scenario; follow a
#   rename with its anchor; compile, gate and apply a change; record a manual check's evidence; the GitHub
#   action's three steps;
# - the same specs adopted as they are: init, a baseline holding the tree's problems, the ratchet;
# - tests/fixtures/monorepo: several OpenSpec roots; tests/fixtures/proof-basic: a project with proof settings.
# Every step must exit with the status docs/compiler.md gives and print no traceback. An entrypoint of
# `make proof` (docs/proof.md): it puts the compiler's reading of checks, the lock, the generator, review and
# the report on the path of their checks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's specgen (the fixture's checks import it)
# The evidence record needs a git checkout; this machine's git configuration (signing, hooks) stays out of it.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
unset GITHUB_ACTIONS GITHUB_STEP_SUMMARY CI
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
steps=0

# step EXIT COMMAND...: run COMMAND in the current folder; it must exit EXIT without a traceback.
step() {
  local want=$1 got=0
  shift
  steps=$((steps + 1))
  "$@" >"$WORK/out" 2>&1 || got=$?
  if [ "$got" != "$want" ] || grep -q "Traceback (most recent call last)" "$WORK/out"; then
    echo "scripts/specgen_smoke.sh: exit $got (want $want): $*" >&2
    tail -n 20 "$WORK/out" >&2
    exit 1
  fi
}
# has TEXT: the last step's output holds TEXT.
has() {
  if ! grep -qF -- "$1" "$WORK/out"; then
    echo "scripts/specgen_smoke.sh: expected '$1' in the output of step $steps" >&2
    tail -n 20 "$WORK/out" >&2
    exit 1
  fi
}
sg() { "$PY" -m specgen "$@"; }
tests() { "$PY" -m pytest generated -q -p no:cacheprovider --junitxml=build/specgen/junit.xml "$@"; }
SPEC=openspec/specs/greeting/spec.md
CHECKS=checks/greeting.py

# ---- a project with checks: read, generate, check, test, gate
P="$WORK/greeter"
cp -r "$ROOT/tests/fixtures/compiler-basic" "$P"
chmod -R u+w "$P"
cd "$P"
printf '\n[tool.specgen.junit]\nxray = true\n' >>pyproject.toml
printf "build/\n" >.gitignore
git init -q . && git config user.name Ada && git config user.email ada@example.com && git add -A && git commit -q -m "greeter"
step 0 sg list --specs
step 0 sg show greeting --json
step 0 sg validate --all
step 0 sg generate
has "1 written"
step 0 sg generate --check
step 0 sg check
has "specgen check: ok;"
step 0 tests
step 0 sg report --gate
has "2/2 requirements verified"

# ---- a new scenario: unbound until its check is written from the stub, then unreviewed until reviewed
printf '\n#### Scenario: Wave\n- **WHEN** leaving\n- **THEN** the greeter waves\n' >>"$SPEC"
step 1 sg check --format github
has "::error file=$SPEC"
step 0 sg stub greeting/farewell/wave --write
has "$CHECKS"
"$PY" - "$CHECKS" <<'EOF'
import sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
head, tail = text.split("def check_wave():", 1)
# the user's check replaces the stub's body
open(path, "w", encoding="utf-8").write(head + 'def check_wave():\n    assert "wave"\n')
EOF
step 0 sg generate
step 1 sg check --format json
has '"unreviewed-binding"'
step 0 sg review greeting/farewell/wave
has "1 binding(s) stamped"

# ---- an edited scenario makes its binding suspect; a rename is followed through its anchor
sed -i 's/- \*\*THEN\*\* it returns "Bye."/- **THEN** it returns "Bye." politely/' "$SPEC"
step 1 sg generate --check
has '+    THEN it returns "Bye." politely'
step 0 sg generate
step 1 sg check
has "[suspect-binding]"
step 0 sg review --all
sed -i 's/^#### Scenario: Goodbye$/#### Scenario: Saying goodbye/' "$SPEC"
step 1 sg check
has "greeting/farewell/goodbye -> greeting/farewell/saying-goodbye"
sed -i 's/^#### Scenario: Saying goodbye$/#### Scenario: Saying goodbye\n<!-- specgen-id: greeting\/farewell\/goodbye -->/' "$SPEC"
step 0 sg generate
step 1 sg check
has "the scenario text changed"
step 0 sg review greeting/farewell/goodbye
step 0 sg check
sed -i 's/^### Requirement: Greet by name$/### Requirement: Greet a person by name/' "$SPEC"
step 1 sg check
has "requirement greeting/greet-by-name -> greeting/greet-a-person-by-name"
sed -i 's/^### Requirement: Greet a person by name$/### Requirement: Greet by name/' "$SPEC"

# ---- a change: listed, validated, compiled apart, gated on request, applied
mkdir -p openspec/changes/add-nod/specs/greeting
printf '## Why\nThe greeter nods.\n\n## What Changes\n- greeting: nod\n' >openspec/changes/add-nod/proposal.md
printf '## ADDED Requirements\n### Requirement: Nod\nThe greeter SHALL nod.\n\n#### Scenario: Nod once\n- **WHEN** the greeter nods\n- **THEN** its head moves once\n' \
  >openspec/changes/add-nod/specs/greeting/spec.md
mkdir -p openspec/changes/rename-farewell/specs/greeting
printf '## Why\nA warmer name.\n\n## What Changes\n- greeting: rename Farewell\n' >openspec/changes/rename-farewell/proposal.md
printf '## RENAMED Requirements\n- FROM: `### Requirement: Farewell`\n- TO: `### Requirement: Parting words`\n' \
  >openspec/changes/rename-farewell/specs/greeting/spec.md
step 0 sg list
has "add-nod"
step 0 sg show add-nod
step 0 sg validate add-nod --strict
step 0 sg generate --change add-nod
step 0 sg generate
step 1 sg check --change add-nod
has "has no check (change add-nod)"
printf '\n\n@check("greeting", "Nod", "Nod one")\ndef check_nod():\n    assert "nod"\n' >>"$CHECKS"
step 1 sg generate
has "check_nod is bound to nothing"
sed -i 's/@check("greeting", "Nod", "Nod one")/@check("greeting", "Nod", "Nod once")/' "$CHECKS"
step 0 sg apply add-nod --dry-run
step 0 sg apply add-nod
step 0 sg generate
step 0 test -f generated/changes/test_rename_farewell__greeting.py
step 0 sg review greeting/nod/nod-once

# ---- a manual scenario with its evidence record; the tests and the gate, as the GitHub action runs them
printf '\n\n@check("greeting", "Farewell", "Wave", manual="manual/wave.md")\ndef check_wave_by_hand():\n    """A person watches the greeter wave."""\n' >>"$CHECKS"
mkdir -p manual
printf '# Wave by hand\n1. Say goodbye.\n2. Watch the greeter wave.\n' >manual/wave.md
step 0 sg generate
step 0 sg review --all
git add -A && git commit -q -m "greeter: nod, wave"
step 0 sg evidence greeting/farewell/wave --result pass --notes "watched it"
git add -A && git commit -q -m "evidence"
export GITHUB_ACTIONS=true GITHUB_STEP_SUMMARY="$WORK/summary.md" GITHUB_WORKSPACE="$P" CI=true
step 0 "$PY" -m specgen.cli.action check
step 0 "$PY" -m specgen.cli.action tests
step 0 "$PY" -m specgen.cli.action report
unset GITHUB_ACTIONS GITHUB_STEP_SUMMARY GITHUB_WORKSPACE CI
step 1 sg report --gate --no-manual
has "[manual]"
step 0 sg report --gate --source-url "https://example.com/greeter/blob/main/"
has "3/3 requirements verified (1 manual)"

# ---- adoption of a tree as it is: init, a baseline at zero coverage that holds the tree's problems (names
# without ASCII letters, two scenarios whose ids collide, a spec saved in GBK), then the ratchet
A="$WORK/adopt"
mkdir -p "$A"
cp -r "$ROOT/tests/fixtures/compiler-basic/openspec" "$A/openspec"
chmod -R u+w "$A"
printf '[project]\nname = "greeter"\n' >"$A/pyproject.toml"
cd "$A"
printf '\n#### Scenario: Goodbye!\n- **WHEN** it says goodbye loudly\n- **THEN** it returns "BYE."\n' >>"$SPEC"
mkdir -p openspec/specs/hud openspec/specs/radar
printf '# hud\n\n## Purpose\n界面。\n\n## Requirements\n### Requirement: 显示血量\n系统 SHALL 显示血量。\n\n#### Scenario: 受伤\n- **WHEN** 受伤\n- **THEN** 血量减少\n' \
  >openspec/specs/hud/spec.md
printf '# radar\n\n## Purpose\n雷达。\n\n## Requirements\n### Requirement: 显示敌人\n系统 SHALL 显示敌人。\n' |
  "$PY" -c 'import sys; sys.stdout.buffer.write(sys.stdin.buffer.read().decode("utf-8").encode("gbk"))' \
  >openspec/specs/radar/spec.md
step 0 sg init
has "appended [tool.specgen]"
step 0 sg init
has "nothing to do"
step 1 sg generate
has "collides"
has "openspec/specs/radar/spec.md"
step 1 sg report --gate
step 0 sg baseline
has "static problem(s)"
step 0 sg report --gate
has "baselined"
cp "$ROOT/tests/fixtures/compiler-basic/checks/greeting.py" tests/checks/greeting.py
step 1 sg generate  # the listed problems are still named
step 0 sg review --all
step 0 "$PY" -m pytest tests/generated -q -p no:cacheprovider  # the baselined gaps are not run
step 1 sg report --gate
has "ratchet: greeting/greet-by-name is verified now"
step 0 sg baseline --update
has "dropped greeting/greet-by-name"
step 0 sg report --gate

# ---- several OpenSpec roots
M="$WORK/mono"
cp -r "$ROOT/tests/fixtures/monorepo" "$M"
chmod -R u+w "$M"
cd "$M"
step 0 sg generate
has "== root alpha"
step 0 tests
step 0 sg report --gate
has "total over 2 roots"
step 0 sg check --only beta
mkdir -p packages/beta/openspec/changes/add-wave/specs/greet
printf '## Why\nThe beta greeter waves.\n\n## What Changes\n- greet: wave\n' >packages/beta/openspec/changes/add-wave/proposal.md
printf '## ADDED Requirements\n### Requirement: Wave\nThe greeter SHALL wave.\n\n#### Scenario: Wave hello\n- **WHEN** the greeter waves\n- **THEN** a hand is raised\n' \
  >packages/beta/openspec/changes/add-wave/specs/greet/spec.md
step 0 sg validate add-wave
step 0 sg apply add-wave --dry-run
has "would archive 'add-wave'"
rm pyproject.toml
step 0 sg init
has 'roots = ["packages/*/openspec"]'

# ---- a project that measures proof ([tool.specgen.proof]): before its first `specgen proof` run the report
# shows reach as unmeasured and the proof gate fails
Q="$WORK/calc"
cp -r "$ROOT/tests/fixtures/proof-basic" "$Q"
chmod -R u+w "$Q"
cd "$Q"
sed "s|{python}|$PY|" pyproject.toml.in >pyproject.toml
step 0 sg generate
step 0 "$PY" -m pytest tests/generated -q -p no:cacheprovider
step 1 sg report --gate
has 'not proven: calc / Addition: Two numbers: reach unmeasured: run `specgen proof`'
# then measured: reach and a few mutants; the gate names the off-path and the weak requirement, and the
# Markdown report shows the findings and survivors
step 0 sg proof --mutants 3 --seed 0
step 1 sg report --gate
has 'not proven: calc / '
grep -q 'Proof' build/specgen/report.md || { echo "scripts/specgen_smoke.sh: report.md has no Proof section" >&2; exit 1; }

echo "scripts/specgen_smoke.sh: $steps steps ok"
