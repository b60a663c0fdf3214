"""Validation: OpenSpec's `validate [--strict]` rules, levels, verdicts and messages, with lines.

Every rule here reproduces OpenSpec CLI 1.13.2 (found by probing the CLI on fixture projects):

- a main spec (``openspec/specs/<id>/spec.md``) is read with the section-tree reader
  (:func:`specgen.deltas.parse_spec_text`), checked against the spec schema, then by the spec
  rules (structure, Purpose, requirement length, scenarios, SHALL/MUST);
- a change is judged by its delta specs (``changes/<id>/specs/**/spec.md``) read with the
  requirement-block reader, plus the archive dry run against the current specs, the
  ``skip_specs`` marker and the task-file lints.

An :class:`Issue` carries the CLI's ``level``, ``path`` (the CLI's own locator: a file relative
to the change's specs/, ``requirements[3]``, ``overview``, ``file``...) and ``message``, plus
``file`` (the real file, relative to the project root) and ``line`` (1-based) so that every
issue can be shown as ``file:line: level: message``.

Verdict: valid when no ERROR (and, with strict, no WARNING). INFO never fails.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from specgen import deltas as D

ERROR, WARNING, INFO = "ERROR", "WARNING", "INFO"

MIN_PURPOSE_LENGTH = 50
MAX_REQUIREMENT_TEXT_LENGTH = 500

GUIDE_NO_DELTAS = (
    "No deltas found. Ensure your change has a specs/ directory with capability folders (e.g. "
    "specs/http-server/spec.md) containing .md files that use delta headers (## ADDED/MODIFIED/REMOVED/RENAMED "
    'Requirements) and that each requirement includes at least one "#### Scenario:" block. If this change '
    'intentionally modifies no specs (pure refactor, tooling, docs), set "skip_specs: true" in the change\'s '
    '.openspec.yaml instead. Tip: run "openspec change show <change-id> --json --deltas-only" to inspect parsed '
    "deltas."
)
GUIDE_MISSING_SPEC_SECTIONS = (
    'Missing required sections. Expected headers: "## Purpose" and "## Requirements". Example:\n## Purpose\n'
    "[brief purpose]\n\n## Requirements\n### Requirement: Clear requirement statement\nUsers SHALL ...\n\n"
    "#### Scenario: Descriptive name\n- **WHEN** ...\n- **THEN** ..."
)
GUIDE_SCENARIO_FORMAT = (
    "Scenarios must use level-4 headers. Convert bullet lists into:\n#### Scenario: Short name\n- **WHEN** ...\n"
    "- **THEN** ...\n- **AND** ..."
)
MSG_CHANGE_NO_DELTAS = "Change must have at least one delta"
MSG_SKIP_CONFLICT = ("skip_specs is set in .openspec.yaml but spec files exist under specs/. Remove skip_specs or "
                     "delete the delta spec files")
MSG_SKIP_ACCEPTED = ("skip_specs is set in .openspec.yaml: change declares no spec-level behavior changes, zero "
                     "deltas accepted")
MSG_SKIP_INVALID = ("skip_specs is set but .openspec.yaml is not valid change metadata, so the marker is not "
                    "honored. Fix the metadata")
MSG_PURPOSE_TOO_BRIEF = f"Purpose section is too brief (less than {MIN_PURPOSE_LENGTH} characters)"
MSG_PURPOSE_PLACEHOLDER = (
    "Purpose section is still a placeholder rather than a Purpose anyone wrote (the sentence `openspec archive` "
    "writes for a new capability, or a `TBD`/`TODO` marker left in its place). Replace it with what this "
    "capability is for, editing the main spec directly: a `## Purpose` in a delta is read only when the "
    "capability is created, so it cannot replace this one."
)
MSG_REQUIREMENT_TOO_LONG = (f"Requirement text is very long (>{MAX_REQUIREMENT_TEXT_LENGTH} characters). "
                            "Consider breaking it down.")
MSG_NO_SCENARIOS = "Requirement must have at least one scenario"
MSG_NO_REQUIREMENTS = "Spec must have at least one requirement"
MSG_TASKS_NO_CHECKBOX = (
    'This change counts as 0 tasks: no line in its tracked task files is a checkbox, so "openspec list" and '
    '"openspec status" report no work and "openspec archive" has nothing to flag as incomplete. Write each task '
    'as "- [ ] 1.1 Description".'
)


@dataclass
class Issue:
    level: str  # ERROR | WARNING | INFO
    path: str  # the CLI's locator, exactly as `openspec validate --json` prints it
    message: str
    line: int | None = None  # 1-based line in `file`
    file: str | None = None  # the file holding the issue, relative to the project root (POSIX)
    cli_line: bool = False  # the CLI itself reports `line` for this issue

    def to_json(self) -> dict:
        out = {"level": self.level, "path": self.path}
        if self.line is not None:
            out["line"] = self.line
        out["message"] = self.message
        return out

    def human(self) -> str:
        where = self.file or self.path
        loc = f"{where}:{self.line}" if self.line else where
        return f"{loc}: {self.level.lower()}: {self.message.replace(chr(10), ' ')}"


def is_valid(issues: list[Issue], strict: bool = False) -> bool:
    if strict:
        return not any(i.level in (ERROR, WARNING) for i in issues)
    return not any(i.level == ERROR for i in issues)


def _shall_message(prefix: str, name: str, guidance: bool = False) -> str:
    base = f"{prefix} {'should' if guidance else 'must'} contain SHALL or MUST"
    suffix = " (RFC 2119 best practice for English specs)" if guidance else ""
    if D.contains_shall_or_must(name):
        return (f"{base} in the requirement body, not only in the header. Move the SHALL/MUST statement to the line "
                f'immediately after the "### Requirement: ..." header.{suffix}')
    return f"{base}{suffix}"


def _block_text(raw: str) -> str:
    return D.extract_requirement_body(raw.split("\n")[1:])


# --------------------------------------------------------------------------------------------
# Purpose placeholder
# --------------------------------------------------------------------------------------------

_MARKER_PUNCT = re.compile("[ \t]*(?:\\Z|\n|[:\\-\u2013\u2014.,;()\\[\\]{}])")
_PURPOSE_HEADER = re.compile("^ {0,3}##(?!#)[ \t]+Purpose[ \t]*\\Z", re.I | re.A)
_TOP_HEADER = re.compile("^ {0,3}#{1,2}(?!#)[ \t]+")


def _is_word_char(ch: str) -> bool:
    import unicodedata

    if ch == "_":
        return True
    cat = unicodedata.category(ch)
    return cat[0] in ("L", "N", "M")


def _leading_marker(prose: str) -> bool:
    for word in ("TBD", "TODO"):
        n = len(word)
        head = prose[:n]
        if head.upper() != word or (len(prose) > n and _is_word_char(prose[n])):
            continue
        if head == word:
            return True
        if _MARKER_PUNCT.match(prose, n):
            return True
    return False


def _placeholder_prefix_index(text: str) -> int | None:
    suffix_at = text.find(D.PURPOSE_PLACEHOLDER_SUFFIX)
    while suffix_at != -1:
        prefix_at = text.rfind(D.PURPOSE_PLACEHOLDER_PREFIX, 0, suffix_at + len(D.PURPOSE_PLACEHOLDER_PREFIX))
        if prefix_at != -1 and prefix_at <= suffix_at:
            return prefix_at
        suffix_at = text.find(D.PURPOSE_PLACEHOLDER_SUFFIX, suffix_at + 1)
    return None


def _purpose_placeholder(overview: str, content: str):
    """(found, line) for a Purpose that is still a TBD/TODO or archive's generated sentence."""
    lines = D.normalize_eol(overview).split("\n")
    fm = D.fence_mask(lines)
    prose = D.js_trim("\n".join(l for i, l in enumerate(lines) if not fm[i]))
    leading = _leading_marker(prose)
    if not leading and _placeholder_prefix_index(prose) is None:
        return False, None
    lines = D.normalize_eol(content).split("\n")
    fm = D.fence_mask(lines)
    hdr = next((i for i, l in enumerate(lines) if not fm[i] and _PURPOSE_HEADER.match(l)), -1)
    if hdr == -1:
        return True, None
    purpose_lines = []
    for i in range(hdr + 1, len(lines)):
        if fm[i]:
            continue
        if _TOP_HEADER.match(lines[i]):
            break
        if leading and D.js_trim(lines[i]):
            return True, i + 1
        purpose_lines.append((i + 1, lines[i]))
    if leading:
        return True, None
    purpose = "\n".join(t for _, t in purpose_lines)
    at = _placeholder_prefix_index(purpose)
    if at is None:
        return True, None
    offset = purpose[:at].count("\n")
    return True, purpose_lines[offset][0] if offset < len(purpose_lines) else None


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------

