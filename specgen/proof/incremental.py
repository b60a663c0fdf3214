"""Incremental reach: which checks a reach run must rerun, and what it keeps from the last run.

The last run leaves ``<report dir>/proof/checks.json``: per binding (its context name) the inputs it was
measured on and what it executed (the lines :mod:`specgen.proof.reach` needs, and every measured file it ran
a line of). A binding is rerun when it has no record, when its scenario's stamp changed (the spec text and
its checks' source fingerprints, :mod:`specgen.proof.stamp`), when the file defining its check changed, or
when any measured file it executed changed or is gone. Every other binding keeps its record: the same
inputs, the same lines, so reach is what a full run would measure. The entrypoints' data is kept when no
file under ``source`` changed since they ran (and every one of them exited 0).

The whole record is dropped (a full run) when the settings it was measured with differ: the ``source`` and
``entrypoints`` lists, the generated tests' folder, specgen's version, Python's version.

What it cannot see: a change outside ``source`` that a check or an entrypoint depends on without executing
it there (a helper module of the checks other than the check's own file, a data or config file a smoke
reads). ``specgen proof --full`` measures everything again.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from specgen import __version__, fsio

CHECKS_NAME = "checks.json"  # in <report dir>/proof/
# In <report dir>/proof/entrypoints/, written once every entrypoint has run: a run stopped half-way (the folder
# is emptied before the entrypoints start) leaves none, and its partial data is never kept.
ENTRY_NAME = "runs.json"
VERSION = 1


def settings_key(settings: dict, output: str) -> dict:
    """The settings a record is only valid under."""
    return {
        "source": list(settings["source"]),
        "entrypoints": list(settings["entrypoints"]),
        "output": output,
        "specgen": __version__,
        "python": sys.version.split()[0],
    }


@dataclass
class Record:
    """One binding's measurement, and the inputs it was measured on."""

    scenario: str  # the scenario's stamp (spec fingerprint and its checks' source fingerprints)
    module: str  # hash of the file that defines the check
    files: dict[str, str]  # every measured file it executed any line of -> its hash then
    executed: dict[str, list[int]]
    in_process: dict[str, list[int]]
    exception: str | None = None

    def to_json(self) -> dict:
        return {
            "scenario": self.scenario,
            "module": self.module,
            "files": dict(sorted(self.files.items())),
            "executed": {f: sorted(ls) for f, ls in sorted(self.executed.items())},
            "in_process": {f: sorted(ls) for f, ls in sorted(self.in_process.items())},
            "exception": self.exception,
        }

    @classmethod
    def from_json(cls, raw: dict) -> Record:
        return cls(
            str(raw["scenario"]),
            str(raw["module"]),
            {str(k): str(v) for k, v in raw["files"].items()},
            {str(k): [int(x) for x in v] for k, v in raw["executed"].items()},
            {str(k): [int(x) for x in v] for k, v in raw["in_process"].items()},
            None if raw.get("exception") is None else str(raw["exception"]),
        )


@dataclass
class Prior:
    """The last run's records: per binding, and the entrypoints' (the code hash they ran on, their runs)."""

    checks: dict[str, Record] = field(default_factory=dict)
    entry_code: str = ""
    entry_runs: list[dict] = field(default_factory=list)


def load(work: Path, key: dict) -> Prior | None:
    """The last run's records when they exist, read, and were measured under the same settings; else None."""
    try:
        raw = json.loads((work / CHECKS_NAME).read_text(encoding="utf-8"))
        if raw.get("version") != VERSION or raw.get("settings") != key:
            return None
        checks = {str(name): Record.from_json(rec) for name, rec in raw["checks"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # no record, or not one this version wrote: a full run
    prior = Prior(checks)
    try:
        entry = json.loads((work / "entrypoints" / ENTRY_NAME).read_text(encoding="utf-8"))
        prior.entry_code, prior.entry_runs = str(entry["code"]), [dict(r) for r in entry["runs"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no complete entrypoint run on record: they run again
    return prior


def save(work: Path, key: dict, prior: Prior) -> None:
    data = {
        "version": VERSION,
        "settings": key,
        "checks": {name: rec.to_json() for name, rec in sorted(prior.checks.items())},
    }
    fsio.write_text(work / CHECKS_NAME, json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")


def save_entrypoints(work: Path, code: str, runs: list[dict]) -> None:
    """Once every entrypoint has run: the code hash they ran on and their runs (see ENTRY_NAME)."""
    data = {"code": code, "runs": runs}
    fsio.write_text(work / "entrypoints" / ENTRY_NAME, json.dumps(data, sort_keys=True, indent=1) + "\n")


def to_rerun(prior: Prior, wanted: dict[str, tuple[str, str]], files: dict[str, str]) -> set[str]:
    """The bindings to rerun: `wanted` maps each current binding's context name to (scenario stamp, check
    module hash); `files` maps each measured file to its hash now."""
    out = set()
    for name, (scenario, module) in wanted.items():
        rec = prior.checks.get(name)
        if (
            rec is None
            or rec.scenario != scenario
            or rec.module != module
            or any(files.get(rel, "") != h for rel, h in rec.files.items())
        ):
            out.add(name)
    return out


def entrypoints_reusable(prior: Prior | None, code: str, commands: list[str]) -> bool:
    """The last entrypoint data stands when every entrypoint ran, exited 0, on the same product code."""
    if prior is None or prior.entry_code != code or not prior.entry_runs:
        return False
    return [r.get("command") for r in prior.entry_runs] == commands and all(
        r.get("exit") == 0 for r in prior.entry_runs
    )
