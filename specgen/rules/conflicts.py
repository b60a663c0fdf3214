"""The one conflict rule set of a delta spec: which of its entries contradict each other.

Both ``openspec validate <change>`` and ``openspec archive`` refuse the same conflicts, in their
own words: the validator reports every one as an error, the merge aborts on the first. Both take
them from :func:`find_conflicts` (see docs/validation.md):

- ``DUPLICATE``: a name twice in ADDED, MODIFIED or REMOVED, or twice as a RENAMED FROM or TO;
- ``BOTH``: one name in MODIFIED and REMOVED, MODIFIED and ADDED, or ADDED and REMOVED;
- ``RENAME_REMOVED``: a RENAMED FROM that REMOVED also names (case and spacing ignored);
- ``RENAME_OLD_MODIFIED``: MODIFIED uses the old name of a rename;
- ``RENAME_TO_ADDED``: a RENAMED TO that ADDED also adds.

Names compare after :func:`specgen.reader.blocks.normalize_requirement_name`. Linear in the
number of entries (dicts, never a scan per entry).
"""

from __future__ import annotations

from dataclasses import dataclass

from specgen.reader.blocks import DeltaPlan, RenamePair, fold_requirement_name, normalize_requirement_name

DUPLICATE, BOTH = "duplicate", "both"
RENAME_REMOVED, RENAME_OLD_MODIFIED, RENAME_TO_ADDED = "rename-removed", "rename-old-modified", "rename-to-added"


@dataclass(frozen=True)
class Conflict:
    kind: str
    section: str  # DUPLICATE: ADDED | MODIFIED | REMOVED | FROM | TO; BOTH: "MODIFIED and REMOVED", ...
    name: str  # DUPLICATE and renames: the name as written; BOTH: the normalized name
    line: int  # the entry the CLI's validator points at
    index: int = -1  # DUPLICATE: the entry's position in its section; renames: the pair's position
    other_line: int = 0  # renames and BOTH: the line of the other section's entry (what archive points at)
    spelled: str = ""  # RENAME_REMOVED: the name as REMOVED spells it


def _first_by_key(items) -> dict:
    first: dict = {}
    for item in items:
        first.setdefault(normalize_requirement_name(item.name), item)
    return first


def _duplicates(section: str, items) -> list[Conflict]:
    seen: set[str] = set()
    out = []
    for index, item in enumerate(items):
        key = normalize_requirement_name(item.name)
        if key in seen:
            out.append(Conflict(DUPLICATE, section, item.name, item.line, index))
        seen.add(key)
    return out


def _rename_duplicates(renamed: list[RenamePair]) -> list[Conflict]:
    froms: set[str] = set()
    tos: set[str] = set()
    out = []
    for index, p in enumerate(renamed):
        f, t = normalize_requirement_name(p.frm), normalize_requirement_name(p.to)
        if f in froms:
            out.append(Conflict(DUPLICATE, "FROM", p.frm, p.line, index))
        if t in tos:
            out.append(Conflict(DUPLICATE, "TO", p.to, p.line, index))
        froms.add(f)
        tos.add(t)
    return out


def find_conflicts(plan: DeltaPlan) -> list[Conflict]:
    """Every conflict, grouped: duplicates (ADDED, MODIFIED, REMOVED, then RENAMED pair by pair),
    then section overlaps (per MODIFIED name, then per ADDED name), then rename conflicts (pair by
    pair: REMOVED, MODIFIED, ADDED)."""
    out = _duplicates("ADDED", plan.added) + _duplicates("MODIFIED", plan.modified)
    out += _duplicates("REMOVED", plan.removed) + _rename_duplicates(plan.renamed)
    added, modified, removed = _first_by_key(plan.added), _first_by_key(plan.modified), _first_by_key(plan.removed)
    for key, block in modified.items():
        if key in removed:
            out.append(Conflict(BOTH, "MODIFIED and REMOVED", key, block.line, other_line=removed[key].line))
        if key in added:
            out.append(Conflict(BOTH, "MODIFIED and ADDED", key, block.line, other_line=added[key].line))
    for key, block in added.items():
        if key in removed:
            out.append(Conflict(BOTH, "ADDED and REMOVED", key, block.line, other_line=removed[key].line))
    removed_folds: dict[str, str] = {}
    for key in removed:
        removed_folds.setdefault(fold_requirement_name(key), key)
    for index, p in enumerate(plan.renamed):
        f, t = normalize_requirement_name(p.frm), normalize_requirement_name(p.to)
        spelled = removed_folds.get(fold_requirement_name(f))
        if spelled is not None:
            out.append(
                Conflict(
                    RENAME_REMOVED,
                    "RENAMED and REMOVED",
                    p.frm,
                    p.line,
                    index,
                    removed[spelled].line,
                    spelled if spelled != f else "",
                )
            )
        if f in modified:
            out.append(Conflict(RENAME_OLD_MODIFIED, "RENAMED and MODIFIED", p.to, p.line, index, modified[f].line))
        if t in added:
            out.append(Conflict(RENAME_TO_ADDED, "RENAMED and ADDED", p.to, p.line, index, added[t].line))
    return out
