"""Sections -> specs: a main spec file read exactly as the OpenSpec CLI 1.13.2 ``show`` reads it
(and ``validate <spec>``, which uses the same section-tree reader; see docs/reading-openspec.md).

``parse_spec_text(text)`` gives the Purpose, the requirements (text and scenarios as the CLI
reports them, with lines) and, for a spec the CLI cannot show, the reason (``error``).
``parse_spec(path, spec_id)`` reads the file strictly (:func:`specgen.reader.text.read_text`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from specgen.model import Requirement, Scenario, Spec
from specgen.reader.markdown import Document, Section, requirement_name, scenario_name
from specgen.reader.text import WS_CHARS, read_text

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


def requirement_from_section(doc: Document, sec: Section, line_offset: int = 0) -> Requirement:
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
    out.requirements = tuple(requirement_from_section(doc, child) for child in reqs.children)
    return out


def parse_spec(path: Path | str, spec_id: str | None = None) -> Spec:
    """One spec file. A spec the CLI cannot show (no Purpose text, no Requirements section)
    parses with ``error`` set and no requirements, as the CLI's ``list`` counts it."""
    path = Path(path)
    return spec_from_text(read_text(path), path, spec_id or path.parent.name)


def spec_from_text(text: str, path: Path, spec_id: str) -> Spec:
    """The model Spec of a spec text that lives (or will live) at `path`."""
    st = parse_spec_text(text)
    return Spec(spec_id, path, spec_id, st.overview, st.requirements, heading=st.heading, error=st.error)
