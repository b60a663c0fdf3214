"""Incremental reach: which checks and entrypoints a reach run must rerun, and what it keeps from the last run.

The last run leaves ``<report dir>/proof/checks.json``: per binding (its context name) the inputs it was
measured on and what it executed (the lines :mod:`specgen.proof.reach` needs, and every measured file it ran
a line of); per file under ``source``, its hash and its outline hash (what importing it runs). A binding is
rerun when it has no record, when its scenario's stamp changed (the spec text and its checks' source
fingerprints, :mod:`specgen.proof.stamp`), when the file defining its check changed, or when any measured file
it executed changed or is gone. A file's outline changing (a constant, a default value, a decorator, a new or
removed file) reruns every binding: the generated tests import the product while pytest collects them, outside
any binding's context, so no record says which binding depends on what an import ran. Every other binding
keeps its record: the same inputs, the same lines, so reach is what a full run would measure.

Each entrypoint is measured in its own folder and leaves its own record (``entrypoints/<index>/run.json``: the
files it executed, imports included); it is rerun when one of them changed or is gone, or when it failed.

The whole record is dropped (a full run) when the settings it was measured with differ: the ``source`` and
``entrypoints`` lists, the generated tests' folder, the versions of specgen, coverage.py and Python.

What it cannot see: a change outside ``source`` that a check or an entrypoint depends on (a helper module of
the checks other than the check's own file, a data or config file a smoke reads, a script).
``specgen proof --full`` measures everything again.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from specgen import __version__, fsio

CHECKS_NAME = "checks.json"  # in <report dir>/proof/
# In <report dir>/proof/entrypoints/<index>/, written once that entrypoint has run: one stopped half-way (its
# folder is emptied before it starts) leaves none, and its partial data is never kept.
ENTRY_NAME = "run.json"
VERSION = 1


def settings_key(settings: dict, output: str) -> dict:
    """The settings a record is only valid under."""
    import coverage

    return {
        "coverage": coverage.__version__,
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
    """The last run's records: per binding; per file under `source`, its hash and outline hash then (see
    :func:`specgen.proof.stamp.outline_hash`); per entrypoint (by position), its run and the files it executed."""

    checks: dict[str, Record] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)  # rel -> [hash, outline hash]
    entries: dict[int, dict] = field(default_factory=dict)  # index -> {"command", "exit", "seconds", "files"}


def load(work: Path, key: dict, count: int) -> Prior | None:
    """The last run's records when they exist, read, and were measured under the same settings; else None.
    `count`: the number of entrypoints (each one's record is read from its own folder)."""
    try:
        raw = json.loads((work / CHECKS_NAME).read_text(encoding="utf-8"))
        if raw.get("version") != VERSION or raw.get("settings") != key:
            return None
        checks = {str(name): Record.from_json(rec) for name, rec in raw["checks"].items()}
        files = {str(rel): [str(h) for h in hs] for rel, hs in raw["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # no record, or not one this version wrote: a full run
    prior = Prior(checks, files)
    for i in range(count):
        try:
            entry = json.loads((entry_folder(work, i) / ENTRY_NAME).read_text(encoding="utf-8"))
            entry["files"] = {str(rel): str(h) for rel, h in entry["files"].items()}
            prior.entries[i] = entry
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # no complete run of this entrypoint on record: it runs again
    return prior


def save(work: Path, key: dict, checks: dict[str, Record], files: dict[str, list[str]]) -> None:
    data = {
        "version": VERSION,
        "settings": key,
        "files": dict(sorted(files.items())),
        "checks": {name: rec.to_json() for name, rec in sorted(checks.items())},
    }
    fsio.write_text(work / CHECKS_NAME, json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")


def entry_folder(work: Path, index: int) -> Path:
    return work / "entrypoints" / str(index)


def save_entry(work: Path, index: int, run: dict) -> None:
    """Once entrypoint `index` has run: its run and the files it executed (see ENTRY_NAME)."""
    fsio.write_text(entry_folder(work, index) / ENTRY_NAME, json.dumps(run, sort_keys=True, indent=1) + "\n")


def file_table(prior: Prior | None, files: dict[str, str], root: Path) -> tuple[dict[str, list[str]], list[str]]:
    """Each file under `source` -> [hash, outline hash] now (the outline read again only for a file whose bytes
    changed), and the files whose outline changed since the last run (added and removed ones too): a change
    there runs at import, which no binding's record sees."""
    from specgen.proof.stamp import outline_hash

    before = prior.files if prior is not None else {}
    table: dict[str, list[str]] = {}
    changed = []
    for rel, h in files.items():
        old = before.get(rel)
        table[rel] = [h, old[1] if old and old[0] == h else outline_hash(root / rel)]
        if old is None or old[1] != table[rel][1]:
            changed.append(rel)
    changed += [rel for rel in before if rel not in files]
    return table, sorted(changed)


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


def entry_reusable(prior: Prior | None, index: int, command: str, files: dict[str, str]) -> bool:
    """Entrypoint `index`'s last data stands when it ran this command, exited 0, and no file it executed
    (imports included: an entrypoint's data has no import-time blind spot) changed or is gone."""
    entry = (prior.entries if prior is not None else {}).get(index)
    if entry is None or entry.get("command") != command or entry.get("exit") != 0:
        return False
    return all(files.get(rel, "") == h for rel, h in entry["files"].items())
