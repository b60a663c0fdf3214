"""Renamed scenarios: links that survive a rename, and bindings that move only after review.

A scenario id comes from names (specgen/compile/identity.py), so renaming a scenario gives it a new id.
The lock remembers the old one: a reviewed id that is gone while a scenario without any binding
appeared in the same requirement is most likely a rename. :func:`issues` says so (old id -> new id)
and shows the anchor that keeps the old id. When the user instead edits the @check names to the new
scenario, :func:`moved_entry` stamps the new binding with the fingerprint reviewed for the OLD
scenario, so the binding is suspect ("the scenario text changed") until `specgen review`: a change of
meaning cannot slip through as a fresh binding.
"""

from __future__ import annotations

from specgen.compile import lock
from specgen.errors import WARNING, Issue


def _gone(comp, view) -> list[lock.Entry]:
    return [e for e in comp.lock.values() if e.view == view.name and e.scenario_id not in view.by_id]


def moved_entry(comp, b) -> lock.Entry | None:
    """The lock entry for new binding `b` when its check was reviewed for a scenario that is gone now."""
    view = comp.view(b.view) if b.view != comp.specs.name else comp.specs
    gone = [e for e in _gone(comp, view) if e.check == b.decl.check_key]
    if not gone:
        return None
    return lock.Entry(b.view, b.scenario_id, b.decl.check_key, gone[0].spec_fp, b.decl.source_fingerprint)


def issues(comp) -> list[Issue]:
    """One warning per likely rename in openspec/specs: old id -> new id, with the anchor to keep the old id."""
    view = comp.specs
    locked = {e.scenario_id for e in comp.lock.values() if e.view == view.name}
    by_req: dict[str, list] = {}
    for req in view.requirements:
        by_req[req.key] = [ref for ref in req.scenarios if ref.id not in locked]
    out = []
    for old in sorted({e.scenario_id for e in _gone(comp, view)}):
        new = by_req.get(old.rsplit("/", 1)[0], [])
        if len(new) != 1:  # none, or ambiguous: the binding errors and unbound scenarios say enough
            continue
        ref = new[0]
        out.append(
            Issue(
                WARNING,
                ref.path,
                ref.line,
                f'scenario {old} -> {ref.id}: renamed? Move its check with @check(..., "{ref.name}") and '
                f"`specgen review {ref.id}`, or keep the old id: put `<!-- specgen-id: {old} -->` on the "
                "line under the scenario header",
                "renamed-scenario",
            )
        )
    return out
