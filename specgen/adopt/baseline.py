"""The baseline: today's unverified requirements, tolerated by the gate until they are fixed.

``specgen.baseline.json`` (``[tool.specgen] baseline``) is committed; it lists requirement ids
(``capability/requirement-slug``) with the verdict each had when recorded. Same inputs, same
bytes: ids sorted, keys sorted. The ratchet: the file only shrinks. :func:`apply` (run by
``specgen report``) turns an unverified, baselined requirement's verdict into ``baselined`` (never
verified) and returns what the gate must refuse: a baselined requirement that is verified now, or
one that no longer exists, while still listed (``specgen baseline --update`` drops them).
Requirements outside the gate's scope (``[tool.specgen] gate``) are marked ``gated: false``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from specgen.errors import SpecgenError

BASELINED = "baselined"
VERSION = 1


@dataclass(frozen=True)
class Ratchet:
    requirement: str
    why: str  # "verified" | "gone"

    def message(self, baseline_name: str) -> str:
        what = "is verified now" if self.why == "verified" else "no longer exists"
        return (
            f"ratchet: {self.requirement} {what} but is still listed in {baseline_name}; "
            "run `specgen baseline --update` and commit it (the baseline only shrinks)"
        )


def read(path: Path) -> dict[str, str]:
    """requirement id -> verdict when recorded; {} without a baseline file."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["requirements"]
        if data.get("version") != VERSION or not isinstance(entries, dict):
            raise ValueError(f"expected version {VERSION} with a requirements object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecgenError(
            f"not a specgen baseline: {exc}; rewrite it with `specgen baseline --update`", path
        ) from None
    return {str(k): str(v) for k, v in entries.items()}


def render(entries: dict[str, str]) -> str:
    data = {"version": VERSION, "requirements": dict(sorted(entries.items()))}
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def unverified(data: dict, gated) -> dict[str, str]:
    """The gated, unverified requirements of report data: id -> verdict."""
    return {r["id"]: r["verdict"] for r in data["requirements"] if not r["verified"] and gated(r["capability"])}


def apply(data: dict, entries: dict[str, str], gated) -> list[Ratchet]:
    """Mark report data in place (baselined verdicts, gate scope); the ratchet violations."""
    seen = set()
    ratchets = []
    for r in data["requirements"]:
        r["gated"] = gated(r["capability"])
        if r["id"] not in entries:
            continue
        seen.add(r["id"])
        if r["verified"]:
            ratchets.append(Ratchet(r["id"], "verified"))
        else:
            r["baselined_verdict"], r["verdict"] = r["verdict"], BASELINED
    ratchets += [Ratchet(k, "gone") for k in sorted(entries) if k not in seen]
    return ratchets


def update(old: dict[str, str], now: dict[str, str]) -> tuple[dict[str, str], list[str], list[str]]:
    """The shrunk baseline: the old entries still unverified now; (new entries, dropped ids, new gaps not added)."""
    kept = {k: now[k] for k in old if k in now}
    return kept, sorted(set(old) - set(kept)), sorted(set(now) - set(old))


GAPS = ("uncovered-requirement", "unbound-scenario")


def tolerated_gaps(issues: list, requirements, entries: dict[str, str], gated) -> tuple[list, int]:
    """`check`'s issues less the gaps (no check) of baselined or ungated requirements; (kept, dropped count)."""
    where = set()
    for req in requirements:
        if req.key in entries or not gated(req.capability):
            where.add((str(req.path), req.line))
            where.update((str(ref.path), ref.line) for ref in req.scenarios)
    kept = [i for i in issues if not (i.code in GAPS and (str(i.path), i.line) in where)]
    return kept, len(issues) - len(kept)