def validate_spec_content(name: str, content: str, file: str | None = None) -> list[Issue]:
    """All issues of one main spec's text (the level decides the verdict; see :func:`is_valid`)."""
    issues: list[Issue] = []
    try:
        spec = D.parse_spec_text(content, name)
    except D.SpecParseError as exc:
        return [Issue(ERROR, "file", f"{exc}. {GUIDE_MISSING_SPEC_SECTIONS}", 1, file)]
    reqs = spec.requirements
    # The spec schema: at least one requirement; each with text and at least one scenario.
    if not reqs:
        issues.append(Issue(ERROR, "requirements", MSG_NO_REQUIREMENTS, spec.requirements_line, file))
    for i, r in enumerate(reqs):
        if not r.text:
            issues.append(Issue(ERROR, f"requirements.{i}.text", "Requirement text cannot be empty", r.line, file))
        if not r.scenarios:
            issues.append(Issue(ERROR, f"requirements.{i}.scenarios", MSG_NO_SCENARIOS, r.line, file))
    for s in D.find_main_spec_structure_issues(content):
        issues.append(Issue(ERROR, "file", s["message"], s["line"], file, True))
    found, pline = _purpose_placeholder(spec.overview, content)
    if found:
        issues.append(Issue(WARNING, "overview", MSG_PURPOSE_PLACEHOLDER, pline, file, pline is not None))
        if pline is None:
            issues[-1].line = spec.purpose_line
            issues[-1].cli_line = False
    elif D.js_len(spec.overview) < MIN_PURPOSE_LENGTH:
        issues.append(Issue(WARNING, "overview", MSG_PURPOSE_TOO_BRIEF, spec.purpose_line, file))
    for i, r in enumerate(reqs):
        if D.js_len(r.text) > MAX_REQUIREMENT_TEXT_LENGTH:
            issues.append(Issue(INFO, f"requirements[{i}]", MSG_REQUIREMENT_TOO_LONG, r.line, file))
        if not r.scenarios:
            issues.append(Issue(WARNING, f"requirements[{i}].scenarios", f"{MSG_NO_SCENARIOS}. {GUIDE_SCENARIO_FORMAT}",
                                r.line, file))
    for i, block in enumerate(D.extract_requirements_section(content).body_blocks):
        text = _block_text(block.raw)
        if not text:
            issues.append(Issue(ERROR, f"requirements[{i}]", _shall_message(f'Requirement "{block.name}"', block.name),
                                block.line, file))
        elif not D.contains_shall_or_must(text):
            issues.append(Issue(WARNING, f"requirements[{i}]",
                                _shall_message(f'Requirement "{block.name}"', block.name, True), block.line, file))
    return issues


