"""YAML files with line numbers, and `extends` / `inherit` resolution.

Loading keeps, for every key and list item, the file and line that set it (``marks``), so that a
problem found much later (a coherence gate over the merged tree) can still point at the line to
edit. Two YAML traps are closed here: duplicate keys (PyYAML keeps the last one silently) are an
error, and ``1e-4`` is read as a float (YAML 1.1 reads it as the string "1e-4").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .issues import Issue, KeyPath, Loc, dotted

EXTENDS_KEYS = ("extends", "inherit")  # `inherit` is an alias of `extends`


class _Loader(yaml.SafeLoader):
    """SafeLoader plus YAML 1.2 floats (``1e-4``, ``5E3``), which YAML 1.1 leaves as strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass
class YamlDoc:
    """One parsed file: its data, and the line of every key path in it."""

    path: Path
    data: dict
    marks: dict[KeyPath, Loc]


def load_yaml(path: Path, issues: list[Issue]) -> YamlDoc | None:
    """Parse one file; problems are appended to ``issues`` (None when the file is unusable)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        issues.append(Issue(Loc(file, 1), "", f"cannot read config file: {exc.strerror or exc}"))
        return None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        marks: dict[KeyPath, Loc] = {}
        data = _build(loader, node, (), file, marks, issues) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        issues.append(Issue(Loc(file, line), "", f"invalid YAML: {problem}"))
        return None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        issues.append(
            Issue(Loc(file, 1), "", f"a config file must be a mapping of sections, got a {type(data).__name__}")
        )
        return None
    return YamlDoc(path, data, marks)


_PLAIN_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}


def _build(loader: _Loader, node: yaml.Node, path: KeyPath, file: str, marks: dict, issues: list[Issue]) -> Any:
    expected = _PLAIN_TAGS.get(type(node))
    if expected is not None and node.tag != expected:  # e.g. `!!python/object`: never constructed, never ignored
        raise yaml.constructor.ConstructorError(None, None, f"unsupported YAML tag {node.tag!r}", node.start_mark)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # `<<: *anchor` merge keys
        out: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                issues.append(Issue(Loc(file, line), dotted(path), f"config keys must be strings, got {key!r}"))
                key = str(key)
            if key in out:
                first = marks.get(path + (key,))
                issues.append(
                    Issue(
                        Loc(file, line),
                        dotted(path + (key,)),
                        f"duplicate key (first set at line {first.line if first else '?'}); "
                        "YAML would silently keep only the last value: keep one",
                    )
                )
            marks[path + (key,)] = Loc(file, line)
            out[key] = _build(loader, value_node, path + (key,), file, marks, issues)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            marks[path + (i,)] = Loc(file, item.start_mark.line + 1)
            items.append(_build(loader, item, path + (i,), file, marks, issues))
        return items
    return loader.construct_object(node, deep=True)


@dataclass
class ConfigTree:
    """The merged config of a leaf file and all its bases."""

    leaf: Path
    data: dict
    marks: dict[KeyPath, Loc]
    files: list[Path] = field(default_factory=list)  # every file read, bases first, leaf last
    leaf_doc: YamlDoc | None = None  # the leaf as written (before merging), for the profile contract


def _drop_prefix(marks: dict[KeyPath, Loc], prefix: KeyPath) -> None:
    n = len(prefix)
    for k in [k for k in marks if k[:n] == prefix]:
        del marks[k]


def _merge(base: dict, base_marks: dict, top: dict, top_marks: dict, prefix: KeyPath = ()) -> dict:
    """Deep-merge ``top`` over ``base`` (dicts merge, lists and scalars replace), moving marks along."""
    out = dict(base)
    for key, value in top.items():
        path = prefix + (key,)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], base_marks, value, top_marks, path)
            base_marks[path] = top_marks.get(path, base_marks.get(path))
        else:
            out[key] = value
            _drop_prefix(base_marks, path)
            n = len(path)
            base_marks.update({k: v for k, v in top_marks.items() if k[:n] == path})
    return out


def load_tree(leaf: Path, issues: list[Issue]) -> ConfigTree | None:
    """Load ``leaf`` and its `extends` chain; cycles and missing bases are errors naming the chain."""
    leaf = Path(leaf).resolve()
    tree = ConfigTree(leaf, {}, {})
    result = _resolve(leaf, (), tree, issues)
    if result is None:
        return None
    tree.data, tree.marks = result
    return tree


def _resolve(path: Path, chain: tuple[Path, ...], tree: ConfigTree, issues: list[Issue]):
    doc = load_yaml(path, issues)
    if doc is None:
        return None
    if not chain:
        tree.leaf_doc = YamlDoc(doc.path, dict(doc.data), dict(doc.marks))
    data, marks = doc.data, doc.marks
    present = [k for k in EXTENDS_KEYS if k in data]
    if len(present) > 1:
        issues.append(
            Issue(
                marks[(present[1],)],
                present[1],
                "both `extends` and its alias `inherit` are set: use one `extends:` (a string or a list)",
            )
        )
    bases: list[tuple[str, Loc]] = []
    for key in present:
        raw = data.pop(key)
        loc = marks[(key,)]
        values = raw if isinstance(raw, list) else [raw]
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value.strip():
                issues.append(Issue(loc, key, f"must be a file path or a list of file paths, got {value!r}"))
                continue
            bases.append((value, marks.get((key, i), loc) if isinstance(raw, list) else loc))
        _drop_prefix(marks, (key,))
    merged: dict = {}
    merged_marks: dict[KeyPath, Loc] = {}
    ok = True
    for ref, loc in bases:
        base = (path.parent / ref).resolve()
        if base in chain or base == path:
            cycle = " -> ".join(p.name if p.parent == path.parent else str(p) for p in (*chain, path, base))
            issues.append(Issue(loc, "extends", f"extends cycle: {cycle}; a config cannot extend itself"))
            ok = False
            continue
        if not base.is_file():
            issues.append(
                Issue(loc, "extends", f"base config {ref!r} not found (resolved relative to this file: {base})")
            )
            ok = False
            continue
        sub = _resolve(base, (*chain, path), tree, issues)
        if sub is None:
            ok = False
            continue
        merged = _merge(merged, merged_marks, sub[0], sub[1])
    tree.files.append(path)
    merged = _merge(merged, merged_marks, data, marks)
    return (merged, merged_marks) if ok else None
