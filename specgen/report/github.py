"""GitHub Actions output: workflow-command annotations, capped, and the step summary.

GitHub keeps at most 10 error annotations per step, so :func:`annotations` prints the 10 worst
(the order given: callers sort worst first) and then one ``::notice`` counting the rest, which the
log and the report still list. Messages are escaped as workflow commands require. The step summary is
capped at 64 KB (:func:`capped_summary`): its head (the summary, then the worst items) and a pointer to the
full report, so a 13,000-scenario tree never meets GitHub's 1 MiB limit per step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LIMIT = 10


@dataclass(frozen=True)
class Annotation:
    level: str  # error | warning | notice
    path: str | None
    line: int | None
    title: str
    message: str


def _escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def command(a: Annotation) -> str:
    props = [
        f"file={_escape(a.path, True)}" if a.path else "",
        f"line={a.line}" if a.path and a.line else "",
        f"title={_escape(a.title, True)}",
    ]
    return f"::{a.level} {','.join(p for p in props if p)}::{_escape(a.message)}"


def annotations(items: list[Annotation], what: str, limit: int = LIMIT) -> list[str]:
    """At most `limit` annotations, worst first (the order of `items`), and one notice for the rest."""
    out = [command(a) for a in items[:limit]]
    rest = len(items) - limit
    if rest > 0:
        out.append(
            command(
                Annotation(
                    "notice",
                    None,
                    None,
                    "specgen",
                    f"{rest} more {what} not annotated (GitHub keeps {limit} per step); "
                    "`specgen check` (text) and the report list them all",
                )
            )
        )
    return out


SUMMARY_LIMIT = 64_000  # bytes of one step summary: GitHub refuses a step's summaries past 1 MiB


def capped_summary(markdown: str, full_report: str, limit: int = SUMMARY_LIMIT) -> str:
    """`markdown` (report.md: the summary and the worst items first) cut at a line so that it and a last
    line pointing at `full_report` fit in `limit` bytes; unchanged when it fits."""
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    if len(text.encode("utf-8")) <= limit:
        return text
    lines = text.splitlines(keepends=True)
    budget = limit - 400  # room for the pointer line
    kept, used = [], 0
    for line in lines:
        size = len(line.encode("utf-8"))
        if used + size > budget:
            break
        kept.append(line)
        used += size
    rest = len(lines) - len(kept)
    return (
        "".join(kept)
        + f"\n_The step summary stops here ({rest} more line(s); capped at {limit // 1000} KB): the full report is "
        f"{full_report} (report.md, report.html and report.json; upload the folder as an artifact to keep it)._\n"
    )


def append_step_summary(markdown: str, full_report: str = "build/specgen/report.md") -> Path | None:
    """Append `markdown`, capped (:func:`capped_summary`), to $GITHUB_STEP_SUMMARY when it is set; the file
    written, or None."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(capped_summary(markdown, full_report))
    return Path(target)