def validate_spec_file(path: Path, name: str, file: str | None = None) -> list[Issue]:
    try:
        content = D.read_text(path)
    except OSError as exc:
        return [Issue(ERROR, "file", _node_fs_message(exc, "open", path), 1, file)]
    return validate_spec_content(name, content, file)


def _node_fs_message(exc: OSError, syscall: str, path: Path) -> str:
    import errno as _errno

    code = _errno.errorcode.get(exc.errno or 0, "EIO")
    text = {"ENOENT": "no such file or directory", "EACCES": "permission denied",
            "EISDIR": "illegal operation on a directory", "ENOTDIR": "not a directory"}.get(code, exc.strerror or "")
    return f"{code}: {text}, {syscall} '{path}'"


# --------------------------------------------------------------------------------------------
# Change metadata (.openspec.yaml), schemas and project config
# --------------------------------------------------------------------------------------------

_YAML_LOADER = None


def _yaml_load(text: str):
    """YAML 1.2 core-ish: like the `yaml` npm package, no timestamps and no yes/no/on/off booleans."""
    global _YAML_LOADER
    import yaml

    if _YAML_LOADER is None:
        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        class Loader(base):  # type: ignore[misc, valid-type]
            pass

        Loader.yaml_implicit_resolvers = {
            k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
            for k, v in base.yaml_implicit_resolvers.items()
        }
        Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                     list("tTfF"))
        _YAML_LOADER = Loader
    return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)


BUILTIN_SCHEMAS = {
    # The package's built-in schema: its tracked task artifact generates tasks.md.
    "spec-driven": {"artifacts": ["proposal.md", "specs/**/*.md", "design.md", "tasks.md"], "tasks": "tasks.md"},
}


def _user_schemas_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "openspec" / "schemas"


def list_schemas(root: Path) -> list[str]:
    names = set(BUILTIN_SCHEMAS)
    for d in (_user_schemas_dir(), root / "openspec" / "schemas"):
        try:
            for e in os.scandir(d):
                if e.is_dir() and (Path(e.path) / "schema.yaml").exists():
                    names.add(e.name)
        except OSError:
            pass
    return sorted(names)


class SchemaError(Exception):
    pass


def _schema_dir(name: str, root: Path) -> str | None:
    """'builtin' for the package schema, a path for a project/user schema, None when unknown."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        return None
    for d in (root / "openspec" / "schemas" / name, _user_schemas_dir() / name):
        if (d / "schema.yaml").exists():
            return str(d)
    return "builtin" if name in BUILTIN_SCHEMAS else None


def resolve_schema(name: str, root: Path) -> dict:
    """{'artifacts': [generates...], 'tasks': generates of the tracked task artifact or None}."""
    name = re.sub(r"\.ya?ml$", "", name)
    where = _schema_dir(name, root)
    if where is None:
        raise SchemaError(f"Schema '{name}' not found. Available schemas: {', '.join(list_schemas(root))}")
    if where == "builtin":
        return BUILTIN_SCHEMAS[name]
    path = Path(where) / "schema.yaml"
    try:
        data = _yaml_load(path.read_text(encoding="utf-8"))
        arts = data["artifacts"]
        generates = [a["generates"] for a in arts]
    except Exception as exc:  # a broken project schema: the CLI refuses it too
        raise SchemaError(f"Invalid schema at '{path}': {exc}") from None
    tracks = (data.get("apply") or {}).get("tracks") if isinstance(data.get("apply"), dict) else None
    if tracks is not None:
        task = next((a["generates"] for a in arts if a.get("generates") == tracks), None)
    else:
        task = next((a["generates"] for a in arts if a.get("id") == "tasks"), None)
    return {"artifacts": generates, "tasks": task}


_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\Z")


def _js_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _metadata_issues(data) -> list[tuple[str, str]]:
    """The change-metadata schema: [(dotted path, message)] in the order the CLI's schema reports them."""
    if not isinstance(data, dict):
        return [("", f"Invalid input: expected object, received {_js_type(data) if data is not None else 'null'}")]
    out = []

    def typed(key, want, optional=True):
        if key not in data and optional:
            return False
        v = data.get(key)
        if _js_type(v) != want:
            got = "undefined" if key not in data else _js_type(v)
            out.append((key, f"Invalid input: expected {want}, received {got}"))
            return False
        return True

    if typed("schema", "string", optional=False) and len(data["schema"]) < 1:
        out.append(("schema", "schema is required"))
    if typed("created", "string") and not re.match(r"^\d{4}-\d{2}-\d{2}\Z", data["created"], re.A):
        out.append(("created", "created must be YYYY-MM-DD format"))
    if typed("goal", "string") and len(data["goal"]) < 1:
        out.append(("goal", "Too small: expected string to have >=1 characters"))
    if typed("affected_areas", "array"):
        for i, v in enumerate(data["affected_areas"]):
            if not isinstance(v, str):
                out.append((f"affected_areas.{i}", f"Invalid input: expected string, received {_js_type(v)}"))
            elif not v:
                out.append((f"affected_areas.{i}", "Too small: expected string to have >=1 characters"))
    if typed("initiative", "object"):
        ini = data["initiative"]
        for key, label in (("store", "Store id"), ("id", "Initiative id")):
            if key not in ini or not isinstance(ini[key], str):
                got = "undefined" if key not in ini else _js_type(ini[key])
                out.append((f"initiative.{key}", f"Invalid input: expected string, received {got}"))
            elif not _KEBAB.match(ini[key]):
                out.append((f"initiative.{key}",
                            f"{label} must be kebab-case with lowercase letters, numbers, and single hyphen separators"))
        extra = [k for k in ini if k not in ("store", "id")]
        if extra:
            out.append(("initiative", "Unrecognized key" + ("s" if len(extra) > 1 else "") + ": "
                        + ", ".join(f'"{k}"' for k in extra)))
    typed("skip_specs", "boolean")
    typed("retire_capabilities", "boolean")
    return out


