"""``specgen review``: stamp bindings as reviewed in the lock (docs/compiler.md, "Suspect links"), and find a
scenario by id for the commands that take one (``stub``, ``review``, ``evidence``)."""

from __future__ import annotations

from specgen.compile import lock
from specgen.compile.compiler import Compilation
from specgen.compile.identity import ScenarioRef, View, id_shaped, split_id
from specgen.errors import SpecgenError


def review(comp: Compilation, target: str, everything: bool = False) -> list[lock.Entry]:
    """Stamp the bindings of `target` (a scenario id, or a prefix ending at '/'; `everything`: all) with their
    current fingerprints and write the lock. Returns the entries whose stamp changed."""

    def wanted(sid: str) -> bool:
        return everything or sid == target or (target.endswith("/") and sid.startswith(target))

    if not everything and not any(wanted(b.scenario_id) for b in comp.bound):
        raise SpecgenError(f"no binding matches {target!r}: give a bound scenario id, a prefix ending at '/', or --all")
    entries = comp.wanted_lock()
    stamped = []
    for b in comp.bound:
        if not wanted(b.scenario_id):
            continue
        new = comp.current_entry(b)
        if entries.get(new.key) != new:
            stamped.append(new)
        entries[new.key] = new
    lock.write(comp.config.lock_path, entries.values(), comp.root)
    return stamped


def find_scenario(comp: Compilation, scenario_id: str) -> tuple[View, ScenarioRef]:
    """The view and scenario an id names; a SpecgenError listing near ids of that capability when none."""
    for view in comp.views:
        ref = view.by_id.get(scenario_id)
        if ref is not None:
            return view, ref
    cap = split_id(scenario_id)[0] if id_shaped(scenario_id) else scenario_id
    close = sorted(i for v in comp.views for i in v.by_id if split_id(i)[0] == cap)
    hint = f"; ids of that capability: {', '.join(close[:5])}{' ...' if len(close) > 5 else ''}" if close else ""
    raise SpecgenError(f"no scenario {scenario_id!r}{hint} (`specgen list` shows the specs)")
