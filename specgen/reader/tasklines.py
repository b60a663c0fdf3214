"""Task lines: which line of a task file is a task, and its mark and text, as the OpenSpec CLI
1.13.2 reads them. The one rule for `list`'s progress (:mod:`specgen.reader.changes`) and
`validate`'s task lints (:mod:`specgen.rules.tasks`); its own module so that `validate` imports
it without the proposal and delta readers.
"""

from __future__ import annotations

import re

from specgen.reader.text import EOL_IN_LINE, JS_SPACE, WS_CHARS, js_trim

# JS_SPACE, not a [WS] class: the same characters, compiled faster (validate's start-up).
_TASK_HEAD = re.compile(rf"{JS_SPACE}*(?:[-*+]|[0-9]{{1,9}}[.)]){JS_SPACE}*\[")


def task_line(line: str) -> tuple[str, str] | None:
    """(the box's mark, '' for a blank box; the task's text) when `line` is a task line as the CLI
    reads one (`- [ ]`, `* [x]`, `1. [X]`, `- [~]`, `- [ x ]`; not a link like `- [A](url)`), else
    None. The one rule for `list`'s progress and `validate`'s task lints. Decided without
    backtracking."""
    m = _TASK_HEAD.match(line)
    if not m:
        return None
    b = line[m.end() :]
    q = len(b) - len(b.lstrip(WS_CHARS))
    if q == len(b):
        return None
    c = b[q]
    if c == "]":
        if b[q + 1 : q + 2] in ("(", "[") and q == 0:
            return None
        return "", _task_text(b[q + 1 :])  # a blank box (`[ ](...)` still counts)
    r = b[q + 1 :]
    q2 = len(r) - len(r.lstrip(WS_CHARS))
    if r[q2 : q2 + 1] == "]" and r[q2 + 1 : q2 + 2] not in ("(", "["):
        return c, _task_text(r[q2 + 1 :])
    return None


def _task_text(rest: str) -> str:
    """JavaScript `\\s*(.*)` after the box, trimmed: blanks (line terminators included) skipped,
    then the text up to the next line terminator."""
    rest = rest.lstrip(WS_CHARS)
    cut = min((i for i in (rest.find(c) for c in EOL_IN_LINE) if i != -1), default=len(rest))
    return js_trim(rest[:cut])