@dataclass
class Marker:
    declared: bool
    invalid_reason: str | None = None


def _unhonorable(reason: str) -> Marker:
    return Marker(False, re.sub("[\x00-\x1f\x7f]", "?", reason))


def read_marker(change_dir: Path, key: str, root: Path | None = None) -> Marker:
    """A boolean marker (skip_specs, retire_capabilities) in .openspec.yaml, honoured as the CLI does."""
    path = change_dir / ".openspec.yaml"
    try:
        raw = D.read_text(path)
    except FileNotFoundError:
        return Marker(False)
    except OSError as exc:
        return _unhonorable(f"the metadata file cannot be read ({_node_fs_message(exc, 'open', path)})")
    if key not in raw:
        return Marker(False)  # no spelling of the key: nothing declared, whatever the YAML
    try:
        parsed = _yaml_load(raw)
    except Exception:
        mentioned = re.search(r"^\s*(['\"]?)" + key + r"\1\s*:", raw, re.M)
        return _unhonorable("the file is not valid YAML") if mentioned else Marker(False)
    problems = _metadata_issues(parsed)
    if not problems:
        if parsed.get(key) is not True:
            return Marker(False)
        proj = root or change_dir.parent.parent.parent
        schema = parsed["schema"]
        if schema not in list_schemas(proj):
            return _unhonorable(f"schema: unknown schema '{schema}'")
        try:
            resolve_schema(schema, proj)
        except SchemaError as exc:
            return _unhonorable(str(exc))
        return Marker(True)
    if isinstance(parsed, dict) and key in parsed and parsed[key] is not False:
        where, msg = problems[0]
        return _unhonorable(f"{where}: {msg}" if where else msg)
    return Marker(False)


def resolve_schema_name(change_dir: Path, root: Path) -> str:
    """The change's schema: its .openspec.yaml, else openspec/config.yaml, else spec-driven.

    Raises SchemaError where the CLI's metadata reader throws (invalid YAML, metadata or schema).
    """
    path = change_dir / ".openspec.yaml"
    if path.exists():
        try:
            parsed = _yaml_load(D.read_text(path))
        except Exception as exc:
            raise SchemaError(f"Invalid YAML in metadata file: {exc}") from None
        if _metadata_issues(parsed):
            raise SchemaError("Invalid metadata")
        if parsed["schema"] not in list_schemas(root):
            raise SchemaError(f"Unknown schema '{parsed['schema']}'")
        return parsed["schema"]
    for name in ("config.yaml", "config.yml"):
        cfg = root / "openspec" / name
        if cfg.exists():
            try:
                data = _yaml_load(D.read_text(cfg))
            except Exception:
                break
            if isinstance(data, dict) and isinstance(data.get("schema"), str) and data["schema"]:
                return data["schema"]
            break
    return "spec-driven"


# --------------------------------------------------------------------------------------------
# Task files
# --------------------------------------------------------------------------------------------

_TASK_LINE = re.compile(
    "^" + D._S + "*(?:[-*+]|[0-9]{1,9}[.)])" + D._S + "*\\[(?:" + D._S + "*((?:[\\x1c-\\x1f\\x85]|(?!\\ufeff)[^\\]\\s])?)"
    + D._S + "*\\](?![(\\[])|" + D._S + "+\\])" + D._S + "*(" + D._DOT + "*)")
_LEVEL_TWO = re.compile("^ {0,3}##(?!#)(?:[ \t]+|[ \t]*\r?\\Z)")
_NUMBERED_GROUP = re.compile("^ {0,3}##[ \t]+([0-9]+)\\.(?:[ \t]|\r?\\Z)")
_TASK_ID = re.compile("^([0-9]+(?:\\.[0-9]+)+(?:[A-Za-z]+)?)(?=" + D._S + "|\\Z)")
_LIST_ITEM = re.compile("^" + D._S + "*(?:[-*+]|[0-9]{1,9}[.)])" + D._S + "+" + D._NS)
_TASK_FENCE = re.compile("^ {0,3}(`{3,}|~{3,})(" + D._DOT + "*)")
_FRONT_MATTER = re.compile("^-{3}" + D._S + "*\\Z")


def parse_task_lines(content: str) -> list[tuple[bool, str]]:
    out = []
    for line in content.split("\n"):
        m = _TASK_LINE.match(line)
        if m:
            out.append(((m.group(1) or "").lower() == "x", D.js_trim(m.group(2))))
    return out


def _indent_columns(line: str) -> int:
    return D._content_column(line[: len(line) - len(line.lstrip(" \t"))])


def _first_list_item_line(content: str) -> int | None:
    lines = content.split("\n")
    index = 0
    if lines and _FRONT_MATTER.match(D.js_trim_end(lines[0].lstrip("\ufeff") if lines[0].startswith("\ufeff")
                                                   else lines[0])):
        for k in range(1, len(lines)):
            if _FRONT_MATTER.match(D.js_trim_end(lines[k])):
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
            elif marker == open_fence[0] and length >= open_fence[1] and D.js_trim(m.group(2)) == "":
                open_fence = None
            continue
        if open_fence is not None:
            continue
        if D.js_trim_start(line).startswith("<!--"):
            if "-->" not in line[line.index("<!--") + 4:]:
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
        if not any(_NUMBERED_GROUP.match(l) for l in lines):
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
                issues.append((path, ln, f'Task "{tid}" is under group {group}, but its leading number points to group '
                                         f"{tgroup}. Move it to group {tgroup} or renumber it."))
            if tid in first:
                fp, fl = first[tid]
                decl = f"on line {fl}" if fp == path else f"in {fp} on line {fl}"
                issues.append((path, ln, f'Task ID "{tid}" is duplicated; it was first declared {decl}.'))
            else:
                first[tid] = (path, ln)
    return issues


