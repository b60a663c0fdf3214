"""Renamed scenarios: links that survive a rename, and bindings that move only after review.

A scenario id comes from names (specgen/compile/identity.py), so renaming a scenario gives it a new id.
The lock remembers the old one: a reviewed id that is gone while a scenario without any binding
appeared in the same requirement is most likely a rename; a reviewed requirement that is gone while one
whose scenarios have no binding appeared in the same capability is most likely a renamed requirement.
:func:`issues` says so (old -> new) and shows the anchors that keep the old ids, which keep checks
written by id and by names alike. When the user instead edits the @check names to the new
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
    """One warning per likely rename in openspec/specs: a renamed scenario (old id -> new id), and a
    renamed requirement (old -> new, with its scenarios), each with the anchors that keep the old ids.
    An anchor keeps a check written by id and one written by names alike: names whose id is a
    scenario's anchor bind that scenario (specgen.compile.registry)."""
    view = comp.specs
    locked = {e.scenario_id for e in comp.lock.values() if e.view == view.name}
    by_req: dict[str, list] = {}
    for req in view.requirements:
        by_req[req.key] = [ref for ref in req.scenarios if ref.id not in locked]
    out = []
    gone_reqs: dict[str, list[str]] = {}
    for old in sorted({e.scenario_id for e in _gone(comp, view)}):
        if old.rsplit("/", 1)[0] not in by_req:
            gone_reqs.setdefault(old.rsplit("/", 1)[0], []).append(old)
            continue
        new = by_req[old.rsplit("/", 1)[0]]
        if len(new) != 1:  # none, or ambiguous: the binding errors and unbound scenarios say enough
            continue
        ref = new[0]
        out.append(
            Issue(
                WARNING,
                ref.path,
                ref.line,
                f"scenario {old} -> {ref.id}: renamed? Keep the old id (checks written by id or by the old names "
                f"keep working): put `<!-- specgen-id: {old} -->` on the line under the scenario header, then "
                f'`specgen review {old}`; or move the check to @check(..., "{ref.name}") and `specgen review {ref.id}`',
                "renamed-scenario",
            )
        )
    out += _renamed_requirements(view, gone_reqs, locked)
    return out


def _renamed_requirements(view, gone: dict[str, list[str]], locked: set[str]) -> list[Issue]:
    """A reviewed requirement id that is gone, while a requirement of the same capability appeared whose
    scenarios are all without a binding: old -> new, pairing scenarios by their slug (or, for one
    scenario each, by position)."""
    fresh = [r for r in view.requirements if r.scenarios and not any(ref.id in locked for ref in r.scenarios)]
    out = []
    for old_req, old_ids in sorted(gone.items()):
        cap = old_req.rsplit("/", 1)[0]
        cands = [r for r in fresh if r.capability == cap]
        old_slugs = {i.rsplit("/", 1)[1]: i for i in old_ids}

        def overlap(r, old_slugs=old_slugs) -> int:
            return sum(ref.id.rsplit("/", 1)[1] in old_slugs for ref in r.scenarios)

        best = sorted(cands, key=lambda r: -overlap(r))
        if not best or (len(best) > 1 and overlap(best[0]) == overlap(best[1])):
            continue  # none, or no way to tell which: the binding errors and unbound scenarios say enough
        req = best[0]
        pairs = [(ref, old_slugs.get(ref.id.rsplit("/", 1)[1])) for ref in req.scenarios]
        if len(req.scenarios) == 1 and len(old_ids) == 1 and pairs[0][1] is None:
            pairs = [(req.scenarios[0], old_ids[0])]
        anchors = "; ".join(f'"{ref.name}": `<!-- specgen-id: {old} -->`' for ref, old in pairs if old)
        if not anchors:
            continue
        out.append(
            Issue(
                WARNING,
                req.path,
                req.line,
                f'requirement {old_req} -> {req.key} ("{req.name}"): renamed? Keep its scenarios\' ids (checks '
                f"written by id or by the old names keep working): put the anchor on the line under each "
                f"scenario header: {anchors}; then `specgen review {old_req}/`",
                "renamed-requirement",
            )
        )
    return out
