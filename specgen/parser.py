"""Reader: ``openspec/`` -> spec model, reading every file exactly as the OpenSpec CLI 1.13.2
``show`` and ``list`` commands do (see docs/reading-openspec.md for the rules and the few
deliberate differences).

Public API: ``load_project(root)``, ``parse_spec(path, spec_id)``, ``parse_change(folder,
archived)``; plus the text-level ``parse_spec_text`` / ``parse_delta_text`` and the discovery
helpers the CLI layer uses. Standard library only, one pass per file.
"""

from __future__ import annotations

import os
import re
import stat as _stat
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from specgen.markdown import (
    NOT_EOL, WS, WS_CHARS, Document, Section, fence_mask, header_parts, js_trim, js_trim_end, normalize,
    requirement_name, scenario_name, strip_closing_run, tail_text,
)
from specgen.model import (
    ADDED, MODIFIED, REMOVED, RENAMED, Change, Delta, Project, Requirement, Scenario, Spec, SpecgenError,
)

# ---------------------------------------------------------------------------- reading files


def read_text(path: Path | str) -> str:
    """A markdown file's text. Not UTF-8, binary (NUL bytes) or unreadable -> SpecgenError
    naming the file and, for bad bytes, the line. (The CLI would read bad bytes as U+FFFD
    and carry on; specgen refuses rather than report text that is not in the file.)"""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except IsADirectoryError:
        raise SpecgenError("is a directory, expected a markdown file", path) from None
    except OSError as exc:
        raise SpecgenError(f"cannot read: {exc.strerror or exc}", path) from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise SpecgenError("UTF-16 text; re-save the file as UTF-8", path, 1)
    nul = data.find(b"\x00")
    if nul != -1:
        line = data.count(b"\n", 0, nul) + 1
        raise SpecgenError("binary file (NUL byte); expected UTF-8 markdown", path, line)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecgenError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {col}); re-save the file as UTF-8",
            path, line) from None


def utf16_key(text: str) -> bytes:
    """Sort key matching JavaScript's default string order (UTF-16 code units)."""
    return text.encode("utf-16-be", "surrogatepass")


# ---------------------------------------------------------------------------- anchors

_ANCHOR = re.compile(r"<!--\s*specgen-id:\s*(\S+?)\s*-->")


def _anchor(raw_text: str) -> str | None:
    """`<!-- specgen-id: <id> -->` on a line of its own in a scenario body (not in a fence)."""
    marker = ""
    for line in raw_text.split("\n"):
        s = line.strip()
        if marker:
            if s.startswith(marker * 3) and not s.strip(marker).strip():
                marker = ""
            continue
        if s.startswith("```") or s.startswith("~~~"):
            marker = s[0]
            continue
        m = _ANCHOR.fullmatch(s)
        if m:
            return m.group(1)
    return None


# ---------------------------------------------------------------------------- specs


def _requirement(doc: Document, sec: Section, line_offset: int = 0) -> Requirement:
    text = doc.requirement_text(sec)
    scenarios = []
    lines = doc.lines
    for child in sec.children:
        raw = "\n".join(lines[child.index + 1 : child.end]).strip(WS_CHARS)
        if raw:  # a header with an empty body is not a scenario
            anchor = _anchor(raw) if "specgen-id" in raw else None
            scenarios.append(Scenario(scenario_name(child.title), raw, child.index + 1 + line_offset, anchor))
    return Requirement(requirement_name(sec.title), text, sec.index + 1 + line_offset, tuple(scenarios))


@dataclass
class SpecText:
    overview: str = ""
    requirements: tuple[Requirement, ...] = ()
    heading: str = ""
    error: str | None = None
    purpose_line: int = 0
    requirements_line: int = 0


def parse_spec_text(text: str) -> SpecText:
    doc = Document(text)
    out = SpecText()
    for sec in doc.sections:
        if sec.level == 1:
            out.heading = sec.title
            break
    purpose = doc.find("Purpose")
    overview = doc.content(purpose) if purpose else ""
    reqs = doc.find("Requirements")
    if purpose:
        out.purpose_line = purpose.index + 1
    if reqs:
        out.requirements_line = reqs.index + 1
    if not overview:
        out.error = "Spec must have a Purpose section"
        return out
    if reqs is None:
        out.error = "Spec must have a Requirements section"
        return out
    out.overview = overview
    out.requirements = tuple(_requirement(doc, child) for child in reqs.children)
    return out


