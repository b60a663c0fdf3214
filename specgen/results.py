"""The results file: what the pytest plugin (:mod:`specgen.plugin`) writes for each generated test and what the
report, ``adopt`` and ``proof`` read. One place for its name and its reading, below every layer that reads it."""

from __future__ import annotations

import json
from pathlib import Path

from specgen import fsio
from specgen.errors import SpecgenError

RESULTS_NAME = "results.json"


def load_results(path: Path) -> dict[tuple[str, str, str], list[dict]]:
    """(view, scenario id, check) -> result records from the plugin's results.json."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        records = data["results"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecgenError(f"not a specgen results file: {exc}; rerun the generated tests", path) from None
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and all(isinstance(r.get(k), (str, type(None))) for k in ("view", "scenario_id", "check"))
        for r in records
    ):
        raise SpecgenError(
            "not a specgen results file: `results` is not a list of records; rerun the generated tests", path
        )
    out: dict[tuple[str, str, str], list[dict]] = {}
    for rec in records:
        out.setdefault((rec.get("view") or "specs", rec.get("scenario_id"), rec.get("check") or ""), []).append(rec)
    return out


def _binding(rec: dict) -> tuple:
    return (rec.get("view") or "specs", rec.get("scenario_id"), rec.get("check") or "")


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """The records of this run, and the earlier ones it did not replace: a record is replaced when this
    run ran its test (same test id) or tested its binding (same view, scenario and check: a test renamed
    since). Sorted by test id, so the file's bytes depend only on the records."""
    ran = {r["nodeid"] for r in new}
    tested = {_binding(r) for r in new}
    kept = [r for r in old if r.get("nodeid") not in ran and _binding(r) not in tested]
    return sorted(kept + new, key=lambda r: r["nodeid"])


def records(path: Path) -> list[dict]:
    """The records in a results file; none when it is missing or not a results file (a writer then rewrites it
    from its own run alone)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        raw = data["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(raw, list):
        return []
    return [r for r in raw if isinstance(r, dict) and isinstance(r.get("nodeid"), str)]


def write_merged(path: Path, new: list[dict]) -> None:
    """`new` merged into the results file at `path` (:func:`merge`), written atomically."""
    data = {"version": 1, "results": merge(records(path), new)}
    fsio.write_text(path, json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
