# Two entry points (see README): `make spec-tests` (the main job) and `make test` (everything).
# Each installs on first use what it needs: a venv with the pinned packages, and the pinned
# OpenSpec CLI (the parity oracle) under tools/openspec/node_modules.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := .stamps
REPORT := build/specgen

# The OpenSpec CLI offline and quiet.
export OPENSPEC_TELEMETRY := 0
export DO_NOT_TRACK := 1
export OPENSPEC_NO_UPDATE_CHECK := 1
export NO_COLOR := 1

.PHONY: help setup spec-tests test unit lint bench proof clean

help:
	@echo "make spec-tests   generate tests from openspec/, run them (with reach: docs/proof.md), write $(REPORT)/report.*, gate"
	@echo "make test         the whole suite: spec-tests, then specgen's and coordexp's own tests"
	@echo "make lint         ruff check and ruff format --check (part of test)"
	@echo "make bench        the benchmarks under bench/ (not part of test)"
	@echo "make proof        reach of every check vs the entrypoints, and a sampled mutation run (not part of test)"
	@echo "make setup        only install (venv + pinned packages + OpenSpec CLI)"

setup: $(STAMPS)/venv $(STAMPS)/oracle

$(STAMPS)/venv: pyproject.toml src/pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]' -e './src[pipeline]'
	@touch $@

$(STAMPS)/oracle: tools/openspec/package.json tools/openspec/package-lock.json
	@mkdir -p $(STAMPS)
	cd tools/openspec && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# generate -> run the generated tests -> report -> gate. The gate, not pytest's exit
# status, decides: a failing test makes its requirement unverified, and the gate says which.
# The specs' generated tests run once, under coverage.py, with the [tool.specgen.proof] entrypoints
# (`specgen proof --full --mutants 0`: docs/proof.md), so the gate ([tool.specgen.proof] gate = true) also
# fails a scenario whose check runs product code no entrypoint runs. Tests of active changes
# (tests/generated/changes/) run too, for the report; they gate nothing and are not measured. The report
# and its gate run even when an entrypoint failed (proof exits 1 then); the target fails when either does.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

spec-tests: setup
	$(BIN)/specgen generate
	@mkdir -p $(REPORT) && rm -f $(REPORT)/results.json
	$(BIN)/specgen proof --full --mutants 0 --jobs $(JOBS); status=$$?; \
	if [ -d tests/generated/changes ]; then $(BIN)/python -m pytest tests/generated/changes -q -p no:cacheprovider; fi; \
	$(BIN)/specgen report --gate && exit $$status

unit: setup
	$(BIN)/python -m pytest tests --ignore=tests/generated -q -n 2

# Lint and format over the hand-written code (the configuration is in pyproject.toml).
LINTED := specgen src/coordexp scripts tests/checks

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

test: lint spec-tests unit

# Reach and strength (docs/proof.md): the generated tests and [tool.specgen.proof] entrypoints under
# coverage.py, then PROOF_MUTANTS mutants per requirement within PROOF_BUDGET seconds; the report shows both.
PROOF_MUTANTS ?= 3
PROOF_BUDGET  ?= 1800
PROOF_SEED    ?= 0

# The proof run's own test outcomes go into $(REPORT)/results.json, so the report shows verdicts and reach from
# one run. Reach is incremental when the last run's records are usable (docs/proof.md); PROOF_FULL=1 reruns all.
proof: setup
	$(BIN)/specgen generate
	$(BIN)/specgen proof --jobs 2 --mutants $(PROOF_MUTANTS) --budget $(PROOF_BUDGET) --seed $(PROOF_SEED) $(if $(PROOF_SINCE),--since $(PROOF_SINCE)) $(if $(PROOF_FULL),--full)
	$(BIN)/specgen report

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build $(STAMPS)