def parse_spec(path: Path | str, spec_id: str | None = None) -> Spec:
    """One spec file. A spec the CLI cannot show (no Purpose text, no Requirements section)
    parses with ``error`` set and no requirements, as the CLI's ``list`` counts it."""
    path = Path(path)
    spec_id = spec_id or path.parent.name
    st = parse_spec_text(read_text(path))
    return Spec(spec_id, path, spec_id, st.overview, st.requirements, heading=st.heading, error=st.error)


# ---------------------------------------------------------------------------- delta specs

_REMOVED_BULLET = re.compile(rf"[{WS}]*[-*+][{WS}]*`?###[{WS}]*Requirement:")
_RENAME_FROM = re.compile(rf"[{WS}]*[-*+]?[{WS}]*FROM:[{WS}]*`?###[{WS}]*Requirement:")
_RENAME_TO = re.compile(rf"[{WS}]*[-*+]?[{WS}]*TO:[{WS}]*`?###[{WS}]*Requirement:")
_DELTA_TITLES = {"added requirements": ADDED, "modified requirements": MODIFIED,
                 "removed requirements": REMOVED, "renamed requirements": RENAMED}
_REQ_TITLE = re.compile(rf"requirement:[{WS}]*[^{WS}]", re.I | re.A)
_EOL = "\r\u2028\u2029"


def delta_requirement_name(line: str) -> str | None:
    r"""The name in a delta reader's requirement header (JavaScript
    `/^###\s*Requirement:\s*(.+)\s*$/i`, then the closing run dropped and trimmed), or None.
    Decided without backtracking."""
    if not line.startswith("###"):
        return None
    rest = line[3:].lstrip(WS_CHARS)
    if rest[:12].lower() != "requirement:":
        return None
    r = rest[12:]
    p = len(r) - len(r.lstrip(WS_CHARS))
    if p == len(r):  # blanks only: a one-blank name, if any blank is no line terminator
        return "" if any(c not in _EOL for c in r) else None
    e = min([i for i in (r.find(c, p) for c in _EOL) if i != -1] or [len(r)])
    if r[e:].strip(WS_CHARS):
        return None
    return strip_closing_run(r[p:e])


def _lazy_tail(r: str) -> str | None:
    r"""JavaScript `\s*(.+?)`?\s*$` over `r`: the group (the text up to an optional closing
    backtick and trailing blanks), or None."""
    p = len(r) - len(r.lstrip(WS_CHARS))
    if p == len(r):
        return "" if any(c not in _EOL for c in r) else None
    n = len(r.rstrip(WS_CHARS))
    x = n - 1 if r[n - 1] == "`" and n - 1 >= p + 1 else n
    name = r[p:x]
    if any(c in name for c in _EOL):
        return None
    return name


def _prefixed_name(pattern: re.Pattern, line: str) -> str | None:
    m = pattern.match(line)
    if not m:
        return None
    name = _lazy_tail(line[m.end():])
    return None if name is None else strip_closing_run(name)


@dataclass
class _Block:
    name: str
    raw: str
    line: int  # 1-based line of the header


@dataclass
class DeltaText:
    """What one delta spec file says, grouped as the CLI's `show` reports it."""

    added: list[_Block] = field(default_factory=list)
    modified: list[_Block] = field(default_factory=list)
    removed: list[tuple[str, int]] = field(default_factory=list)  # (name, line), document order
    removed_blocks: list[_Block] = field(default_factory=list)
    renamed: list[tuple[str, str, int]] = field(default_factory=list)  # (from, to, line of FROM)
    has_sections: bool = False


def _is_delta_req(line: str) -> bool:
    return line.startswith("###") and delta_requirement_name(line) is not None


def _is_level2(line: str) -> bool:
    return line.startswith("##") and (header_parts(line) or (0,))[0] == 2


