"""Identity: spec model -> stable scenario ids and content fingerprints.

A scenario's id is ``capability/requirement-slug/scenario-slug``; the capability is its folder path
under openspec/specs/ (``group/cap`` for a nested one), so the last two segments are always the
requirement and scenario slugs (`split_id`). Two ways keep an
id stable when names change:
- an explicit anchor, ``<!-- specgen-id: cap/req/scn -->`` under the scenario header
  (the parser fills ``Scenario.anchor``), which wins over the names;
- RENAMED deltas: a requirement renamed by a change (active, or archived earlier)
  keeps the requirement slug of its first name.
Fingerprints hash normalized text, so whitespace-only edits do not count as changes.

A *view* is the set of requirements one compilation is about: ``specs`` (everything
under openspec/specs/) or one active change (the requirements that change adds,
modifies or renames, as they read with the change applied).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

from specgen.errors import ERROR, WARNING, Issue
from specgen.model import ADDED, MODIFIED, RENAMED, Change, Project, Requirement, Scenario

SPECS_VIEW = "specs"
_ANCHOR_LINE = re.compile(r"^\s*<!--\s*specgen-id:.*-->\s*$")
_SEG = r"[^\W_A-Z]+(?:-[^\W_A-Z]+)*"  # lowercase ASCII, or the letters and digits of a Unicode slug
# `root:` only with several OpenSpec roots; a nested capability has several segments
_ID = re.compile(rf"^(?:{_SEG}:)?{_SEG}(?:/{_SEG})*/{_SEG}/{_SEG}$")


def slugify(name: str) -> str:
    """Lowercase ASCII words joined by '-'. A name with no ASCII letter or digit (one named only in
    Chinese, say) keeps its own letters and digits instead, NFKC-normalized and lowercased, words joined
    by '-' (`显示血量`), when the result is short and reads as a Python name (generated test names are made
    of slugs); else it gets a hash slug. Names with an ASCII letter or digit slug as they always did, so
    only ids that were pure hashes read differently."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug or _unicode_slug(name) or "h" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


_UNICODE_SLUG_MAX = 48


def _unicode_slug(name: str) -> str:
    words = re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", name).lower())
    slug = "-".join(words)
    if not slug or len(slug) > _UNICODE_SLUG_MAX or not ("t_" + slug.replace("-", "_")).isidentifier():
        return ""
    # `isidentifier` accepts what Python would NFKC-normalize; a slug that normalizes to itself stays one name.
    return slug if unicodedata.normalize("NFKC", slug) == slug else ""


def normalize(text: str) -> str:
    """Text with anchor comments, blank lines and runs of whitespace removed: what a fingerprint hashes."""
    lines = []
    anchored = "specgen-id" in text
    for line in text.replace("\r\n", "\n").split("\n"):
        if anchored and _ANCHOR_LINE.match(line):
            continue
        line = " ".join(line.split())
        if line:
            lines.append(line)
    return "\n".join(lines)


# A line that starts a markdown block of its own (a list item, heading, table row, fence, quote):
# anything else continues the line before it (re-wrapping, lazy or indented continuation lines).
_BLOCK_START = re.compile(r"(?:[-*+]|\d{1,9}[.)])(?:\s|$)|#{1,6}(?:\s|$)|\||>|```|~~~")
_FENCE = re.compile(r"```|~~~")


def normalize_prose(text: str) -> str:
    """Spec text as a fingerprint reads it: `normalize`, then each continuation line joined to the
    line it continues with one space, so re-wrapping and re-indenting change nothing while a new
    list item, heading or table row still starts a line. Lines inside a code fence stay lines.
    Text whose blocks are one line each normalizes exactly as `normalize` does (fingerprints in a
    lock written before continuation lines were joined stay valid for it)."""
    if "\n" not in text and "specgen-id" not in text:
        return " ".join(text.split())  # one line (a name): what `normalize` gives for it
    out: list[str] = []
    fenced = False
    for line in normalize(text).split("\n"):
        starts = _BLOCK_START.match(line)
        if fenced or starts or not out or _FENCE.match(out[-1]):
            out.append(line)
        else:
            out[-1] += " " + line
        if _FENCE.match(line):
            fenced = not fenced
    return "\n".join(out)


def fingerprint(*parts: str) -> str:
    """The first 16 hex digits of the SHA-256 of the parts (a name, its text) as `normalize_prose` reads them."""
    digest = hashlib.sha256("\n\x1f\n".join(normalize_prose(p) for p in parts).encode("utf-8"))
    return digest.hexdigest()[:16]


def is_valid_id(text: str) -> bool:
    return bool(_ID.match(text))


def split_id(scenario_id: str) -> tuple[str, str, str]:
    """(capability, requirement slug, scenario slug); the capability may hold '/' (nested folders)."""
    cap, rslug, sslug = scenario_id.rsplit("/", 2)
    return cap, rslug, sslug


