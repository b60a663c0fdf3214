"""The spec model: what the parser produces and every later layer consumes.

Plain frozen dataclasses. Line numbers are 1-based and point at the header line
of the item in its source file. Text fields hold exactly what the official
OpenSpec CLI reports for them (requirement ``text``, scenario ``rawText``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Scenario:
    name: str
    raw_text: str
    line: int
    # Explicit id from an HTML comment under the header (`<!-- specgen-id: ... -->`),
    # for ids that must survive renames. None when absent.
    anchor: str | None = None


@dataclass(frozen=True)
class Requirement:
    name: str
    text: str
    line: int
    scenarios: tuple[Scenario, ...] = ()


@dataclass(frozen=True)
class Spec:
    id: str  # the capability: the folder name under openspec/specs/
    path: Path  # the spec.md file
    title: str
    overview: str  # the Purpose section
    requirements: tuple[Requirement, ...] = ()
    # `title` is what the CLI reports as the spec's title: its id. `heading` is the text of
    # the file's first `# ` header ("" when none), for people.
    heading: str = ""
    # Why the CLI cannot show this spec ("Spec must have a Purpose section", ...); it then
    # has no requirements (the CLI's `list` counts 0). None for a readable spec.
    error: str | None = None


# Delta operations, in the order OpenSpec applies them when archiving.
RENAMED, REMOVED, MODIFIED, ADDED = "RENAMED", "REMOVED", "MODIFIED", "ADDED"
DELTA_ORDER = (RENAMED, REMOVED, MODIFIED, ADDED)


@dataclass(frozen=True)
class Delta:
    spec: str  # capability the delta applies to
    operation: str  # one of DELTA_ORDER
    path: Path  # the delta spec.md file
    line: int
    requirement: Requirement | None = None  # ADDED / MODIFIED / REMOVED: the block as `show` reads it
    name: str = ""  # the requirement name; RENAMED: the new name
    rename_from: str = ""  # RENAMED only
    description: str = ""  # the CLI's `description` ("Add requirement: <text>", ...)
    # True for a delta guessed from a `- **cap**: ...` bullet of the proposal's What Changes
    # (the CLI's fallback when no delta spec file has a delta section); `path` is then proposal.md.
    from_proposal: bool = False


@dataclass(frozen=True)
class Change:
    id: str  # the folder name under openspec/changes/ (or archive/)
    path: Path  # the change folder
    archived: bool = False
    why: str = ""
    what_changes: str = ""
    deltas: tuple[Delta, ...] = ()
    tasks_total: int = 0
    tasks_done: int = 0
    title: str = ""  # the proposal's first `# ` header as the CLI reads it (the id when none)
    # Why the CLI cannot show this change (no proposal.md, no Why / What Changes text).
    error: str | None = None
    has_proposal: bool = True


@dataclass(frozen=True)
class Project:
    root: Path  # the folder holding openspec/
    specs: tuple[Spec, ...] = ()
    changes: tuple[Change, ...] = ()  # active changes only
    archived: tuple[Change, ...] = field(default=())
    # Files that could not be read (not UTF-8, binary, unreadable): one error Issue each, naming the
    # file and line. What they hold is left out of the model; everything else is read.
    unreadable: tuple = ()

    def spec(self, spec_id: str) -> Spec | None:
        return next((s for s in self.specs if s.id == spec_id), None)

    def change(self, change_id: str) -> Change | None:
        return next((c for c in self.changes if c.id == change_id), None)