def _blocks(lines: list[str], mask: list[bool], start: int, end: int) -> list[_Block]:
    """Requirement blocks of one delta section: each from a `### Requirement:` header to the
    next one or the next `## ` line (fenced lines never count as either)."""
    blocks: list[_Block] = []
    i = start
    while i < end:
        while i < end and (mask[i] or not _is_delta_req(lines[i])):
            i += 1
        if i >= end:
            break
        name = delta_requirement_name(lines[i])
        header = i
        i += 1
        while i < end and (mask[i] or not (_is_delta_req(lines[i]) or _is_level2(lines[i]))):
            i += 1
        raw = js_trim_end("\n".join(lines[header:i]))
        blocks.append(_Block(name, raw, header + 1))
    return blocks


def parse_delta_text(text: str) -> DeltaText:
    doc_lines = normalize(text).split("\n")
    mask = fence_mask(doc_lines)
    heads: list[tuple[int, str]] = []
    for i, line in enumerate(doc_lines):
        if not mask[i] and line.startswith("##"):
            h = header_parts(line)
            if h is not None and h[0] == 2 and h[1] is not None:
                heads.append((i, h[1]))
    out = DeltaText()
    for k, (idx, title) in enumerate(heads):
        op = _DELTA_TITLES.get(title.lower())
        if op is None:
            continue
        out.has_sections = True
        start, end = idx + 1, heads[k + 1][0] if k + 1 < len(heads) else len(doc_lines)
        if op == ADDED:
            out.added.extend(_blocks(doc_lines, mask, start, end))
        elif op == MODIFIED:
            out.modified.extend(_blocks(doc_lines, mask, start, end))
        elif op == REMOVED:
            for i in range(start, end):
                if mask[i]:
                    continue
                line = doc_lines[i]
                name = delta_requirement_name(line)
                if name is None:
                    name = _prefixed_name(_REMOVED_BULLET, line)
                if name is not None:
                    out.removed.append((name, i + 1))
            out.removed_blocks.extend(_blocks(doc_lines, mask, start, end))
        else:  # RENAMED: a FROM line then a TO line; anything else pairs with nothing
            pending: tuple[str, int] | None = None
            for i in range(start, end):
                if mask[i]:
                    continue
                line = doc_lines[i]
                frm = _prefixed_name(_RENAME_FROM, line) if "FROM:" in line else None
                if frm is not None:
                    pending = (frm, i + 1)
                    continue
                to = _prefixed_name(_RENAME_TO, line) if "TO:" in line else None
                if to is not None and pending is not None:
                    out.renamed.append((pending[0], to, pending[1]))
                    pending = None
    return out


class _DropFile(Exception):
    """The CLI's `show` fails on this block and silently drops the whole file's deltas."""


def _block_requirement(block: _Block) -> Requirement | None:
    """A delta block read as the CLI's `show` reads it: re-parsed as a small document whose
    first line is `### <title>`; kept only when its first section's title is
    `Requirement: <something>`."""
    header, nl, body = block.raw.partition("\n")
    title = js_trim(re.sub(rf"\A###[{WS}]*", "", header, count=1))
    doc = Document(f"### {title}\n{body}" if nl else f"### {title}")
    if not doc.roots:
        # Only when the title holds a line separator (U+2028...): the CLI then reads an
        # undefined section and throws, and its catch-all skips the file.
        raise _DropFile
    sec = doc.roots[0]
    if not _REQ_TITLE.match(sec.title):
        return None
    return _requirement(doc, sec, block.line - 1)