def _tracked_task_files(change_dir: Path, root: Path) -> list[Path]:
    try:
        schema = resolve_schema(resolve_schema_name(change_dir, root), root)
    except SchemaError:
        return []
    gen = schema.get("tasks")
    if not gen:
        return []
    if not any(c in gen for c in "*?[{"):
        p = change_dir / gen
        return [p] if p.is_file() else []
    return sorted(p for p in change_dir.glob(gen) if p.is_file())


def _uses_builtin_spec_driven(change_dir: Path, root: Path) -> bool:
    try:
        name = re.sub(r"\.ya?ml$", "", resolve_schema_name(change_dir, root))
    except SchemaError:
        return False
    return name == "spec-driven" and _schema_dir(name, root) == "builtin"


def task_issues(change_dir: Path, root: Path, rel_change: str) -> list[Issue]:
    tracked = _tracked_task_files(change_dir, root)
    files = tracked or [change_dir / "tasks.md"]
    docs: list[tuple[str, str]] = []
    unreadable = 0
    for f in files:
        try:
            content = D.read_text(f)
        except FileNotFoundError:
            continue
        except OSError:
            unreadable += 1
            continue
        try:
            rel = f.resolve().relative_to(change_dir.resolve()).as_posix()
        except ValueError:
            rel = f.name
        docs.append((rel, content))
    docs.sort(key=lambda d: collation_key(d[0]))
    out: list[Issue] = []
    if tracked and unreadable == 0 and docs and not any(parse_task_lines(c) for _, c in docs):
        for path, content in docs:
            ln = _first_list_item_line(content)
            if ln is not None:
                out.append(Issue(WARNING, path, MSG_TASKS_NO_CHECKBOX, ln, f"{rel_change}/{path}", True))
    if _uses_builtin_spec_driven(change_dir, root):
        for path, ln, msg in _numbering_issues(docs):
            out.append(Issue(WARNING, path, msg, ln, f"{rel_change}/{path}", True))
    return out


# --------------------------------------------------------------------------------------------
# Nested (namespace-folder) changes
# --------------------------------------------------------------------------------------------

_CHANGE_ROOT_MARKERS = (".openspec.yaml", "proposal.md", "tasks.md", "design.md")


def _looks_like_change(d: Path, root: Path) -> bool:
    if any((d / m).is_file() for m in _CHANGE_ROOT_MARKERS):
        return True
    try:
        if D.has_any_file_under(d / "specs"):
            return True
    except OSError:
        pass
    try:
        schema = resolve_schema(resolve_schema_name(d, root), root)
    except SchemaError:
        return False
    for gen in schema["artifacts"]:
        if any(c in gen for c in "*?[{"):
            if any(p.is_file() for p in d.glob(gen)):
                return True
        elif (d / gen).exists():
            return True
    return False


def nested_change_message(changes_dir: Path, name: str, root: Path) -> str | None:
    if name == "archive" or name.startswith("."):
        return None
    d = changes_dir / name
    if _looks_like_change(d, root):
        return None
    try:
        if any(not e.name.startswith(".") and not e.is_dir() for e in os.scandir(d)):
            return None
    except OSError:
        return None
    found: list[str] = []

    def collect(cur: Path, prefix: str, depth: int) -> None:
        if depth > 3:
            return
        try:
            subs = sorted(e.name for e in os.scandir(cur) if e.is_dir() and not e.name.startswith("."))
        except OSError:
            return
        for child in subs:
            cid = f"{prefix}/{child}"
            if _looks_like_change(cur / child, root):
                found.append(cid)
                continue
            collect(cur / child, cid, depth + 1)

    collect(d, name, 1)
    if not found:
        return None
    found.sort()
    listed = ", ".join(f"openspec/changes/{i}/" for i in found)
    example = found[0].replace("/", "-")
    return (f'"{name}" is not a change: it is a folder wrapping {listed}. A change must be a directory directly under '
            "openspec/changes/, so those nested directories are invisible to OpenSpec while the folder around them is "
            "reported as a change. Nested paths are supported under openspec/specs/ only. Rename each nested change "
            f'to a flat name (for example "{example}").')


# --------------------------------------------------------------------------------------------
# Changes
# --------------------------------------------------------------------------------------------

def _format_sections(sections: list[str]) -> str:
    if not sections:
        return ""
    if len(sections) == 1:
        return sections[0]
    return f"{', '.join(sections[:-1])} and {sections[-1]}"


