"""Change metadata (``.openspec.yaml``), schemas and markers, as OpenSpec CLI 1.13.2 reads them:
the ``skip_specs`` / ``retire_capabilities`` markers are honoured only on valid metadata naming
a known schema (see docs/validation.md). PyYAML is imported only when a file is parsed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from specgen.errors import SpecgenError
from specgen.reader.files import Files
from specgen.rules.validate_spec import node_fs_message

_YAML_LOADER = None


# `key: word` lines only (what `openspec new change` writes: schema and created date): the fast path.
_SIMPLE_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*): +([A-Za-z][A-Za-z0-9_.-]*|[0-9]{4}-[0-9]{2}-[0-9]{2})[ \t]*")
_NOT_STRINGS = frozenset({"null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE"})


def _simple_mapping(text: str) -> dict | None:
    """The mapping a file of `key: word` lines holds (every value a string under the loader below),
    or None for anything else (which goes to PyYAML): validate need not import PyYAML for it."""
    if "\r" in text or text.startswith("\ufeff"):
        return None
    out: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        m = _SIMPLE_LINE.fullmatch(line)
        if m is None or m.group(2) in _NOT_STRINGS:
            return None
        out[m.group(1)] = m.group(2)
    return out or None


def _yaml_load(text: str):
    """YAML 1.2 core-ish: like the `yaml` npm package, no timestamps and no yes/no/on/off booleans."""
    global _YAML_LOADER
    simple = _simple_mapping(text)
    if simple is not None:
        return simple
    import yaml

    if _YAML_LOADER is None:
        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        class Loader(base):  # type: ignore[misc, valid-type]
            pass

        Loader.yaml_implicit_resolvers = {
            k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
            for k, v in base.yaml_implicit_resolvers.items()
        }
        Loader.add_implicit_resolver(
            "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
        )
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


def list_schemas(root: Path, files: Files | None = None) -> list[str]:
    files = files or Files()
    return files.memo(("list_schemas", os.fspath(root)), lambda: _list_schemas(root, files))


def _list_schemas(root: Path, files: Files) -> list[str]:
    names = set(BUILTIN_SCHEMAS)
    for d in (_user_schemas_dir(), root / "openspec" / "schemas"):
        try:
            for e in files.entries(d):
                if e.is_dir() and files.path_exists(Path(e.path) / "schema.yaml"):
                    names.add(e.name)
        except OSError:
            pass
    return sorted(names)


class SchemaError(SpecgenError):
    """The change's schema cannot be resolved (unknown name, broken schema.yaml, bad metadata)."""


def schema_dir(name: str, root: Path, files: Files | None = None) -> str | None:
    """'builtin' for the package schema, a path for a project/user schema, None when unknown."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        return None
    files = files or Files()
    for d in (root / "openspec" / "schemas" / name, _user_schemas_dir() / name):
        if files.path_exists(d / "schema.yaml"):
            return str(d)
    return "builtin" if name in BUILTIN_SCHEMAS else None


def resolve_schema(name: str, root: Path, files: Files | None = None) -> dict:
    """{'artifacts': [generates...], 'tasks': generates of the tracked task artifact or None}
    (callers must not mutate it)."""
    files = files or Files()
    return files.memo(("resolve_schema", name, os.fspath(root)), lambda: _resolve_schema(name, root, files))


def _resolve_schema(name: str, root: Path, files: Files) -> dict:
    name = re.sub(r"\.ya?ml$", "", name)
    where = schema_dir(name, root, files)
    if where is None:
        raise SchemaError(f"Schema '{name}' not found. Available schemas: {', '.join(list_schemas(root, files))}")
    if where == "builtin":
        return BUILTIN_SCHEMAS[name]
    path = Path(where) / "schema.yaml"
    try:
        data = _yaml_load(files.text_utf8(path))
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
                out.append(
                    (
                        f"initiative.{key}",
                        f"{label} must be kebab-case with lowercase letters, numbers, and single hyphen separators",
                    )
                )
        extra = [k for k in ini if k not in ("store", "id")]
        if extra:
            out.append(
                (
                    "initiative",
                    "Unrecognized key" + ("s" if len(extra) > 1 else "") + ": " + ", ".join(f'"{k}"' for k in extra),
                )
            )
    typed("skip_specs", "boolean")
    typed("retire_capabilities", "boolean")
    return out


@dataclass
class Marker:
    declared: bool
    invalid_reason: str | None = None


def _unhonorable(reason: str) -> Marker:
    return Marker(False, re.sub("[\x00-\x1f\x7f]", "?", reason))


def read_marker(change_dir: Path, key: str, root: Path | None = None, files: Files | None = None) -> Marker:
    """A boolean marker (skip_specs, retire_capabilities) in .openspec.yaml, honoured as the CLI does."""
    files = files or Files()
    path = change_dir / ".openspec.yaml"
    try:
        raw = files.text(path)
    except FileNotFoundError:
        return Marker(False)
    except OSError as exc:
        return _unhonorable(f"the metadata file cannot be read ({node_fs_message(exc, 'open', path)})")
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
        if schema not in list_schemas(proj, files):
            return _unhonorable(f"schema: unknown schema '{schema}'")
        try:
            resolve_schema(schema, proj, files)
        except SchemaError as exc:
            return _unhonorable(exc.message)
        return Marker(True)
    if isinstance(parsed, dict) and key in parsed and parsed[key] is not False:
        where, msg = problems[0]
        return _unhonorable(f"{where}: {msg}" if where else msg)
    return Marker(False)


_DEFAULT_SCHEMA_LINE = re.compile(r"^schema: spec-driven[ \t]*\r?$", re.M)


def _names_the_default_schema(config_text: str) -> bool:
    """True when the project config's schema is spec-driven whatever the rest of the file holds:
    its one mention of `schema` is the top-level line `schema: spec-driven`, and there are no
    escapes (a quoted key could spell `schema` otherwise). Valid YAML then gives spec-driven, and
    invalid YAML falls back to spec-driven: the answer needs no YAML parser (start-up of validate)."""
    return (
        config_text.count("schema") == 1
        and "\\" not in config_text
        and _DEFAULT_SCHEMA_LINE.search(config_text) is not None
    )


def resolve_schema_name(change_dir: Path, root: Path, files: Files | None = None) -> str:
    """The change's schema: its .openspec.yaml, else openspec/config.yaml, else spec-driven.

    Raises SchemaError where the CLI's metadata reader throws (invalid YAML, metadata or schema).
    """
    files = files or Files()
    key = ("resolve_schema_name", os.fspath(change_dir), os.fspath(root))
    return files.memo(key, lambda: _resolve_schema_name(change_dir, root, files))


def _resolve_schema_name(change_dir: Path, root: Path, files: Files) -> str:
    path = change_dir / ".openspec.yaml"
    if files.path_exists(path):
        try:
            parsed = _yaml_load(files.text(path))
        except Exception as exc:
            raise SchemaError(f"Invalid YAML in metadata file: {exc}") from None
        if _metadata_issues(parsed):
            raise SchemaError("Invalid metadata")
        if parsed["schema"] not in list_schemas(root, files):
            raise SchemaError(f"Unknown schema '{parsed['schema']}'")
        return parsed["schema"]
    for name in ("config.yaml", "config.yml"):
        cfg = root / "openspec" / name
        if files.path_exists(cfg):
            text = files.text(cfg)
            if _names_the_default_schema(text):
                return "spec-driven"
            try:
                data = _yaml_load(text)
            except Exception:
                break
            if isinstance(data, dict) and isinstance(data.get("schema"), str) and data["schema"]:
                return data["schema"]
            break
    return "spec-driven"
