"""Change folders: proposal (title, Why, What Changes), tasks progress and deltas, as the
OpenSpec CLI 1.13.2 ``show <change>`` and ``list`` read them (see docs/reading-openspec.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from specgen.model import ADDED, MODIFIED, REMOVED, RENAMED, Change, Delta
from specgen.reader.deltas import DropFile, delta_requirements, has_delta_sections, parse_delta_text
from specgen.reader.markdown import Document, tail_text
from specgen.reader.tasklines import task_line
from specgen.reader.text import NOT_EOL, WS, js_trim, read_text
from specgen.reader.tree import discover_spec_files

# ---------------------------------------------------------------------------- proposals

_TITLE = re.compile(
    rf"(?:\A|(?<=[\n\r\u2028\u2029]))#[{WS}]+(?:[Cc][Hh][Aa][Nn][Gg][Ee]:[{WS}]+)?({NOT_EOL}+)(?=[\n\r\u2028\u2029]|\Z)"
)
_PROSE_DELTA = re.compile(rf"[{WS}]*-[{WS}]*\*\*([^*:]+)(?::\*\*|\*\*:)")
_RENAME_WORDS = (re.compile(r"\brename(s|d|ing)?\b", re.A), re.compile(rf"\brenamed[{WS}]+(to|from)\b", re.A))
_ADD_WORDS = (
    re.compile(r"\badd(s|ed|ing)?\b", re.A),
    re.compile(r"\bcreate(s|d|ing)?\b", re.A),
    re.compile(r"\bnew\b", re.A),
)
_REMOVE_WORDS = (re.compile(r"\bremove(s|d|ing)?\b", re.A), re.compile(r"\bdelete(s|d|ing)?\b", re.A))


def proposal_title(raw: str, change_id: str) -> str:
    """The first `# ` heading of the raw proposal (before BOM/CRLF normalization, as the CLI
    reads it), without a `Change:` prefix; the change id when none, or when it is `Proposal`."""
    m = _TITLE.search(raw)
    title = js_trim(m.group(1)) if m else ""
    return title if title and title.lower() != "proposal" else change_id


def _prose_deltas(content: str, first_line: int, path: Path) -> list[Delta]:
    """`- **capability**: description` bullets of What Changes (used only when no delta spec
    file has a delta section). The operation is guessed from the description's words."""
    out = []
    for k, line in enumerate(content.split("\n")):
        if "**" not in line:
            continue
        m = _PROSE_DELTA.match(line)
        desc = tail_text(line[m.end() :]) if m else None
        if desc is None:
            continue
        spec = js_trim(m.group(1))
        low = desc.lower()
        op = MODIFIED
        if any(p.search(low) for p in _RENAME_WORDS):
            op = RENAMED
        elif any(p.search(low) for p in _ADD_WORDS):
            op = ADDED
        elif any(p.search(low) for p in _REMOVE_WORDS):
            op = REMOVED
        out.append(Delta(spec, op, path, first_line + k, description=desc, from_proposal=True))
    return out


@dataclass
class ProposalText:
    title: str
    why: str = ""
    what_changes: str = ""
    what_changes_line: int = 0
    error: str | None = None


def parse_proposal_text(raw: str, change_id: str) -> ProposalText:
    doc = Document(raw)
    out = ProposalText(proposal_title(raw, change_id))
    why = doc.find("Why")
    what = doc.find("What Changes")
    out.why = doc.content(why) if why else ""
    out.what_changes = doc.content(what) if what else ""
    if what is not None:
        out.what_changes_line = doc.content_start(what) + 1
    if not out.why:
        out.error = "Change must have a Why section"
    elif not out.what_changes:
        out.error = "Change must have a What Changes section"
    return out


# ---------------------------------------------------------------------------- tasks

_SCHEMA_LINE = re.compile(r"^schema:[ \t]*['\"]?([^'\"#\s][^'\"#]*?)['\"]?[ \t]*(?:#.*)?$", re.M)


