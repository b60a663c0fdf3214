"""Task-file lints of ``openspec validate <change>`` (OpenSpec CLI 1.13.2): a tracked task file
with no checkbox, and numbered task ids outside their group or declared twice (docs/validation.md).
"""

from __future__ import annotations

import re
from pathlib import Path

from specgen.errors import WARNING, Issue
from specgen.reader.files import Files
from specgen.reader.tasklines import task_line
from specgen.reader.text import DOT, JS_NON_SPACE, JS_SPACE, content_column, js_trim, js_trim_end, js_trim_start
from specgen.rules.collate import collation_key
from specgen.rules.metadata import SchemaError, resolve_schema, resolve_schema_name, schema_dir
from specgen.rules.validate_spec import MSG_TASKS_NO_CHECKBOX, issue

_LEVEL_TWO = re.compile("^ {0,3}##(?!#)(?:[ \t]+|[ \t]*\r?\\Z)")
_NUMBERED_GROUP = re.compile("^ {0,3}##[ \t]+([0-9]+)\\.(?:[ \t]|\r?\\Z)")
_TASK_ID = re.compile("^([0-9]+(?:\\.[0-9]+)+(?:[A-Za-z]+)?)(?=" + JS_SPACE + "|\\Z)")
_LIST_ITEM = re.compile("^" + JS_SPACE + "*(?:[-*+]|[0-9]{1,9}[.)])" + JS_SPACE + "+" + JS_NON_SPACE)
_TASK_FENCE = re.compile("^ {0,3}(`{3,}|~{3,})(" + DOT + "*)")
_FRONT_MATTER = re.compile("^-{3}" + JS_SPACE + "*\\Z")


def parse_task_lines(content: str) -> list[tuple[bool, str]]:
    """(done, text) of every task line (:func:`specgen.reader.tasklines.task_line`, the one rule)."""
    out = []
    for line in content.split("\n"):
        task = task_line(line) if "[" in line else None
        if task is not None:
            out.append((task[0].lower() == "x", task[1]))
    return out


def _indent_columns(line: str) -> int:
    return content_column(line[: len(line) - len(line.lstrip(" \t"))])


def _first_list_item_line(content: str) -> int | None:
    lines = content.split("\n")
    index = 0
    if lines and _FRONT_MATTER.match(
        js_trim_end(lines[0].lstrip("\ufeff") if lines[0].startswith("\ufeff") else lines[0])
    ):
        for k in range(1, len(lines)):
            if _FRONT_MATTER.match(js_trim_end(lines[k])):
                index = k + 1
                break
    open_fence = None
    in_comment = False
    for i in range(index, len(lines)):
        line = lines[i]
        if in_comment:
            if "-->" in line:
                in_comment = False
            continue
        m = _TASK_FENCE.match(line)
        if m:
            marker, length = m.group(1)[0], len(m.group(1))
            if open_fence is None:
                open_fence = (marker, length)
            elif marker == open_fence[0] and length >= open_fence[1] and js_trim(m.group(2)) == "":
                open_fence = None
            continue
        if open_fence is not None:
            continue
        if js_trim_start(line).startswith("<!--"):
            if "-->" not in line[line.index("<!--") + 4 :]:
                in_comment = True
            continue
        if _LIST_ITEM.match(line) and _indent_columns(line) < 4:
            return i + 1
    return None


def _numbering_issues(documents: list[tuple[str, str]]) -> list[tuple[str, int, str]]:
    issues = []
    first: dict[str, tuple[str, int]] = {}
    for path, content in documents:
        lines = content.split("\n")
        if not any(_NUMBERED_GROUP.match(ln) for ln in lines):
            continue
        group = None
        for idx, line in enumerate(lines):
            if _LEVEL_TWO.match(line):
                m = _NUMBERED_GROUP.match(line)
                group = m.group(1) if m else None
            if group is None:
                continue
            tasks = parse_task_lines(line)
            if not tasks:
                continue
            m = _TASK_ID.match(tasks[0][1])
            if not m:
                continue
            tid = m.group(1)
            ln = idx + 1
            tgroup = tid.split(".")[0]
            if re.sub(r"^0+(?=\d)", "", tgroup) != re.sub(r"^0+(?=\d)", "", group):
                issues.append(
                    (
                        path,
                        ln,
                        f'Task "{tid}" is under group {group}, but its leading number points to group '
                        f"{tgroup}. Move it to group {tgroup} or renumber it.",
                    )
                )
            if tid in first:
                fp, fl = first[tid]
                decl = f"on line {fl}" if fp == path else f"in {fp} on line {fl}"
                issues.append((path, ln, f'Task ID "{tid}" is duplicated; it was first declared {decl}.'))
            else:
                first[tid] = (path, ln)
    return issues


def _tracked_task_files(change_dir: Path, root: Path, files: Files) -> list[Path]:
    try:
        schema = resolve_schema(resolve_schema_name(change_dir, root, files), root, files)
    except SchemaError:
        return []
    gen = schema.get("tasks")
    if not gen:
        return []
    if not any(c in gen for c in "*?[{"):
        p = change_dir / gen
        return [p] if files.is_file(p) else []
    return sorted(p for p in files.glob(change_dir, gen) if files.is_file(p))


def _uses_builtin_spec_driven(change_dir: Path, root: Path, files: Files) -> bool:
    try:
        name = re.sub(r"\.ya?ml$", "", resolve_schema_name(change_dir, root, files))
    except SchemaError:
        return False
    return name == "spec-driven" and schema_dir(name, root, files) == "builtin"


def task_issues(change_dir: Path, root: Path, rel_change: str, files: Files | None = None) -> list[Issue]:
    files = files or Files()
    tracked = _tracked_task_files(change_dir, root, files)
    docs: list[tuple[str, str]] = []
    unreadable = 0
    for f in tracked or [change_dir / "tasks.md"]:
        try:
            content = files.text(f)
        except FileNotFoundError:
            continue
        except OSError:
            unreadable += 1
            continue
        try:
            rel = files.realpath(f).relative_to(files.realpath(change_dir)).as_posix()
        except ValueError:
            rel = f.name
        docs.append((rel, content))
    docs.sort(key=lambda d: collation_key(d[0]))
    out: list[Issue] = []
    if tracked and unreadable == 0 and docs and not any(parse_task_lines(c) for _, c in docs):
        for path, content in docs:
            ln = _first_list_item_line(content)
            if ln is not None:
                out.append(issue(WARNING, path, MSG_TASKS_NO_CHECKBOX, ln, f"{rel_change}/{path}", True))
    if _uses_builtin_spec_driven(change_dir, root, files):
        for path, ln, msg in _numbering_issues(docs):
            out.append(issue(WARNING, path, msg, ln, f"{rel_change}/{path}", True))
    return out
