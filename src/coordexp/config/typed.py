"""Strict parsing of plain dataclasses from the merged YAML tree.

Field types come from the annotations (bool, int, float, str, Literal, Optional, list, dict,
nested dataclasses); bounds come from ``field(metadata=...)``: ``ge``, ``gt``, ``le``, ``lt``.
A bool is never accepted as a number and a number never as a bool: YAML ``yes``/``1`` typos
would otherwise flip a flag without a word. Problems are recorded, not raised, so one run reports
them all.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

from .issues import Issue, KeyPath, Loc, dotted

UNKNOWN_KEY_GUIDANCE = (
    "Migration guidance: remove unsupported keys or migrate them to currently supported config paths "
    "(see docs/config-and-data.md)"
)


@dataclass
class Ctx:
    """Where problems go, and how a key path maps to a file line."""

    marks: dict[KeyPath, Loc]
    leaf: Loc
    errors: list[Issue] = dataclasses.field(default_factory=list)
    warnings: list[Issue] = dataclasses.field(default_factory=list)
    # path -> specific message for removed/legacy keys (checked before "unknown key")
    legacy: Callable[[KeyPath], str | None] = lambda path: None

    def loc(self, path: KeyPath) -> Loc:
        """The line of ``path``, or of its nearest ancestor that was written (for a missing key)."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.marks:
                return self.marks[path[:n]]
        return self.leaf

    def error(self, path: KeyPath, message: str) -> None:
        self.errors.append(Issue(self.loc(path), dotted(path), message))

    def warn(self, path: KeyPath, message: str) -> None:
        self.warnings.append(Issue(self.loc(path), dotted(path), message, "warning"))

    def unknown(self, path: KeyPath, allowed: typing.Iterable[str]) -> None:
        specific = self.legacy(path)
        if specific:
            self.error(path, specific)
            return
        hint = difflib.get_close_matches(str(path[-1]), list(allowed), n=1, cutoff=0.75)
        did_you_mean = f" Did you mean `{dotted(path[:-1] + (hint[0],))}`?" if hint else ""
        self.error(path, f"unknown key.{did_you_mean} {UNKNOWN_KEY_GUIDANCE}")


_MISSING = object()


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin in (list, tuple):
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce(tp: Any, value: Any, path: KeyPath, ctx: Ctx) -> Any:
    """``value`` checked against ``tp``; on a mismatch an error is recorded and ``_MISSING`` returned."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            if value is None:
                ctx.error(path, f"must be {_type_name(non_none[0])}, got null")
                return _MISSING
            return coerce(non_none[0], value, path, ctx)
        for arg in non_none:  # e.g. str | dict: first that fits, without recording errors
            probe = Ctx(ctx.marks, ctx.leaf, legacy=ctx.legacy)
            out = coerce(arg, value, path, probe)
            if not probe.errors:
                ctx.warnings.extend(probe.warnings)
                return out
        ctx.error(path, f"must be {_type_name(tp)}, got {_show(value)}")
        return _MISSING
    if origin is Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool) or value not in allowed:
            ctx.error(path, f"must be one of {', '.join(repr(a) for a in allowed)}; got {_show(value)}")
            return _MISSING
        return value
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            ctx.error(path, f"must be a mapping, got {_show(value)}")
            return _MISSING
        return parse_dataclass(tp, value, path, ctx)
    if origin in (list, tuple):
        if not isinstance(value, list):
            ctx.error(path, f"must be a list, got {_show(value)}")
            return _MISSING
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        out = [coerce(item_tp, v, path + (i,), ctx) for i, v in enumerate(value)]
        return out if all(v is not _MISSING for v in out) else _MISSING
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            ctx.error(path, f"must be a mapping, got {_show(value)}")
            return _MISSING
        return value
    if tp is bool:
        if not isinstance(value, bool):
            ctx.error(path, f"must be true or false, got {_show(value)}")
            return _MISSING
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.error(path, f"must be an integer, got {_show(value)}")
            return _MISSING
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.error(path, f"must be a number, got {_show(value)}")
            return _MISSING
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            ctx.error(path, f"must be a string, got {_show(value)}")
            return _MISSING
        return value
    raise TypeError(f"unsupported schema type {tp!r} at {dotted(path)}")  # a schema bug, not user input


def check_bounds(meta: typing.Mapping, value: Any, path: KeyPath, ctx: Ctx) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return True
    for key, ok, words in (
        ("ge", lambda b: value >= b, ">="),
        ("gt", lambda b: value > b, ">"),
        ("le", lambda b: value <= b, "<="),
        ("lt", lambda b: value < b, "<"),
    ):
        if key in meta and not ok(meta[key]):
            ctx.error(path, f"must be {words} {meta[key]}, got {value!r}")
            return False
    return True


def parse_dataclass(cls: type, data: dict, path: KeyPath, ctx: Ctx) -> Any:
    """An instance of ``cls`` from ``data``: unknown keys, missing required keys, types and bounds checked."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            ctx.unknown(path + (key,), fields)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        fpath = path + (name,)
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else f.default_factory()
            if f.default_factory is not dataclasses.MISSING
            else None
        )
        if name not in data:
            if not has_default:
                ctx.error(fpath, f"required key is missing ({f.metadata.get('doc', _type_name(hints[name]))})")
            kwargs[name] = default
            continue
        value = coerce(hints[name], data[name], fpath, ctx)
        if value is _MISSING or not check_bounds(f.metadata, value, fpath, ctx):
            kwargs[name] = default
            continue
        kwargs[name] = value
    return cls(**kwargs)


def to_plain(obj: Any) -> Any:
    """Dataclasses (nested) as plain dicts/lists, for JSON output."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
