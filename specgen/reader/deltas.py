"""Delta specs, as the OpenSpec CLI 1.13.2 ``show`` reads them for ``show <change>``.

The file is cut into entries by the one requirement-block reader (:func:`specgen.reader.blocks.
parse_delta_spec`, the reader of ``validate`` and ``archive`` too); ``delta_requirements`` turns
them into model ``Delta`` objects, each block re-read with the section-tree reader as ``show``
does (see docs/reading-openspec.md).
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path

from specgen.model import ADDED, MODIFIED, REMOVED, RENAMED, Delta, Requirement
from specgen.reader.blocks import Block, DeltaPlan, parse_delta_spec
from specgen.reader.markdown import Document
from specgen.reader.specs import requirement_from_section
from specgen.reader.text import WS, js_trim

_REQ_TITLE = re.compile(rf"requirement:[{WS}]*[^{WS}]", re.I | re.A)


def parse_delta_text(text: str) -> DeltaPlan:
    """A delta spec's entries (the plan archive reads; see :func:`delta_requirements`)."""
    return parse_delta_spec(text)


def has_delta_sections(plan: DeltaPlan) -> bool:
    return any(plan.section_presence.values())


class DropFile(Exception):  # control flow only, never leaves this layer
    """The CLI's `show` fails on this block and silently drops the whole file's deltas."""


def _block_requirement(block: Block) -> Requirement | None:
    """A delta block read as the CLI's `show` reads it: re-parsed as a small document whose
    first line is `### <title>`; kept only when its first section's title is
    `Requirement: <something>`."""
    header, nl, body = block.raw.partition("\n")
    title = js_trim(re.sub(rf"\A###[{WS}]*", "", header, count=1))
    doc = Document(f"### {title}\n{body}" if nl else f"### {title}")
    if not doc.roots:
        # Only when the title holds a line separator (U+2028...): the CLI then reads an
        # undefined section and throws, and its catch-all skips the file.
        raise DropFile
    sec = doc.roots[0]
    if not _REQ_TITLE.match(sec.title):
        return None
    return requirement_from_section(doc, sec, block.line - 1)


def delta_requirements(spec_id: str, path: Path, dt: DeltaPlan) -> list[Delta]:
    """The deltas of one file in the CLI's `show` order: ADDED, MODIFIED, REMOVED, RENAMED."""
    out: list[Delta] = []
    for op, blocks, verb in ((ADDED, dt.added, "Add"), (MODIFIED, dt.modified, "Modify")):
        for b in blocks:
            req = _block_requirement(b)
            if req is not None:
                out.append(
                    Delta(
                        spec_id,
                        op,
                        path,
                        req.line,
                        requirement=req,
                        name=req.name,
                        description=f"{verb} requirement: {req.text}",
                    )
                )
    pool: dict[str, deque[Block]] = {}
    for b in dt.removed_blocks:
        pool.setdefault(b.name, deque()).append(b)
    for entry in dt.removed:
        # Each name takes the first unused block of exactly that name; a bullet-form entry
        # has none and reads as a bare header.
        name = entry.name
        queue = pool.get(name)
        block = queue.popleft() if queue else Block("", name, f"### Requirement: {name}", entry.line)
        req = _block_requirement(block)
        if req is not None:
            out.append(
                Delta(
                    spec_id,
                    REMOVED,
                    path,
                    req.line,
                    requirement=req,
                    name=name,
                    description=f"Remove requirement: {req.text}",
                )
            )
    for p in dt.renamed:
        out.append(
            Delta(
                spec_id,
                RENAMED,
                path,
                p.line,
                name=p.to,
                rename_from=p.frm,
                description=f'Rename requirement from "{p.frm}" to "{p.to}"',
            )
        )
    return out
