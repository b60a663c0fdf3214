"""The names the proof run and its pytest plugin share (no imports: `specgen report` reads proof.json through
:mod:`specgen.proof.attach` without loading pytest or coverage.py)."""

from __future__ import annotations

PROOF_NAME = "proof.json"  # in the report folder

SEP = "|"
EXCEPTIONS_ENV = "SPECGEN_PROOF_EXCEPTIONS"
# A JSON list of context names: an incremental run deselects every generated test of another binding.
ONLY_ENV = "SPECGEN_PROOF_ONLY"
# The context of the running test, for the processes it starts: the proof run's coverage config reads it as
# the static context (`context = ${SPECGEN_PROOF_CONTEXT-}`), so a check that runs the product in a
# subprocess (a script, a CLI call) is credited with what that subprocess executes.
CONTEXT_ENV = "SPECGEN_PROOF_CONTEXT"


def context_name(view: str, scenario_id: str, check: str) -> str:
    return SEP.join((view or "specs", scenario_id, check))


SUB = "sub"  # the first part of a context recorded in a process the test started


def parse_context(name: str) -> tuple[str, str, str] | None:
    parts = name.split(SEP)
    if len(parts) == 4 and parts[0] == SUB:
        parts = parts[1:]
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def in_subprocess(name: str) -> bool:
    return name.startswith(SUB + SEP)