def count_tasks(text: str) -> tuple[int, int]:
    """(total, done) checkbox lines, counted as the CLI counts them: any list marker, any
    indentation, fenced or not; only `x`/`X` is done."""
    total = done = 0
    for line in text.split("\n"):
        if "[" not in line:
            continue
        task = task_line(line)
        if task is not None:
            total += 1
            if task[0].lower() == "x":
                done += 1
    return total, done


def _yaml_scalar(path: Path, key: str = "schema") -> str | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    m = _SCHEMA_LINE.search(text)
    return m.group(1).strip() if m else None


def _task_files(folder: Path, root: Path) -> list[Path]:
    """The files the change's schema tracks as its tasks (`tasks.md` for the built-in
    spec-driven schema; a project schema under openspec/schemas/ may name another file or a
    glob). Falls back to `tasks.md`, as the CLI does when nothing matches."""
    fallback = [folder / "tasks.md"]
    name = _yaml_scalar(folder / ".openspec.yaml")
    if name is None:
        for cfg in ("config.yaml", "config.yml"):
            if (root / "openspec" / cfg).is_file():
                name = _yaml_scalar(root / "openspec" / cfg)
                break
    name = re.sub(r"\.ya?ml$", "", name or "spec-driven")
    schema_file = root / "openspec" / "schemas" / name / "schema.yaml"
    if not schema_file.is_file():
        return fallback  # built-in spec-driven (tracks tasks.md) or unresolvable
    try:
        import yaml  # only for project-local schemas

        schema = yaml.safe_load(schema_file.read_text(encoding="utf-8")) or {}
        artifacts = schema.get("artifacts") or []
        tracks = (schema.get("apply") or {}).get("tracks")
        art = next(
            (a for a in artifacts if (a.get("generates") == tracks if tracks is not None else a.get("id") == "tasks")),
            None,
        )
        generates = art.get("generates") if art else None
    except Exception:
        return fallback
    if not generates or not isinstance(generates, str):
        return fallback
    if any(c in generates for c in "*?[{"):
        found = sorted({p.resolve() for p in folder.glob(generates) if p.is_file()})
    else:
        p = folder / generates
        found = [p] if p.is_file() else []
    return found or fallback


def task_progress(folder: Path, root: Path | None = None) -> tuple[int, int]:
    root = root if root is not None else folder.parent.parent.parent
    total = done = 0
    for f in _task_files(folder, root):
        try:
            data = f.read_bytes()
        except OSError:
            continue  # missing or unreadable: zero tasks, as the CLI counts it
        t, d = count_tasks(data.decode("utf-8", "replace"))
        total += t
        done += d
    return total, done


# ---------------------------------------------------------------------------- changes


def parse_change(folder: Path | str, archived: bool = False, root: Path | None = None) -> Change:
    """One change folder: proposal (title, Why, What Changes), tasks progress and the deltas
    `openspec show --json --type change` reports. A change the CLI cannot show (no proposal,
    no Why / What Changes text) parses with ``error`` set."""
    folder = Path(folder)
    change_id = folder.name
    if root is None:
        root = folder.parent.parent.parent if archived else folder.parent.parent
        if archived:
            root = root.parent
    proposal_path = folder / "proposal.md"
    has_proposal = proposal_path.is_file()
    error = None
    prop = ProposalText(change_id)
    if has_proposal:
        prop = parse_proposal_text(read_text(proposal_path), change_id)
        error = prop.error
    else:
        error = f'Change "{change_id}" has no proposal.md yet'

    deltas: list[Delta] = []
    any_sections = False
    for sid, spec_file in discover_spec_files(folder / "specs"):
        text = read_text(spec_file)
        dt = parse_delta_text(text)
        any_sections = any_sections or has_delta_sections(dt)
        try:
            deltas.extend(delta_requirements(sid, spec_file, dt))
        except DropFile:
            continue
    if not any_sections:
        deltas = _prose_deltas(prop.what_changes, prop.what_changes_line, proposal_path) if prop.what_changes else []
    total, done = task_progress(folder, root)
    return Change(
        change_id,
        folder,
        archived,
        prop.why,
        prop.what_changes,
        tuple(deltas),
        total,
        done,
        title=prop.title,
        error=error,
        has_proposal=has_proposal,
    )
