"""Manual and GPU-only scenarios: procedures and evidence records.

A manual check is declared with ``@check(..., manual="tests/manual/<procedure>.md")``; the
procedure says what a person runs. Each run leaves an evidence record, a YAML file under
``tests/manual/evidence/``:

    scenario: capability/requirement-slug/scenario-slug
    fingerprint: <the scenario fingerprint the procedure was run against>
    result: pass            # or fail
    who: Jane Doe
    when: 2025-01-31T12:00:00Z
    commit: 1a2b3c4
    machine: host: Linux 6.1 x86_64, Python 3.11, 16 CPU(s)   # optional
    dirty: false            # optional: the work tree had uncommitted changes
    notes: free text

The latest record (by `when`) of a scenario decides. A record for an older fingerprint is
*stale*: the scenario text changed after the run, so the evidence no longer applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from specgen.errors import SpecgenError

REQUIRED = ("scenario", "fingerprint", "result", "who", "when", "commit")
RESULTS = ("pass", "fail")

FRESH, FAILED, STALE, NONE = "fresh", "failed", "stale", "none"


@dataclass(frozen=True)
class Evidence:
    path: Path
    scenario: str
    fingerprint: str
    result: str
    who: str
    when: str
    commit: str
    notes: str = ""
    dirty: bool = False


def read_evidence(folder: Path) -> dict[str, list[Evidence]]:
    """scenario id -> its records, oldest first."""
    found: dict[str, list[Evidence]] = {}
    if not folder.is_dir():
        return found
    for path in sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")]):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise SpecgenError(f"evidence record is not readable YAML: {exc}".splitlines()[0], path) from None
        if not isinstance(data, dict):
            raise SpecgenError("evidence record must be a mapping with keys " + ", ".join(REQUIRED), path)
        missing = [k for k in REQUIRED if data.get(k) in (None, "")]
        if missing:
            raise SpecgenError(f"evidence record lacks {', '.join(missing)} (see docs/compiler.md)", path)
        unknown = sorted(set(data) - set(REQUIRED) - {"notes", "machine", "dirty"})
        if unknown:
            raise SpecgenError(f"evidence record has unknown key(s) {', '.join(unknown)}", path)
        result = str(data["result"]).strip().lower()
        if result not in RESULTS:
            raise SpecgenError(f"evidence result: {data['result']!r}; expected pass or fail", path)
        ev = Evidence(
            path,
            str(data["scenario"]),
            str(data["fingerprint"]),
            result,
            str(data["who"]),
            _iso(data["when"]),
            str(data["commit"]),
            str(data.get("notes") or ""),
            data.get("dirty") is True,
        )
        found.setdefault(ev.scenario, []).append(ev)
    for records in found.values():
        records.sort(key=lambda e: (e.when, str(e.path)))
    return found


def _iso(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def status(records: list[Evidence] | None, scenario_fingerprint: str) -> tuple[str, Evidence | None]:
    """FRESH / FAILED / STALE / NONE for a scenario with the given current fingerprint."""
    if not records:
        return NONE, None
    latest = records[-1]
    if latest.fingerprint != scenario_fingerprint:
        return STALE, latest
    return (FRESH if latest.result == "pass" else FAILED), latest


def render_record(
    scenario: str, fingerprint: str, result: str, who: str, when: str, commit: str, notes: str = ""
) -> str:
    data = {
        "scenario": scenario,
        "fingerprint": fingerprint,
        "result": result,
        "who": who,
        "when": when,
        "commit": commit,
        "notes": notes,
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