def validate_change_dir(change_dir: Path, root: Path, *, against_main: bool = True, tasks: bool = True) -> list[Issue]:
    """The issues `openspec validate <change>` reports (``against_main``/``tasks`` off: archive's own pre-check)."""
    issues: list[Issue] = []
    specs_dir = change_dir / "specs"
    main_dir = root / "openspec" / "specs"
    rel_change = _rel(change_dir, root)
    rel_specs = f"{rel_change}/specs"
    total = 0
    has_root_spec = (specs_dir / "spec.md").is_file()
    missing_header: list[str] = []
    empty_sections: list[tuple[str, list[str]]] = []
    if has_root_spec:
        issues.append(Issue(ERROR, "spec.md", "Delta spec found at specs/spec.md. Delta specs must live under a "
                                              "capability path (e.g. specs/<capability-path>/spec.md) — a file at the "
                                              "specs/ root is ignored when the change is applied or archived.",
                            1, f"{rel_specs}/spec.md"))
    discovered = D.discover_spec_files(specs_dir) if specs_dir.is_dir() else []
    for spec_id, spec_file in discovered:
        try:
            content = D.read_text(spec_file)
        except OSError:
            continue
        plan = D.parse_delta_spec(content)
        entry = f"{spec_id}/spec.md"
        file = f"{rel_specs}/{entry}"

        def add(level, message, line=None, cli_line=False):
            issues.append(Issue(level, entry, message, line, file, cli_line))

        for s in plan.skipped_headers:
            if re.match(r"^requirement:?\Z", s["header"], re.I | re.A):
                add(INFO, f'Header "### {s["header"]}" in {s["section"]} is missing a requirement name and is ignored '
                          'by validation. Add a name, e.g. "### Requirement: <name>".', s["line"], True)
            else:
                add(INFO, f'Header "### {s["header"]}" in {s["section"]} is not a "### Requirement:" header and is '
                          f'ignored by validation. Use "### Requirement: {s["header"]}" if it should be validated as '
                          "a requirement.", s["line"], True)
        for u in plan.unpaired_renames:
            missing = "TO" if u["side"] == "FROM" else "FROM"
            add(ERROR, f'RENAMED {u["side"]}: "{u["name"]}" has no matching {missing}: line. Write each rename as a '
                       "FROM: line followed immediately by its TO: line.", u["line"], True)
        for o in plan.orphaned_requirements:
            where = f'under "## {o["section"]}"' if o["section"] else 'above the first "## " section'
            add(WARNING, f'Requirement "{o["name"]}" is {where}, which is not a delta section, so it is ignored. Move '
                         'it under "## ADDED Requirements", "## MODIFIED Requirements", "## REMOVED Requirements", '
                         'or "## RENAMED Requirements".', o["line"], True)
        names = [t for k, t in (("added", "## ADDED Requirements"), ("modified", "## MODIFIED Requirements"),
                                ("removed", "## REMOVED Requirements"), ("renamed", "## RENAMED Requirements"))
                 if plan.section_presence[k]]
        if not (plan.added or plan.modified or plan.removed or plan.renamed):
            if names:
                empty_sections.append((entry, names, min(plan.section_lines.values()) + 1))
            else:
                missing_header.append(entry)
        added_n: set[str] = set()
        modified_n: set[str] = set()
        removed_n: set[str] = set()
        rfrom: set[str] = set()
        rto: set[str] = set()
        for op, blocks, seen in (("ADDED", plan.added, added_n), ("MODIFIED", plan.modified, modified_n)):
            for b in blocks:
                key = D.normalize_requirement_name(b.name)
                total += 1
                if key in seen:
                    add(ERROR, f'Duplicate requirement in {op}: "{b.name}"', b.line)
                else:
                    seen.add(key)
                text = _block_text(b.raw)
                if not text:
                    add(ERROR, _shall_message(f'{op} "{b.name}"', b.name) if D.contains_shall_or_must(b.name)
                        else f'{op} "{b.name}" is missing requirement text', b.line)
                elif not D.contains_shall_or_must(text):
                    add(WARNING, _shall_message(f'{op} "{b.name}"', b.name, True), b.line)
                body = b.raw.split("\n")[1:]
                if D.count_scenarios(body) < 1:
                    hint = (' (a scenario header with no body under it does not count; add its steps, e.g. '
                            '"- **WHEN** ..." and "- **THEN** ...")') if D.count_empty_scenarios(body) else ""
                    add(ERROR, f'{op} "{b.name}" must include at least one scenario{hint}', b.line)
            if op == "MODIFIED" and against_main and plan.modified:
                main_file = main_dir.joinpath(*spec_id.split("/"), "spec.md")
                issues.extend(_scenario_loss(plan, main_file, entry, file))
        for r in plan.removed:
            key = D.normalize_requirement_name(r.name)
            total += 1
            if key in removed_n:
                add(ERROR, f'Duplicate requirement in REMOVED: "{r.name}"', r.line)
            else:
                removed_n.add(key)
        for p in plan.renamed:
            f, t = D.normalize_requirement_name(p.frm), D.normalize_requirement_name(p.to)
            total += 1
            if f in rfrom:
                add(ERROR, f'Duplicate FROM in RENAMED: "{p.frm}"', p.line)
            else:
                rfrom.add(f)
            if t in rto:
                add(ERROR, f'Duplicate TO in RENAMED: "{p.to}"', p.line)
            else:
                rto.add(t)
        lines_of = {}
        for b in plan.modified:
            lines_of.setdefault(("M", D.normalize_requirement_name(b.name)), b.line)
        for b in plan.added:
            lines_of.setdefault(("A", D.normalize_requirement_name(b.name)), b.line)
        for n in modified_n:
            if n in removed_n:
                add(ERROR, f'Requirement present in both MODIFIED and REMOVED: "{n}"', lines_of.get(("M", n)))
            if n in added_n:
                add(ERROR, f'Requirement present in both MODIFIED and ADDED: "{n}"', lines_of.get(("M", n)))
        for n in added_n:
            if n in removed_n:
                add(ERROR, f'Requirement present in both ADDED and REMOVED: "{n}"', lines_of.get(("A", n)))
        for p in plan.renamed:
            f, t = D.normalize_requirement_name(p.frm), D.normalize_requirement_name(p.to)
            if f in modified_n:
                add(ERROR, f'MODIFIED references old name from RENAMED. Use new header for "{p.to}"', p.line)
            if t in added_n:
                add(ERROR, f'RENAMED TO collides with ADDED for "{p.to}"', p.line)
            fold = next((r for r in removed_n if D.fold_requirement_name(r) == D.fold_requirement_name(f)), None)
            if fold is not None:
                add(ERROR, f'Requirement present in both RENAMED and REMOVED: "{p.frm}"'
                    + ("" if fold == f else f' (REMOVED spells it "{fold}")'), p.line)
    if against_main:
        reported = {i.path for i in issues if i.level == ERROR} | set(missing_header) | {e[0] for e in empty_sections}
        for upd in D.find_spec_updates(change_dir, main_dir) if discovered else []:
            entry = f"{upd.id}/spec.md"
            if entry in reported:
                continue
            try:
                D.build_update(upd, change_dir.name)
            except D.ArchiveAbort as exc:
                issues.append(Issue(INFO, entry, f"Archive would refuse this delta: {exc.message}", exc.line,
                                    _rel(Path(exc.path), root) if exc.path else f"{rel_specs}/{entry}"))
            except Exception:  # a filesystem error says nothing about whether the delta applies
                continue
    unread = D.find_unread_delta_files(specs_dir)
    for u in unread:
        issues.append(Issue(ERROR, u["path"], f"Delta spec found at specs/{u['path']}. Delta specs must be a spec.md "
                                              "inside a capability folder — this file is ignored when the change is "
                                              f"applied or archived. Move its requirements into specs/{u['expected']}.",
                            1, f"{rel_specs}/{u['path']}"))
    for entry, sections, line in empty_sections:
        issues.append(Issue(ERROR, entry, f"Delta sections {_format_sections(sections)} were found, but no requirement "
                                          'entries parsed. Ensure each section includes at least one "### Requirement:" '
                                          "block (REMOVED may use bullet list syntax).", line, f"{rel_specs}/{entry}"))
    for entry in missing_header:
        issues.append(Issue(ERROR, entry, 'No delta sections found. Add headers such as "## ADDED Requirements" or move '
                                          "non-delta notes outside specs/.", 1, f"{rel_specs}/{entry}"))
    marker = read_marker(change_dir, "skip_specs", root)
    meta = f"{rel_change}/.openspec.yaml"
    if marker.invalid_reason:
        issues.append(Issue(ERROR, ".openspec.yaml", f"{MSG_SKIP_INVALID} ({marker.invalid_reason})", 1, meta))
    skip = marker.declared
    has_files = False
    if skip:
        try:
            has_files = D.has_any_file_under(specs_dir)
        except OSError:
            has_files = True
        if has_files:
            issues.append(Issue(ERROR, "file", MSG_SKIP_CONFLICT, 1, meta))
    if total == 0 and not has_root_spec and not unread:
        if skip and not has_files:
            issues.append(Issue(INFO, "file", MSG_SKIP_ACCEPTED, 1, meta))
        elif not skip:
            issues.append(Issue(ERROR, "file", f"{MSG_CHANGE_NO_DELTAS}. {GUIDE_NO_DELTAS}", None, rel_change))
    if tasks:
        issues.extend(task_issues(change_dir, root, rel_change))
    return issues


