"""The delta merge: one delta spec applied to one main spec with OpenSpec CLI 1.13.2 ``archive``
semantics (see docs/validation.md).

:func:`build_updated_spec` runs the archive's steps in order, each a function below: refuse a
plan with conflicts (:mod:`specgen.rules.conflicts`), pick the text to merge into (a new spec
gets a skeleton), refuse a structurally broken target, then apply RENAMED, REMOVED, MODIFIED
and ADDED, and assemble the bytes the CLI writes. Every refusal raises :class:`ArchiveAbort`
with the CLI's message and the delta's file and line. Linear in the size of both files: names
are looked up in dicts (:class:`_Blocks`), never by scanning the spec per entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from specgen.errors import SpecgenError
from specgen.reader.blocks import (
    Block,
    DeltaPlan,
    RequirementsParts,
    delta_requirement_name,
    extract_purpose_section,
    extract_requirements_section,
    fold_requirement_name,
    normalize_requirement_name,
    parse_delta_spec,
)
from specgen.reader.files import Files
from specgen.reader.markdown import fence_mask
from specgen.reader.specs import parse_spec_text
from specgen.reader.text import js_len, js_trim, js_trim_end, normalize_eol
from specgen.reader.tree import LINKS_ANY, discover_spec_files
from specgen.rules.conflicts import (
    BOTH,
    DUPLICATE,
    RENAME_OLD_MODIFIED,
    RENAME_REMOVED,
    RENAME_TO_ADDED,
    find_conflicts,
)
from specgen.rules.structure import describe_scenario_balance, diff_scenario_names, find_main_spec_structure_issues
from specgen.rules.validate_spec import MIN_PURPOSE_LENGTH, PURPOSE_PLACEHOLDER_PREFIX, PURPOSE_PLACEHOLDER_SUFFIX


class ArchiveAbort(SpecgenError):
    """A delta cannot be applied: the CLI's archive would refuse it. ``message`` is the CLI's text."""

    def __init__(
        self,
        message: str,
        path: Path | str | None = None,
        line: int | None = None,
        spec_id: str | None = None,
        *,
        code: str = "archive_spec_update_failed",
        fix: str | None = None,
        details: list | None = None,
    ):
        super().__init__(message, path, line)
        self.spec_id = spec_id
        self.code = code  # the CLI's `archive --json` status code
        self.fix = fix  # the CLI's fix line, when it gives one
        self.details = list(details or [])  # the underlying issues (specgen.errors.Issue)


@dataclass
class SpecUpdate:
    id: str  # capability id (may be nested: area/cap)
    source: Path  # the delta spec.md
    target: Path  # the main spec.md (may not exist)
    exists: bool


@dataclass
class BuildResult:
    rebuilt: str
    counts: dict  # added/modified/removed/renamed
    warnings: list[str]
    no_requirement_blocks: bool
    parts: RequirementsParts
    is_new: bool = False
    origins: dict = field(default_factory=dict)  # requirement name -> (path, line) of the text it came from

    @property
    def changed(self) -> bool:
        return sum(self.counts.values()) > 0


def find_spec_updates(change_dir: Path, main_specs_dir: Path, files: Files | None = None) -> list[SpecUpdate]:
    files = files or Files()
    out = []
    for spec_id, src in discover_spec_files(Path(change_dir) / "specs", LINKS_ANY, files):
        target = Path(main_specs_dir).joinpath(*spec_id.split("/"), "spec.md")
        out.append(SpecUpdate(spec_id, src, target, files.exists(target)))
    return out


def build_spec_skeleton(spec_id: str, change_name: str, purpose: str | None = None) -> str:
    placeholder = f"{PURPOSE_PLACEHOLDER_PREFIX}{change_name}{PURPOSE_PLACEHOLDER_SUFFIX}"
    body = (js_trim(purpose) if purpose else "") or placeholder
    return f"# {spec_id} Specification\n\n## Purpose\n{body}\n\n## Requirements\n"


def _readable_overview(skeleton: str, spec_id: str) -> str | None:
    if "<!--" in skeleton:
        return None
    if find_main_spec_structure_issues(skeleton):
        return None
    spec = parse_spec_text(skeleton)
    return None if spec.error else (js_trim(spec.overview) or None)


def _collapse_blank_runs_outside_fences(content: str) -> str:
    lines = content.split("\n")
    mask = fence_mask(lines)
    kept = []
    run = 0
    for i, line in enumerate(lines):
        if mask[i]:
            run = 0
            kept.append(line)
            continue
        if line == "":
            run += 1
            if run > 1:
                continue
            kept.append(line)
            continue
        run = 0
        kept.append(line)
    return "\n".join(kept)


def _normalize_block_raw(raw: str) -> str:
    return js_trim(normalize_eol(raw))


_FOREIGN_HEADING = re.compile("^ {0,3}#{1,3}(?:[ \t]|\\Z)")


def first_foreign_tail(raw: str):
    """(the first `#`..`###` heading line after a block's header, the text from it on), or None."""
    lines = normalize_eol(raw).split("\n")
    mask = fence_mask(lines)
    for i in range(1, len(lines)):
        if mask[i]:
            continue
        if _FOREIGN_HEADING.match(lines[i]):
            return js_trim(lines[i]), js_trim_end("\n".join(lines[i:]))
    return None


def _count_occurrences(hay: str, needle: str) -> int:
    if not needle:
        return 0
    count = start = 0
    while True:
        start = hay.find(needle, start)
        if start == -1:
            return count
        count += 1
        start += len(needle)


@dataclass
class _Merge:
    """One merge's identity (for messages) and the warnings it collects."""

    spec_id: str
    source: Path | None
    target: Path | None
    warnings: list[str] = field(default_factory=list)

    def abort(self, message: str, line: int | None = None, where: Path | None = None):
        raise ArchiveAbort(message, where or self.source, line, self.spec_id)


class _Blocks:
    """The spec's requirement blocks by name, in order, with an index of names folded for case
    and spacing, so every lookup (exact or near-miss) is a dict access."""

    def __init__(self, blocks: list[Block]):
        self.by_key: dict[str, Block] = {}
        self._folds: dict[str, dict[str, None]] = {}  # fold -> names present, in insertion order
        for b in blocks:
            self.put(normalize_requirement_name(b.name), b)

    def __contains__(self, key: str) -> bool:
        return key in self.by_key

    def get(self, key: str) -> Block | None:
        return self.by_key.get(key)

    def put(self, key: str, block: Block) -> None:
        if key not in self.by_key:
            self._folds.setdefault(fold_requirement_name(key), {})[key] = None
        self.by_key[key] = block

    def pop(self, key: str) -> Block:
        del self._folds[fold_requirement_name(key)][key]
        return self.by_key.pop(key)

    def near(self, key: str, exclude: str | None = None) -> str | None:
        """The first name present that equals `key` up to case and spacing, other than `exclude`."""
        return next((k for k in self._folds.get(fold_requirement_name(key), ()) if k != exclude), None)


def build_updated_spec(
    spec_id: str,
    delta_text: str,
    target_text: str | None,
    change_name: str,
    *,
    source: Path | None = None,
    target: Path | None = None,
) -> BuildResult:
    """Apply one delta spec to one main spec (``target_text`` None: the spec does not exist yet).

    Returns the rebuilt file content exactly as the CLI writes it, or raises ArchiveAbort with
    the CLI's message for every condition under which archive refuses the delta.
    """
    m = _Merge(spec_id, source, target)
    plan = parse_delta_spec(delta_text)
    _check_plan(m, plan)
    target_text, is_new = _target_text(m, plan, delta_text, target_text, change_name)
    structure = find_main_spec_structure_issues(target_text)
    if structure:
        details = "\n".join(f"line {i['line']}: {i['message']}" for i in structure)
        m.abort(
            f"{spec_id}: target spec is structurally invalid and cannot be updated until fixed:\n{details}",
            structure[0]["line"],
            target,
        )
    parts = extract_requirements_section(target_text)
    blocks = _Blocks(parts.body_blocks)
    order = [normalize_requirement_name(b.name) for b in parts.body_blocks]
    origins: dict[str, tuple] = {}
    renamed = _apply_renames(m, plan, blocks, order)
    removed = _apply_removals(m, plan, blocks, is_new)
    modified = _apply_modifications(m, plan, blocks, origins)
    added = _apply_additions(m, plan, blocks, origins)
    kept = _kept_blocks(m, parts, blocks, order)
    counts = {"added": added, "modified": modified, "removed": removed, "renamed": renamed}
    return BuildResult(_assemble(parts, kept), counts, m.warnings, not kept, parts, is_new, origins)


def _check_plan(m: _Merge, plan: DeltaPlan) -> None:
    """Refuse what archive refuses before touching the spec: an unpaired rename, a conflict
    (duplicates first, then rename conflicts, then section overlaps), or no operation at all."""
    spec_id = m.spec_id
    if plan.unpaired_renames:
        first = plan.unpaired_renames[0]
        missing = "TO" if first["side"] == "FROM" else "FROM"
        m.abort(
            f"{spec_id} validation failed - RENAMED entry on line {first['line']} has no matching {missing}: "
            f'for header "### Requirement: {first["name"]}". Write each rename as a FROM: line followed '
            "immediately by its TO: line.",
            first["line"],
        )
    for orphan in plan.orphaned_requirements:
        where = f'under "## {orphan["section"]}"' if orphan["section"] else 'above the first "## " section'
        m.warnings.append(
            f'{spec_id} - requirement "{orphan["name"]}" (line {orphan["line"]}) is {where}, which '
            "is not a delta section, so it was not applied. Move it under ADDED/MODIFIED/REMOVED/"
            "RENAMED Requirements."
        )
    conflicts = find_conflicts(plan)
    for kinds in ((DUPLICATE,), (RENAME_REMOVED, RENAME_OLD_MODIFIED, RENAME_TO_ADDED), (BOTH,)):
        first = next((c for c in conflicts if c.kind in kinds), None)
        if first is not None:
            m.abort(*_conflict_message(spec_id, first))
    if not (plan.added or plan.modified or plan.removed or plan.renamed):
        m.abort(
            f"Delta parsing found no operations for {spec_id}. Provide ADDED/MODIFIED/REMOVED/RENAMED sections "
            "in change spec."
        )


def _conflict_message(spec_id: str, c) -> tuple[str, int]:
    """Archive's wording of a conflict, and the line it points at."""
    failed = f"{spec_id} validation failed - "
    if c.kind == DUPLICATE and c.section in ("FROM", "TO"):
        return f'{failed}duplicate {c.section} in RENAMED for header "### Requirement: {c.name}"', c.line
    if c.kind == DUPLICATE:
        return f'{failed}duplicate requirement in {c.section} for header "### Requirement: {c.name}"', c.line
    if c.kind == RENAME_REMOVED:
        spelled = f' (REMOVED spells it "{c.spelled}")' if c.spelled else ""
        return (
            f"{failed}requirement present in multiple sections (RENAMED and REMOVED) for header "
            f'"### Requirement: {c.name}"{spelled}',
            c.line,
        )
    if c.kind == RENAME_OLD_MODIFIED:
        return (
            f'{failed}when a rename exists, MODIFIED must reference the NEW header "### Requirement: {c.name}"',
            c.other_line,
        )
    if c.kind == RENAME_TO_ADDED:
        return f'{failed}RENAMED TO header collides with ADDED for "### Requirement: {c.name}"', c.other_line
    return (
        f'{failed}requirement present in multiple sections ({c.section}) for header "### Requirement: {c.name}"',
        c.line,
    )


def _target_text(
    m: _Merge, plan: DeltaPlan, delta_text: str, target_text: str | None, change_name: str
) -> tuple[str, bool]:
    """The text to merge into, and whether the spec is new (then a skeleton carrying the delta's
    Purpose when it keeps the spec readable, else the placeholder Purpose)."""
    spec_id = m.spec_id
    delta_purpose = extract_purpose_section(delta_text)
    if target_text is not None:
        if delta_purpose:
            existing = extract_purpose_section(target_text)
            if existing and existing != delta_purpose:
                m.warnings.append(
                    f"{spec_id} - delta Purpose ignored; {spec_id} already has one. Edit {m.target} "
                    "directly to change it."
                )
        return target_text, False
    if plan.modified or plan.renamed:
        first = plan.modified[0].line if plan.modified else plan.renamed[0].line
        m.abort(
            f"{spec_id}: target spec does not exist; only ADDED requirements are allowed for new specs. "
            "MODIFIED and RENAMED operations require an existing spec.",
            first,
        )
    if plan.removed:
        m.warnings.append(
            f"{spec_id} - {len(plan.removed)} REMOVED requirement(s) ignored for new spec (nothing to remove)."
        )
    text = build_spec_skeleton(spec_id, change_name, delta_purpose)
    overview = _readable_overview(text, spec_id) if delta_purpose else None
    if delta_purpose and not overview:
        text = build_spec_skeleton(spec_id, change_name)
        m.warnings.append(
            f"{spec_id} - delta Purpose ignored (it would leave the new spec unreadable); wrote "
            "the placeholder Purpose instead."
        )
    elif overview and js_len(overview) < MIN_PURPOSE_LENGTH:
        m.warnings.append(
            f"{spec_id} - carried Purpose is under {MIN_PURPOSE_LENGTH} characters; openspec "
            "validate --strict reports it as too brief."
        )
    return text, True


def _apply_renames(m: _Merge, plan: DeltaPlan, blocks: _Blocks, order: list[str]) -> int:
    """RENAMED: the block keeps its place and body under its new header. A rename already applied
    (TO present, FROM gone) is skipped."""
    spec_id = m.spec_id
    position: dict[str, int] = {}
    for i, key in enumerate(order):
        position.setdefault(key, i)
    done = 0
    for p in plan.renamed:
        f, t = normalize_requirement_name(p.frm), normalize_requirement_name(p.to)
        if f not in blocks:
            if t not in blocks:
                m.abort(f'{spec_id} RENAMED failed for header "### Requirement: {p.frm}" - source not found', p.line)
            near = blocks.near(f, exclude=t)
            if near is not None:
                m.abort(
                    f'{spec_id} RENAMED failed for header "### Requirement: {p.frm}" - source not found, but '
                    f'"### Requirement: {blocks.get(near).name}" exists; fix the header to match it exactly',
                    p.line,
                )
            continue
        if t in blocks:
            m.abort(f'{spec_id} RENAMED failed for header "### Requirement: {p.to}" - target already exists', p.line)
        near = blocks.near(t, exclude=f)
        if near is not None:
            m.abort(
                f'{spec_id} RENAMED failed for header "### Requirement: {p.to}" - "### Requirement: '
                f'{blocks.get(near).name}" already exists and differs only in case or spacing; choose a '
                "distinct name",
                p.line,
            )
        block = blocks.pop(f)
        header = f"### Requirement: {t}"
        blocks.put(t, Block(header, t, "\n".join([header, *block.raw.split("\n")[1:]]), block.line))
        if f in position:
            order[position[f]] = t
            position.setdefault(t, position.pop(f))
        done += 1
    return done


def _apply_removals(m: _Merge, plan: DeltaPlan, blocks: _Blocks, is_new: bool) -> int:
    """REMOVED: a name not present is already removed (a warning), unless it differs from one
    present only in case or spacing (refused: a typo would silently keep the requirement)."""
    spec_id = m.spec_id
    done = 0
    for r in plan.removed:
        key = normalize_requirement_name(r.name)
        if key in blocks:
            blocks.pop(key)
            done += 1
            continue
        if is_new:
            continue
        near = blocks.near(key)
        if near is not None:
            m.abort(
                f'{spec_id} REMOVED failed for header "### Requirement: {r.name}" - not found, but '
                f'"### Requirement: {blocks.get(near).name}" exists; fix the header to match it exactly',
                r.line,
            )
        m.warnings.append(
            f'{spec_id} - REMOVED requirement "{r.name}" is not in the current spec; treating it as already removed.'
        )
    return done


def _apply_modifications(m: _Merge, plan: DeltaPlan, blocks: _Blocks, origins: dict) -> int:
    """MODIFIED: the block is replaced whole, so it must keep every scenario the current one has."""
    spec_id = m.spec_id
    done = 0
    for mod in plan.modified:
        key = normalize_requirement_name(mod.name)
        cur = blocks.get(key)
        if cur is None:
            m.abort(f'{spec_id} MODIFIED failed for header "### Requirement: {mod.name}" - not found', mod.line)
        if delta_requirement_name(mod.raw.split("\n")[0]) != key:
            m.abort(
                f'{spec_id} MODIFIED failed for header "### Requirement: {mod.name}" - header mismatch in content',
                mod.line,
            )
        diff = diff_scenario_names(cur.raw, mod.raw)
        if diff.missing:
            names = ", ".join(f'"{n}"' for n in diff.missing)
            m.abort(
                f'{spec_id} MODIFIED failed for header "### Requirement: {mod.name}" - current spec contains '
                f"scenario(s) not present in the modified block: {names}. {describe_scenario_balance(diff)} "
                "Refresh the change spec before archiving to avoid dropping scenarios.",
                mod.line,
            )
        if _normalize_block_raw(cur.raw) != _normalize_block_raw(mod.raw):
            done += 1
        blocks.put(key, mod)
        origins[key] = (m.source, mod.line)
    return done


def _apply_additions(m: _Merge, plan: DeltaPlan, blocks: _Blocks, origins: dict) -> int:
    """ADDED: appended at the end; one already present with the same text is in sync (skipped)."""
    spec_id = m.spec_id
    done = 0
    for add in plan.added:
        key = normalize_requirement_name(add.name)
        existing = blocks.get(key)
        if existing is not None:
            if _normalize_block_raw(existing.raw) == _normalize_block_raw(add.raw):
                continue
            m.abort(f'{spec_id} ADDED failed for header "### Requirement: {add.name}" - already exists', add.line)
        near = blocks.near(key)
        if near is not None:
            m.abort(
                f'{spec_id} ADDED failed for header "### Requirement: {add.name}" - "### Requirement: '
                f'{blocks.get(near).name}" already exists and differs only in case or spacing; use MODIFIED '
                "with that exact header to change it, or choose a distinct name",
                add.line,
            )
        blocks.put(key, add)
        origins[key] = (m.source, add.line)
        done += 1
    return done


def _kept_blocks(m: _Merge, parts: RequirementsParts, blocks: _Blocks, order: list[str]) -> list[Block]:
    """The blocks to write: the spec's own in their order (replaced where modified), then the new
    ones. A heading that sat inside a replaced or removed block goes with it: warn."""
    kept: list[Block] = []
    seen: set[str] = set()
    for index, block in enumerate(parts.body_blocks):
        key = order[index]
        repl = blocks.get(key)
        if repl is not None:
            kept.append(repl)
            seen.add(key)
        if repl is not block:
            _warn_lost_heading(m, block, repl)
    kept.extend(block for key, block in blocks.by_key.items() if key not in seen)
    return kept


def _warn_lost_heading(m: _Merge, block: Block, repl: Block | None) -> None:
    foreign = first_foreign_tail(block.raw)
    if not foreign:
        return
    nf = _normalize_block_raw(foreign[1])
    if repl is not None and _count_occurrences(_normalize_block_raw(repl.raw), nf) >= _count_occurrences(
        _normalize_block_raw(block.raw), nf
    ):
        return
    m.warnings.append(
        f'{m.spec_id} - "{foreign[0]}" sits inside requirement "{block.name}" and goes with it. Move '
        "it under its own requirement, or above `## Requirements`, to keep it."
    )


def _assemble(parts: RequirementsParts, kept: list[Block]) -> str:
    """The file as the CLI writes it: before, the Requirements header, preamble and blocks, after;
    runs of blank lines outside fences collapsed, one final newline."""
    pieces = []
    if parts.preamble and js_trim(parts.preamble):
        pieces.append(js_trim_end(parts.preamble))
    pieces.extend(b.raw for b in kept)
    req_body = js_trim_end("\n\n".join(pieces))
    slices = [js_trim_end(parts.before), parts.header_line, req_body, js_trim(parts.after)]
    return js_trim_end(_collapse_blank_runs_outside_fences("\n\n".join(s for s in slices if s != ""))) + "\n"


def build_update(update: SpecUpdate, change_name: str, files: Files | None = None) -> BuildResult:
    files = files or Files()
    delta = files.text(update.source)
    try:
        target = files.text(update.target)
    except (FileNotFoundError, NotADirectoryError):
        target = None
    except OSError as exc:
        raise SpecgenError(f"cannot read: {exc.strerror}", update.target) from None
    return build_updated_spec(update.id, delta, target, change_name, source=update.source, target=update.target)


def match_line_ending(content: str, original: str) -> str:
    crlf = original.count("\r\n")
    lf = original.count("\n") - crlf
    if crlf == 0 and lf == 0:
        return content
    if crlf >= lf:
        return content.replace("\r\n", "\n").replace("\n", "\r\n")
    return content.replace("\r\n", "\n")
