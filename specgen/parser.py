"""Reader/parser: openspec/ markdown -> spec model.

PLACEHOLDER: a minimal line-based reader so that later layers can be built
against the API below. It is being replaced by a parser that reproduces the
official OpenSpec CLI exactly; keep the public functions' names and signatures.
"""

from __future__ import annotations

import re
from pathlib import Path

from specgen.model import (
    ADDED, MODIFIED, REMOVED, RENAMED, Change, Delta, Project, Requirement, Scenario, Spec, SpecgenError,
)

_REQ = re.compile(r"^###\s+Requirement:\s*(.+?)\s*$")
_SCN = re.compile(r"^####\s+Scenario:\s*(.+?)\s*$")
_ANCHOR = re.compile(r"^<!--\s*specgen-id:\s*(\S+)\s*-->$")
_SECTION = re.compile(r"^##\s+(.+?)\s*$")


def _read(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecgenError(f"cannot read: {exc}", path) from None
    return text.lstrip("\ufeff").replace("\r\n", "\n").split("\n")


def _requirements(lines: list[str], start: int, end: int) -> list[Requirement]:
    reqs: list[Requirement] = []
    i = start
    while i < end:
        m = _REQ.match(lines[i])
        if not m:
            i += 1
            continue
        name, line = m.group(1), i + 1
        j = i + 1
        while j < end and not _REQ.match(lines[j]) and not _SECTION.match(lines[j]):
            j += 1
        body = lines[i + 1 : j]
        text = next((b.strip() for b in body if b.strip() and not _SCN.match(b)), name)
        scenarios: list[Scenario] = []
        k = 0
        while k < len(body):
            sm = _SCN.match(body[k])
            if not sm:
                k += 1
                continue
            kk = k + 1
            while kk < len(body) and not body[kk].startswith("#"):
                kk += 1
            chunk = body[k + 1 : kk]
            anchor = None
            if chunk and _ANCHOR.match(chunk[0].strip()):
                anchor = _ANCHOR.match(chunk[0].strip()).group(1)
            raw = "\n".join(c for c in chunk if c.strip() and not _ANCHOR.match(c.strip())).strip()
            scenarios.append(Scenario(sm.group(1), raw, i + 1 + k + 1, anchor))
            k = kk
        reqs.append(Requirement(name, text, line, tuple(scenarios)))
        i = j
    return reqs


def parse_spec(path: Path, spec_id: str | None = None) -> Spec:
    lines = _read(path)
    spec_id = spec_id or path.parent.name
    title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), spec_id)
    sections = [(i, m.group(1)) for i, ln in enumerate(lines) if (m := _SECTION.match(ln))]
    overview, reqs = "", []
    for n, (i, name) in enumerate(sections):
        end = sections[n + 1][0] if n + 1 < len(sections) else len(lines)
        if name.lower() == "purpose":
            overview = "\n".join(lines[i + 1 : end]).strip()
        elif name.lower() == "requirements":
            reqs = _requirements(lines, i + 1, end)
    return Spec(spec_id, path, title, overview, tuple(reqs))


def parse_change(folder: Path, archived: bool = False) -> Change:
    deltas: list[Delta] = []
    for delta_file in sorted((folder / "specs").glob("*/spec.md")):
        lines = _read(delta_file)
        sections = [(i, m.group(1)) for i, ln in enumerate(lines) if (m := _SECTION.match(ln))]
        for n, (i, name) in enumerate(sections):
            end = sections[n + 1][0] if n + 1 < len(sections) else len(lines)
            op = name.split()[0].upper() if name.split() else ""
            if op in (ADDED, MODIFIED):
                for r in _requirements(lines, i + 1, end):
                    deltas.append(Delta(delta_file.parent.name, op, delta_file, r.line, requirement=r, name=r.name))
            elif op == REMOVED:
                for j in range(i + 1, end):
                    if m := _REQ.match(lines[j]):
                        deltas.append(Delta(delta_file.parent.name, op, delta_file, j + 1, name=m.group(1)))
            elif op == RENAMED:
                frm = None
                for j in range(i + 1, end):
                    m = re.match(r"^-\s*FROM:\s*`?###\s+Requirement:\s*(.+?)`?\s*$", lines[j])
                    t = re.match(r"^-\s*TO:\s*`?###\s+Requirement:\s*(.+?)`?\s*$", lines[j])
                    if m:
                        frm = (m.group(1), j + 1)
                    elif t and frm:
                        deltas.append(Delta(delta_file.parent.name, op, delta_file, frm[1], name=t.group(1), rename_from=frm[0]))
                        frm = None
    tasks = folder / "tasks.md"
    total = done = 0
    if tasks.is_file():
        for ln in _read(tasks):
            if re.match(r"^\s*[-*]\s+\[[ xX]\]", ln):
                total += 1
                done += bool(re.match(r"^\s*[-*]\s+\[[xX]\]", ln))
    return Change(folder.name, folder, archived, deltas=tuple(deltas), tasks_total=total, tasks_done=done)


def load_project(root: Path | str = ".") -> Project:
    """Parse ``<root>/openspec``: every spec, every active change, every archived change."""
    root = Path(root)
    base = root / "openspec"
    if not base.is_dir():
        raise SpecgenError("no openspec/ folder here; pass --root DIR or run `openspec init`", base)
    specs = tuple(
        parse_spec(p / "spec.md")
        for p in sorted((base / "specs").iterdir() if (base / "specs").is_dir() else [])
        if (p / "spec.md").is_file()
    )
    changes_dir = base / "changes"
    changes, archived = [], []
    if changes_dir.is_dir():
        for p in sorted(changes_dir.iterdir()):
            if p.is_dir() and p.name != "archive":
                changes.append(parse_change(p))
        if (changes_dir / "archive").is_dir():
            archived = [parse_change(p, True) for p in sorted((changes_dir / "archive").iterdir()) if p.is_dir()]
    return Project(root, specs, tuple(changes), tuple(archived))