def id_shaped(text: str) -> bool:
    """Has at least the three parts of an id (what `@check("...")` must be given)."""
    return text.count("/") >= 2


@dataclass(frozen=True)
class ScenarioRef:
    id: str
    capability: str
    requirement: str  # the requirement's name (as it reads in this view)
    scenario: Scenario
    path: Path  # the file the scenario text lives in (spec.md, or the change's delta spec.md)
    fingerprint: str
    blocked: str = ""  # why it cannot be compiled (an id collision): its generated test fails saying so

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def line(self) -> int:
        return self.scenario.line


@dataclass(frozen=True)
class RequirementRef:
    capability: str
    requirement: Requirement
    slug: str
    path: Path
    fingerprint: str
    scenarios: tuple[ScenarioRef, ...]
    operation: str = ""  # in a change view: ADDED, MODIFIED or RENAMED

    @property
    def name(self) -> str:
        return self.requirement.name

    @property
    def line(self) -> int:
        return self.requirement.line

    @property
    def key(self) -> str:
        return f"{self.capability}/{self.slug}"


@dataclass(frozen=True)
class View:
    name: str  # SPECS_VIEW or the change id
    change: str | None
    requirements: tuple[RequirementRef, ...]
    by_id: dict[str, ScenarioRef] = field(default_factory=dict, compare=False)
    by_name: dict[tuple[str, str, str], ScenarioRef] = field(default_factory=dict, compare=False)
    problems: tuple[Issue, ...] = ()  # id collisions and bad anchors (errors in specs, warnings in a change)

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.capability for r in self.requirements))

    def scenarios(self):
        for req in self.requirements:
            yield from req.scenarios


def _archived_renames(project: Project) -> dict[str, dict[str, str]]:
    """capability -> {current requirement name: slug of its first name}, from archived changes in order."""
    carried: dict[str, dict[str, str]] = {}
    for change in sorted(project.archived, key=lambda c: c.id):
        for delta in change.deltas:
            if delta.operation == RENAMED and delta.rename_from and delta.name:
                cap = carried.setdefault(delta.spec, {})
                cap[delta.name] = cap.pop(delta.rename_from, slugify(delta.rename_from))
    return carried


def _build_view(
    name: str, change: str | None, items: list[tuple[str, Requirement, Path, str]], carried: dict[str, dict[str, str]]
) -> View:
    """items: (capability, requirement, file, operation) in display order.

    Ids are proposed first (anchors included), then checked for collisions all at once: every
    colliding requirement or scenario is *blocked* (a unique stand-in id, a problem naming each
    file:line), and the rest of the view compiles as if nothing happened."""
    problems: list[Issue] = []
    level = ERROR if change is None else WARNING  # an active change is gated only when asked
    where = f" (change {change})" if change else ""
    rslugs = [carried.get(cap, {}).get(req.name, slugify(req.name)) for cap, req, _, _ in items]
    req_blocked = _requirement_collisions(items, rslugs, problems, level, where)
    proposed: list[tuple[int, Scenario, str, str]] = []  # (item index, scenario, id, why blocked)
    for n, (cap, req, path, _) in enumerate(items):
        for scn in req.scenarios:
            sid, why = f"{cap}/{rslugs[n]}/{slugify(scn.name)}", req_blocked.get(n, "")
            if scn.anchor is not None and is_valid_id(scn.anchor):
                sid = scn.anchor
            elif scn.anchor is not None:
                why = (
                    f"specgen-id anchor {scn.anchor!r} is not an id of the form "
                    "capability/requirement-slug/scenario-slug (lowercase letters, digits and '-'; "
                    "a nested capability reads group/capability)"
                )
                problems.append(Issue(level, path, scn.line, why + where, "bad-anchor"))
            proposed.append((n, scn, sid, why))
    proposed = _scenario_collisions(items, proposed, problems, level, where)
    reqs: list[RequirementRef] = []
    by_id: dict[str, ScenarioRef] = {}
    by_name: dict[tuple[str, str, str], ScenarioRef] = {}
    refs_of: dict[int, list[ScenarioRef]] = {n: [] for n in range(len(items))}
    for n, scn, sid, why in proposed:
        cap, req, path, _ = items[n]
        ref = ScenarioRef(sid, cap, req.name, scn, path, fingerprint(scn.name, scn.raw_text), why)
        by_id[sid] = ref
        by_name[(cap, req.name, scn.name)] = ref
        refs_of[n].append(ref)
    for n, (cap, req, path, op) in enumerate(items):
        reqs.append(RequirementRef(cap, req, rslugs[n], path, fingerprint(req.name, req.text), tuple(refs_of[n]), op))
    return View(name, change, tuple(reqs), by_id, by_name, tuple(problems))