def delta_requirements(spec_id: str, path: Path, dt: DeltaText) -> list[Delta]:
    """The deltas of one file in the CLI's `show` order: ADDED, MODIFIED, REMOVED, RENAMED."""
    out: list[Delta] = []
    for op, blocks, verb in ((ADDED, dt.added, "Add"), (MODIFIED, dt.modified, "Modify")):
        for b in blocks:
            req = _block_requirement(b)
            if req is not None:
                out.append(Delta(spec_id, op, path, req.line, requirement=req, name=req.name,
                                 description=f"{verb} requirement: {req.text}"))
    pool: dict[str, deque[_Block]] = {}
    for b in dt.removed_blocks:
        pool.setdefault(b.name, deque()).append(b)
    for name, line in dt.removed:
        # Each name takes the first unused block of exactly that name; a bullet-form entry
        # has none and reads as a bare header.
        queue = pool.get(name)
        block = queue.popleft() if queue else _Block(name, f"### Requirement: {name}", line)
        req = _block_requirement(block)
        if req is not None:
            out.append(Delta(spec_id, REMOVED, path, req.line, requirement=req, name=name,
                             description=f"Remove requirement: {req.text}"))
    for frm, to, line in dt.renamed:
        out.append(Delta(spec_id, RENAMED, path, line, name=to, rename_from=frm,
                         description=f'Rename requirement from "{frm}" to "{to}"'))
    return out


# ---------------------------------------------------------------------------- proposals

_TITLE = re.compile(
    rf"(?:\A|(?<=[\n\r\u2028\u2029]))#[{WS}]+(?:[Cc][Hh][Aa][Nn][Gg][Ee]:[{WS}]+)?({NOT_EOL}+)(?=[\n\r\u2028\u2029]|\Z)")
_PROSE_DELTA = re.compile(rf"[{WS}]*-[{WS}]*\*\*([^*:]+)(?::\*\*|\*\*:)")
_RENAME_WORDS = (re.compile(r"\brename(s|d|ing)?\b", re.A), re.compile(rf"\brenamed[{WS}]+(to|from)\b", re.A))
_ADD_WORDS = (re.compile(r"\badd(s|ed|ing)?\b", re.A), re.compile(r"\bcreate(s|d|ing)?\b", re.A),
              re.compile(r"\bnew\b", re.A))
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
        desc = tail_text(line[m.end():]) if m else None
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


# ---------------------------------------------------------------------------- discovery


def discover_spec_files(specs_root: Path) -> list[tuple[str, Path]]:
    """Every `<id>/spec.md` under `specs_root`, at any depth (`area/cap/spec.md` has id
    `area/cap`), sorted as the CLI sorts ids. Dot entries are skipped; symlinked directories
    are not followed (so a link loop is harmless); a symlinked spec.md counts when it points
    at a file inside the specs tree or its own capability folder; a dangling one is skipped."""
    results: list[tuple[str, Path]] = []
    root_real = None
    todo: list[tuple[Path, tuple[str, ...]]] = [(specs_root, ())]
    while todo:
        folder, segs = todo.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            if segs:
                continue
            raise SpecgenError("is not a folder", folder) from None
        except OSError as exc:
            raise SpecgenError(f"cannot list folder: {exc.strerror or exc}", folder) from None
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                todo.append((Path(entry.path), segs + (name,)))
                continue
            if name != "spec.md" or not segs:
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue  # dangling link: not content
                except OSError as exc:
                    raise SpecgenError(f"cannot read: {exc.strerror or exc}", path) from None
                if not _stat.S_ISREG(st.st_mode):
                    continue
                if root_real is None:
                    root_real = os.path.realpath(specs_root)
                target = os.path.realpath(path)
                if not (_within(root_real, target) or _within(os.path.realpath(folder), target)):
                    raise SpecgenError("spec.md links outside its specs folder", path)
            elif not entry.is_file(follow_symlinks=False):
                continue
            results.append(("/".join(segs), path))
    results.sort(key=lambda r: utf16_key(r[0]))
    return results


def _within(folder: str, target: str) -> bool:
    return target == folder or target.startswith(folder.rstrip(os.sep) + os.sep)