def _scenario_loss(plan: D.DeltaPlan, main_file: Path, entry: str, file: str) -> list[Issue]:
    try:
        main = D.read_text(main_file)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        import errno as _errno

        code = _errno.errorcode.get(exc.errno or 0, "")
        if code not in ("EACCES", "EPERM", "EISDIR", "ELOOP", "ENAMETOOLONG"):
            return []
        return [Issue(ERROR, entry, f"Could not read {main_file.as_posix()} to check the MODIFIED requirements against "
                                    f"it ({code}). Archive reads the same file, so fix the file before archiving.",
                      None, file)]
    current = {}
    for b in D.extract_requirements_section(main).body_blocks:
        current[D.normalize_requirement_name(b.name)] = b
    renamed_from = {D.normalize_requirement_name(p.to): D.normalize_requirement_name(p.frm) for p in plan.renamed}
    renamed_away = {D.normalize_requirement_name(p.frm) for p in plan.renamed}
    out = []
    for block in plan.modified:
        key = D.normalize_requirement_name(block.name)
        if key in renamed_away:
            continue
        visited = set()
        k = key
        cur = None
        while k is not None and k not in visited:
            cur = current.get(k)
            if cur is not None:
                break
            visited.add(k)
            k = renamed_from.get(k)
        if cur is None:
            continue
        diff = D.diff_scenario_names(cur.raw, block.raw)
        if not diff.missing:
            continue
        names = ", ".join(f'"{n}"' for n in diff.missing)
        out.append(Issue(ERROR, entry, f'MODIFIED "{block.name}" omits scenario(s) the current spec still has: {names}. '
                                       f"{D.describe_scenario_balance(diff)} Copy the omitted scenarios into the "
                                       "MODIFIED block (a MODIFIED requirement replaces the whole block, so archive "
                                       "refuses to drop them).", block.line, file))
    return out