def _where(path: Path, line: int, here: Path) -> str:
    """Where the other side of a collision is, without an absolute path (messages reach generated files):
    its line in the same file, else its path from the OpenSpec folder on."""
    if path == here:
        return f"line {line}"
    parts = Path(path).parts
    start = max((i for i, p in enumerate(parts) if p == "openspec"), default=max(len(parts) - 3, 0))
    return f"{Path(*parts[start:]).as_posix()}:{line}"


def _requirement_collisions(items, rslugs: list[str], problems: list[Issue], level: str, where: str) -> dict[int, str]:
    """Item index -> why it is blocked, for requirements whose ids collide; their slugs get the line."""
    groups: dict[tuple[str, str], list[int]] = {}
    for n, (cap, _, _, _) in enumerate(items):
        groups.setdefault((cap, rslugs[n]), []).append(n)
    blocked: dict[int, str] = {}
    for (cap, rslug), members in groups.items():
        if len(members) < 2:
            continue
        for n in members:
            _, req, path, _ = items[n]
            others = "; ".join(
                f'"{items[m][1].name}" ({_where(items[m][2], items[m][1].line, path)})' for m in members if m != n
            )
            why = (
                f"requirement id {cap}/{rslug} collides with {others}: rename one of the requirements; "
                "its scenarios are blocked until then"
            )
            problems.append(Issue(level, path, req.line, why + where, "id-collision"))
            blocked[n] = why
            rslugs[n] = f"{rslug}-line-{req.line}"
    return blocked


def _scenario_collisions(items, proposed, problems: list[Issue], level: str, where: str):
    """`proposed` with every scenario whose id collides blocked under a unique stand-in id."""
    groups: dict[str, list[int]] = {}
    for k, (_, _, sid, _) in enumerate(proposed):
        groups.setdefault(sid, []).append(k)
    out = list(proposed)
    taken = set(groups)
    for sid, members in groups.items():
        if len(members) < 2:
            continue
        for k in members:
            n, scn, _, _ = proposed[k]
            path = items[n][2]
            others = "; ".join(
                f'"{proposed[m][1].name}" ({_where(items[proposed[m][0]][2], proposed[m][1].line, path)})'
                for m in members
                if m != k
            )
            why = (
                f"scenario id {sid} collides with {others}: rename one of the scenarios or give one an "
                "explicit <!-- specgen-id: ... --> anchor"
            )
            problems.append(Issue(level, path, scn.line, why + where, "id-collision"))
            stand_in, i = f"{sid}-line-{scn.line}", 2
            while stand_in in taken:
                stand_in, i = f"{sid}-line-{scn.line}-{i}", i + 1
            taken.add(stand_in)
            out[k] = (n, scn, stand_in, why)
    return out


def _namespaced(carried: dict[str, dict[str, str]], ns: str) -> dict[str, dict[str, str]]:
    return {f"{ns}:{cap}": v for cap, v in carried.items()} if ns else carried


def specs_view(project: Project, ns: str = "") -> View:
    """`ns`: the root's name in a project with several OpenSpec roots; capabilities read `ns:cap`."""
    carried = _namespaced(_archived_renames(project), ns)
    prefix = f"{ns}:" if ns else ""
    items = [(prefix + spec.id, req, spec.path, "") for spec in project.specs for req in spec.requirements]
    return _build_view(SPECS_VIEW, None, items, carried)


def change_view(project: Project, change: Change, ns: str = "") -> View:
    """The requirements `change` adds, modifies or renames, as they read once it is applied.
    (Whether archive would accept the change is checked only when that change is asked for, by
    the compiler: a broken change must not stop the rest.)"""
    carried = _archived_renames(project)
    renamed: dict[tuple[str, str], str] = {}  # (cap, new name) -> old name
    for delta in change.deltas:
        if delta.operation == RENAMED and delta.rename_from and delta.name:
            renamed[(delta.spec, delta.name)] = delta.rename_from
            cap = carried.setdefault(delta.spec, {})
            cap[delta.name] = cap.get(delta.rename_from, slugify(delta.rename_from))
    carried = _namespaced(carried, ns)
    prefix = f"{ns}:" if ns else ""
    items: list[tuple[str, Requirement, Path, str]] = []
    seen: set[tuple[str, str]] = set()
    for delta in change.deltas:
        if delta.operation in (ADDED, MODIFIED) and delta.requirement is not None:
            items.append((prefix + delta.spec, delta.requirement, delta.path, delta.operation))
            seen.add((delta.spec, delta.requirement.name))
    for (cap, new), old in renamed.items():
        if (cap, new) in seen:
            continue
        spec = project.spec(cap)
        base = next((r for r in spec.requirements if r.name == old), None) if spec else None
        if base is not None:
            items.append((prefix + cap, replace(base, name=new), spec.path, RENAMED))
    return _build_view(change.id, change.id, items, carried)