def _subdirs(folder: Path) -> list[str]:
    """Names of the real (not symlinked) sub-folders, in byte order as Node's readdir lists them."""
    try:
        names = [e.name for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise SpecgenError(f"cannot list folder: {exc.strerror or exc}", folder) from None
    return sorted(names, key=lambda n: n.encode("utf-8", "surrogateescape"))


def active_change_ids(root: Path) -> list[str]:
    """Folders directly under openspec/changes/, except archive/ and dot folders."""
    names = [n for n in _subdirs(root / "openspec" / "changes") if n != "archive" and not n.startswith(".")]
    return sorted(names, key=utf16_key)


def archived_change_ids(root: Path) -> list[str]:
    names = [n for n in _subdirs(root / "openspec" / "changes" / "archive") if not n.startswith(".")]
    return sorted(names, key=utf16_key)


def spec_ids(root: Path) -> list[str]:
    return [sid for sid, _ in discover_spec_files(root / "openspec" / "specs")]


# ---------------------------------------------------------------------------- tasks

_TASK_HEAD = re.compile(rf"[{WS}]*(?:[-*+]|[0-9]{{1,9}}[.)])[{WS}]*\[")


def _task_mark(line: str) -> str | None:
    """The box's mark ('' for a blank box) when `line` is a task line as the CLI reads one
    (`- [ ]`, `* [x]`, `1. [X]`, `- [~]`, `- [ x ]`; not a link like `- [A](url)`), else None.
    Decided without backtracking."""
    m = _TASK_HEAD.match(line)
    if not m:
        return None
    b = line[m.end():]
    q = len(b) - len(b.lstrip(WS_CHARS))
    if q < len(b):
        c = b[q]
        if c == "]":
            if b[q + 1 : q + 2] not in ("(", "["):
                return ""
        else:
            r = b[q + 1 :]
            q2 = len(r) - len(r.lstrip(WS_CHARS))
            if r[q2 : q2 + 1] == "]" and r[q2 + 1 : q2 + 2] not in ("(", "["):
                return c
        if q >= 1 and c == "]":  # `[ ](...)`: a blank box still counts
            return ""
    return None


_SCHEMA_LINE = re.compile(r"^schema:[ \t]*['\"]?([^'\"#\s][^'\"#]*?)['\"]?[ \t]*(?:#.*)?$", re.M)


def count_tasks(text: str) -> tuple[int, int]:
    """(total, done) checkbox lines, counted as the CLI counts them: any list marker, any
    indentation, fenced or not; only `x`/`X` is done."""
    total = done = 0
    for line in text.split("\n"):
        if "[" not in line:
            continue
        mark = _task_mark(line)
        if mark is not None:
            total += 1
            if mark.lower() == "x":
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
        art = next((a for a in artifacts if (a.get("generates") == tracks if tracks is not None else a.get("id") == "tasks")), None)
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
        any_sections = any_sections or dt.has_sections
        try:
            deltas.extend(delta_requirements(sid, spec_file, dt))
        except _DropFile:
            continue
    if not any_sections:
        deltas = _prose_deltas(prop.what_changes, prop.what_changes_line, proposal_path) if prop.what_changes else []
    total, done = task_progress(folder, root)
    return Change(change_id, folder, archived, prop.why, prop.what_changes, tuple(deltas), total, done,
                  title=prop.title, error=error, has_proposal=has_proposal)


# ---------------------------------------------------------------------------- project


def find_root(start: Path | str = ".") -> Path | None:
    """The OpenSpec root the CLI would use from `start`: the nearest folder (start first,
    then its ancestors) holding an `openspec/` with a `specs/` or `changes/` folder in it,
    symlinks resolved. None when there is none."""
    here = Path(os.path.realpath(start))
    if not here.is_dir():
        here = here.parent
    while True:
        base = here / "openspec"
        if base.is_dir() and ((base / "specs").is_dir() or (base / "changes").is_dir()):
            return here
        if here.parent == here:
            return None
        here = here.parent


def load_project(root: Path | str = ".") -> Project:
    """Parse ``<root>/openspec``: every spec, every active change, every archived change."""
    root = Path(root)
    base = root / "openspec"
    if not base.is_dir():
        raise SpecgenError("no openspec/ folder here; pass --root DIR or run `openspec init`", base)
    specs = tuple(parse_spec(path, sid) for sid, path in discover_spec_files(base / "specs"))
    changes = tuple(parse_change(base / "changes" / cid, False, root) for cid in active_change_ids(root))
    archived = tuple(parse_change(base / "changes" / "archive" / cid, True, root) for cid in archived_change_ids(root))
    return Project(root, specs, changes, archived)