def validate_change_for_archive(root: Path, change_id: str) -> list[Issue]:
    """Archive's gate: the delta-spec validation, run only when the change carries delta content."""
    change_dir = root / "openspec" / "changes" / change_id
    specs_dir = change_dir / "specs"
    has = (specs_dir / "spec.md").is_file() or bool(D.find_unread_delta_files(specs_dir))
    if not has:
        marker = read_marker(change_dir, "skip_specs", root)
        if marker.invalid_reason:
            has = True
        elif marker.declared:
            try:
                has = D.has_any_file_under(specs_dir)
            except OSError:
                has = True
    if not has:
        rx = re.compile("^##" + D._S + "+(?:" + "|".join(D._ci(w) for w in ("ADDED", "MODIFIED", "REMOVED", "RENAMED"))
                        + ")" + D._S + "+" + D._ci("Requirements"), re.M)
        for _, f in D.discover_spec_files(specs_dir):
            try:
                text = D.read_text(f)  # JavaScript's `m` flag: `^` after \r, U+2028 and U+2029 too
                if rx.search(text.replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")):
                    has = True
                    break
            except OSError:
                pass
    if not has:
        return []
    return validate_change_dir(change_dir, root, against_main=False, tasks=False)


# --------------------------------------------------------------------------------------------
# Items, ordering, reports
# --------------------------------------------------------------------------------------------

def _rel(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return Path(path).as_posix()


def change_ids(root: Path) -> list[str]:
    d = root / "openspec" / "changes"
    try:
        names = [e.name for e in os.scandir(d) if e.is_dir() and e.name != "archive" and not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(names, key=_utf16_key)


def spec_ids(root: Path) -> list[str]:
    return [i for i, _ in D.discover_spec_files(root / "openspec" / "specs")]


def _utf16_key(s: str):
    return s.encode("utf-16-be")


# ICU root collation, approximated for the names OpenSpec sorts: punctuation and symbols before
# digits before letters, letters compared case-insensitively first and lowercase before uppercase.
_PUNCT_ORDER = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"


def _primary(ch: str):
    if ch.isspace():
        return (0, 0, ch)
    i = _PUNCT_ORDER.find(ch)
    if i != -1:
        return (1, i, "")
    if ch.isdigit():
        return (3, 0, ch)
    if ch.isalpha():
        import unicodedata

        base = unicodedata.normalize("NFD", ch)[0].lower()
        return (4, 0, base)
    return (2, ord(ch), "")


def collation_key(s: str):
    """A sort key approximating JavaScript's `localeCompare` (ICU root collation) for ids and paths."""
    primary = tuple(_primary(c) for c in s)
    tertiary = tuple(0 if c.islower() or not c.isalpha() else 1 for c in s)
    return (primary, tertiary, s)


@dataclass
class ItemResult:
    id: str
    type: str  # "change" | "spec"
    valid: bool
    issues: list[Issue]
    duration_ms: int

    def to_json(self) -> dict:
        return {"id": self.id, "type": self.type, "valid": self.valid,
                "issues": [i.to_json() for i in self.issues], "durationMs": self.duration_ms}


def validate_item(root: Path, item_type: str, item_id: str, strict: bool = False) -> ItemResult:
    start = time.perf_counter()
    if item_type == "change":
        nested = nested_change_message(root / "openspec" / "changes", item_id, root)
        if nested:
            issues = [Issue(ERROR, "file", nested, None, f"openspec/changes/{item_id}")]
            return ItemResult(item_id, "change", False, issues, int((time.perf_counter() - start) * 1000))
        issues = validate_change_dir(root / "openspec" / "changes" / item_id, root)
    else:
        path = root / "openspec" / "specs" / Path(*item_id.split("/")) / "spec.md"
        issues = validate_spec_file(path, item_id.split("/")[0], _rel(path, root))
    return ItemResult(item_id, item_type, is_valid(issues, strict), issues, int((time.perf_counter() - start) * 1000))


def validate(project, item: str | None = None, strict: bool = False, *, item_type: str | None = None) -> list[Issue]:
    """Issues for one item (change or spec id) or, with item None/"all", for every change and spec."""
    from specgen.model import Project

    root = Path(project.root if isinstance(project, Project) else project)
    if item in (None, "all", "--all"):
        out: list[Issue] = []
        for r in validate_all(root, strict=strict)["results"]:
            out.extend(r.issues)
        return out
    kind = item_type or ("change" if item in change_ids(root) else "spec" if item in spec_ids(root) else None)
    if kind is None:
        from specgen.model import SpecgenError

        raise SpecgenError(f"Unknown item '{item}'.")
    return validate_item(root, kind, item, strict).issues


def summarize(results: list[ItemResult], changes: bool, specs: bool) -> dict:
    def by(t):
        sel = [r for r in results if r.type == t]
        passed = sum(1 for r in sel if r.valid)
        return {"items": len(sel), "passed": passed, "failed": len(sel) - passed}

    passed = sum(1 for r in results if r.valid)
    by_type = {}
    if changes:
        by_type["change"] = by("change")
    if specs:
        by_type["spec"] = by("spec")
    return {"totals": {"items": len(results), "passed": passed, "failed": len(results) - passed}, "byType": by_type}


def validate_all(root: Path, *, changes: bool = True, specs: bool = True, strict: bool = False) -> dict:
    """The bulk report: {"results": [ItemResult...] sorted as the CLI sorts them, "summary": {...}}."""
    results = []
    if changes:
        for cid in change_ids(root):
            results.append(validate_item(root, "change", cid, strict))
    if specs:
        for sid in spec_ids(root):
            results.append(validate_item(root, "spec", sid, strict))
    results.sort(key=lambda r: collation_key(r.id))
    return {"results": results, "summary": summarize(results, changes, specs)}


def root_output(root: Path) -> dict:
    return {"path": str(Path(os.path.realpath(root))), "source": "nearest"}


def report_json(root: Path, *, changes: bool = True, specs: bool = True, strict: bool = False) -> dict:
    """What `openspec validate --all|--changes|--specs --json [--strict]` prints, plus `line` on issues."""
    report = validate_all(root, changes=changes, specs=specs, strict=strict)
    return {"items": [r.to_json() for r in report["results"]], "summary": report["summary"], "version": "1.0",
            "root": root_output(root)}
