"""The results file: what the pytest plugin (:mod:`specgen.plugin`) writes for each generated test and what the
report, ``adopt`` and ``proof`` read. One place for its name and its reading, below every layer that reads it."""

from __future__ import annotations

import json
from pathlib import Path

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
